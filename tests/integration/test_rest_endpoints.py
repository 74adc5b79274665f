#!/usr/bin/python3
"""Integration: the REST API (issue 3) over real HTTP, endpoint by endpoint.

GET /api/clusters and /api/clusters/{name}: status, headers (Content-Type,
Cache-Control, Content-Length, ETag), byte-order sorting, spec/status passed
through with every field of platform-context.md, {} for absent parts, seq
against the events this test caused, percent-decoded exact names, HEAD, 405,
404, ETag/If-None-Match.  Raw sockets show the bytes as sent.
"""

import asyncio
import os
import re
import signal
import sys
import time
from urllib.parse import quote

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import (Daemon, conn_owner, expect, expect_silence, persona_api, run,  # noqa: E402
                     ws_connect)
from rest_util import (RawHTTP, assert_json_error, byte_sorted, canonical, get,  # noqa: E402
                       get_ok_json, realistic, rest_object)

# Names whose byte order differs from locale / case-folded / UTF-16 order.
ODD_NAMES = ["a", "B", "Z", "_under", "-dash", "0zero", "aa", "a b", "a/b", "a+b", "what?",
             "pct%41", 'q"uote', "back\\slash", "\u00e9t\u00e9", "\u65e5\u672c",
             "\uff61half", "\U0001F600smile", "..", "."]


def check_api_headers(r, what):
    assert r.header("content-type") == "application/json", "%s: %r" % (what, r)
    assert r.header("cache-control") == "no-cache", "%s: %r" % (what, r)
    assert r.count("content-length") == 1, "%s: %r" % (what, r.raw_head)
    assert int(r.header("content-length")) == len(r.body), "%s: Content-Length %s, body %d" % (
        what, r.header("content-length"), len(r.body))
    etag = r.header("etag")
    assert etag and etag.startswith('"') and etag.endswith('"') and len(etag) > 2, \
        "%s: ETag %r" % (what, etag)
    return etag


