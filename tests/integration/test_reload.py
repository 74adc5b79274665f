#!/usr/bin/python3
"""Integration: SIGHUP re-reads the --config file.  Live options (deadlines,
--max-message, --log-level, ...) reach the connections already open in every
worker; restart-only ones (--listen, --workers, ...) are logged as "needs a
restart" and kept; a file that no longer parses keeps the running
configuration and says why with file:line; options given on the command line
keep their precedence; the persona directory is rescanned each time."""

import asyncio
import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import (ConnClosed, Daemon, RawWS, ev, free_port, persona_api,  # noqa: E402
                     personad_path, run, ws_connect)
import websockets.client  # noqa: E402


def pings_within(c, secs):
    """Ping frames received in secs (each answered); data frames are ignored."""
    n = 0
    end = time.monotonic() + secs
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return n
        try:
            fin, op, p = c.read_frame(timeout=max(0.001, left))
        except socket.timeout:
            continue
        except ConnClosed:
            raise AssertionError("connection closed after %d pings" % n)
        if op == 0x9:
            n += 1
            c.send_frame(0xA, p)
        elif op == 0x8:
            raise AssertionError("server closed the connection: %r" % p)


class Conf:
    def __init__(self, d, text):
        self.path = os.path.join(d.tmp, "personad.conf")
        self.write(text)

    def write(self, text):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, self.path)


def daemon_with(text, workers=2, flags=()):
    d = Daemon(workers=workers, flags=list(flags))
    conf = Conf(d, text)
    d.flags.append("--config=" + conf.path)
    return d, conf


class FileDaemon(Daemon):
    """Every option in the file: only --config on the command line."""

    def __init__(self, text_fn):
        super().__init__(port=free_port())
        self.text_fn = text_fn
        self.conf = Conf(self, text_fn(self))

    def argv(self):
        self.conf.write(self.text_fn(self))
        return [personad_path(), "--config=" + self.conf.path]


def hup(d):
    """SIGHUP; returns the log offset from before it."""
    mark = len(d.log_text())
    d.send_signal(signal.SIGHUP)
    d.wait_log(lambda line: "SIGHUP: rescanning" in line, timeout=5, since=mark)
    return mark


def test_live_values_reach_open_connections():
    d, conf = daemon_with("ping-period = 30\npong-wait = 60\n")
    with d:
        # One raw client per worker (a connection per worker is not guaranteed,
        # so a few), all open before the reload.
        clients = [RawWS(d.port) for _ in range(4)]
        try:
            for c in clients:
                assert pings_within(c, 0.2) == 0
            conf.write("# shorter\nping-period = 0.3\npong-wait = 60\nlog-level = debug\n")
            mark = hup(d)
            d.wait_log(lambda line: "reload: ping-period: 30 -> 0.3" in line, since=mark)
            d.wait_log(lambda line: "reload: log-level: info -> debug" in line, since=mark)
            # Each worker took the new values (a debug line only the new level shows).
            for _ in range(50):
                if d.log_text()[mark:].count("options reloaded") >= 2:
                    break
                time.sleep(0.05)
            assert d.log_text()[mark:].count("options reloaded") == 2, d.log_text()[mark:]
            # Armed 30 s pings count from when they were armed: due at once now,
            # then every 0.3 s.  3 s would hold 10; at least 4 on a busy machine.
            for c in clients:
                n = pings_within(c, 1.5)
                assert n >= 3, "an open connection got %d pings in 1.5 s after the reload" % n
            # A new connection too, and it still streams events.
            c2 = RawWS(d.port)
            clients.append(c2)
            assert pings_within(c2, 1.5) >= 3
            d.write("a.json", persona_api("a"))
            fin, op, p = clients[0].read_message(timeout=3)
            assert (op, p.decode()) == (0x1, ev("added", "a")), (op, p)
            # log-level = warn: the next reload's info lines are gone.
            conf.write("ping-period = 0.3\npong-wait = 60\nlog-level = warn\n")
            mark = len(d.log_text())
            d.send_signal(signal.SIGHUP)
            time.sleep(1.0)
            text = d.log_text()[mark:]
            assert "SIGHUP: rescanning" not in text, text
        finally:
            for c in clients:
                c.close()


