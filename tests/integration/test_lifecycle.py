#!/usr/bin/python3
"""Integration: SIGTERM/SIGINT (close 1001 to every client, group gone in
2 s, exit 0), kill -9 of the master (workers exit, restart on the same port
works), and no shared-memory leftovers."""

import asyncio
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
import websockets  # noqa: E402
from harness import (ConnClosed, Daemon, RawWS, conn_owner, expect, persona_api,  # noqa: E402
                     pid_alive, run, ws_connect, ws_local_port)

WORKERS = 2


def shm_of(pids):
    """/dev/shm objects mapped by these processes."""
    out = set()
    for pid in pids:
        try:
            with open("/proc/%d/maps" % pid) as f:
                for line in f:
                    parts = line.split(None, 5)
                    if len(parts) == 6 and parts[5].startswith("/dev/shm/"):
                        out.add(parts[5].strip().replace(" (deleted)", ""))
        except OSError:
            pass
    return out


async def stop_with(sig):
    d = Daemon(workers=WORKERS, seed={"a.json": persona_api("a")})
    with d:
        workers = d.wait_workers(WORKERS)
        assert len(workers) == WORKERS, workers
        shm_during = shm_of([d.pid] + workers)
        assert shm_during, "master and workers map no /dev/shm object"
        conns = await asyncio.gather(*[ws_connect(d) for _ in range(16)])
        raws = [RawWS(d.port) for _ in range(4)]
        owners = {conn_owner(d, ws_local_port(w)) for w in conns}
        assert owners == set(workers), "clients not on every worker: %r" % owners
        d.write("b.json", persona_api("b"))
        for w in conns:
            await expect(w, "added", "b")
        t0 = time.monotonic()
        d.send_signal(sig)
        # every client gets close 1001
        codes = []
        for w in conns:
            try:
                m = await asyncio.wait_for(w.recv(), 3)
                raise AssertionError("message instead of close: %r" % m)
            except websockets.exceptions.ConnectionClosed:
                pass
            except asyncio.TimeoutError:
                raise AssertionError("no close within 3s of %s" % sig.name)
            codes.append(w.close_code)
        for r in raws:
            try:
                code, _ = r.read_close(timeout=3)
            except (ConnClosed, OSError) as e:
                code = "no close frame (%s)" % e
            codes.append(code)
            r.close()
        bad = [c for c in codes if c != 1001]
        assert not bad, "%s: close codes %r, want all 1001" % (sig.name, codes)
        # the whole group is gone within 2 s, master exit status 0
        try:
            rc = d.proc.wait(2.5)
        except Exception:
            raise AssertionError("master still running %.1fs after %s" %
                                 (time.monotonic() - t0, sig.name))
        while d.group_alive() and time.monotonic() - t0 < 2.0:
            time.sleep(0.02)
        dt = time.monotonic() - t0
        assert not d.group_alive(), "process group still alive %.2fs after %s" % (dt, sig.name)
        assert dt <= 2.0, "shutdown took %.2fs" % dt
        assert rc == 0, "exit status %r after %s" % (rc, sig.name)
        print("%s: %d clients got 1001; group gone after %.2fs" % (sig.name, len(codes), dt))
        left = [p for p in shm_during if os.path.exists(p)]
        assert not left, "shared memory left behind after clean exit: %r" % left


async def test_sigterm():
    await stop_with(signal.SIGTERM)


async def test_sigint():
    await stop_with(signal.SIGINT)


async def test_master_kill9_no_orphans_and_restart():
    d = Daemon(workers=WORKERS)
    with d:
        workers = d.wait_workers(WORKERS)
        assert len(workers) == WORKERS
        ws = await ws_connect(d)
        os.kill(d.pid, signal.SIGKILL)
        d.proc.wait(3)
        t0 = time.monotonic()
        while any(pid_alive(p) for p in workers) and time.monotonic() - t0 < 5:
            time.sleep(0.05)
        alive = [p for p in workers if pid_alive(p)]
        assert not alive, "workers %r still alive 5s after the master's death" % alive
        print("workers exited %.2fs after master kill -9" % (time.monotonic() - t0))
        try:
            await asyncio.wait_for(ws.recv(), 3)
            raise AssertionError("client of an orphaned worker got a message")
        except websockets.exceptions.ConnectionClosed:
            pass
        # immediate restart on the same port and dir (stale shm must not block it)
        d2 = Daemon(workers=WORKERS, port=d.port, personas_dir=d.dir)
        with d2:
            ws2 = await ws_connect(d2)
            try:
                d2.write("re.json", persona_api("re"))
                await expect(ws2, "added", "re", what="after restart")
            finally:
                await ws2.close()


async def test_whole_group_kill9_then_restart():
    d = Daemon(workers=WORKERS)
    with d:
        old_shm = shm_of([d.pid] + d.wait_workers(WORKERS))
        os.killpg(d.pgid, signal.SIGKILL)
        d.proc.wait(3)
        deadline = time.monotonic() + 3
        while d.group_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        d2 = Daemon(workers=WORKERS, port=d.port, personas_dir=d.dir)
        with d2:
            w2 = d2.wait_workers(WORKERS)
            assert len(w2) == WORKERS
            stale = [p for p in old_shm
                     if os.path.exists(p) and p not in shm_of([d2.pid] + w2)]
            assert not stale, "predecessor's shared memory left behind: %r" % stale
            ws = await ws_connect(d2)
            try:
                d2.write("x.json", persona_api("x"))
                await expect(ws, "added", "x")
            finally:
                await ws.close()


if __name__ == "__main__":
    run([test_sigterm, test_sigint, test_master_kill9_no_orphans_and_restart,
         test_whole_group_kill9_then_restart])
