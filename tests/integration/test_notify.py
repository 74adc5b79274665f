#!/usr/bin/python3
"""Integration: systemd's readiness protocol without systemd.  The test binds
the AF_UNIX datagram socket named by $NOTIFY_SOCKET (a path, and an abstract
'@' name) and checks the exact messages and their order: READY=1 (with a
STATUS=) once the daemon serves, RELOADING=1 with MONOTONIC_USEC= then READY=1
around SIGHUP, STOPPING=1 at SIGTERM, STATUS= changes, WATCHDOG=1 at half of
$WATCHDOG_USEC (none with a foreign $WATCHDOG_PID), and a wedged worker
(SIGSTOP) replaced while the pings go on.  --ready-fd: one newline, then EOF
(no worker keeps the descriptor)."""

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import (Daemon, free_port, persona_api, personad_path, run,  # noqa: E402
                     ws_connect)


class NotifySocket:
    """A datagram socket for $NOTIFY_SOCKET; abstract=True binds '@name'."""

    def __init__(self, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.tmp = tempfile.mkdtemp(prefix="personad-notify-")
        if abstract:
            name = "personad-test-notify-%d-%d" % (os.getpid(), time.monotonic_ns())
            self.sock.bind("\0" + name)
            self.env = "@" + name
        else:
            path = os.path.join(self.tmp, "notify")
            self.sock.bind(path)
            self.env = path
        self.msgs = []  # (monotonic time, text)

    def recv(self, timeout):
        """The next datagram's text, or None after timeout seconds."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return None
        m = (time.monotonic(), data.decode())
        self.msgs.append(m)
        return m[1]

    def wait_for(self, pred, timeout=10.0):
        """Receive until pred(text); returns the texts received, pred's last."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no matching notification within %.0fs; got %r"
                                     % (timeout, got))
            t = self.recv(left)
            if t is None:
                continue
            got.append(t)
            if pred(t):
                return got

    def collect(self, secs):
        out = []
        end = time.monotonic() + secs
        while time.monotonic() < end:
            t = self.recv(end - time.monotonic())
            if t is not None:
                out.append((self.msgs[-1][0], t))
        return out

    def close(self):
        self.sock.close()
        import shutil
        shutil.rmtree(self.tmp, ignore_errors=True)


class Env:
    """Set environment variables for the daemon started inside the block."""

    def __init__(self, **kv):
        self.kv = kv

    def __enter__(self):
        self.saved = {k: os.environ.get(k) for k in self.kv}
        for k, v in self.kv.items():
            os.environ[k] = v
        return self

    def __exit__(self, *exc):
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        return False


def lines(texts, skip=("STATUS=", "WATCHDOG=")):
    """Every line of the datagrams, without the periodic ones."""
    out = []
    for t in texts:
        for ln in t.split("\n"):
            if not ln.startswith(skip):
                out.append(ln)
    return out


@contextlib.contextmanager
def ready_daemon(ns, seed_count=2, **env):
    """A daemon reporting to ns (and env set while it starts); READY=1 is the
    first message, it comes with STATUS=, and at that moment the daemon serves
    (asked once, no retry)."""
    seed = {"c%d.json" % i: persona_api("c%d" % i) for i in range(seed_count)}
    with Env(NOTIFY_SOCKET=ns.env, **env):
        d = Daemon(workers=2, seed=seed, ready=False).__enter__()
    exc = (None, None, None)
    try:
        first = ns.recv(10.0)
        assert first is not None, "no notification within 10 s"
        assert first == "READY=1\nSTATUS=%d clusters, 0 connections, 2 of 2 workers" % (
            seed_count), "first notification %r" % first
        st, body, _ = d.http("GET", "/healthz", timeout=2.0)
        assert st == 200, "/healthz right after READY=1: %d %r" % (st, body)
        assert sorted(d.cluster_names()) == sorted("c%d" % i for i in range(seed_count))
        yield d
    except BaseException:
        exc = sys.exc_info()
        raise
    finally:
        d.__exit__(*exc)