def test_list_and_detail_pass_through():
    """Every field of platform-context.md reaches the client unchanged."""
    full = realistic("prod-eu-west", nodes=4, app_count=42)
    full["spec"]["policies"]["ratio"] = 0.25
    full["spec"]["defaults"]["negative"] = -3
    full["status"]["namespaces"]["empty"] = {}
    full["status"]["weird"] = "tab\there, newline\n, ctrl\u0001, </script>, \u00e9\U0001F600"
    api = realistic("staging-gke", nodes=2, platform="GKE", phase="Degraded", shape="api")
    seed = {"prod.json": full, "staging.json": api,
            "bare.json": {"name": "bare"},                                   # no spec, no status
            "k8s-nostatus.json": {"apiVersion": "dorgu.io/v1", "kind": "ClusterPersona",
                                  "metadata": {"name": "nostatus"}, "spec": {"name": "n"}}}
    with Daemon(workers=2, seed=seed) as d:
        r = get(d.port, "/api/clusters")
        assert r.status == 200, r
        check_api_headers(r, "list")
        obj = r.json()
        assert list(obj) == ["clusters", "seq", "epoch"], "list keys %r" % list(obj)
        assert obj["seq"] == 0, "seq before any event: %r" % obj["seq"]
        names = [c["name"] for c in obj["clusters"]]
        assert names == ["bare", "nostatus", "prod-eu-west", "staging-gke"], names
        by = {c["name"]: c for c in obj["clusters"]}
        for c in obj["clusters"]:
            assert list(c) == ["name", "spec", "status"], "object keys %r" % list(c)
        assert by["prod-eu-west"] == rest_object(full), "prod differs:\n%r\n%r" % (
            by["prod-eu-west"], rest_object(full))
        assert by["staging-gke"] == rest_object(api)
        assert by["bare"] == {"name": "bare", "spec": {}, "status": {}}, by["bare"]
        assert by["nostatus"] == {"name": "nostatus", "spec": {"name": "n"}, "status": {}}
        st = by["prod-eu-west"]["status"]
        # numbers stay numbers, booleans booleans, quantities strings
        assert type(st["applicationCount"]) is int and st["applicationCount"] == 42
        assert type(st["resourceSummary"]["runningPods"]) is int
        assert by["prod-eu-west"]["spec"]["policies"]["ratio"] == 0.25
        assert by["prod-eu-west"]["spec"]["defaults"]["negative"] == -3
        assert st["nodes"][0]["ready"] is True and st["nodes"][3]["ready"] is False
        assert st["nodes"][0]["capacity"]["cpu"] == "8"
        assert st["nodes"][1]["taints"] == [] and st["namespaces"]["empty"] == {}
        # the list is the objects in canonical spelling, nothing else
        epoch = re.search(r'"epoch":"([A-Za-z0-9_-]+)"}$', r.body.decode()).group(1)
        want = '{"clusters":[%s],"seq":0,"epoch":"%s"}' % (",".join(
            canonical(by[n]) for n in names), epoch)
        assert r.body.decode("utf-8") == want, "list bytes differ from the canonical form"

        # detail: the same bytes as the object inside the list
        for n in names:
            rd = get(d.port, "/api/clusters/" + quote(n, safe=""))
            assert rd.status == 200, (n, rd)
            check_api_headers(rd, "detail " + n)
            assert rd.body.decode("utf-8") == canonical(by[n]), n
            assert rd.json() == by[n]

        # HTTP/1.0 and Connection: close: the body ends exactly at Content-Length
        with RawHTTP(d.port) as c:
            c.send("GET /api/clusters HTTP/1.0\r\n\r\n")
            rest, eof = c.read_rest(3.0)
        head, _, body = rest.partition(b"\r\n\r\n")
        assert eof, "HTTP/1.0 connection not closed after the response"
        cl = [ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length:")]
        assert len(cl) == 1 and int(cl[0].split(b":")[1]) == len(body) == len(r.body), \
            (cl, len(body), len(r.body))


def test_byte_order_and_exact_names():
    seed = {"n%02d.json" % i: persona_api(n, nodes=i) for i, n in enumerate(ODD_NAMES)}
    with Daemon(workers=2, seed=seed) as d:
        obj = get_ok_json(d.port, "/api/clusters")
        names = [c["name"] for c in obj["clusters"]]
        assert names == byte_sorted(ODD_NAMES), "not in byte order:\n%r\n%r" % (
            names, byte_sorted(ODD_NAMES))
        # byte order, not case-folded, not UTF-16 (U+FF61 sorts before U+1F600)
        assert names.index("B") < names.index("a")
        assert names.index("\uff61half") < names.index("\U0001F600smile")
        for i, n in enumerate(ODD_NAMES):
            for target in ("/api/clusters/" + quote(n, safe=""),                # upper hex
                           re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(),
                                  "/api/clusters/" + quote(n, safe=""))):      # lower hex
                r = get(d.port, target)
                assert r.status == 200, "%s -> %r" % (target, r)
                o = r.json()
                assert o["name"] == n and o["spec"]["nodes"] == i, (target, o)
        # raw UTF-8 bytes on the request line decode the same way
        r = get(d.port, "/api/clusters/\u00e9t\u00e9")
        assert r.status == 200 and r.json()["name"] == "\u00e9t\u00e9", r
        # '+' is a plus, not a space; %2B too; "a b" only by %20
        assert get(d.port, "/api/clusters/a+b").json()["name"] == "a+b"
        assert get(d.port, "/api/clusters/a%2Bb").json()["name"] == "a+b"
        assert get(d.port, "/api/clusters/a%20b").json()["name"] == "a b"
        # "pct%41" is not "pctA": no double decoding
        assert get(d.port, "/api/clusters/pct%2541").json()["name"] == "pct%41"
        assert_json_error(get(d.port, "/api/clusters/pct%41"), 404, "pctA")
        # exact match: no prefix, case or normalisation games
        for miss in ("A", "b", "a%20", "%20a", "aaa", "e%CC%81t%C3%A9", "a%2F",
                     "%C3%89t%C3%A9", "\u00e9t"):
            r = get(d.port, "/api/clusters/" + miss)
            err = assert_json_error(r, 404, "miss " + miss)
            assert err == "cluster not found", (miss, err)
        # the query string is not part of the name
        r = get(d.port, "/api/clusters/aa?x=1")
        assert r.status == 200 and r.json()["name"] == "aa", r
        r = get(d.port, "/api/clusters?x=1")
        assert r.status == 200 and len(r.json()["clusters"]) == len(ODD_NAMES), r


