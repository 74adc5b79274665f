#!/usr/bin/python3
"""Integration: a worker at its descriptor limit (RLIMIT_NOFILE) stops
accepting without spinning, and accepts again within about a second once
descriptors are free; the daemon raises its soft limit to what
--max-connections needs and warns, naming the numbers, when the hard limit
is too low; a flood of unfinished request heads at that limit neither
stops the worker's existing clients nor outlives --request-timeout."""

import os
import resource
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import ConnClosed, Daemon, RawWS, run  # noqa: E402

# Sets RLIMIT_NOFILE, then becomes personad (same pid, so the harness's
# process handling is unchanged).
SET_LIMIT = ("import os, resource, sys\n"
             "resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), int(sys.argv[2])))\n"
             "os.execv(sys.argv[3], sys.argv[3:])\n")

# Descriptors libmicrohttpd may hold for HTTP connections beyond
# --max-connections (worker.c's MHD connection limit).
HTTP_HEADROOM = 1024


class LimitedDaemon(Daemon):
    """A daemon started under RLIMIT_NOFILE = (soft, hard)."""

    def __init__(self, soft, hard, **kw):
        self.nofile = (soft, hard)
        super().__init__(**kw)

    def argv(self):
        return [sys.executable, "-c", SET_LIMIT, str(self.nofile[0]),
                str(self.nofile[1])] + super().argv()


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    fields = st[st.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def nofile_limits(pid):
    """(soft, hard) of "Max open files" in /proc/PID/limits."""
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                p = line.split()
                return int(p[3]), int(p[4])
    raise AssertionError("no 'Max open files' in /proc/%d/limits" % pid)


def wait_until(pred, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def test_accepts_again_after_descriptor_limit():
    """64 descriptors, one worker: fill it with WebSockets until it cannot
    accept, check it does not spin there, close everything, and new clients
    must be served within about a second."""
    with LimitedDaemon(64, 64, workers=1, flags=["--ping-period=30", "--pong-wait=60"]) as d:
        (w,) = d.wait_workers(1)
        base_fds = fd_count(w)
        live, stuck = [], []
        try:
            # Until a WebSocket fails: no handshake, or (the last descriptor
            # taken by accept, none left for the upgrade) no answer to a ping.
            for _ in range(80):
                try:
                    c = RawWS(d.port, timeout=1.5)
                except (socket.timeout, ConnClosed, AssertionError, OSError):
                    break
                try:
                    c.send_frame(0x9, b"alive?")
                    fin, op, payload = c.read_frame(timeout=1.5)
                    assert op == 0xA and payload == b"alive?", (op, payload)
                except (socket.timeout, ConnClosed, OSError):
                    c.close()
                    break
                live.append(c)
            assert 30 <= len(live) < 64, "%d WebSockets under a 64-descriptor limit" % len(live)
            print("%d WebSockets upgraded before the limit (worker had %d descriptors)"
                  % (len(live), base_fds))
            # Clients waiting in the listen queue while the worker is at its
            # limit: accept() fails at once, so retrying it in a loop would spin.
            for _ in range(5):
                s = socket.create_connection(("127.0.0.1", d.port), timeout=2)
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                stuck.append(s)
            time.sleep(0.3)
            c0, t0 = cpu_seconds(w), time.monotonic()
            time.sleep(2.0)
            busy = (cpu_seconds(w) - c0) / (time.monotonic() - t0)
            print("worker CPU at the limit: %.1f %%" % (busy * 100))
            assert busy < 0.15, "the worker spins at its descriptor limit: %.0f %% CPU" % (busy * 100)
        finally:
            for c in live:
                c.close()
            for s in stuck:
                s.close()
        assert wait_until(lambda: fd_count(w) <= base_fds + 8, 10), \
            "the worker still holds %d descriptors after every client closed" % fd_count(w)
        # Descriptors are free again: new clients are served within ~1 s.
        for i in range(5):
            t0 = time.monotonic()
            try:
                c = RawWS(d.port, timeout=3.0)
            except (socket.timeout, ConnClosed) as e:
                raise AssertionError("client %d after the limit: no handshake in %.1f s (%r)"
                                     % (i, time.monotonic() - t0, e)) from None
            dt = time.monotonic() - t0
            c.close()
            print("client %d after the limit: handshake in %.3f s" % (i, dt))
            assert dt < 2.0, "client %d after the limit waited %.2f s" % (i, dt)
        st, _, _ = d.http("GET", "/healthz", timeout=3)
        assert st == 200, st
        assert d.wait_log(lambda ln: "descriptor" in ln and "accept" in ln, 1), \
            "the pause of accept() was not logged"
        assert (w,) == tuple(d.worker_pids()), "the worker was replaced"


def own_hard_limit(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        print("SKIP: RLIMIT_NOFILE hard limit %d is below %d" % (hard, want))
        sys.exit(77)
    return hard


def test_soft_limit_raised_for_max_connections():
    """Soft 256, hard 8192, --max-connections=100: every worker runs with a
    soft limit that fits 100 WebSockets and libmicrohttpd's HTTP connections,
    no warning."""
    own_hard_limit(8192)
    with LimitedDaemon(256, 8192, workers=2, flags=["--max-connections=100"]) as d:
        workers = d.wait_workers(2)
        assert len(workers) == 2, workers
        for w in workers:
            soft, hard = nofile_limits(w)
            print("worker %d: Max open files soft %d hard %d" % (w, soft, hard))
            assert hard == 8192, hard
            assert 100 + HTTP_HEADROOM <= soft < hard, \
                "soft limit %d: not raised to what --max-connections=100 needs" % soft
        assert "RLIMIT_NOFILE" not in d.log_text(), d.log_text()
        c = RawWS(d.port)
        c.close()


def test_warns_when_hard_limit_too_low():
    """Soft 256, hard 512, --max-connections=1000: the soft limit goes up to
    the hard limit and a warning names the limit and what a worker needs."""
    own_hard_limit(512)
    with LimitedDaemon(256, 512, workers=1, flags=["--max-connections=1000"]) as d:
        (w,) = d.wait_workers(1)
        assert nofile_limits(w) == (512, 512), nofile_limits(w)
        line = d.wait_log(lambda ln: "RLIMIT_NOFILE" in ln, 2)
        assert line is not None, "no warning about the descriptor limit:\n" + d.log_text()
        print("warning: %s" % line)
        assert "512" in line and "1000" in line and "max-connections" in line, line
        need = [int(t) for t in line.replace("(", " ").replace(")", " ").split()
                if t.isdigit() and int(t) >= 1000 + HTTP_HEADROOM]
        assert need, "the warning names no descriptor count a worker needs: %r" % line
        c = RawWS(d.port)
        c.close()


def test_flood_of_unfinished_heads():
    """Issue 12: 400 connections that send half a request head and wait, at
    a 160-descriptor limit (so the worker also runs out of descriptors):
    the worker's two WebSocket clients keep receiving every event within a
    bounded time, the worker does not spin, and --request-timeout=2 drops
    the flood (libmicrohttpd's own timeout would keep it 30 s): every one
    of the 400 is closed by the daemon, and new clients are served."""
    flood_n, timeout = 400, 2.0
    with LimitedDaemon(160, 160, workers=1,
                       flags=["--request-timeout=%g" % timeout, "--ping-period=30",
                              "--pong-wait=60"]) as d:
        (w,) = d.wait_workers(1)
        clients = [RawWS(d.port), RawWS(d.port)]
        flood = []
        try:
            t0 = time.monotonic()
            for _ in range(flood_n):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                try:
                    s.connect(("127.0.0.1", d.port))
                except BlockingIOError:
                    pass
                flood.append(s)
            time.sleep(0.2)
            for s in flood:
                try:
                    s.send(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
                except OSError:
                    pass
            print("flood of %d unfinished heads opened in %.2f s"
                  % (flood_n, time.monotonic() - t0))
            c0, w0 = cpu_seconds(w), time.monotonic()
            worst = 0.0
            for i in range(6):
                name = "flood%d" % i
                t1 = time.monotonic()
                d.write(name + ".json", {"name": name, "spec": {}, "status": {}})
                for k, c in enumerate(clients):
                    fin, op, payload = c.read_frame(timeout=5)
                    assert op == 0x1 and name.encode() in payload, (k, op, payload)
                worst = max(worst, time.monotonic() - t1)
                time.sleep(0.25)
            busy = (cpu_seconds(w) - c0) / (time.monotonic() - w0)
            print("during the flood: worst event latency %.3f s, worker CPU %.1f %%"
                  % (worst, busy * 100))
            assert worst < 1.5, "an event took %.2f s to reach the clients" % worst
            assert busy < 0.15, "the worker spins during the flood: %.0f %% CPU" % (busy * 100)

            # Every flood connection is closed by the daemon: the accepted ones
            # at --request-timeout, the queued ones after theirs.
            def closed(s):
                try:
                    return s.recv(4096) == b""
                except BlockingIOError:
                    return False
                except OSError:
                    return True
            open_ = list(flood)
            deadline = time.monotonic() + 20
            while open_ and time.monotonic() < deadline:
                open_ = [s for s in open_ if not closed(s)]
                time.sleep(0.1)
            print("flood closed by the daemon after %.1f s (%d still open)"
                  % (time.monotonic() - t0, len(open_)))
            assert not open_, "%d of %d unfinished heads still open after %.0f s" % (
                len(open_), flood_n, time.monotonic() - t0)
        finally:
            for s in flood:
                s.close()
        d.write("after.json", {"name": "after", "spec": {}, "status": {}})
        for c in clients:
            fin, op, payload = c.read_frame(timeout=5)
            assert op == 0x1 and b"after" in payload, (op, payload)
            c.close()
        c = RawWS(d.port, timeout=3)
        c.close()
        assert (w,) == tuple(d.worker_pids()), "the worker was replaced"


if __name__ == "__main__":
    run([test_accepts_again_after_descriptor_limit, test_soft_limit_raised_for_max_connections,
         test_warns_when_hard_limit_too_low, test_flood_of_unfinished_heads], timeout=90)
