#!/usr/bin/python3
"""Integration: kill -9 of one worker.  Clients of the other worker keep
receiving every later event; the master respawns the worker; new
connections work."""

import asyncio
import collections
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
import websockets  # noqa: E402
from harness import (Daemon, conn_owner, ev, expect, persona_api, pid_alive, run,  # noqa: E402
                     ws_connect, ws_local_port)

WORKERS = 2


async def connect_spread(d, workers, n=24, tries=4):
    """n clients, at least 3 on each worker."""
    conns = []
    for _ in range(tries):
        conns += await asyncio.gather(*[ws_connect(d) for _ in range(n)])
        by = collections.defaultdict(list)
        for w in conns:
            by[conn_owner(d, ws_local_port(w))].append(w)
        if all(len(by[p]) >= 3 for p in workers):
            return conns, by
    raise AssertionError("could not get clients on every worker: %r"
                         % {k: len(v) for k, v in by.items()})


async def test_kill_one_worker():
    with Daemon(workers=WORKERS, flags=["--ping-period=30", "--pong-wait=60"],
                expect_worker_deaths=True) as d:
        workers = d.wait_workers(WORKERS)
        assert len(workers) == WORKERS, workers
        conns, by = await connect_spread(d, workers)
        victim, survivor = workers[0], workers[1]
        try:
            d.write("before.json", persona_api("before"))
            for w in conns:
                await expect(w, "added", "before")
            # let the victim live a while: a worker that served for some time
            # (not a start-up crash loop) must be replaced promptly
            await asyncio.sleep(max(0.0, 1.5 - (time.monotonic() - d.started_at)))
            os.kill(victim, signal.SIGKILL)
            t_kill = time.monotonic()
            # events right after the crash, while the master respawns
            names = ["after-%d" % i for i in range(10)]
            for n in names:
                d.write(n + ".json", persona_api(n))
            want = [ev("added", n) for n in names]
            for i, w in enumerate(by[survivor]):
                got = [await asyncio.wait_for(w.recv(), 5) for _ in want]
                assert got == want, "survivor client %d: %r" % (i, got)
            # the victim's clients were cut off (not silently kept open)
            for w in by[victim]:
                try:
                    await asyncio.wait_for(w.recv(), 3)
                    raise AssertionError("client of the killed worker got a message")
                except websockets.exceptions.ConnectionClosed:
                    pass
            # respawn: the worker count returns to WORKERS, with a new pid
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                now = d.worker_pids()
                if len(now) == WORKERS and victim not in now:
                    break
                await asyncio.sleep(0.05)
            now = d.worker_pids()
            assert len(now) == WORKERS and survivor in now and victim not in now, \
                "workers after crash: %r (was %r)" % (now, workers)
            dt = time.monotonic() - t_kill
            print("worker respawned after %.2fs" % dt)
            assert dt < 3.0, "a long-lived worker was respawned only after %.2fs" % dt
            assert not pid_alive(victim)
            d.wait_ready(5)
            # new connections work, on both workers, and get new events
            fresh, fby = await connect_spread(d, now, n=16)
            d.write("fresh.json", persona_api("fresh"))
            for w in fresh:
                await expect(w, "added", "fresh", what="new connection after respawn")
            for w in by[survivor]:
                await expect(w, "added", "fresh", what="old survivor")
            await asyncio.gather(*[w.close() for w in fresh])
        finally:
            await asyncio.gather(*[w.close() for w in conns], return_exceptions=True)
        assert d.proc.poll() is None, "master died"


async def test_crash_loop_backs_off():
    """A worker that keeps dying right after it starts is respawned with a
    growing delay; afterwards everything serves normally again."""
    with Daemon(workers=WORKERS, expect_worker_deaths=True) as d:
        workers = d.wait_workers(WORKERS)
        assert len(workers) == WORKERS, workers
        survivor = workers[1]
        victim = workers[0]
        delays = []
        for _ in range(5):
            os.kill(victim, signal.SIGKILL)
            t0 = time.monotonic()
            new = None
            while time.monotonic() - t0 < 8:
                now = [p for p in d.worker_pids() if p not in (survivor, victim)]
                if now:
                    new = now[0]
                    break
                await asyncio.sleep(0.005)
            assert new is not None, "no respawn within 8 s after crash %d" % (len(delays) + 1)
            delays.append(time.monotonic() - t0)
            victim = new
        print("respawn delays: %s s" % ["%.2f" % x for x in delays])
        assert survivor in d.worker_pids(), "the other worker was disturbed"
        assert delays[-1] >= 0.3 and delays[-1] > 2 * delays[0], \
            "no backoff for a crash-looping worker: delays %r" % delays
        assert d.proc.poll() is None, "master died"
        d.wait_ready(5)
        conns, by = await connect_spread(d, [survivor, victim], n=16)
        try:
            d.write("later.json", persona_api("later"))
            for w in conns:
                await expect(w, "added", "later", what="after the crash loop")
        finally:
            await asyncio.gather(*[w.close() for w in conns], return_exceptions=True)


if __name__ == "__main__":
    run([test_kill_one_worker, test_crash_loop_backs_off])
