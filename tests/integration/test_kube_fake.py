#!/usr/bin/python3
"""Integration: the fake Kubernetes API (kube_fake.py) against the real kubectl.

The Kubernetes source's tests trust tests/integration/kube_fake.py to answer as
an API server does; this test shows a real client agrees.  kubectl ($KUBECTL,
else `kubectl` on PATH; contrib/quickstart installs Debian's kubernetes-client
when there is none) runs with a kubeconfig in a temp dir (server URL, bearer
token, the test CA):
  - `get clusterpersonas.dorgu.io -o json` returns exactly the fake's objects,
    also over several pages with --chunk-size, and a single object by name;
  - the default output is the fake's Table (the CRD's printer columns);
  - `get --watch -o json --output-watch-events` sees a create, a status-only
    modify, a metadata-only modify and a delete, in order, watching from the
    list's resourceVersion, and exits 0 when the server ends the stream;
  - a wrong token gives kubectl's "You must be logged in" error;
  - TLS: with the test CA it connects, without it the certificate is refused.
The real `kubectl proxy` in front of the fake passes lists and a streamed
watch (the --kube-api=http://127.0.0.1:8001 set-up).  Where personad has the
Kubernetes source, personad and kubectl watch the same fake: the same
clusters, and personad's events are exactly kubectl's watch events whose spec
or status changed (one change at a time).
Then the fake's fault knobs, with a raw HTTP client (what kubectl cannot be
made to show): continue tokens (one snapshot per list, 410 Expired), watches
from a compacted resourceVersion (410 as an ERROR event or as the HTTP
status), bookmarks, timeoutSeconds, a cut mid-line, injected lines, down
(refused, 503), hang, 401, 404.
"""

import asyncio
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import Daemon, ev, personad_path, run  # noqa: E402
import websockets  # noqa: E402  (harness made sure it is there)
from kube_fake import COLLECTION, FakeKube, KubectlProxy, find_kubectl  # noqa: E402

KUBECTL = find_kubectl()
if not KUBECTL:
    print("SKIP: no kubectl (set $KUBECTL, or install Debian's kubernetes-client: "
          "contrib/quickstart check does)")
    sys.exit(77)
if shutil.which("openssl") is None:
    print("SKIP: no openssl for the test CA")
    sys.exit(77)

TOKEN = "test-token-0123456789"


