#!/usr/bin/python3
"""Integration: /ws is notification-only.  Client messages up to
--max-message bytes are ignored; bigger ones (also fragmented) -> 1009;
protocol violations -> 1002; a client close is answered and the socket shut.
Malformed frames are sent from raw sockets."""

import asyncio
import os
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
import websockets  # noqa: E402
from harness import (ConnClosed, Daemon, RawWS, ev, expect, persona_api, run,  # noqa: E402
                     ws_connect)

MAX = 300
FLAGS = ["--max-message=%d" % MAX]
TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


class Counter:
    n = 0


def change(d):
    """A real change; returns its expected payload."""
    Counter.n += 1
    name = "chg-%d" % Counter.n
    d.write(name + ".json", persona_api(name))
    return ev("added", name)


def expect_event(d, c, what):
    want = change(d)
    fin, op, p = c.read_message(timeout=3.0)
    assert (fin, op) == (True, TEXT), "%s: got frame op=%#x fin=%s %r" % (what, op, fin, p)
    assert p.decode() == want, "%s: got %r want %r" % (what, p, want)


def expect_close(c, code, what):
    try:
        got, reason = c.read_close(timeout=3.0)
    except ConnClosed as e:
        raise AssertionError("%s: socket ended without a close frame (%s)" % (what, e))
    except OSError as e:
        raise AssertionError("%s: no close frame within 3s (%s)" % (what, e))
    assert got == code, "%s: close code %r (reason %r), want %d" % (what, got, reason, code)
    assert c.wait_eof(3.0), "%s: socket not shut after close %d" % (what, code)