def stop_and_check_stopping(d, ns):
    d.send_signal(signal.SIGTERM)
    got = ns.wait_for(lambda t: "STOPPING=1" in t, timeout=5.0)
    assert lines(got) == ["STOPPING=1"], "at SIGTERM: %r" % got
    assert d.proc.wait(5) == 0
    assert ns.recv(0.3) is None, "a notification after STOPPING=1: %r" % ns.msgs[-1:]


def check_sequence(abstract):
    ns = NotifySocket(abstract=abstract)
    try:
        with ready_daemon(ns) as d:
            # SIGHUP: RELOADING=1 with MONOTONIC_USEC of now, then READY=1
            before = time.monotonic_ns() // 1000
            d.send_signal(signal.SIGHUP)
            got = ns.wait_for(lambda t: t == "READY=1", timeout=5.0)
            after = time.monotonic_ns() // 1000
            ls = lines(got)
            assert len(ls) == 3 and ls[0] == "RELOADING=1" and ls[2] == "READY=1" and \
                ls[1].startswith("MONOTONIC_USEC="), "around SIGHUP: %r" % got
            usec = int(ls[1].split("=", 1)[1])
            assert before <= usec <= after, "MONOTONIC_USEC=%d not in [%d, %d]" % (
                usec, before, after)
            assert got[0].startswith("RELOADING=1\n"), "RELOADING=1 and MONOTONIC_USEC in one " \
                "datagram: %r" % got
            stop_and_check_stopping(d, ns)
    finally:
        ns.close()


def test_path_socket():
    check_sequence(abstract=False)


def test_abstract_socket():
    check_sequence(abstract=True)


def slowstart_path():
    top = os.environ.get("TOP_BUILDDIR", os.path.join(os.path.dirname(__file__), "..", ".."))
    p = os.path.abspath(os.path.join(top, "tests", "integration", "slowstart.so"))
    if not os.path.exists(p):
        raise AssertionError("%s not built (make check builds it)" % p)
    return p


def test_ready_waits_for_workers():
    """Workers that take 0.8 s to set up (slowstart.so): READY=1 comes after
    them, not when they are forked."""
    ns = NotifySocket()
    asan = os.environ.get("ASAN_OPTIONS")
    try:
        with ready_daemon(ns, LD_PRELOAD=slowstart_path(), PERSONAD_SLOWSTART_MS="800",
                          ASAN_OPTIONS=(asan + ":" if asan else "") +
                          "verify_asan_link_order=0") as d:
            after = ns.msgs[0][0] - d.started_at
            assert d.log_text().count("slowstart: pid") == 2, "shim not active:\n" + d.log_text()
            assert after >= 0.8, "READY=1 %.2fs after the start, the workers needed 0.8 s" % after
    finally:
        ns.close()


async def test_status_changes_rate_limited():
    ns = NotifySocket()
    try:
        with ready_daemon(ns, seed_count=1) as d:
            d.write("n.json", persona_api("n"))
            ns.wait_for(lambda t: t.startswith("STATUS=2 clusters, 0 connections"), 5.0)
            ws = [await ws_connect(d) for _ in range(3)]
            ns.wait_for(lambda t: t.startswith("STATUS=2 clusters, 3 connections"), 5.0)
            # a burst of changes: at most one STATUS= a second
            for i in range(6):
                d.write("b%d.json" % i, persona_api("b%d" % i))
                await asyncio.sleep(0.05)
            got = ns.wait_for(lambda t: t.startswith("STATUS=8 clusters"), 5.0)
            stamps = [t for t, m in ns.msgs if m.startswith("STATUS=")]
            gaps = [b - a for a, b in zip(stamps, stamps[1:])]
            assert all(g >= 0.9 for g in gaps), "STATUS= more than once a second: %r %r" % (
                gaps, got)
            for w in ws:
                await w.close()
            ns.wait_for(lambda t: t.startswith("STATUS=8 clusters, 0 connections"), 5.0)
            assert not [m for _, m in ns.msgs if "READY=1" in m and m is not ns.msgs[0][1]], \
                "a second READY=1 without a reload: %r" % ns.msgs
    finally:
        ns.close()


