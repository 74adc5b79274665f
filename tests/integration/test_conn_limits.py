#!/usr/bin/python3
"""Integration (issue 12, connection limits): --max-connections-per-ip and
--request-timeout.

Per-IP: with N=3, three connections from 127.0.0.1 (spread over both
workers: the count is the whole daemon's) are served; a fourth gets 503 JSON
with Retry-After and is closed, the three keep receiving events; another
address (127.0.0.2) is still admitted; closing one frees a place; a worker
killed with connections is respawned from zero (its clients are gone, so
their places are free again).

Request timeout: a client that sends its request head one byte every half
second (libmicrohttpd's idle timeout, per idle period, never fires) is
dropped within --request-timeout of connecting, for the whole head; one
that finishes its head in time is answered; a kept-alive connection has the
same time for its next head after an answer; a reload that shortens the
timeout applies to the heads already waiting.
"""

import json
import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import (ConnClosed, Daemon, RawWS, conn_owner, daemon_holds_no_connection,  # noqa: E402
                     ev, persona_api, run, server_side_released, tcp_sockets)

TEXT = 0x1


def wait_until(pred, timeout, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def connect_from(src, port, timeout=5.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s


def read_reply(s):
    """(status, headers, body) of one HTTP response read to EOF or its length."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        if not d:
            break
        buf += d
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines[0].startswith("HTTP/") else None
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    n = int(hdrs.get("content-length", "0"))
    while len(body) < n:
        d = s.recv(4096)
        if not d:
            break
        body += d
    return status, hdrs, body


def handshake_request(port):
    return ("GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n" % port).encode()


def assert_refused(d, what):
    s = connect_from("127.0.0.1", d.port)
    try:
        s.sendall(handshake_request(d.port))
        status, hdrs, body = read_reply(s)
    finally:
        s.close()
    assert status == 503, "%s: status %r, want 503" % (what, status)
    assert hdrs.get("content-type") == "application/json", hdrs
    assert hdrs.get("retry-after", "").isdigit(), "%s: no Retry-After: %r" % (what, hdrs)
    assert json.loads(body) == {"error": "too many connections from this address"}, body


def admitted(d, src="127.0.0.1"):
    """A GET /healthz from src is answered 200."""
    s = connect_from(src, d.port)
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, _, _ = read_reply(s)
        while s.recv(4096):  # to the daemon's close: its place is free again
            pass
    finally:
        s.close()
    return status == 200


def expect_event(c, kind, name, what):
    fin, op, payload = c.read_frame(timeout=5)
    assert op == TEXT and payload.decode() == ev(kind, name), "%s: got %r %r" % (what, op, payload)


def test_per_ip_limit():
    with Daemon(workers=2, expect_worker_deaths=True,
                flags=["--max-connections-per-ip=3"]) as d:
        workers = d.wait_workers(2)
        # The harness's readiness probe counts until the daemon has seen it go.
        assert wait_until(lambda: daemon_holds_no_connection(d), 5), tcp_sockets(d.port)
        conns = []
        try:
            # Three WebSockets, on both workers (the kernel spreads them; a
            # fourth is never needed to get there).
            for _ in range(40):
                while len(conns) < 3:
                    conns.append(RawWS(d.port))
                owners = {conn_owner(d, c.local_port) for c in conns}
                if len(owners) == 2:
                    break
                gone = conns.pop(0)
                gone.close()
                assert wait_until(lambda: server_side_released(d, gone.local_port), 5)
            owners = [conn_owner(d, c.local_port) for c in conns]
            assert set(owners) == set(workers), "not spread over both workers: %r" % owners
            assert_refused(d, "4th from 127.0.0.1")
            assert admitted(d, "127.0.0.2"), "127.0.0.2 not admitted"
            d.write("a.json", persona_api("a"))
            for i, c in enumerate(conns):
                expect_event(c, "added", "a", "client %d after the refusal" % i)
            # Closing one frees a place (once the daemon has let its socket go).
            gone = conns.pop()
            gone.close()
            assert wait_until(lambda: server_side_released(d, gone.local_port), 5)
            conns.append(RawWS(d.port))
            assert_refused(d, "4th after the replacement")
            # A worker killed with clients: they are gone, and its respawn
            # starts from zero, so their places are free again.
            victim = conn_owner(d, conns[0].local_port)
            lost = sum(1 for c in conns if conn_owner(d, c.local_port) == victim)
            os.kill(victim, signal.SIGKILL)
            assert wait_until(lambda: len(d.worker_pids()) == 2 and
                              victim not in d.worker_pids(), 10), "no respawn"
            kept = [c for c in conns if conn_owner(d, c.local_port) is not None]
            assert len(kept) == 3 - lost, (len(kept), lost)
            extra = []
            try:
                for _ in range(lost):
                    extra.append(RawWS(d.port))
                assert_refused(d, "past 3 after the respawn")
            finally:
                for c in extra:
                    c.close()
        finally:
            for c in conns:
                c.close()
        log = d.log_text()
        assert "refused a connection from 127.0.0.1: 3 open from it" in log, log[-2000:]


def test_sse_counts():
    """An SSE stream (handed off from libmicrohttpd like a WebSocket) counts too."""
    with Daemon(workers=1, flags=["--max-connections-per-ip=2"]) as d:
        assert wait_until(lambda: daemon_holds_no_connection(d), 5), tcp_sockets(d.port)
        s = connect_from("127.0.0.1", d.port)
        try:
            s.sendall(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _, _ = read_reply(s)
            assert status == 200, status
            c = RawWS(d.port)
            try:
                assert_refused(d, "3rd with an SSE stream and a WebSocket open")
            finally:
                c.close()
        finally:
            s.close()
        assert wait_until(lambda: admitted(d), 5), "no place after both closed"


def test_slow_head_dropped():
    timeout = 2.0
    with Daemon(workers=1, flags=["--request-timeout=%g" % timeout]) as d:
        # In time: a head sent in pieces over about a second is answered.
        s = connect_from("127.0.0.1", d.port)
        try:
            for part in (b"GET /heal", b"thz HTTP/1.1\r\n", b"Host: x\r\n", b"\r\n"):
                s.sendall(part)
                time.sleep(0.25)
            status, _, _ = read_reply(s)
            assert status == 200, status
        finally:
            s.close()
        # One byte every 0.5 s: the head would take 20 s.
        head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        s = connect_from("127.0.0.1", d.port)
        t0 = time.monotonic()
        dropped_at = None
        try:
            for i in range(len(head)):
                if time.monotonic() - t0 > timeout + 4:
                    break
                try:
                    s.send(head[i:i + 1])
                    s.settimeout(0.5)
                    got = s.recv(100)
                except socket.timeout:
                    continue
                except (ConnectionResetError, BrokenPipeError):
                    got = b""
                if got == b"":
                    dropped_at = time.monotonic() - t0
                    break
                raise AssertionError("not dropped: answered after %.1f s (%r)"
                                     % (time.monotonic() - t0, got[:40]))
        finally:
            s.close()
        print("slow head dropped after %s s (--request-timeout=%g)" % (dropped_at, timeout))
        assert dropped_at is not None, "a client sending a byte each 0.5 s was not dropped"
        assert dropped_at <= timeout + 1.5, "dropped after %.1f s, want <= %.1f" % (
            dropped_at, timeout + 1.5)
        assert dropped_at >= timeout - 0.2, "dropped early, after %.1f s" % dropped_at
        st, _, _ = d.http("GET", "/healthz")
        assert st == 200, st


def trickle_until_dropped(s, head, limit_s):
    """Send head one byte every 0.5 s; the seconds until the daemon closed
    the connection, or None if it did not within limit_s (or answered)."""
    t0 = time.monotonic()
    for i in range(len(head)):
        if time.monotonic() - t0 > limit_s:
            return None
        try:
            s.send(head[i:i + 1])
            s.settimeout(0.5)
            got = s.recv(100)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            got = b""
        if got == b"":
            return time.monotonic() - t0
        raise AssertionError("not dropped: answered after %.1f s (%r)"
                             % (time.monotonic() - t0, got[:40]))
    return None


def test_next_head_on_keep_alive():
    """After an answer, a kept-alive connection has --request-timeout for
    its next head too (MHD's idle timeout alone would restart per byte)."""
    timeout = 2.0
    with Daemon(workers=1, flags=["--request-timeout=%g" % timeout]) as d:
        s = connect_from("127.0.0.1", d.port)
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _, _ = read_reply(s)
            assert status == 200, status
            dt = trickle_until_dropped(s, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                                       timeout + 4)
        finally:
            s.close()
        print("next head dropped after %s s" % dt)
        assert dt is not None and timeout - 0.2 <= dt <= timeout + 1.5, dt


def test_reload_shortens_request_timeout():
    """--request-timeout is live: a SIGHUP that shortens it applies to the
    heads already waiting (their start + the new period)."""
    d = Daemon(workers=1)
    conf = os.path.join(d.tmp, "personad.conf")
    with open(conf, "w") as f:
        f.write("request-timeout = 30\n")
    d.flags += ["-c", conf]
    with d:
        s = connect_from("127.0.0.1", d.port)
        try:
            with open(conf, "w") as f:
                f.write("request-timeout = 1.5\n")
            off = len(d.log_text())
            d.send_signal(signal.SIGHUP)
            d.wait_log(lambda ln: "reload: request-timeout: 30 -> 1.5" in ln, 5, since=off)
            dt = trickle_until_dropped(s, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                                       6)
        finally:
            s.close()
        print("dropped %s s after the reload" % dt)
        assert dt is not None and dt <= 2.5, dt


run([test_per_ip_limit, test_sse_counts, test_slow_head_dropped, test_next_head_on_keep_alive,
     test_reload_shortens_request_timeout])