def test_unknown_cluster_and_paths():
    with Daemon(workers=1, seed={"a.json": persona_api("alpha")}) as d:
        r = get(d.port, "/api/clusters/nope")
        assert assert_json_error(r, 404, "unknown") == "cluster not found"
        assert r.header("cache-control") == "no-cache"
        assert r.json() == {"error": "cluster not found"}
        outside = ("/api", "/api/", "/api/cluster", "/api/clustersx", "/API/clusters",
                   "/api/Clusters", "/nope", "/healthz/x", "/api/clusters.json", "/ws/x")
        under = ("/api/clusters/", "/api/clusters//alpha", "/api/clusters/alpha/",
                 "/api/clusters/alpha/x")
        for path in outside + under:
            for method in ("GET", "HEAD", "POST", "DELETE"):
                r = get(d.port, path, method=method)
                if method == "HEAD":
                    assert r.status == 404 and r.header("content-type") == "application/json", \
                        "HEAD %s -> %r" % (path, r)
                elif method in ("POST", "DELETE") and path in under:
                    # under the collection the method is refused first
                    assert_json_error(r, 405, "%s %s" % (method, path))
                    assert r.header("allow") == "GET, HEAD"
                else:
                    assert_json_error(r, 404, "%s %s" % (method, path))


def test_head():
    with Daemon(workers=1, seed={"a.json": realistic("alpha"), "b.json": realistic("b")}) as d:
        for target in ("/api/clusters", "/api/clusters/alpha", "/api/clusters/nope"):
            with RawHTTP(d.port) as c:
                g = c.roundtrip("GET", target)
                h = c.roundtrip("HEAD", target)
                # a GET pipelined after the HEAD must start right after the
                # HEAD's header block: the HEAD sent no body bytes
                g2 = c.roundtrip("GET", target)
                assert g2.status == g.status and g2.body == g.body, (target, g2)
            assert h.status == g.status, (target, h, g)
            for k in ("content-type", "cache-control", "content-length", "etag"):
                assert h.header(k) == g.header(k), "%s: HEAD %s %r vs GET %r" % (
                    target, k, h.header(k), g.header(k))
            assert int(h.header("content-length")) == len(g.body), target


