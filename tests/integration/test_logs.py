#!/usr/bin/python3
"""Integration: what clients and files put into log lines.  Control bytes in a
persona file's name or in a request target are escaped, so they can neither
forge a line nor reach a terminal; the lines that closes caused by clients
produce are rate-limited per worker, with a "suppressed" count."""

import os
import re
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import ConnClosed, Daemon, RawWS, build_frame, persona_api, run  # noqa: E402

# Control bytes that must never reach the log raw: C0, DEL, C1 as UTF-8.
RAW_CONTROLS = [bytes([b]) for b in range(0x20) if b != 0x0A] + [b"\x7f"] + \
    [bytes([0xC2, b]) for b in range(0x80, 0xA0)]


def log_bytes(d):
    with open(d.log_path, "rb") as f:
        return f.read()


def assert_no_raw_controls(d):
    raw = log_bytes(d)
    for c in RAW_CONTROLS:
        assert c not in raw, "raw %r in the log:\n%r" % (c, raw[-2000:])
    return raw


def test_file_name_with_newline_and_esc():
    """A persona file whose name holds a newline and an ESC sequence (and a
    C1 CSI) that would forge a line: one warning line, with the name escaped."""
    fname = b"evil\npersonad[1]: info: forged \x1b[2J\xc2\x9b31m.json"
    with Daemon(workers=1) as d:
        mark = len(log_bytes(d))
        with open(os.path.join(d.dir, ".tmp-evil"), "wb") as f:
            f.write(b"{ not json")
        os.rename(os.path.join(d.dir, ".tmp-evil").encode(),
                  os.path.join(d.dir.encode(), fname))
        deadline = time.monotonic() + 5
        while b"forged" not in log_bytes(d)[mark:]:
            assert time.monotonic() < deadline, "no warning about the file:\n%r" % log_bytes(d)
            time.sleep(0.05)
        time.sleep(0.5)  # nothing else about it may follow
        raw = assert_no_raw_controls(d)
        lines = [ln for ln in raw[mark:].split(b"\n") if b"forged" in ln or b"evil" in ln]
        want = (b"persona file evil\\npersonad[1]: info: forged \\x1b[2J\\xc2\\x9b31m.json: ")
        assert len(lines) == 1, "want one line about the file, got %r" % lines
        assert re.match(rb"personad\[\d+\]: warning: ", lines[0]), lines[0]
        assert want in lines[0], "escaped name not in %r" % lines[0]
        assert not [ln for ln in raw[mark:].split(b"\n") if ln.startswith(b"personad[1]:")], \
            "a forged line:\n%r" % raw[mark:]


def test_request_target_with_esc():
    """libmicrohttpd names the request target when it fails to send a response
    (the client reset the connection after pipelining requests): the target's
    ESC, BEL and C1 bytes arrive escaped."""
    target = b"/x\x1b[31mred\x1b]0;title\x07\xc2\x9b2J"
    req = b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n"
    with Daemon(workers=1, seed={"a.json": persona_api("a")}) as d:
        found = None
        deadline = time.monotonic() + 20
        tries = 0
        while found is None and time.monotonic() < deadline:
            tries += 1
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(2)
            s.connect(("127.0.0.1", d.port))
            s.sendall(req * 200)
            time.sleep(0.002)  # reset while the 404s are going out
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
            for ln in log_bytes(d).split(b"\n"):
                if b"for the request for `" in ln:
                    found = ln
                    break
        assert found is not None, "libmicrohttpd never named the target (%d tries)" % tries
        assert b"`/x\\x1b[31mred\\x1b]0;title\\x07\\xc2\\x9b2J'" in found, found
        assert_no_raw_controls(d)
        st, _, _ = d.http("GET", "/healthz")
        assert st == 200, st


def test_client_close_flood_rate_limited():
    """300 clients each sending an oversize message (-> close 1009) within about
    a second: a bounded number of close lines, and "suppressed" lines that
    account for every other close."""
    n = 300
    per_second = 10  # WORKER_CLIENT_LOG_PER_SECOND
    with Daemon(workers=1) as d:
        clients = [RawWS(d.port) for _ in range(n)]
        mark = len(log_bytes(d))
        frame = build_frame(0x1, b"x" * 1000)  # over the default --max-message=512
        t0 = time.monotonic()
        for c in clients:
            c.send(frame)
        codes = []
        for c in clients:
            try:
                codes.append(c.read_close(timeout=5)[0])
            except (ConnClosed, OSError) as e:
                codes.append(repr(e))
        elapsed = time.monotonic() - t0
        for c in clients:
            c.close()
        assert codes == [1009] * n, "close codes: %r" % sorted(set(map(str, codes)))
        suppressed_re = re.compile(rb"personad\[\d+\]: info: ws: (\d+) more message\(s\) suppressed$")
        deadline = time.monotonic() + 3
        while True:
            text = log_bytes(d)[mark:]
            closes = [ln for ln in text.split(b"\n") if b"(close 1009" in ln]
            suppressed = sum(int(m.group(1)) for m in map(suppressed_re.match, text.split(b"\n"))
                             if m)
            if len(closes) + suppressed >= n or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        seconds = int(elapsed) + 2  # the seconds the burst can touch
        assert 1 <= len(closes) <= per_second * seconds, \
            "%d close lines for %d closes in %.2fs" % (len(closes), n, elapsed)
        assert len(closes) + suppressed == n, \
            "%d logged + %d suppressed != %d closes:\n%s" % (len(closes), suppressed, n,
                                                             text[-1500:].decode("latin-1"))
        st, _, _ = d.http("GET", "/healthz")
        assert st == 200, st


if __name__ == "__main__":
    run([test_file_name_with_newline_and_esc, test_request_target_with_esc,
         test_client_close_flood_rate_limited])