class Kubectl:
    """kubectl with its own kubeconfig, HOME and discovery cache in a temp dir."""

    def __init__(self, url, token=TOKEN, ca=None):
        self.dir = tempfile.mkdtemp(prefix="personad-kubectl-")
        cluster = {"server": url}
        if ca:
            cluster["certificate-authority"] = ca
        user = {"token": token} if token else {}
        cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "fake",
               "clusters": [{"name": "fake", "cluster": cluster}],
               "users": [{"name": "u", "user": user}],
               "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "u"}}]}
        self.config = os.path.join(self.dir, "config")
        with open(self.config, "w") as f:
            json.dump(cfg, f)  # JSON is YAML: kubectl reads it
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("KUBERNETES_") and k != "KUBECONFIG"}
        self.env.update(HOME=self.dir, KUBECONFIG=self.config)

    def argv(self, args):
        return [KUBECTL, "--cache-dir=" + os.path.join(self.dir, "cache"),
                "--request-timeout=20s"] + list(args)

    def run(self, *args, timeout=60):
        return subprocess.run(self.argv(args), env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def popen(self, *args):
        return subprocess.Popen(self.argv(args), env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def persona(i):
    return ({"name": "cluster-%03d" % i, "description": "test cluster %d" % i,
             "environment": ("development", "staging", "production", "sandbox")[i % 4],
             "policies": {"security": {"enforceNonRoot": True}}},
            {"phase": ("Ready", "Degraded", "Discovering", "Unknown")[i % 4],
             "applicationCount": i, "resourceSummary": {"nodeCount": i % 5 + 1},
             "nodes": [{"name": "n%d" % j, "role": "worker", "ready": True} for j in range(2)]})


def without_managed_fields(obj):
    """kubectl 1.32 -o json leaves managedFields out (--show-managed-fields=false);
    1.20 prints them."""
    obj = json.loads(json.dumps(obj))
    obj["metadata"].pop("managedFields", None)
    return obj


def expected_items(kube):
    objs = kube.objects()
    return [objs[n] for n in sorted(objs)]


def same_objects(printed, expected):
    """kubectl printed exactly these objects (managedFields, when printed, too)."""
    assert len(printed) == len(expected), (len(printed), len(expected))
    for got, want in zip(printed, expected):
        if "managedFields" in got["metadata"]:
            assert got == want, (got, want)
        assert without_managed_fields(got) == without_managed_fields(want), (got, want)


def fill(kube, n):
    for i in range(n):
        spec, status = persona(i)
        kube.create(spec["name"], spec, status, labels={"tier": "t%d" % (i % 2)})


def lists(kube):
    return [r for r in kube.requests if r["path"] == COLLECTION and "watch" not in r["query"]]


# --- kubectl ----------------------------------------------------------------


def test_get_json_is_the_fakes_objects():
    with FakeKube(token=TOKEN, tls=True) as kube:
        fill(kube, 7)
        kube.modify("cluster-003", status={"phase": "Ready", "applicationCount": 99})
        kube.modify("cluster-004", metadata_only=True)
        k = Kubectl(kube.url, ca=kube.ca_file)
        try:
            p = k.run("get", "clusterpersonas.dorgu.io", "-o", "json")
            assert p.returncode == 0, p.stderr
            out = json.loads(p.stdout)
            same_objects(out["items"], expected_items(kube))
            assert len(out["items"]) == 7
            # every request carried the token; the list was one page of 500
            assert kube.requests and all(r["auth"] == "Bearer " + TOKEN for r in kube.requests)
            assert [r["query"].get("limit") for r in lists(kube)] == ["500"], lists(kube)
            p = k.run("get", "clusterpersona", "cluster-003", "-o", "json")
            assert p.returncode == 0, p.stderr
            same_objects([json.loads(p.stdout)], expected_items(kube)[3:4])
            p = k.run("get", "clusterpersona", "no-such", "-o", "json")
            assert p.returncode != 0
            assert 'clusterpersonas.dorgu.io "no-such" not found' in p.stderr, p.stderr
        finally:
            k.close()


def test_chunk_size_pages():
    # plain http and no token, as through `kubectl proxy`
    with FakeKube() as kube:
        fill(kube, 23)
        k = Kubectl(kube.url, token=None)
        try:
            p = k.run("get", "clusterpersonas.dorgu.io", "-o", "json", "--chunk-size=5")
            assert p.returncode == 0, p.stderr
            same_objects(json.loads(p.stdout)["items"], expected_items(kube))
            pages = lists(kube)
            assert len(pages) == 5, [r["raw_query"] for r in pages]
            assert all(r["query"]["limit"] == "5" for r in pages)
            assert "continue" not in pages[0]["query"]
            assert all(r["query"].get("continue") for r in pages[1:])
        finally:
            k.close()


def test_table_output():
    with FakeKube(token=TOKEN, tls=True) as kube:
        fill(kube, 3)
        k = Kubectl(kube.url, ca=kube.ca_file)
        try:
            p = k.run("get", "clusterpersonas.dorgu.io")
            assert p.returncode == 0, p.stderr
            lines = p.stdout.splitlines()
            assert lines[0].split() == ["NAME", "ENVIRONMENT", "PHASE", "NODES", "APPS",
                                        "AGE"], lines
            assert [ln.split()[:5] for ln in lines[1:]] == [
                ["cluster-000", "development", "Ready", "1", "0"],
                ["cluster-001", "staging", "Degraded", "2", "1"],
                ["cluster-002", "production", "Discovering", "3", "2"]], lines
            assert "as=Table" in lists(kube)[-1]["accept"]
        finally:
            k.close()


class Reader(threading.Thread):
    """Collects a process's stdout; parses it as a stream of JSON values."""

    def __init__(self, f):
        super().__init__(daemon=True)
        self.f, self.buf, self.lock = f, "", threading.Lock()
        self.start()

    def run(self):
        for chunk in iter(lambda: self.f.read(1), ""):
            with self.lock:
                self.buf += chunk

    def values(self):
        with self.lock:
            s = self.buf
        dec, i, out = json.JSONDecoder(), 0, []
        while True:
            while i < len(s) and s[i].isspace():
                i += 1
            try:
                v, i = dec.raw_decode(s, i)
            except ValueError:
                return out
            out.append(v)

    def wait(self, pred, timeout=20):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            v = self.values()
            if pred(v):
                return v
            time.sleep(0.05)
        raise AssertionError("kubectl printed: %r" % self.values())


def test_watch_sees_every_change():
    with FakeKube(token=TOKEN, tls=True) as kube:
        fill(kube, 2)
        list_rv = kube.resource_version()
        k = Kubectl(kube.url, ca=kube.ca_file)
        proc = k.popen("get", "clusterpersonas.dorgu.io", "--watch", "-o", "json",
                       "--output-watch-events")
        try:
            out = Reader(proc.stdout)
            w = kube.wait_request(lambda r: r["path"] == COLLECTION
                                  and r["query"].get("watch") in ("1", "true"), 30)
            assert w is not None, "kubectl never watched: %r" % kube.requests
            assert w["query"].get("resourceVersion") == list_rv, w
            assert kube.wait_watches(1)
            spec, status = persona(50)
            kube.create("new", dict(spec, name="new"), status)
            kube.modify("new", status=dict(status, phase="Degraded"))
            kube.modify("new", metadata_only=True)
            gone = kube.delete("new")
            ev = out.wait(lambda v: len(v) >= 6)
            assert [(e["type"], e["object"]["metadata"]["name"]) for e in ev] == [
                ("ADDED", "cluster-000"), ("ADDED", "cluster-001"), ("ADDED", "new"),
                ("MODIFIED", "new"), ("MODIFIED", "new"), ("DELETED", "new")], ev
            assert ev[3]["object"]["status"]["phase"] == "Degraded"
            assert "annotations" in ev[4]["object"]["metadata"]
            same_objects([ev[5]["object"]], [gone])
            rvs = [e["object"]["metadata"]["resourceVersion"] for e in ev[2:]]
            assert len(set(rvs)) == 4, rvs
            # the server ends the stream (its timeout): kubectl exits 0
            kube.end_watches()
            proc.wait(20)
            assert proc.returncode == 0, proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            k.close()


def test_wrong_token_is_unauthorized():
    # over TLS: kubectl 1.32 sends no bearer token over plain http at all
    with FakeKube(token=TOKEN, tls=True) as kube:
        fill(kube, 1)
        k = Kubectl(kube.url, token="wrong", ca=kube.ca_file)
        try:
            p = k.run("get", "clusterpersonas.dorgu.io", "-o", "json")
            assert p.returncode != 0
            assert "error: You must be logged in to the server" in p.stderr, p.stderr
            assert kube.requests and all(r["auth"] == "Bearer wrong" for r in kube.requests)
            assert not lists(kube), "kubectl listed without discovery: %r" % kube.requests
        finally:
            k.close()


def test_tls_needs_the_ca():
    with FakeKube(token=TOKEN, tls=True) as kube:
        fill(kube, 1)
        k = Kubectl(kube.url)  # no certificate-authority
        try:
            p = k.run("get", "clusterpersonas.dorgu.io", "-o", "json")
            assert p.returncode != 0
            assert "certificate signed by unknown authority" in p.stderr, p.stderr
            assert not kube.requests, "a request got through without the CA"
        finally:
            k.close()
        k = Kubectl(kube.url, ca=kube.ca_file)
        try:
            p = k.run("get", "clusterpersonas.dorgu.io", "-o", "name")
            assert p.returncode == 0, p.stderr
            assert p.stdout.split() == ["clusterpersona.dorgu.io/cluster-000"], p.stdout
        finally:
            k.close()


def test_through_kubectl_proxy():
    """`kubectl proxy` in front of the fake (the --kube-api=http://127.0.0.1:8001
    set-up): plain http in, the kubeconfig's token and CA out, lists and a
    streamed watch pass through."""
    with FakeKube(token=TOKEN, tls=True) as kube:
        fill(kube, 3)
        with KubectlProxy(kube, kubectl=KUBECTL) as proxy:
            port = int(proxy.url.rsplit(":", 1)[1])
            st, _, body, _ = http_get(kube, COLLECTION + "?limit=2", token=None, port=port)
            assert st == 200, body
            page = json.loads(body)
            assert [o["metadata"]["name"] for o in page["items"]] == ["cluster-000",
                                                                     "cluster-001"]
            assert page["metadata"]["continue"]
            assert lists(kube)[-1]["auth"] == "Bearer " + TOKEN, lists(kube)[-1]
            rv = page["metadata"]["resourceVersion"]
            res = {}
            t = threading.Thread(target=lambda: res.update(r=http_get(
                kube, COLLECTION + "?watch=1&timeoutSeconds=3&resourceVersion=" + rv,
                token=None, port=port, timeout=15)), daemon=True)
            t.start()
            assert kube.wait_watches(1, 15)
            kube.create("via-proxy", {"name": "via-proxy"})
            t.join(15)
            st, _, body, complete = res["r"]
            assert st == 200 and complete, res
            assert [(e["type"], e["object"]["metadata"]["name"]) for e in jlines(body)] == [
                ("ADDED", "via-proxy")], body


def personad_has_kubernetes():
    p = os.environ.get("PERSONAD") or os.path.join(os.environ.get("TOP_BUILDDIR", "."), "src",
                                                   "personad")
    if not os.access(p, os.X_OK):
        return False
    h = subprocess.run([personad_path(), "--help"], capture_output=True, text=True, timeout=10)
    return "--source=" in h.stdout and "kubernetes" in h.stdout


def api_view(items):
    """ClusterPersonas as personad publishes them: {name, spec, status}."""
    return sorted(({"name": o["metadata"]["name"], "spec": o["spec"], "status": o["status"]}
                   for o in items), key=lambda c: c["name"])


async def test_kubectl_and_personad_agree():
    """personad (--source=kubernetes, https, token file, CA file) and kubectl,
    against the same fake: the same clusters, and personad's events are
    exactly kubectl's watch events whose spec or status changed."""
    if not personad_has_kubernetes():
        print("note: no personad with the Kubernetes source; not compared with kubectl")
        return
    with FakeKube(token=TOKEN, tls=True) as kube:
        fill(kube, 4)
        tmp = tempfile.mkdtemp(prefix="personad-kube-token-")
        tokfile = os.path.join(tmp, "token")
        with open(tokfile, "w") as f:
            f.write(TOKEN + "\n")
        k = Kubectl(kube.url, ca=kube.ca_file)
        proc = None
        try:
            with Daemon(workers=1, flags=["--source=kubernetes", "--kube-api=" + kube.url,
                                          "--kube-token-file=" + tokfile,
                                          "--kube-ca-file=" + kube.ca_file]) as d:
                def rest():
                    st, body, _ = d.http("GET", "/api/clusters")
                    assert st == 200, body
                    return json.loads(body)["clusters"]

                p = k.run("get", "clusterpersonas.dorgu.io", "-o", "json")
                assert p.returncode == 0, p.stderr
                assert rest() == api_view(json.loads(p.stdout)["items"])
                proc = k.popen("get", "clusterpersonas.dorgu.io", "--watch", "-o", "json",
                               "--output-watch-events")
                out = Reader(proc.stdout)
                assert kube.wait_watches(2, 30), "personad and kubectl should both watch"
                async with websockets.connect(d.ws_url) as ws:
                    spec, status = persona(60)
                    spec = dict(spec, name="agree")
                    # one change at a time, each followed by what personad
                    # sends for it (none for the metadata-only ones)
                    steps = [(lambda: kube.create("agree", spec, status), True),
                             (lambda: kube.modify("agree", status=dict(status, phase="Degraded")),
                              True),
                             (lambda: kube.modify("agree", metadata_only=True), False),
                             (lambda: kube.modify("cluster-002", labels={"tier": "x"}), False),
                             (lambda: kube.modify("cluster-001", spec=dict(persona(1)[0],
                                                                         description="new")),
                              True),
                             (lambda: kube.delete("agree"), True),
                             (lambda: kube.create("last", {"name": "last"}, {"phase": "Ready"}),
                              True)]
                    got = []
                    for change, emits in steps:
                        change()
                        if emits:
                            try:
                                got.append(await asyncio.wait_for(ws.recv(), 10))
                            except asyncio.TimeoutError:
                                raise AssertionError("personad sent %r, then nothing; log: %s"
                                                     % (got, d.log_text()[-2000:]))
                    seen = out.wait(lambda v: len(v) >= 4 + len(steps))
                    # what kubectl saw, turned into the events personad promises
                    state, want = {}, []
                    for e in seen[:4]:
                        assert e["type"] == "ADDED", e
                        state[e["object"]["metadata"]["name"]] = (e["object"]["spec"],
                                                                  e["object"].get("status"))
                    for e in seen[4:]:
                        o, name = e["object"], e["object"]["metadata"]["name"]
                        view = (o["spec"], o.get("status"))
                        if e["type"] == "ADDED":
                            want.append(ev("added", name))
                        elif e["type"] == "MODIFIED":
                            if state[name] != view:
                                want.append(ev("updated", name))
                        elif e["type"] == "DELETED":
                            want.append(ev("deleted", name))
                        state[name] = view
                    assert want == [ev("added", "agree"), ev("updated", "agree"),
                                    ev("updated", "cluster-001"), ev("deleted", "agree"),
                                    ev("added", "last")], want
                    assert got == want, (got, want)
                    p = k.run("get", "clusterpersonas.dorgu.io", "-o", "json")
                    assert p.returncode == 0, p.stderr
                    assert rest() == api_view(json.loads(p.stdout)["items"])
        finally:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            k.close()
            shutil.rmtree(tmp, ignore_errors=True)


# --- the fault knobs, with a raw HTTP/1.1 client -----------------------------


def http_get(kube, target, token=TOKEN, timeout=5.0, until=None, port=None):
    """GET over a raw socket (Connection: close). Returns (status, headers,
    body bytes with chunked decoding, complete): complete is False when a
    chunked body ended without its final chunk. until(body) stops reading."""
    s = socket.create_connection(("127.0.0.1", port or kube.port), timeout=timeout)
    try:
        req = "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" % target
        if token:
            req += "Authorization: Bearer %s\r\n" % token
        s.sendall((req + "\r\n").encode())
        raw, end = b"", time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            if not d:
                break
            raw += d
            if until is not None and b"\r\n\r\n" in raw and until(_dechunk(raw)[0]):
                break
    finally:
        s.close()
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {ln.split(":", 1)[0].lower(): ln.split(":", 1)[1].strip() for ln in lines[1:]}
    if headers.get("transfer-encoding") == "chunked":
        body, complete = _dechunk(raw)
    else:
        body, complete = rest, True
    return status, headers, body, complete


def _dechunk(raw):
    rest = raw.partition(b"\r\n\r\n")[2]
    body = b""
    while True:
        size_line, sep, rest = rest.partition(b"\r\n")
        if not sep:
            return body, False
        n = int(size_line, 16)
        if n == 0:
            return body, True
        body += rest[:n]
        if len(rest) < n + 2:
            return body, False
        rest = rest[n + 2:]


def jlines(body):
    return [json.loads(ln) for ln in body.split(b"\n") if ln]


def test_continue_tokens():
    with FakeKube(token=TOKEN) as kube:
        fill(kube, 10)
        st, _, body, _ = http_get(kube, COLLECTION + "?limit=4")
        page1 = json.loads(body)
        assert st == 200 and len(page1["items"]) == 4
        rv, tok = page1["metadata"]["resourceVersion"], page1["metadata"]["continue"]
        assert page1["metadata"]["remainingItemCount"] == 6
        # changes after the first page do not show in the next pages
        kube.modify("cluster-005", status={"phase": "Unknown"})
        kube.delete("cluster-009")
        st, _, body, _ = http_get(kube, COLLECTION + "?limit=4&continue=" + tok)
        page2 = json.loads(body)
        assert st == 200 and page2["metadata"]["resourceVersion"] == rv
        assert [o["metadata"]["name"] for o in page2["items"]] == [
            "cluster-%03d" % i for i in range(4, 8)]
        assert page2["items"][1]["status"]["phase"] == "Degraded"
        st, _, body, _ = http_get(kube, COLLECTION + "?limit=4&continue="
                                  + page2["metadata"]["continue"])
        page3 = json.loads(body)
        assert [o["metadata"]["name"] for o in page3["items"]] == ["cluster-008", "cluster-009"]
        assert "continue" not in page3["metadata"]
        # an expired token: 410 Expired; continue with resourceVersion: 400
        st, _, body, _ = http_get(kube, COLLECTION + "?limit=4")
        tok = json.loads(body)["metadata"]["continue"]
        kube.expire_continue()
        st, _, body, _ = http_get(kube, COLLECTION + "?limit=4&continue=" + tok)
        assert st == 410 and json.loads(body)["reason"] == "Expired", body
        st, _, _, _ = http_get(kube, COLLECTION + "?limit=4&resourceVersion=0&continue=" + tok)
        assert st == 400
        st, _, body, _ = http_get(kube, COLLECTION + "?resourceVersion=999999")
        assert st == 504, body


def test_watch_gone_both_ways():
    with FakeKube(token=TOKEN) as kube:
        fill(kube, 2)
        old = kube.resource_version()
        kube.create("later", {"name": "later"})
        # not compacted yet: the events after `old`
        st, _, body, _ = http_get(kube, COLLECTION + "?watch=1&resourceVersion=" + old,
                                  until=lambda b: b.count(b"\n") >= 1)
        assert st == 200 and [e["type"] for e in jlines(body)] == ["ADDED"], body
        kube.compact()
        st, h, body, complete = http_get(kube, COLLECTION + "?watch=1&resourceVersion=" + old)
        assert st == 200 and complete, (st, body)
        (ev,) = jlines(body)
        assert ev["type"] == "ERROR" and ev["object"]["code"] == 410, ev
        assert ev["object"]["reason"] == "Expired" and ev["object"]["kind"] == "Status"
        kube.set_watch_gone_mode("status")
        st, _, body, _ = http_get(kube, COLLECTION + "?watch=1&resourceVersion=" + old)
        assert st == 410 and json.loads(body)["code"] == 410, body
        # from the current resourceVersion the watch is fine
        now = kube.resource_version()
        st, _, body, complete = http_get(kube, COLLECTION + "?watch=true&timeoutSeconds=1"
                                         "&resourceVersion=" + now)
        assert st == 200 and complete and body == b"", body


def watch_in_thread(kube, target):
    res = {}
    t = threading.Thread(target=lambda: res.update(
        r=http_get(kube, target, timeout=15)), daemon=True)
    t.start()
    return t, res


def test_watch_stream_knobs():
    with FakeKube(token=TOKEN, bookmark_interval=0.3) as kube:
        fill(kube, 1)
        rv = kube.resource_version()
        # bookmarks only when asked for; timeoutSeconds ends the stream cleanly
        st, _, body, complete = http_get(kube, COLLECTION + "?watch=1&allowWatchBookmarks=true"
                                         "&timeoutSeconds=2&resourceVersion=" + rv)
        evs = jlines(body)
        assert st == 200 and complete and evs, body
        assert all(e["type"] == "BOOKMARK" for e in evs), evs
        assert evs[-1]["object"]["metadata"]["resourceVersion"] == rv
        st, _, body, complete = http_get(kube, COLLECTION + "?watch=1&timeoutSeconds=1"
                                         "&resourceVersion=" + rv)
        assert st == 200 and complete and body == b"", body
        # no resourceVersion: ADDED for what exists first
        st, _, body, _ = http_get(kube, COLLECTION + "?watch=1&timeoutSeconds=1")
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in jlines(body)] == [
            ("ADDED", "cluster-000")], body
        # a cut mid-line, with the next event held by set_hang
        t, res = watch_in_thread(kube, COLLECTION + "?watch=1&resourceVersion=" + rv)
        assert kube.wait_watches(1)
        kube.set_hang(True)
        kube.create("held", {"name": "held"})
        time.sleep(0.3)
        kube.cut_watches(mid_line=True)
        t.join(15)
        kube.set_hang(False)
        st, _, body, complete = res["r"]
        assert st == 200 and not complete, res
        assert body.startswith(b'{"type": "ADDED"') and b"\n" not in body, body
        # the event was not lost: a re-watch from rv gets it
        st, _, body, _ = http_get(kube, COLLECTION + "?watch=1&timeoutSeconds=1"
                                  "&resourceVersion=" + rv)
        assert [e["object"]["metadata"]["name"] for e in jlines(body)] == ["held"], body
        # injected lines, and a 410 ERROR event that ends the stream
        now = kube.resource_version()
        t, res = watch_in_thread(kube, COLLECTION + "?watch=1&resourceVersion=" + now)
        assert kube.wait_watches(1)
        kube.inject_raw_line(b'{"type":"ADDED","object":{"kind":')
        kube.inject_error_event_410()
        t.join(15)
        st, _, body, complete = res["r"]
        assert st == 200 and complete, res
        lines = body.split(b"\n")
        assert lines[0] == b'{"type":"ADDED","object":{"kind":', lines
        assert json.loads(lines[1])["object"]["code"] == 410 and lines[2] == b"", lines
        # a cut with a TCP reset
        s = socket.create_connection(("127.0.0.1", kube.port), timeout=10)
        try:
            s.sendall(("GET %s?watch=1&resourceVersion=%s HTTP/1.1\r\nHost: x\r\n"
                       "Authorization: Bearer %s\r\n\r\n" % (COLLECTION, now, TOKEN)).encode())
            assert kube.wait_watches(1)
            kube.cut_watches(reset=True)
            try:
                while s.recv(65536):
                    pass
                raise AssertionError("EOF, not a reset")
            except ConnectionResetError:
                pass
        finally:
            s.close()


def test_down_hang_and_errors():
    with FakeKube(token=TOKEN) as kube:
        fill(kube, 1)
        port = kube.port
        keep = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        keep.request("GET", COLLECTION, headers={"Authorization": "Bearer " + TOKEN})
        assert keep.getresponse().read() and kube.watch_count() == 0
        kube.set_down(True)
        # the open keep-alive connection is gone too
        try:
            keep.request("GET", COLLECTION, headers={"Authorization": "Bearer " + TOKEN})
            keep.getresponse()
            raise AssertionError("served on a kept-alive connection while down")
        except (http.client.HTTPException, OSError):
            pass
        keep.close()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            raise AssertionError("connected while down")
        except ConnectionRefusedError:
            pass
        kube.set_down(False)
        assert kube.port == port
        st, _, body, _ = http_get(kube, COLLECTION)
        assert st == 200 and len(json.loads(body)["items"]) == 1
        kube.set_down(True, mode="503")
        st, _, body, _ = http_get(kube, COLLECTION)
        assert st == 503 and json.loads(body)["code"] == 503
        kube.set_down(False)
        kube.set_error(403)
        st, _, body, _ = http_get(kube, COLLECTION)
        assert st == 403 and json.loads(body)["reason"] == "Forbidden"
        kube.set_error(None)
        kube.set_hang(True)
        t0 = time.monotonic()
        try:
            http_get(kube, COLLECTION, timeout=1)
            raise AssertionError("answered while hanging")
        except (IndexError, ValueError):
            pass  # nothing came back
        assert time.monotonic() - t0 >= 0.9
        kube.set_hang(False)
        st, _, body, _ = http_get(kube, COLLECTION, token="old")
        assert st == 401 and json.loads(body)["reason"] == "Unauthorized"
        kube.set_token("new")
        st, _, _, _ = http_get(kube, COLLECTION, token="new")
        assert st == 200
        st, _, body, _ = http_get(kube, COLLECTION + "/nope", token="new")
        assert st == 404 and json.loads(body)["reason"] == "NotFound"
        assert kube.requests[-1]["auth"] == "Bearer new"


if __name__ == "__main__":
    run([test_get_json_is_the_fakes_objects, test_chunk_size_pages, test_table_output,
         test_watch_sees_every_change, test_wrong_token_is_unauthorized, test_tls_needs_the_ca,
         test_through_kubectl_proxy, test_kubectl_and_personad_agree,
         test_continue_tokens, test_watch_gone_both_ways, test_watch_stream_knobs,
         test_down_hang_and_errors], timeout=120)