def watchdog_gaps(msgs):
    stamps = [t for t, m in msgs if m == "WATCHDOG=1"]
    return stamps, [b - a for a, b in zip(stamps, stamps[1:])]


def test_watchdog_half_period():
    ns = NotifySocket()
    try:
        with ready_daemon(ns, WATCHDOG_USEC="2000000") as d:
            msgs = ns.collect(4.5)
            stamps, gaps = watchdog_gaps(msgs)
            # every 1 s (half of 2 s); systemd would act after a 2 s gap
            assert 3 <= len(stamps) <= 6, "WATCHDOG=1 %d times in 4.5 s: %r" % (
                len(stamps), msgs)
            assert all(0.7 <= g <= 1.6 for g in gaps), "WATCHDOG=1 gaps %r" % gaps
            stop_and_check_stopping(d, ns)
    finally:
        ns.close()


def test_watchdog_pid_not_ours():
    ns = NotifySocket()
    try:
        with ready_daemon(ns, WATCHDOG_USEC="1000000", WATCHDOG_PID="1") as d:
            msgs = ns.collect(1.6)
            assert not [m for _, m in msgs if m.startswith("WATCHDOG")], \
                "WATCHDOG=1 with WATCHDOG_PID=1: %r" % msgs
    finally:
        ns.close()


def test_wedged_worker_replaced():
    ns = NotifySocket()
    stopped = None
    try:
        with ready_daemon(ns, WATCHDOG_USEC="2000000") as d:
            d.expect_worker_deaths = True
            workers = d.wait_workers(2)
            assert len(workers) == 2, workers
            ns.collect(1.2)
            stopped = workers[0]
            os.kill(stopped, signal.SIGSTOP)
            t0 = time.monotonic()
            replaced = None
            while time.monotonic() - t0 < 5.0:
                ns.collect(0.1)
                now = d.worker_pids()
                if stopped not in now and len(now) == 2:
                    replaced = time.monotonic() - t0
                    break
            assert replaced is not None, "stopped worker %d not replaced in 5 s (workers %r)" % (
                stopped, d.worker_pids())
            # it had 1 s to answer, pinged every 0.5 s
            assert replaced <= 3.0, "replaced after %.1fs" % replaced
            assert d.wait_log(lambda ln: "has not answered the master" in ln, 1.0), \
                "no log line about the wedged worker"
            after = ns.collect(2.5)
            stamps, gaps = watchdog_gaps(ns.msgs)
            assert len([m for _, m in after if m == "WATCHDOG=1"]) >= 2, \
                "pings did not resume after the replacement: %r" % after
            assert max(gaps) < 2.0, "a watchdog gap of %.2fs (systemd would kill)" % max(gaps)
            st, _, _ = d.http("GET", "/healthz")
            assert st == 200
            stop_and_check_stopping(d, ns)
    finally:
        if stopped is not None:
            try:
                os.kill(stopped, signal.SIGCONT)
            except ProcessLookupError:
                pass
        ns.close()


def test_held_loop_kills_no_worker():
    """A master whose loop is held longer than a worker may leave a ping
    unanswered (a long rescan; here, deterministically, SIGSTOP for 2 s against a
    bound of 1 s): the answers that came meanwhile count, nobody is killed.
    (A rescan of big files did this before, but how long it takes depends on
    the machine's load, and a loaded machine also delays the workers.)"""
    ns = NotifySocket()
    try:
        with ready_daemon(ns, WATCHDOG_USEC="1000000") as d:
            ns.collect(0.6)  # pings under way
            # A ping outstanding when the loop is held: worker 0 is stopped for
            # 0.4 s (less than the bound; pings go out every 250 ms), then the
            # master is stopped and the worker answers into its socket.
            w0 = d.worker_pids()[0]
            os.kill(w0, signal.SIGSTOP)
            try:
                time.sleep(0.4)
                os.kill(d.pid, signal.SIGSTOP)
            finally:
                os.kill(w0, signal.SIGCONT)
            try:
                time.sleep(2.0)
            finally:
                os.kill(d.pid, signal.SIGCONT)
            msgs = ns.collect(1.5)
            assert [m for _, m in msgs if m == "WATCHDOG=1"], "no WATCHDOG=1 after SIGCONT"
            st, _, _ = d.http("GET", "/healthz")
            assert st == 200, st
            assert "has not answered" not in d.log_text(), \
                "a worker killed after the master's loop was held:\n%s" % d.log_text()
    finally:
        ns.close()