def test_methods_405():
    with Daemon(workers=1, seed={"a.json": persona_api("alpha")}) as d:
        for target in ("/api/clusters", "/api/clusters/alpha", "/api/clusters/nope"):
            for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
                for body in (b"", b'{"name":"x"}'):
                    with RawHTTP(d.port) as c:
                        r = c.roundtrip(method, target, body=body)
                        assert_json_error(r, 405, "%s %s" % (method, target))
                        assert r.header("allow") == "GET, HEAD", r
                        assert r.header("cache-control") == "no-cache", r
                        # the connection stays usable (body read and ignored)
                        r2 = c.roundtrip("GET", "/api/clusters/alpha")
                        assert r2.status == 200, r2
        # a 1 MiB body and a chunked body are read and ignored too
        with RawHTTP(d.port, timeout=10) as c:
            r = c.roundtrip("POST", "/api/clusters", body=b"x" * (1 << 20))
            assert_json_error(r, 405, "POST with 1 MiB")
            c.send("PUT /api/clusters/alpha HTTP/1.1\r\nHost: x\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
            r = c.read_response()
            assert_json_error(r, 405, "chunked PUT")
            assert r.header("allow") == "GET, HEAD"
            assert c.roundtrip("GET", "/api/clusters/alpha").status == 200
        # nothing was changed by any of them
        assert [c["name"] for c in get_ok_json(d.port, "/api/clusters")["clusters"]] == ["alpha"]


def test_etag_and_304():
    seed = {"a.json": realistic("alpha"), "b.json": realistic("bravo")}

    async def body():
        with Daemon(workers=2, seed=seed) as d:
            ws = await ws_connect(d)
            try:
                lst = get(d.port, "/api/clusters")
                da = get(d.port, "/api/clusters/alpha")
                db = get(d.port, "/api/clusters/bravo")
                el, ea, eb = lst.header("etag"), da.header("etag"), db.header("etag")
                assert len({el, ea, eb}) == 3, (el, ea, eb)
                for target, etag, full in (("/api/clusters", el, lst),
                                           ("/api/clusters/alpha", ea, da)):
                    for inm in (etag, "W/" + etag, '"zzz", ' + etag, '"x",%s ,"y"' % etag, "*"):
                        for method in ("GET", "HEAD"):
                            with RawHTTP(d.port) as c:
                                r = c.roundtrip(method, target, {"If-None-Match": inm})
                                assert r.status == 304, "%s %s INM %s -> %r" % (
                                    method, target, inm, r)
                                assert r.header("etag") == etag, r
                                assert r.header("cache-control") == "no-cache", r
                                # no body: the next response follows at once
                                r2 = c.roundtrip("GET", "/healthz")
                                assert r2.status == 200 and r2.json() == {"status": "ok"}, r2
                    for inm in ('"0000000000000000"', etag[:-2] + '"', etag[1:-1], '""'):
                        r = get(d.port, target, headers={"If-None-Match": inm})
                        assert r.status == 200 and r.body == full.body, (target, inm, r)
                        assert r.header("etag") == etag
                # a change to alpha: new ETags for alpha and the list, bravo's unchanged
                new = realistic("alpha", app_count=8)
                d.write("a.json", new)
                await expect(ws, "updated", "alpha")
                r = get(d.port, "/api/clusters/alpha", headers={"If-None-Match": ea})
                assert r.status == 200 and r.header("etag") not in (ea, None), r
                assert r.json() == rest_object(new)
                r = get(d.port, "/api/clusters", headers={"If-None-Match": el})
                assert r.status == 200 and r.header("etag") not in (el, None), r
                assert r.json()["seq"] == 1
                r = get(d.port, "/api/clusters/bravo", headers={"If-None-Match": eb})
                assert r.status == 304 and r.header("etag") == eb, r
                # a rewrite with other formatting and key order: same ETag, no event
                ea2 = get(d.port, "/api/clusters/alpha").header("etag")
                el2 = get(d.port, "/api/clusters").header("etag")
                d.write("a.json", new, indent=3, sort_keys=True)
                await expect_silence(ws, 0.5)
                assert get(d.port, "/api/clusters/alpha",
                           headers={"If-None-Match": ea2}).status == 304
                assert get(d.port, "/api/clusters", headers={"If-None-Match": el2}).status == 304
            finally:
                await ws.close()

    asyncio.run(asyncio.wait_for(body(), 40))


def test_304_content_length():
    """RFC 9110 8.6: a 304 may carry Content-Length only if it equals the
    length a 200 would have had."""
    with Daemon(workers=1, seed={"a.json": realistic("alpha")}) as d:
        for target in ("/api/clusters", "/api/clusters/alpha"):
            full = get(d.port, target)
            r = get(d.port, target, headers={"If-None-Match": full.header("etag")})
            assert r.status == 304
            cl = r.header("content-length")
            assert cl is None or int(cl) == len(full.body), \
                "%s: 304 has Content-Length %s, the 200 has %d bytes" % (target, cl,
                                                                       len(full.body))


async def test_seq_counts_events():
    """seq is 0 before any event, then exactly the number of events so far."""
    with Daemon(workers=2, seed={"a.json": persona_api("alpha")}) as d:
        ws = await ws_connect(d)
        try:
            events = 0

            def seq():
                return get_ok_json(d.port, "/api/clusters")["seq"]

            assert seq() == 0
            steps = [("write", "b.json", persona_api("bravo"), "added", "bravo"),
                     ("write", "b.json", persona_api("bravo", nodes=5), "updated", "bravo"),
                     ("write", "a.json", persona_api("alpha", phase="Degraded"), "updated",
                      "alpha"),
                     ("remove", "b.json", None, "deleted", "bravo"),
                     ("write", "c.json", persona_api("\u00e9t\u00e9"), "added", "\u00e9t\u00e9")]
            for op, fn, content, kind, name in steps:
                if op == "write":
                    d.write(fn, content)
                else:
                    d.remove(fn)
                await expect(ws, kind, name)
                events += 1
                assert seq() == events, "after %d events seq is %d" % (events, seq())
                # both workers agree
                for _ in range(4):
                    assert seq() == events
            # a no-op rewrite adds no event and keeps seq
            d.write("a.json", persona_api("alpha", phase="Degraded"), indent=2)
            await expect_silence(ws, 0.4)
            assert seq() == events
            # three files in one go: seq moves by the number of events
            for i in range(3):
                d.write("m%d.json" % i, persona_api("multi-%d" % i))
            for i in range(3):
                await expect(ws, "added", "multi-%d" % i)
            events += 3
            assert seq() == events, (seq(), events)
            obj = get_ok_json(d.port, "/api/clusters")
            assert [c["name"] for c in obj["clusters"]] == [
                "alpha", "multi-0", "multi-1", "multi-2", "\u00e9t\u00e9"], obj
        finally:
            await ws.close()


async def test_respawned_worker_serves_current_snapshot():
    """A worker started after changes serves the current snapshot, byte for
    byte (it has no copy of its own yet)."""
    with Daemon(workers=1, seed={"a.json": realistic("alpha")},
                expect_worker_deaths=True) as d:
        ws = await ws_connect(d)
        try:
            d.write("b.json", realistic("bravo"))
            await expect(ws, "added", "bravo")
            d.write("a.json", realistic("alpha", app_count=77))
            await expect(ws, "updated", "alpha")
            before = get(d.port, "/api/clusters")
            assert before.json()["seq"] == 2
            old = d.wait_workers(1)
            assert len(old) == 1, old
            time.sleep(1.1)        # past start-up: respawned at once
            os.kill(old[0], signal.SIGKILL)
            deadline = time.monotonic() + 8
            new = []
            while time.monotonic() < deadline:
                new = d.worker_pids()
                if new and new != old:
                    break
                time.sleep(0.05)
            assert new and new != old, "no new worker: %r" % new
            assert d.wait_ready() is not None
            after = get(d.port, "/api/clusters")
            assert after.status == 200 and after.body == before.body, after
            assert after.header("etag") == before.header("etag")
            r = get(d.port, "/api/clusters/alpha")
            assert r.json()["status"]["applicationCount"] == 77
        finally:
            await ws.close()


def test_stalled_master_does_not_block():
    """With the master stopped (SIGSTOP) both workers keep answering from the
    snapshot: readers take no lock the master could hold."""
    with Daemon(workers=2, seed={"a.json": realistic("alpha")}) as d:
        workers = d.wait_workers(2)
        want = get(d.port, "/api/clusters").body
        os.kill(d.pid, signal.SIGSTOP)
        try:
            served = set()
            for _ in range(40):
                with RawHTTP(d.port, timeout=3) as c:
                    r = c.roundtrip("GET", "/api/clusters")
                    assert r.status == 200 and r.body == want, r
                    # after a response, a worker has certainly accepted the socket
                    served.add(conn_owner(d, c.local_port, pids=workers))
                    r = c.roundtrip("GET", "/api/clusters/alpha")
                    assert r.status == 200 and r.json()["name"] == "alpha", r
                if len(served) == 2:
                    break
            assert served == set(workers), (served, workers)
        finally:
            os.kill(d.pid, signal.SIGCONT)


if __name__ == "__main__":
    run([test_list_and_detail_pass_through, test_byte_order_and_exact_names,
         test_unknown_cluster_and_paths, test_head, test_methods_405, test_etag_and_304,
         test_304_content_length, test_seq_counts_events,
         test_respawned_worker_serves_current_snapshot, test_stalled_master_does_not_block])
