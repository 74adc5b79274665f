#!/usr/bin/python3
"""Integration: while a dead worker waits for its respawn (the back-off of a
crash loop), no new client hangs on its listening socket.  With two workers
every client is served by the other one; with one worker clients are
refused at once (the port stays reserved), and served again after the
respawn."""

import asyncio
import collections
import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import (ConnClosed, Daemon, RawWS, conn_owner, expect, persona_api, run,  # noqa: E402
                     ws_connect, ws_local_port)

PATIENCE = 0.5    # seconds a client may take to be served or refused
BACKOFF_MIN = 3.0  # the back-off the crash loop below reaches at least (3.2 s)


def wait_new_worker(d, old, others, timeout=8.0):
    """(pid, seconds) of the worker that replaces old."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        new = [p for p in d.worker_pids() if p != old and p not in others]
        if new:
            return new[0], time.monotonic() - t0
        time.sleep(0.005)
    raise AssertionError("no respawn within %.0f s after killing %d" % (timeout, old))


def crash_loop(d, victim, others):
    """Kill victim right after each respawn until the master's back-off
    (0.1, 0.2, 0.4, 0.8, 1.6 s, ...) is 1.6 s, then once more: the next
    respawn is 3.2 s away.  Returns the time of the last kill and the pid."""
    for _ in range(10):
        os.kill(victim, signal.SIGKILL)
        victim, delay = wait_new_worker(d, victim, others)
        if delay >= 1.4:
            break
    else:
        raise AssertionError("the respawn back-off never reached 1.6 s")
    os.kill(victim, signal.SIGKILL)
    return time.monotonic(), victim


def attempt(port):
    """One WebSocket handshake: ("ok" | "refused" | "hung", seconds)."""
    t0 = time.monotonic()
    try:
        c = RawWS(port, timeout=PATIENCE)
    except socket.timeout:
        return "hung", time.monotonic() - t0
    except (ConnClosed, ConnectionError):
        return "refused", time.monotonic() - t0
    c.close()
    return "ok", time.monotonic() - t0


def probe_during_backoff(d, t_kill, n=20):
    """Up to n clients, one after another, in the first part of the
    back-off (a hung one costs PATIENCE)."""
    results = []
    while len(results) < n and time.monotonic() - t_kill < BACKOFF_MIN - PATIENCE - 0.1:
        results.append(attempt(d.port))
        time.sleep(0.04)
    assert len(results) >= 2, results
    return results


async def test_two_workers_no_client_waits_for_the_respawn():
    with Daemon(workers=2, expect_worker_deaths=True) as d:
        workers = d.wait_workers(2)
        assert len(workers) == 2, workers
        victim, survivor = workers
        t_kill, dead = crash_loop(d, victim, [survivor])
        results = probe_during_backoff(d, t_kill)
        still = d.worker_pids()
        summary = collections.Counter(r for r, _ in results)
        worst = max(t for _, t in results)
        print("during the back-off: %s, slowest %.3f s" % (dict(summary), worst))
        # A client that reached the dead worker's queue before the master
        # noticed the death is reset (and retries); none may hang.
        slow = [(r, round(t, 3)) for r, t in results if r == "hung" or t >= PATIENCE]
        assert not slow, "%d of %d clients hung during the back-off: %r" \
            % (len(slow), len(results), slow)
        assert summary["ok"] >= len(results) - 2, \
            "the other worker did not take the clients: %r" % dict(summary)
        assert still == [survivor], "respawned during the probe (%r): back-off too short" % still
        # After the respawn the new worker gets its share of clients again.
        new, _ = wait_new_worker(d, dead, [survivor])
        d.wait_ready(5)
        conns = []
        try:
            by = collections.Counter()
            for _ in range(4):
                batch = await asyncio.gather(*[ws_connect(d) for _ in range(16)])
                conns += batch
                for w in batch:
                    by[conn_owner(d, ws_local_port(w), pids=[new, survivor])] += 1
                if by[new] >= 2 and by[survivor] >= 2:
                    break
            assert by[new] >= 2 and by[survivor] >= 2, "clients per worker: %r" % dict(by)
            d.write("after.json", persona_api("after"))
            for w in conns:
                await expect(w, "added", "after", what="after the respawn")
        finally:
            await asyncio.gather(*[w.close() for w in conns], return_exceptions=True)


def test_single_worker_refuses_during_the_backoff():
    with Daemon(workers=1, expect_worker_deaths=True) as d:
        (victim,) = d.wait_workers(1)
        t_kill, dead = crash_loop(d, victim, [])
        time.sleep(0.05)  # the master reaps the worker
        results = probe_during_backoff(d, t_kill, n=10)
        respawned = d.worker_pids()
        print("during the back-off: %s" % [(r, round(t, 3)) for r, t in results])
        slow = [(r, round(t, 3)) for r, t in results if r != "refused" or t >= PATIENCE]
        assert not slow, "clients not refused at once during the back-off: %r" % slow
        assert respawned == [], "respawned during the probe: back-off too short"
        # The port stays reserved for the respawn.
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", d.port))
        except OSError:
            pass
        else:
            raise AssertionError("the port was free for anyone during the back-off")
        finally:
            s.close()
        wait_new_worker(d, dead, [])
        d.wait_ready(5)
        c = RawWS(d.port)
        c.close()


if __name__ == "__main__":
    run([test_two_workers_no_client_waits_for_the_respawn,
         test_single_worker_refuses_during_the_backoff])
