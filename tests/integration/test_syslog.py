#!/usr/bin/python3
"""Integration: --log=syslog.  A datagram socket of the test's own stands in
for /dev/log (PERSONAD_TEST_SYSLOG_SOCKET, for the test suite only).  Each
line is one datagram "<PRI>Mmm dd hh:mm:ss personad[PID]: text" with the
daemon facility and the level as priority; a persona file name with control
characters and a fake newline arrives escaped; --log-level filters; without
a listener the lines fall back to stderr; a socket that cannot be reached at
start is exit 1."""

import os
import re
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import Daemon, personad_path, run  # noqa: E402

ENV = "PERSONAD_TEST_SYSLOG_SOCKET"
LOG_DAEMON = 3 << 3
PRI = {"err": 3, "warning": 4, "info": 6, "debug": 7}
LINE = re.compile(rb"^<(\d+)>([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) personad\[(\d+)\]: (.*)$",
                  re.S)
RAW_CONTROLS = [bytes([b]) for b in range(0x20)] + [b"\x7f"] + \
    [bytes([0xC2, b]) for b in range(0x80, 0xA0)]


class LogSocket:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="personad-syslog-")
        self.path = os.path.join(self.dir, "log")
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.bind(self.path)
        self.msgs = []

    def read(self, until, timeout=5.0):
        """Collect datagrams until until(msg) holds for one; returns it."""
        for m in self.msgs:
            if until(m):
                return m
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                m = self.s.recv(65536)
            except socket.timeout:
                break
            self.msgs.append(m)
            if until(m):
                return m
        raise AssertionError("no such datagram in %d received: %r" % (len(self.msgs),
                                                                     self.msgs[-10:]))

    def close(self):
        self.s.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.rmdir(self.dir)


def daemon(logsock, flags=()):
    os.environ[ENV] = logsock.path
    return Daemon(workers=2, flags=["--log=syslog"] + list(flags))


def parse(m):
    g = LINE.match(m)
    assert g, "not a syslog line: %r" % m
    return int(g.group(1)), int(g.group(3)), g.group(4)


def test_lines_and_hostile_file_name():
    logsock = LogSocket()
    try:
        d = daemon(logsock)
        with d:
            m = logsock.read(lambda m: b"listening on" in m)
            pri, pid, _ = parse(m)
            assert pri == LOG_DAEMON | PRI["info"], pri
            assert pid == d.pid, (pid, d.pid)
            fname = b"evil\npersonad[1]: info: forged \x1b[2J\xc2\x9b31m\r\t\x7f.json"
            with open(os.path.join(d.dir.encode(), fname), "wb") as f:
                f.write(b"{not json")
            m = logsock.read(lambda m: b"evil" in m)
            pri, pid, text = parse(m)
            assert pri == LOG_DAEMON | PRI["warning"], (pri, m)
            for c in RAW_CONTROLS:
                assert c not in m, "raw %r in %r" % (c, m)
            assert (b"evil\\npersonad[1]: info: forged \\x1b[2J\\xc2\\x9b31m\\r\\t\\x7f.json"
                    in text), text
            # Nothing went to stderr but what cannot go anywhere else.
            assert "listening on" not in d.log_text(), d.log_text()
    finally:
        os.environ.pop(ENV, None)
        logsock.close()


def test_level_filter_and_fallback_to_stderr():
    logsock = LogSocket()
    try:
        d = daemon(logsock, ["--log-level=warn"])
        with d:
            fname = b"bad\x01.json"
            with open(os.path.join(d.dir.encode(), fname), "wb") as f:
                f.write(b"[]")
            m = logsock.read(lambda m: b"bad\\x01.json" in m)
            assert parse(m)[0] == LOG_DAEMON | PRI["warning"]
            infos = [m for m in logsock.msgs if parse(m)[0] == LOG_DAEMON | PRI["info"]]
            assert infos == [], infos
            # The log daemon goes away: lines go to stderr instead of nowhere.
            logsock.s.close()
            os.unlink(logsock.path)
            with open(os.path.join(d.dir.encode(), b"worse\x02.json"), "wb") as f:
                f.write(b"[]")
            d.wait_log(lambda line: "worse\\x02.json" in line, timeout=5)
            assert "\x02" not in d.log_text()
            # and back: a new socket at the path gets the next line (reconnect)
            logsock.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            logsock.s.bind(logsock.path)
            logsock.msgs = []
            with open(os.path.join(d.dir.encode(), b"third\x03.json"), "wb") as f:
                f.write(b"[]")
            logsock.read(lambda m: b"third\\x03.json" in m)
    finally:
        os.environ.pop(ENV, None)
        logsock.close()


def test_unreachable_socket_at_start():
    tmp = tempfile.mkdtemp(prefix="personad-syslog-")
    try:
        env = dict(os.environ)
        env[ENV] = os.path.join(tmp, "nobody")
        p = subprocess.run([personad_path(), "--log=syslog", "-l", "127.0.0.1:1", "-d", tmp],
                           env=env, capture_output=True, timeout=10)
        assert p.returncode == 1, p
        assert b"--log=syslog: cannot connect to the syslog socket" in p.stderr, p.stderr
    finally:
        os.rmdir(tmp)


if __name__ == "__main__":
    run([test_lines_and_hostile_file_name, test_level_filter_and_fallback_to_stderr,
         test_unreachable_socket_at_start])
