#!/usr/bin/python3
"""Integration (issue 8, item 1): a WebSocket whose 101 cannot be written at once.

A client's stream starts at the first event after its request was handled, but
its connection only exists once libmicrohttpd has written the whole 101.  The
LD_PRELOAD shim stall101.so (built by make check) makes the daemon's first
attempts to send this test's 101 fail with EAGAIN, as a full socket buffer
would, while the test publishes events.  libmicrohttpd retries at the next
readiness edge of the socket: the client's ping.  The worker must neither lose
those events nor abort: the client gets every event after its start (the
window keeps them for the pending handshake), or, when the window itself was
lapped meanwhile, a close 1013.  The worker keeps its pid and its other
clients.
"""

import base64
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import (ConnClosed, Daemon, RawWS, accept_key, ev, persona_api, run)  # noqa: E402

TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA
STALL_MS = 400


def shim_path():
    top = os.environ.get("TOP_BUILDDIR", os.path.join(os.path.dirname(__file__), "..", ".."))
    p = os.path.abspath(os.path.join(top, "tests", "integration", "stall101.so"))
    if not os.path.exists(p):
        print("ERROR: %s not built (make check builds it)" % p)
        sys.exit(99)
    return p


class StallDaemon(Daemon):
    """The daemon with stall101.so preloaded, holding back the 101 that
    answers key (and no other)."""

    def __init__(self, key, **kw):
        super().__init__(**kw)
        self.env = dict(os.environ, LD_PRELOAD=shim_path(),
                        PERSONAD_STALL_101_ACCEPT=accept_key(key),
                        PERSONAD_STALL_101_MS=str(STALL_MS))
        # An ASan build wants its runtime first in the library list.
        asan = self.env.get("ASAN_OPTIONS")
        self.env["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "verify_asan_link_order=0"

    def _spawn(self):
        self.errf = open(self.log_path, "ab")
        self.outf = open(self.out_path, "ab")
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                     stdout=self.outf, stderr=self.errf,
                                     process_group=0, env=self.env)
        self.pgid = self.proc.pid
        self.started_at = time.monotonic()


def start_stalled_handshake(d, key):
    """Send the handshake for key; return (client, time the 101 was held back)."""
    c = RawWS(d.port, handshake=False)
    offset = len(d.log_text())
    c.send(("GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n" % (d.port, key)).encode())
    line = d.wait_log(lambda ln: "stall101: holding back" in ln, timeout=5.0, since=offset)
    assert line is not None, "the shim never held the 101 back (is it preloaded?)"
    return c, time.monotonic()


def publish(d, observer, names):
    """One event per name; the observer (same worker) reads each before the
    next, so the worker has framed and fanned it out (and, without a hold,
    released it)."""
    for name in names:
        d.write(name + ".json", persona_api(name))
        fin, op, p = observer.read_message(timeout=5.0)
        assert op == TEXT and p.decode() == ev("added", name), \
            "observer: op %#x %r, want %s" % (op, p, ev("added", name))


def finish_handshake(d, c, stalled_at):
    """Past the stall, a ping wakes libmicrohttpd to write the 101."""
    left = stalled_at + STALL_MS / 1000.0 + 0.15 - time.monotonic()
    if left > 0:
        time.sleep(left)
    c.send_frame(PING, b"after-stall")
    try:
        st, hdrs = c.read_http_head()
    except (ConnClosed, OSError) as e:
        raise AssertionError("no 101 after the stall (%s); log:\n%s" % (e, d.log_text()[-1500:]))
    assert st == 101, "status %r" % st


def read_until_silent(c, timeout=2.0):
    """Frames until none comes for timeout; and whether the socket ended."""
    frames = []
    while True:
        try:
            frames.append(c.read_frame(timeout=timeout))
        except socket.timeout:
            return frames, False
        except (ConnClosed, OSError):
            return frames, True
        if frames[-1][1] == CLOSE:
            return frames, False


def assert_worker_survived(d, pid, observer, stalled, tag):
    w = d.worker_pids()
    assert w == [pid], "%s: workers %r, was [%d]; log:\n%s" % (tag, w, pid, d.log_text()[-2000:])
    log = d.log_text()
    for word in ("panic", "missing from the window", "killed by signal"):
        assert word not in log, "%s: log mentions %r:\n%s" % (tag, word, log[-2000:])
    publish(d, observer, [tag + "-after"])
    if stalled is not None:
        fin, op, p = stalled.read_message(timeout=5.0)
        assert op == TEXT and p.decode() == ev("added", tag + "-after"), (op, p)


