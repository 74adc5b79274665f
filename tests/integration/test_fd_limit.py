#!/usr/bin/python3
"""Integration: a worker at its descriptor limit (RLIMIT_NOFILE) stops
accepting without spinning, and accepts again within about a second once
descriptors are free; the daemon raises its soft limit to what
--max-connections needs and warns, naming the numbers, when the hard limit
is too low."""

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


if __name__ == "__main__":
    run([test_accepts_again_after_descriptor_limit, test_soft_limit_raised_for_max_connections,
         test_warns_when_hard_limit_too_low], timeout=90)
