#!/usr/bin/python3
"""Integration: the Origin, CORS and Host policy (--allowed-origins,
--allowed-hosts; src/worker/http_access.c) with real clients: python3-websockets
on /ws with no Origin, the same origin, a foreign one, "null" and malformed ones,
under the default, "*" and an exact list; Server-Sent Events refused for a
foreign Origin; curl for CORS on GET/HEAD (errors too), preflights (listed: 204,
others: the 405 of before), and the Host list (421 everywhere but /healthz, an
HTTP/1.0 request without Host); a SIGHUP changing both lists live."""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import Daemon, expect, persona_api, run, ws_connect  # noqa: E402

import websockets.exceptions  # noqa: E402

FOREIGN = "http://evil.example"
UI = "http://ui.example:8000"
OPS = "https://ops.example"
REFUSED = {"error": "origin not allowed"}


def same(d, host="127.0.0.1"):
    return "http://%s:%d" % (host, d.port)


async def ws_ok(d, origin, name):
    """A /ws upgrade with this Origin (None: none) succeeds and streams: a
    persona written afterwards arrives as its event."""
    kw = {} if origin is None else {"origin": origin}
    ws = await ws_connect(d, **kw)
    try:
        await asyncio.sleep(0.1)
        d.write(name + ".json", persona_api(name))
        await expect(ws, "added", name, timeout=5.0, what="Origin %r" % (origin,))
    finally:
        await ws.close()


async def ws_refused(d, origin, status=403):
    try:
        ws = await ws_connect(d, origin=origin)
    except websockets.exceptions.InvalidStatusCode as e:
        assert e.status_code == status, "Origin %r: %d" % (origin, e.status_code)
        return
    await ws.close()
    raise AssertionError("Origin %r: upgraded" % (origin,))