def new_key():
    return base64.b64encode(os.urandom(16)).decode()


def test_events_during_a_stalled_101_are_delivered():
    key = new_key()
    with StallDaemon(key, workers=1) as d:
        pid = d.wait_workers(1)[0]
        observer = RawWS(d.port)
        c, stalled_at = start_stalled_handshake(d, key)
        try:
            names = ["during-%d" % i for i in range(5)]
            publish(d, observer, names)
            finish_handshake(d, c, stalled_at)
            frames, ended = read_until_silent(c, timeout=1.5)
            got = [p.decode() for fin, op, p in frames if op == TEXT]
            pongs = [p for fin, op, p in frames if op == PONG]
            closes = [p for fin, op, p in frames if op == CLOSE]
            assert not closes and not ended, \
                "stalled client closed: %r (ended %s); log:\n%s" % (frames, ended,
                                                                   d.log_text()[-2000:])
            assert got == [ev("added", n) for n in names], \
                "events published during the stalled 101: got %r" % got
            assert pongs == [b"after-stall"], "pong: %r" % frames
            assert_worker_survived(d, pid, observer, c, "stall")
        finally:
            c.close()
            observer.close()


def test_window_lapped_during_a_stalled_101_closes_1013():
    """--ring-size=16 is also the window's capacity: 24 events during the
    stall lap it, so the client's start is gone: close 1013, no abort."""
    key = new_key()
    with StallDaemon(key, workers=1, flags=["--ring-size=16"]) as d:
        pid = d.wait_workers(1)[0]
        observer = RawWS(d.port)
        c, stalled_at = start_stalled_handshake(d, key)
        try:
            publish(d, observer, ["lap-%d" % i for i in range(24)])
            finish_handshake(d, c, stalled_at)
            frames, ended = read_until_silent(c, timeout=3.0)
            assert frames and frames[-1][1] == CLOSE, \
                "want a close 1013, got %r (ended %s); log:\n%s" % (frames, ended,
                                                                   d.log_text()[-2000:])
            code = int.from_bytes(frames[-1][2][:2], "big")
            assert code == 1013, "close code %d %r" % (code, frames[-1][2])
            assert [f for f in frames if f[1] == TEXT] == [], \
                "events sent before the 1013 (a gap): %r" % frames
            assert c.wait_eof(3.0), "socket not shut after the 1013"
            assert_worker_survived(d, pid, observer, None, "lapped")
        finally:
            c.close()
            observer.close()


def test_far_behind_stalled_101_closes_1013():
    """A pending handshake holds the window like a connection, up to the same
    cap (256 KiB queued): 1000 events of ~300 bytes during the stall put the
    client past it, so it is closed 1013 at the hand-off, not fed 300 KB."""
    key = new_key()
    pad = "s" * 240
    with StallDaemon(key, workers=1) as d:
        pid = d.wait_workers(1)[0]
        observer = RawWS(d.port)
        stage = os.path.join(d.tmp, "stage")
        os.mkdir(stage)
        c, stalled_at = start_stalled_handshake(d, key)
        try:
            for batch in range(10):
                names = ["%s-%05d" % (pad, batch * 100 + i) for i in range(100)]
                for n in names:
                    with open(os.path.join(stage, n[-5:] + ".json"), "w") as f:
                        f.write('{"name": "%s", "spec": {"nodes": 1}}' % n)
                for n in names:
                    os.rename(os.path.join(stage, n[-5:] + ".json"), d.path(n[-5:] + ".json"))
                got = set()
                while len(got) < len(names):
                    fin, op, p = observer.read_message(timeout=10.0)
                    assert op == TEXT, (op, p)
                    got.add(p.decode())
                assert got == {ev("added", n) for n in names}, "observer missed events"
            finish_handshake(d, c, stalled_at)
            frames, ended = read_until_silent(c, timeout=3.0)
            texts = [f for f in frames if f[1] == TEXT]
            assert frames and frames[-1][1] == CLOSE, \
                "want a close 1013, got %d events, last %r (ended %s)" % (
                    len(texts), frames[-1][:2] if frames else None, ended)
            code = int.from_bytes(frames[-1][2][:2], "big")
            assert code == 1013 and not texts, "close %d after %d events" % (code, len(texts))
            assert_worker_survived(d, pid, observer, None, "behind")
        finally:
            c.close()
            observer.close()


if __name__ == "__main__":
    run([test_events_during_a_stalled_101_are_delivered,
         test_window_lapped_during_a_stalled_101_closes_1013,
         test_far_behind_stalled_101_closes_1013])
