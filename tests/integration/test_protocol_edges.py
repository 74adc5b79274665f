#!/usr/bin/python3
"""Integration (issue 8, item 12): protocol edges.

- Close codes: every code RFC 6455 and the IANA registry let a peer send
  (1000-1003, 1007-1014, 3000-4999) is echoed; 1012-1014 were answered 1002
  (wslay 1.1.1 does not know them).  1004, 1005, 1006, 1015, 1016-2999 and
  5000+ are protocol errors (1002).
- --max-message below 125 limits data messages only: pings and closes of up
  to 125 bytes (RFC 6455 5.5) are legal whatever it says.
- HEAD and OPTIONS on /ws: 405 with Allow: GET and the API's JSON error.
- The absolute form of a request target (RFC 9112 3.2.2) is routed like the
  path it carries: /ws, /api/..., /healthz and the dashboard.
"""

import asyncio
import os
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import (ConnClosed, Daemon, RawWS, build_frame, ev, persona_api,  # noqa: E402
                     personad_path, run, ws_connect)
from rest_util import RawHTTP, assert_json_error, get  # noqa: E402

TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


class Counter:
    n = 0


def expect_event(d, c, what):
    Counter.n += 1
    name = "edge-%d" % Counter.n
    d.write(name + ".json", persona_api(name))
    while True:
        fin, op, p = c.read_message(timeout=3.0)
        if op != PONG:
            break
    assert (fin, op) == (True, TEXT), "%s: got frame op=%#x %r" % (what, op, p)
    assert p.decode() == ev("added", name), "%s: got %r" % (what, p)


def expect_close(c, code, what):
    try:
        got, reason = c.read_close(timeout=3.0)
    except (ConnClosed, OSError) as e:
        raise AssertionError("%s: no close frame (%s)" % (what, e))
    assert got == code, "%s: close code %r (reason %r), want %d" % (what, got, reason, code)
    assert c.wait_eof(3.0), "%s: socket not shut after close %d" % (what, code)


# --- close codes ------------------------------------------------------------

VALID = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
         4000, 4999]
INVALID = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]


async def test_library_close_codes_echoed():
    """python3-websockets sends each valid code; the server's close carries it back."""
    with Daemon(workers=1) as d:
        bad = []
        for code in (1012, 1013, 1014, 1000, 1001, 1011, 3000, 4999):
            ws = await ws_connect(d)
            await ws.close(code, "bye %d" % code)
            if ws.close_code != code:
                bad.append("%d answered with %r" % (code, ws.close_code))
        assert not bad, "; ".join(bad)


def test_raw_close_codes():
    with Daemon(workers=1) as d:
        bad = []
        for code in VALID + INVALID:
            want = code if code in VALID else 1002
            c = RawWS(d.port)
            try:
                c.send_frame(CLOSE, struct.pack("!H", code) + b"reason")
                expect_close(c, want, "close %d" % code)
            except AssertionError as e:
                bad.append(str(e))
            finally:
                c.close()
        # a valid code with a reason that is not UTF-8 is still 1007
        c = RawWS(d.port)
        try:
            c.send_frame(CLOSE, struct.pack("!H", 1012) + b"\xff\xfe")
            expect_close(c, 1007, "close 1012 with invalid UTF-8")
        except AssertionError as e:
            bad.append(str(e))
        finally:
            c.close()
        # 1013 in two TCP segments (code split across them)
        c = RawWS(d.port)
        try:
            c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            raw = build_frame(CLOSE, struct.pack("!H", 1013) + b"later")
            c.send(raw[:7])
            time.sleep(0.05)
            c.send(raw[7:])
            expect_close(c, 1013, "close 1013 split")
        except AssertionError as e:
            bad.append(str(e))
        finally:
            c.close()
        c = RawWS(d.port)
        try:
            expect_event(d, c, "after the close codes")
        finally:
            c.close()
        assert not bad, "\n  ".join(["close codes mishandled:"] + bad)


# --- --max-message below 125 --------------------------------------------------

SMALL = 10


def test_small_max_message_allows_control_frames():
    with Daemon(workers=1, flags=["--max-message=%d" % SMALL]) as d:
        c = RawWS(d.port)
        try:
            c.send_frame(TEXT, b"t" * SMALL)            # exactly the limit: ignored
            ping = bytes(range(125))
            c.send_frame(PING, ping)                     # the largest legal ping
            fin, op, p = c.read_frame(timeout=3.0)
            assert (op, p) == (PONG, ping), "125-byte ping: op %#x %r" % (op, p[:20])
            # a ping inside a fragmented message of exactly the limit
            c.send_frame(TEXT, b"a" * 4, fin=False)
            c.send_frame(PING, b"p" * 100)
            c.send_frame(CONT, b"b" * (SMALL - 4))
            fin, op, p = c.read_frame(timeout=3.0)
            assert (op, p) == (PONG, b"p" * 100), "ping inside a fragmented message: %#x" % op
            expect_event(d, c, "after legal frames")
        finally:
            c.close()
        cases = {
            "text limit+1": [(TEXT, b"x" * (SMALL + 1), True)],
            "binary 125": [(BINARY, b"x" * 125, True)],
            "binary 126": [(BINARY, b"x" * 126, True)],
            "fragmented 6+5": [(TEXT, b"x" * 6, False), (CONT, b"x" * 5, True)],
            "fragmented 10+1, ping between": [(BINARY, b"x" * 10, False), (PING, b"", True),
                                              (CONT, b"x", True)],
        }
        bad = []
        for what, frames in cases.items():
            c = RawWS(d.port)
            try:
                for op, p, fin in frames:
                    c.send_frame(op, p, fin=fin)
                while True:
                    fin, op, p = c.read_frame(timeout=3.0)
                    if op != PONG:
                        break
                assert op == CLOSE, "%s: op %#x" % (what, op)
                code = struct.unpack("!H", p[:2])[0]
                assert code == 1009, "%s: close %d" % (what, code)
            except (AssertionError, ConnClosed, OSError) as e:
                bad.append("%s: %s" % (what, e))
            finally:
                c.close()
        # a close with the longest reason (123 bytes) is echoed, not 1009
        c = RawWS(d.port)
        try:
            c.send_frame(CLOSE, struct.pack("!H", 1000) + b"r" * 123)
            expect_close(c, 1000, "close with a 123-byte reason")
        except AssertionError as e:
            bad.append(str(e))
        finally:
            c.close()
        assert not bad, "\n  ".join(["--max-message=%d:" % SMALL] + bad)