def raw(port, head):
    """Send a raw request head; (status, headers dict lowercased, body)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(head.encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data:
                h, _, rest = data.partition(b"\r\n\r\n")
                length = [ln for ln in h.split(b"\r\n") if ln.lower().startswith(b"content-length:")]
                if length and len(rest) >= int(length[0].split(b":")[1]):
                    break
    finally:
        s.close()
    h, _, body = data.partition(b"\r\n\r\n")
    lines = h.decode().split("\r\n")
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), hdrs, body


def ws_head(d, origin=None, host=None):
    head = ("GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            % (host or "127.0.0.1:%d" % d.port))
    if origin is not None:
        head += "Origin: %s\r\n" % origin
    return head + "\r\n"


def curl(d, path, *args, method=None, host=None):
    """curl -si; (status, headers lowercased, body)."""
    cmd = ["curl", "-si", "--max-time", "5"]
    if method == "HEAD":
        cmd.append("-I")
    elif method:
        cmd += ["-X", method]
    for a in args:
        cmd += ["-H", a]
    if host is not None:
        cmd += ["-H", "Host: " + host]
    cmd.append("http://127.0.0.1:%d%s" % (d.port, path))
    out = subprocess.run(cmd, capture_output=True, timeout=10, check=True).stdout
    h, _, body = out.partition(b"\r\n\r\n")
    lines = h.decode().split("\r\n")
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), hdrs, body


def no_cors(hdrs, what):
    for k in hdrs:
        assert not k.startswith("access-control-"), "%s: %s: %s" % (what, k, hdrs[k])
    assert "vary" not in hdrs, "%s: Vary: %s" % (what, hdrs["vary"])


def has_cors(hdrs, origin, what):
    assert hdrs.get("access-control-allow-origin") == origin, "%s: %r" % (what, hdrs)
    assert hdrs.get("vary") == "Origin", "%s: %r" % (what, hdrs)


def sse_status(d, origin):
    head = "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: text/event-stream\r\n" % (
        d.port)
    if origin is not None:
        head += "Origin: %s\r\n" % origin
    s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
    try:
        s.sendall((head + "\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return int(data.split(b" ", 2)[1]), data
    finally:
        s.close()


async def test_default_same_origin_only():
    """Default: no Origin and the same origin stream; a foreign, a "null", a
    malformed Origin and another name for the same address are 403 JSON with
    no upgrade, logged."""
    with Daemon(workers=1) as d:
        await ws_ok(d, None, "a1")
        await ws_ok(d, same(d), "a2")
        for bad in (FOREIGN, "null", same(d) + "/", "http://127.0.0.1:%d" % (d.port + 1),
                    same(d, "localhost"), "ftp://127.0.0.1:%d" % d.port):
            await ws_refused(d, bad)
        st, hdrs, body = raw(d.port, ws_head(d, FOREIGN))
        assert st == 403 and json.loads(body) == REFUSED, (st, body)
        assert "upgrade" not in hdrs and "sec-websocket-accept" not in hdrs, hdrs
        assert d.wait_log(lambda ln: "Origin 'http://evil.example' not allowed: 403" in ln), \
            d.log_text()[-2000:]
        # no Origin: the seed's plain GET /ws upgrades as before
        s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
        s.sendall(ws_head(d).encode())
        assert s.recv(4096).startswith(b"HTTP/1.1 101 "), "plain /ws not upgraded"
        s.close()


def test_sse_origin():
    """/api/events: a foreign Origin is 403 JSON; the same one and none stream;
    a listed one streams with Access-Control-Allow-Origin in the head, and its
    preflight is answered with the endpoint's one method."""
    with Daemon(workers=1) as d:
        st, _, body = raw(d.port, "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                          "Accept: text/event-stream\r\nOrigin: %s\r\n\r\n" % (d.port, FOREIGN))
        assert st == 403 and json.loads(body) == REFUSED, (st, body)
        st, data = sse_status(d, None)
        assert st == 200 and b"text/event-stream" in data, data
        st, data = sse_status(d, same(d))
        assert st == 200, data
    with Daemon(workers=1, flags=["--allowed-origins=" + UI]) as d:
        st, data = sse_status(d, UI)
        assert st == 200, data  # a listed origin: the head carries CORS for EventSource
        assert (b"Connection: close\r\nAccess-Control-Allow-Origin: %s\r\n"
                b"Vary: Origin\r\n\r\n" % UI.encode()) in data, data
        st, data = sse_status(d, same(d))
        assert st == 200 and b"Access-Control" not in data and b"Vary" not in data, data
        assert sse_status(d, FOREIGN)[0] == 403
        st, hdrs, _ = curl(d, "/api/events", "Origin: " + UI,
                           "Access-Control-Request-Method: GET", method="OPTIONS")
        assert st == 204 and hdrs.get("access-control-allow-methods") == "GET", (st, hdrs)


def test_default_no_cors():
    """Default: the REST API sends no CORS headers, to any Origin, and a
    preflight gets the 405 it always got."""
    with Daemon(workers=1, seed={"a.json": persona_api("a")}) as d:
        for origin in (FOREIGN, same(d)):
            st, hdrs, _ = curl(d, "/api/clusters", "Origin: " + origin)
            assert st == 200, st
            no_cors(hdrs, "GET from " + origin)
        st, hdrs, _ = curl(d, "/api/clusters", "Origin: " + FOREIGN,
                           "Access-Control-Request-Method: GET", method="OPTIONS")
        assert st == 405 and hdrs.get("allow") == "GET, HEAD", (st, hdrs)
        no_cors(hdrs, "preflight")


async def test_any_origin():
    """--allowed-origins=*: any Origin streams (null too) and gets CORS."""
    with Daemon(workers=1, flags=["--allowed-origins=*"], seed={"a.json": persona_api("a")}) as d:
        await ws_ok(d, FOREIGN, "b1")
        await ws_ok(d, "null", "b2")
        await ws_ok(d, None, "b3")
        st, hdrs, _ = curl(d, "/api/clusters", "Origin: " + FOREIGN)
        assert st == 200
        has_cors(hdrs, FOREIGN, "GET *")


async def test_exact_list():
    """An exact list: listed origins and the same origin stream, others 403;
    CORS on GET, HEAD, a cluster and its 404 for listed origins only; their
    preflight 204 with the methods and Max-Age; an unlisted preflight, and an
    OPTIONS that is no preflight, 405."""
    with Daemon(workers=1, flags=["--allowed-origins=%s, %s" % (UI, OPS)],
                seed={"a.json": persona_api("a")}) as d:
        await ws_ok(d, UI, "c1")
        await ws_ok(d, OPS + ":443", "c2")
        await ws_ok(d, same(d), "c3")
        await ws_ok(d, None, "c4")
        await ws_refused(d, FOREIGN)
        await ws_refused(d, "http://ops.example")  # scheme differs
        await ws_refused(d, "http://ui.example")   # port differs
        for path in ("/api/clusters", "/api/clusters/a", "/api/clusters/nope"):
            for method in ("GET", "HEAD"):
                st, hdrs, _ = curl(d, path, "Origin: " + UI, method=method)
                assert st == (404 if path.endswith("nope") else 200), (path, st)
                has_cors(hdrs, UI, "%s %s" % (method, path))
                st, hdrs, _ = curl(d, path, "Origin: " + FOREIGN, method=method)
                no_cors(hdrs, "%s %s from a foreign origin" % (method, path))
            st, hdrs, _ = curl(d, path, "Origin: " + same(d))
            no_cors(hdrs, "same origin")
            st, hdrs, _ = curl(d, path)
            no_cors(hdrs, "no Origin")
        st, hdrs, body = curl(d, "/api/clusters/a", "Origin: " + OPS,
                              "Access-Control-Request-Method: GET", method="OPTIONS")
        assert st == 204 and body == b"", (st, body)
        has_cors(hdrs, OPS, "preflight")
        assert hdrs.get("access-control-allow-methods") == "GET, HEAD", hdrs
        assert hdrs.get("access-control-max-age") == "600", hdrs
        assert "access-control-allow-headers" not in hdrs, hdrs  # no tokens
        st, hdrs, _ = curl(d, "/api/clusters", "Origin: " + FOREIGN,
                           "Access-Control-Request-Method: GET", method="OPTIONS")
        assert st == 405, st
        no_cors(hdrs, "foreign preflight")
        st, hdrs, _ = curl(d, "/api/clusters", "Origin: " + UI, method="OPTIONS")
        assert st == 405, st  # no Access-Control-Request-Method: not a preflight
        # /healthz and the dashboard are no API: no CORS
        st, hdrs, _ = curl(d, "/healthz", "Origin: " + UI)
        no_cors(hdrs, "/healthz")


def test_allowed_hosts():
    """--allowed-hosts: listed Hosts served (an entry without a port takes any);
    others, and none (HTTP/1.0), 421 JSON on /, /api, /ws, /metrics; /healthz
    always answers."""
    with Daemon(workers=1, flags=["--allowed-hosts=127.0.0.1, localhost:1"]) as d:
        mis = {"error": "misdirected request"}
        st, _, _ = curl(d, "/api/clusters")
        assert st == 200, st  # Host: 127.0.0.1:PORT, any port
        for host in ("evil.example", "evil.example:%d" % d.port, "localhost:%d" % d.port,
                     "127.0.0.1.evil.example"):
            for path in ("/api/clusters", "/", "/metrics", "/api/events"):
                st, _, body = curl(d, path, host=host)
                assert st == 421 and json.loads(body) == mis, (host, path, st, body)
            st, _, body = curl(d, "/healthz", host=host)
            assert st == 200, (host, st)
        assert d.wait_log(lambda ln: "GET /api/clusters: Host 'evil.example' not allowed: 421"
                          in ln), d.log_text()[-2000:]
        st, _, body = curl(d, "/", host="localhost:1")
        assert st != 421, st
        st, hdrs, body = raw(d.port, ws_head(d, host="evil.example"))
        assert st == 421 and json.loads(body) == mis and "upgrade" not in hdrs, (st, body)
        st, _, body = raw(d.port, "GET /api/clusters HTTP/1.0\r\n\r\n")
        assert st == 421, (st, body)
        st, _, body = raw(d.port, "GET /healthz HTTP/1.0\r\n\r\n")
        assert st == 200, (st, body)
    with Daemon(workers=1) as d:  # default: any Host, none too
        assert curl(d, "/api/clusters", host="evil.example")[0] == 200
        assert raw(d.port, "GET /api/clusters HTTP/1.0\r\n\r\n")[0] == 200


async def test_reload_live():
    """SIGHUP applies changed lists to the running workers."""
    with Daemon(workers=2) as d:
        conf = os.path.join(d.tmp, "personad.conf")
        with open(conf, "w") as f:
            f.write("allowed-origins =\n")
        d.stop()
        d.flags = ["-c", conf]
        d.start()
        await ws_refused(d, UI)
        with open(conf, "w") as f:
            f.write("allowed-origins = %s\nallowed-hosts = nowhere.example\n" % UI)
        since = len(d.log_text())
        d.send_signal(signal.SIGHUP)
        assert d.wait_log(lambda ln: "reload: allowed-hosts:" in ln, since=since, timeout=5), \
            d.log_text()[since:]
        deadline = time.monotonic() + 5
        while True:  # each worker re-reads the file itself: poll both
            codes = {curl(d, "/api/clusters")[0] for _ in range(6)}
            if codes == {421} or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert codes == {421}, codes
        assert curl(d, "/api/clusters", host="nowhere.example")[0] == 200
        with open(conf, "w") as f:
            f.write("allowed-origins = %s\n" % UI)
        since = len(d.log_text())
        d.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while True:
            codes = {curl(d, "/api/clusters")[0] for _ in range(6)}
            if codes == {200} or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert codes == {200}, codes
        for i in range(4):  # both workers take UI now
            await ws_ok(d, UI, "r%d" % i)
        # a bad list on reload: refused, the running lists kept
        with open(conf, "w") as f:
            f.write("allowed-origins = nope\n")
        since = len(d.log_text())
        d.send_signal(signal.SIGHUP)
        assert d.wait_log(lambda ln: "invalid value for --allowed-origins" in ln, since=since,
                          timeout=5), d.log_text()[since:]
        await ws_ok(d, UI, "r9")


def test_bad_list_at_start():
    """A malformed list stops the start: exit 1, the option named."""
    for flag in ("--allowed-origins=https://ui.example/", "--allowed-origins=*,http://a",
                 "--allowed-hosts=http://a", "--allowed-hosts=a,,b"):
        d = Daemon(workers=1, flags=[flag], ready=False)
        try:
            d.port = 1
            d._spawn()
            rc = d.proc.wait(10)
            assert rc == 1, (flag, rc)
            assert "invalid value for --" + flag[2:].split("=")[0] in d.log_text(), d.log_text()
        finally:
            d.cleanup()


if __name__ == "__main__":
    run([test_default_same_origin_only, test_sse_origin, test_default_no_cors, test_any_origin,
         test_exact_list, test_allowed_hosts, test_reload_live, test_bad_list_at_start])