class CountingClient(websockets.client.WebSocketClientProtocol):
    """python3-websockets' own client, counting the pings it answers."""
    answered = 0

    async def pong(self, data=b""):
        self.answered += 1
        return await super().pong(data)


async def test_websockets_client_pinged_sooner():
    d, conf = daemon_with("ping-period = 30\n")
    with d:
        clients = [await ws_connect(d, create_protocol=CountingClient) for _ in range(4)]
        try:
            await asyncio.sleep(0.5)
            assert [c.answered for c in clients] == [0] * 4, [c.answered for c in clients]
            conf.write("ping-period = 0.25\n")
            mark = len(d.log_text())
            d.send_signal(signal.SIGHUP)
            for _ in range(100):
                if "SIGHUP: rescanning" in d.log_text()[mark:]:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.5)
            counts = [c.answered for c in clients]
            assert min(counts) >= 3, "pings after the reload: %s" % counts
            d.write("b.json", persona_api("b"))
            for c in clients:
                assert await asyncio.wait_for(c.recv(), 3) == ev("added", "b")
        finally:
            for c in clients:
                await c.close()


def test_pong_wait_live_for_a_silent_client():
    """A client that never answers: with --pong-wait 60 it stays; reloaded to
    0.5 s, its running pong timer (armed at the handshake) is overdue: closed."""
    d, conf = daemon_with("ping-period = 30\npong-wait = 60\n", workers=1)
    with d:
        c = RawWS(d.port)
        try:
            time.sleep(1.0)
            assert c.wait_eof(timeout=0.2) is False, "closed before the reload"
            conf.write("ping-period = 0.2\npong-wait = 0.5\n")
            mark = hup(d)
            d.wait_log(lambda line: "reload: pong-wait: 60 -> 0.5" in line, since=mark)
            assert c.wait_eof(timeout=3.0), "a silent client outlived the new --pong-wait"
        finally:
            c.close()


def test_max_message_live():
    """--max-message applies to the next message of an open connection."""
    d, conf = daemon_with("max-message = 512\n", workers=1)
    with d:
        c = RawWS(d.port)
        try:
            c.send_frame(0x1, b"x" * 300)  # accepted (and ignored)
            assert pings_within(c, 0.3) == 0
            conf.write("max-message = 100\n")
            mark = hup(d)
            d.wait_log(lambda line: "reload: max-message: 512 -> 100" in line, since=mark)
            time.sleep(0.2)
            c.send_frame(0x1, b"x" * 300)
            code, _ = c.read_close(timeout=3)
            assert code == 1009, code
        finally:
            c.close()


def test_unchanged_file():
    d, conf = daemon_with("ping-period = 30\n")
    with d:
        mark = hup(d)
        text = d.log_text()[mark:]
        assert "no option changed" in text, text
        assert "->" not in text and "needs a restart" not in text, text
        assert "options reloaded" not in text, text