async def test_small_max_message_library_ping():
    with Daemon(workers=1, flags=["--max-message=1"]) as d:
        ws = await ws_connect(d)
        try:
            pong = await ws.ping(b"p" * 125)
            await asyncio.wait_for(pong, 3)
            await ws.send("x")                          # 1 byte: ignored
            d.write("lib.json", persona_api("lib"))
            got = await asyncio.wait_for(ws.recv(), 3)
            assert got == ev("added", "lib"), got
        finally:
            await ws.close()


def test_help_documents_max_message():
    out = subprocess.run([personad_path(), "--help"], capture_output=True, text=True,
                         timeout=10).stdout
    lines = out.splitlines()
    i = next(i for i, ln in enumerate(lines) if "--max-message" in ln)
    text = " ".join(lines[i:i + 2])
    assert "125" in text and "ping" in text, "--help on --max-message: %r" % text


# --- HEAD / OPTIONS on /ws --------------------------------------------------------

UPGRADE = {"Upgrade": "websocket", "Connection": "Upgrade",
           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"}


def test_ws_head_options_405():
    with Daemon(workers=1) as d:
        for method in ("HEAD", "OPTIONS"):
            for headers in ({}, UPGRADE):
                what = "%s /ws%s" % (method, " with upgrade headers" if headers else "")
                with RawHTTP(d.port) as c:
                    r = c.roundtrip(method, "/ws", headers=headers)
                    assert r.status == 405, "%s: %r" % (what, r)
                    assert r.header("allow") == "GET", "%s: Allow %r" % (what, r.header("allow"))
                    assert r.header("content-type") == "application/json", what
                    if method == "OPTIONS":
                        assert assert_json_error(r, 405, what) == "method not allowed"
                    # the connection survives: a GET on it works
                    r2 = c.roundtrip("GET", "/healthz")
                    assert r2.status == 200, "%s: then %r" % (what, r2)
        # GET still upgrades, POST still is a bad handshake
        c = RawWS(d.port)
        c.close()
        with RawHTTP(d.port) as c:
            r = c.roundtrip("POST", "/ws", headers=UPGRADE)
            assert r.status == 400, "POST /ws: %r" % r


# --- absolute-form request targets ------------------------------------------------


def test_absolute_form_targets():
    seed = {"a.json": persona_api("a"), "b.json": persona_api("b")}
    with Daemon(workers=1, seed=seed) as d:
        hosts = ["http://127.0.0.1:%d" % d.port, "HTTP://127.0.0.1:%d" % d.port,
                 "http://other.example", "https://localhost:1"]
        bad = []
        for path in ("/api/clusters", "/api/clusters/a", "/api/clusters/nope", "/healthz", "/",
                     "/app.js", "/api/clusters/%00", "/../../etc/passwd", "/nope"):
            want = get(d.port, path)
            for host in hosts:
                for method in ("GET", "HEAD"):
                    r = get(d.port, host + path, method=method)
                    if r.status != want.status or (method == "GET" and r.body != want.body):
                        bad.append("%s %s%s: %r, origin form gave %r" % (method, host, path, r,
                                                                         want))
        # no path: the root; a query is not part of the path
        for target, path in (("http://h", "/"), ("http://h?x=1", "/"),
                             ("http://h/api/clusters/a?x=1", "/api/clusters/a")):
            r, want = get(d.port, target), get(d.port, path)
            if (r.status, r.body) != (want.status, want.body):
                bad.append("%s: %r, want %r" % (target, r, want))
        # an http(s) target without a host, or with userinfo: 400
        for target in ("http:///api/clusters", "http://@/healthz", "http://user@h/healthz",
                       "https://u:p@h/api/clusters"):
            r = get(d.port, target)
            try:
                assert_json_error(r, 400, target)
            except AssertionError as e:
                bad.append(str(e))
        # not http: no such path
        for target in ("ftp://h/api/clusters", "http:/api/clusters", "*"):
            r = get(d.port, target)
            if r.status != 404:
                bad.append("%s: %r, want 404" % (target, r))
        assert not bad, "\n  ".join(["absolute-form targets:"] + bad)
        # the WebSocket handshake in absolute form
        c = RawWS(d.port, path="http://127.0.0.1:%d/ws" % d.port)
        try:
            expect_event(d, c, "WebSocket opened with an absolute-form target")
        finally:
            c.close()


if __name__ == "__main__":
    run([test_library_close_codes_echoed, test_raw_close_codes,
         test_small_max_message_allows_control_frames, test_small_max_message_library_ping,
         test_help_documents_max_message, test_ws_head_options_405, test_absolute_form_targets])