def test_master_stopped_no_watchdog():
    """WATCHDOG=1 comes from the master's loop: while the master is stopped
    (SIGSTOP) none is sent, after SIGCONT they resume."""
    ns = NotifySocket()
    try:
        with ready_daemon(ns, WATCHDOG_USEC="1000000") as d:
            ns.collect(0.8)
            os.kill(d.pid, signal.SIGSTOP)
            try:
                msgs = ns.collect(1.5)
            finally:
                os.kill(d.pid, signal.SIGCONT)
            assert not [m for _, m in msgs if m == "WATCHDOG=1"], \
                "WATCHDOG=1 while the master's loop was stopped: %r" % msgs
            msgs = ns.collect(1.5)
            assert [m for _, m in msgs if m == "WATCHDOG=1"], "no WATCHDOG=1 after SIGCONT"
    finally:
        ns.close()


def test_ready_fd():
    tmp = tempfile.mkdtemp(prefix="personad-readyfd-")
    r, w = os.pipe()
    if w < 3:
        w2 = os.dup(w)
        os.close(w)
        w = w2
    port = free_port()
    p = subprocess.Popen([personad_path(), "-l", "127.0.0.1:%d" % port, "-d", tmp, "-w", "2",
                          "--ready-fd=%d" % w], pass_fds=(w,), stdin=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, process_group=0)
    os.close(w)
    try:
        os.set_blocking(r, True)
        got = b""
        eof = False
        t0 = time.monotonic()
        import select
        while time.monotonic() - t0 < 10:
            rd, _, _ = select.select([r], [], [], 10 - (time.monotonic() - t0))
            if not rd:
                break
            b = os.read(r, 64)
            if not b:
                eof = True
                break
            got += b
            if got == b"\n":
                # serving at this moment
                import http.client
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/healthz")
                assert c.getresponse().status == 200
                c.close()
        assert got == b"\n", "--ready-fd got %r" % got
        # EOF came while the daemon runs: no worker holds the descriptor
        assert eof, "no EOF on --ready-fd within 10 s: a process still holds it"
        assert p.poll() is None, "personad exited"
        p.send_signal(signal.SIGTERM)
        assert p.wait(5) == 0
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        os.close(r)
        os.rmdir(tmp)


def test_ready_fd_not_open():
    tmp = tempfile.mkdtemp(prefix="personad-readyfd-")
    try:
        p = subprocess.run([personad_path(), "-l", "127.0.0.1:%d" % free_port(), "-d", tmp,
                            "--ready-fd=77"], stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=10)
        assert p.returncode == 1, p
        assert b"--ready-fd=77: Bad file descriptor" in p.stderr, p.stderr
    finally:
        os.rmdir(tmp)


def test_no_listener_is_not_fatal():
    """$NOTIFY_SOCKET names nothing: one warning, the daemon serves."""
    tmp = tempfile.mkdtemp(prefix="personad-notify-")
    try:
        with Env(NOTIFY_SOCKET=os.path.join(tmp, "nobody"), WATCHDOG_USEC="400000"):
            d = Daemon(workers=1)
            with d:
                time.sleep(1.0)
                st, _, _ = d.http("GET", "/healthz")
                assert st == 200
                n = d.log_text().count("NOTIFY_SOCKET: cannot send")
                assert n == 1, "%d warnings about the socket:\n%s" % (n, d.log_text())
    finally:
        os.rmdir(tmp)


if __name__ == "__main__":
    run([test_path_socket, test_abstract_socket, test_ready_waits_for_workers,
         test_status_changes_rate_limited,
         test_watchdog_half_period, test_watchdog_pid_not_ours, test_wedged_worker_replaced,
         test_held_loop_kills_no_worker, test_master_stopped_no_watchdog, test_ready_fd, test_ready_fd_not_open,
         test_no_listener_is_not_fatal])