async def test_library_messages_ignored_then_1009():
    with Daemon(workers=1, flags=FLAGS) as d:
        ws = await ws_connect(d)
        try:
            await ws.send("t" * MAX)            # exactly max: ignored
            await ws.send(b"\x00\xff" * (MAX // 2))
            await ws.send("")
            for _ in range(20):
                await ws.send("hello")
            name = "lib-1"
            d.write(name + ".json", persona_api(name))
            await expect(ws, "added", name, what="after ignored client messages")
            await ws.send("x" * (MAX + 1))
            try:
                await asyncio.wait_for(ws.wait_closed(), 3)
            except asyncio.TimeoutError:
                raise AssertionError("connection still open after %d-byte message" % (MAX + 1))
            assert ws.close_code == 1009, "close code %r, want 1009" % ws.close_code
        finally:
            await ws.close()


async def test_library_binary_too_big_1009():
    with Daemon(workers=1, flags=FLAGS) as d:
        ws = await ws_connect(d)
        try:
            await ws.send(b"b" * (MAX + 1))
            try:
                await asyncio.wait_for(ws.recv(), 3)
                raise AssertionError("got a message instead of a close")
            except websockets.exceptions.ConnectionClosed:
                pass
            assert ws.close_code == 1009, ws.close_code
        finally:
            await ws.close()


def test_raw_messages_ignored():
    with Daemon(workers=1, flags=FLAGS) as d:
        c = RawWS(d.port)
        try:
            c.send_frame(TEXT, b"a" * MAX)
            c.send_frame(BINARY, b"\x01" * MAX)
            # fragmented, total exactly MAX, with a ping in the middle
            c.send_frame(TEXT, b"f" * 100, fin=False)
            c.send_frame(CONT, b"f" * 100, fin=False)
            c.send_frame(PING, b"mid")
            c.send_frame(CONT, b"f" * (MAX - 200), fin=True)
            while True:
                fin, op, p = c.read_frame(timeout=3.0)
                if op != PING:      # a server ping may come first
                    break
            assert (op, p) == (PONG, b"mid"), "ping must be answered: op=%#x %r" % (op, p)
            c.send_frame(PONG, b"unsolicited")
            expect_event(d, c, "after ignored frames")
            # a 16-bit length (126..65535) message is fine too
            c.send_frame(BINARY, b"z" * 200)
            expect_event(d, c, "after another message")
        finally:
            c.close()


def test_raw_too_big_1009():
    cases = {
        "text MAX+1": [(TEXT, b"a" * (MAX + 1), True)],
        "binary 64KiB": [(BINARY, b"b" * 65536, True)],
        "fragmented 200+101": [(TEXT, b"a" * 200, False), (CONT, b"a" * 101, True)],
        "fragmented 3x150": [(BINARY, b"a" * 150, False), (CONT, b"a" * 150, False),
                             (CONT, b"a" * 150, False)],
    }
    with Daemon(workers=1, flags=FLAGS) as d:
        for what, frames in cases.items():
            c = RawWS(d.port)
            t0 = time.monotonic()
            try:
                for op, p, fin in frames:
                    try:
                        c.send_frame(op, p, fin=fin)
                    except (BrokenPipeError, ConnectionResetError):
                        break
                expect_close(c, 1009, what)
                assert time.monotonic() - t0 < 3, "%s: took %.1fs" % (what, time.monotonic() - t0)
            finally:
                c.close()


def test_protocol_violations_1002():
    cases = {
        "unmasked text": lambda c: c.send_frame(TEXT, b"hi", mask=False),
        "unmasked ping": lambda c: c.send_frame(PING, b"", mask=False),
        "RSV1 set": lambda c: c.send_frame(TEXT, b"hi", rsv=4),
        "RSV2 set": lambda c: c.send_frame(TEXT, b"hi", rsv=2),
        "RSV3 set": lambda c: c.send_frame(BINARY, b"hi", rsv=1),
        "opcode 0x3": lambda c: c.send_frame(0x3, b"hi"),
        "opcode 0x7": lambda c: c.send_frame(0x7, b""),
        "opcode 0xB": lambda c: c.send_frame(0xB, b"hi"),
        "fragmented ping": lambda c: c.send_frame(PING, b"hi", fin=False),
        "fragmented close": lambda c: c.send_frame(CLOSE, struct.pack("!H", 1000), fin=False),
        "ping 126 bytes": lambda c: c.send_frame(PING, b"p" * 126),
        "pong 200 bytes": lambda c: c.send_frame(PONG, b"p" * 200),
        "close 1-byte payload": lambda c: c.send_frame(CLOSE, b"\x03"),
        "close code 999": lambda c: c.send_frame(CLOSE, struct.pack("!H", 999)),
        "close code 1005": lambda c: c.send_frame(CLOSE, struct.pack("!H", 1005)),
        "close code 1006": lambda c: c.send_frame(CLOSE, struct.pack("!H", 1006)),
        "close code 5000": lambda c: c.send_frame(CLOSE, struct.pack("!H", 5000)),
        "continuation without start": lambda c: c.send_frame(CONT, b"x"),
        "new text inside fragmented": lambda c: (c.send_frame(TEXT, b"a", fin=False),
                                                 c.send_frame(TEXT, b"b")),
    }
    bad = []
    with Daemon(workers=1, flags=FLAGS) as d:
        for what, act in cases.items():
            c = RawWS(d.port)
            try:
                act(c)
                expect_close(c, 1002, what)
            except AssertionError as e:
                bad.append(str(e))
            finally:
                c.close()
        # the daemon survived all of it
        c = RawWS(d.port)
        try:
            expect_event(d, c, "after violations")
        finally:
            c.close()
    assert not bad, "\n  ".join(["%d/%d violations mishandled:" % (len(bad), len(cases))] + bad)


def test_client_close_answered():
    with Daemon(workers=1, flags=FLAGS) as d:
        for what, payload in (("1000+reason", struct.pack("!H", 1000) + b"bye"),
                              ("1001", struct.pack("!H", 1001)),
                              ("4000 app code", struct.pack("!H", 4000)),
                              ("empty", b"")):
            c = RawWS(d.port)
            try:
                c.send_frame(CLOSE, payload)
                t0 = time.monotonic()
                try:
                    code, _ = c.read_close(timeout=3.0)
                except (ConnClosed, OSError) as e:
                    raise AssertionError("%s: client close not answered with close (%s)"
                                         % (what, e))
                if payload:
                    assert code == struct.unpack("!H", payload[:2])[0] or code == 1000, \
                        "%s: answered with %r" % (what, code)
                assert c.wait_eof(3.0), "%s: socket not shut after close handshake" % what
                assert time.monotonic() - t0 < 3.0
            finally:
                c.close()


async def test_library_clean_close():
    with Daemon(workers=2, flags=FLAGS) as d:
        ws = await ws_connect(d)
        t0 = time.monotonic()
        await ws.close(1000, "done")
        dt = time.monotonic() - t0
        assert ws.close_code == 1000, "server's close answer: %r" % ws.close_code
        assert dt < 2.0, "close handshake took %.2fs" % dt
        # the daemon keeps serving others
        ws2 = await ws_connect(d)
        try:
            d.write("after.json", persona_api("after"))
            await expect(ws2, "added", "after")
        finally:
            await ws2.close()


def test_frames_pipelined_with_handshake_and_split():
    """Bytes sent together with the handshake are not lost, and frames split
    into 1-byte TCP segments are parsed."""
    import base64
    import socket
    from harness import accept_key, build_frame
    with Daemon(workers=1, flags=FLAGS) as d:
        # handshake + ping in one segment
        c = RawWS(d.port, handshake=False)
        try:
            c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            key = base64.b64encode(os.urandom(16)).decode()
            req = ("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n" % key).encode()
            c.send(req + build_frame(PING, b"early") + build_frame(TEXT, b"ignored"))
            st, hdrs = c.read_http_head()
            assert st == 101 and hdrs.get("sec-websocket-accept") == accept_key(key), (st, hdrs)
            while True:
                fin, op, p = c.read_frame(timeout=3)
                if op != PING:
                    break
            assert (op, p) == (PONG, b"early"), "ping sent with the handshake: %#x %r" % (op, p)
            # a ping and a text frame, one byte per segment
            for b in build_frame(PING, b"slow") + build_frame(TEXT, b"x" * 130):
                c.send(bytes([b]))
                time.sleep(0.002)
            while True:
                fin, op, p = c.read_frame(timeout=3)
                if op != PING:
                    break
            assert (op, p) == (PONG, b"slow"), "ping sent byte by byte: %#x %r" % (op, p)
            expect_event(d, c, "after byte-by-byte frames")
        finally:
            c.close()
        # handshake + oversized message in one segment -> 1009
        c = RawWS(d.port, handshake=False)
        try:
            key = base64.b64encode(os.urandom(16)).decode()
            req = ("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n" % key).encode()
            c.send(req + build_frame(TEXT, b"y" * (MAX + 1)))
            st, _ = c.read_http_head()
            assert st == 101, st
            expect_close(c, 1009, "oversized message pipelined with the handshake")
        finally:
            c.close()


if __name__ == "__main__":
    run([test_library_messages_ignored_then_1009, test_library_binary_too_big_1009,
         test_raw_messages_ignored, test_raw_too_big_1009, test_protocol_violations_1002,
         test_client_close_answered, test_library_clean_close,
         test_frames_pipelined_with_handshake_and_split])