def test_restart_only_options_are_kept():
    other = free_port()

    def first(d):
        return ("listen = 127.0.0.1:%d\npersonas-dir = %s\nworkers = 2\nping-period = 30\n"
                % (d.port, d.dir))
    d = FileDaemon(first)
    with d:
        c = RawWS(d.port)
        try:
            changed = ("listen = 127.0.0.1:%d\npersonas-dir = %s\nworkers = 3\nring-size = 64\n"
                       "snapshot-max = 8192\nlog = syslog\nping-period = 0.3\n" % (other, d.tmp))
            d.conf.write(changed)
            mark = hup(d)
            text = d.log_text()[mark:]
            for opt in ("listen", "personas-dir", "workers", "ring-size", "snapshot-max", "log"):
                assert "reload: %s: needs a restart" % opt in text, (opt, text)
            assert "keeping 127.0.0.1:%d" % d.port in text, text
            assert "reload: ping-period: 30 -> 0.3" in text, text  # the live one applies
            # The running values were kept: the next reload finds them changed again.
            mark = hup(d)
            text = d.log_text()[mark:]
            for opt in ("listen", "personas-dir", "workers", "ring-size", "snapshot-max", "log"):
                assert "reload: %s: needs a restart" % opt in text, (opt, text)
            assert "ping-period" not in text, text
            st, _, _ = d.http("GET", "/healthz")
            assert st == 200
            with socket.socket() as s:
                s.settimeout(1)
                assert s.connect_ex(("127.0.0.1", other)) != 0, "the new port answers"
            assert pings_within(c, 1.5) >= 3
            assert len(d.worker_pids()) == 2, d.worker_pids()
            d.write("a.json", persona_api("a"))  # still the old directory
            fin, op, p = c.read_message(timeout=3)
            assert (op, p.decode()) == (0x1, ev("added", "a")), (op, p)
        finally:
            c.close()


def test_broken_file_keeps_running_config():
    d, conf = daemon_with("ping-period = 30\n", workers=1)
    with d:
        c = RawWS(d.port)
        try:
            conf.write("# comment\nping-period = 0.3\nping-period = fast\n")
            mark = hup(d)
            line = d.wait_log(lambda line: "reload:" in line, since=mark)
            assert "%s:3: invalid value for --ping-period: 'fast'" % conf.path in line, line
            assert "keeping the running configuration" in line, line
            assert pings_within(c, 1.0) == 0, "a broken file changed the ping period"
            assert "->" not in d.log_text()[mark:], d.log_text()[mark:]
            conf.write("ping-period = 0.3\nbogus-key = 1\n")
            mark = hup(d)
            line = d.wait_log(lambda line: "reload:" in line, since=mark)
            assert "%s:2: unknown key 'bogus-key'" % conf.path in line, line
            os.unlink(conf.path)
            mark = hup(d)
            line = d.wait_log(lambda line: "reload:" in line, since=mark)
            assert "cannot open config file" in line, line
            assert pings_within(c, 1.0) == 0
            # Fixed again: it applies.
            conf.write("ping-period = 0.3\n")
            hup(d)
            assert pings_within(c, 1.5) >= 3
        finally:
            c.close()


def test_command_line_keeps_precedence():
    d, conf = daemon_with("ping-period = 0.3\n", workers=1, flags=["--ping-period=30"])
    with d:
        c = RawWS(d.port)
        try:
            conf.write("ping-period = 0.2\npong-wait = 40\n")
            mark = hup(d)
            text = d.log_text()[mark:]
            assert "reload: pong-wait: 60 -> 40" in text, text
            assert "reload: ping-period" not in text, text
            assert pings_within(c, 1.0) == 0
        finally:
            c.close()


def test_respawned_worker_inherits_reload():
    d, conf = daemon_with("ping-period = 30\n", workers=1)
    d.expect_worker_deaths = True
    with d:
        conf.write("ping-period = 0.3\n")
        hup(d)
        old = d.worker_pids()
        os.kill(old[0], signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            pids = d.worker_pids()
            if pids and pids != old:
                break
            time.sleep(0.05)
        d.wait_ready()
        c = RawWS(d.port)
        try:
            assert pings_within(c, 1.5) >= 3
        finally:
            c.close()


if __name__ == "__main__":
    run([test_live_values_reach_open_connections, test_websockets_client_pinged_sooner,
         test_pong_wait_live_for_a_silent_client,
         test_max_message_live,
         test_unchanged_file, test_restart_only_options_are_kept,
         test_broken_file_keeps_running_config, test_command_line_keeps_precedence,
         test_respawned_worker_inherits_reload])
