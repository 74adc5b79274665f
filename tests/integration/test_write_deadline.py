#!/usr/bin/python3
"""Integration: a client that stops reading is dropped (write deadline or
1013 at the queue cap) while a normal client on the SAME worker keeps
receiving every event, in order, without delay."""

import asyncio
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import (ConnClosed, Daemon, RawWS, conn_owner, ev, run,  # noqa: E402
                     server_side_closed, tcp_sockets, ws_connect)

DEADLINE = 3.0
LONG_DEADLINE = 30.0
TOL = 2.0
# Bursts stay well below the daemon's per-connection cap (a 1013 is the
# contract for a client that falls that far behind, even a reading one), and
# each burst is waited for before the next.
BATCHES = 48
PER_BATCH = 500             # ~150 KB per burst
N_EVENTS = BATCHES * PER_BATCH
N_STUCK = 3
# ~295-byte frames: 24000 events = ~7 MB per connection, well past what the
# kernel buffers for a peer that never reads (socket autotuning goes to 4 MB)
NAME_PAD = "s" * 240


def name(i):
    return "%s-%05d" % (NAME_PAD, i)


def stage_files(d):
    """Write all persona files into a sibling dir of DIR (same filesystem,
    not watched), so that moving them in is one rename() per event."""
    stage = os.path.join(d.tmp, "stage")
    os.mkdir(stage)
    for i in range(N_EVENTS):
        with open(os.path.join(stage, "w%05d.json" % i), "w") as f:
            f.write('{"name": "%s", "spec": {"nodes": 1}}' % name(i))
    return stage


async def test_stuck_readers_dropped_others_unaffected():
    """Queue cap: with a long write deadline and a ring large enough that
    nobody is lapped, only the per-connection cap can drop the non-reading
    clients, and it must do so as soon as they are far behind."""
    flags = ["--write-deadline=%g" % LONG_DEADLINE, "--ring-size=32768", "--ping-period=30",
             "--pong-wait=60"]
    with Daemon(workers=1, flags=flags) as d:
        stage = stage_files(d)
        stuck = [RawWS(d.port, rcvbuf=4096) for _ in range(N_STUCK)]
        normal = [await ws_connect(d, max_queue=None) for _ in range(2)]
        try:
            (w,) = d.worker_pids()
            for c in stuck:
                assert conn_owner(d, c.local_port) == w
            got = [[] for _ in normal]
            closed_at = {}

            async def reader(k):
                while len(got[k]) < N_EVENTS:
                    got[k].append(await normal[k].recv())

            async def watcher():
                while len(closed_at) < N_STUCK:
                    for c in stuck:
                        if c.local_port not in closed_at and server_side_closed(d, c.local_port):
                            closed_at[c.local_port] = time.monotonic()
                    await asyncio.sleep(0.05)

            readers = [asyncio.create_task(reader(k)) for k in range(len(normal))]
            wt = asyncio.create_task(watcher())
            t_start = time.monotonic()
            lags = []
            for b in range(BATCHES):
                for i in range(b * PER_BATCH, (b + 1) * PER_BATCH):
                    f = "w%05d.json" % i
                    os.rename(os.path.join(stage, f), d.path(f))
                    if i % 500 == 499:
                        await asyncio.sleep(0)
                t_batch = time.monotonic()
                while min(len(g) for g in got) < (b + 1) * PER_BATCH:
                    if time.monotonic() - t_batch > 20:
                        raise AssertionError("normal clients stalled at %r events"
                                             % [len(g) for g in got])
                    if any(r.done() for r in readers):
                        for r in readers:
                            if r.done():
                                r.result()
                    await asyncio.sleep(0.01)
                lags.append(time.monotonic() - t_batch)
            t_done = time.monotonic()
            print("%d events in %.2fs; normal clients caught up at most %.2fs after a burst"
                  % (N_EVENTS, t_done - t_start, max(lags)))
            want = [ev("added", name(i)) for i in range(N_EVENTS)]
            for k in range(len(normal)):
                assert got[k] == want, "normal client %d: events lost or out of order" % k
            assert max(lags) < DEADLINE, \
                "a normal client was held up %.2fs (>= write deadline)" % max(lags)
            try:
                await asyncio.wait_for(wt, max(0.1, t_done + TOL - time.monotonic()))
            except asyncio.TimeoutError:
                pass
            open_ = [c.local_port for c in stuck if c.local_port not in closed_at]
            assert not open_, ("%d/%d non-reading clients, ~7 MB behind, still connected %.1fs "
                               "after the last event: queue cap not enforced"
                               % (len(open_), N_STUCK, time.monotonic() - t_done))
            print("stuck clients dropped at %s s relative to the last event"
                  % ["%.2f" % (t - t_done) for t in closed_at.values()])
            # Draining must now reach the end of the stream.  A close frame,
            # if one got through, is 1013 (queue cap / lapped) or similar.
            for c in stuck:
                codes = []
                try:
                    while True:
                        fin, op, p = c.read_frame(timeout=5)
                        if op == 0x8:
                            codes.append(int.from_bytes(p[:2], "big") if len(p) >= 2 else None)
                except ConnClosed:
                    pass
                except socket.timeout:
                    raise AssertionError("stuck client's socket never reached EOF after drop")
                for code in codes:
                    assert code in (1013, 1001, 1008, 1011, 1000, None), "odd code %r" % code
                print("stuck client close frames: %r" % codes)
            # the worker is still fine
            d.write("after.json", '{"name": "after", "spec": {}}')
            for ws in normal:
                m = await asyncio.wait_for(ws.recv(), 3)
                assert m == ev("added", "after"), m
        finally:
            for c in stuck:
                c.close()
            for ws in normal:
                await ws.close()


async def test_write_deadline_alone():
    """Fill the kernel buffers of a non-reading client, then leave less than
    the queue cap pending: only the write deadline can close it, about
    --write-deadline seconds after its writes started to block."""
    dl = 2.0
    with Daemon(workers=1, flags=["--write-deadline=%g" % dl, "--ping-period=30",
                                  "--pong-wait=60"]) as d:
        stage = stage_files(d)
        stuck = RawWS(d.port, rcvbuf=4096)
        normal = await ws_connect(d, max_queue=None)
        try:
            n, per, prev_tx, t_stall = 0, 200, -1, None
            got = []
            while n + per <= N_EVENTS:
                for i in range(n, n + per):
                    f = "w%05d.json" % i
                    os.rename(os.path.join(stage, f), d.path(f))
                n += per
                while len(got) < n:
                    got.append(await asyncio.wait_for(normal.recv(), 5))
                sock = tcp_sockets(d.port).get(stuck.local_port)
                assert sock and sock[0] == "ESTABLISHED", \
                    "stuck client dropped before its kernel buffers filled: %r" % (sock,)
                if sock[2] == prev_tx:
                    t_stall = time.monotonic()
                    break
                prev_tx = sock[2]
            assert t_stall is not None, "kernel send queue never filled (%d bytes)" % prev_tx
            assert got == [ev("added", name(i)) for i in range(n)]
            print("kernel send queue full at %d bytes after %d events" % (prev_tx, n))
            closed = None
            while time.monotonic() - t_stall < dl + TOL:
                if server_side_closed(d, stuck.local_port):
                    closed = time.monotonic() - t_stall
                    break
                await asyncio.sleep(0.02)
            assert closed is not None, \
                "non-reading client with pending bytes still open %.1fs after its writes " \
                "blocked (--write-deadline=%g)" % (time.monotonic() - t_stall, dl)
            print("write deadline closed it %.2fs after the stall" % closed)
            # the last write progress was one burst (normally < 0.3 s) before
            # t_stall; allow for a slow machine
            assert closed >= dl - 1.2, "closed after only %.2fs: not the deadline" % closed
            d.write("after.json", '{"name": "after", "spec": {}}')
            m = await asyncio.wait_for(normal.recv(), 3)
            assert m == ev("added", "after"), m
        finally:
            stuck.close()
            await normal.close()


def test_lapped_client_no_silent_gap():
    """With a tiny ring, a client that falls behind gets every event in order
    or is closed (1013): never a silent gap."""
    n_ev = 2000
    with Daemon(workers=1, flags=["--ring-size=256", "--ping-period=30", "--pong-wait=60"]) as d:
        stage = os.path.join(d.tmp, "stage")
        os.mkdir(stage)
        for i in range(n_ev):
            with open(os.path.join(stage, "g%05d.json" % i), "w") as f:
                f.write('{"name": "%s", "spec": {}}' % name(i))
        slow = RawWS(d.port, rcvbuf=4096)
        try:
            for i in range(n_ev):
                f = "g%05d.json" % i
                os.rename(os.path.join(stage, f), d.path(f))
                if i % 50 == 49:
                    time.sleep(0.01)              # bursts smaller than the ring
            time.sleep(1.0)                       # fall behind
            slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            got, close = [], None
            try:
                while True:
                    fin, op, p = slow.read_frame(timeout=5)
                    if op == 0x1:
                        got.append(p.decode())
                    elif op == 0x8:
                        close = int.from_bytes(p[:2], "big") if len(p) >= 2 else None
                        break
                    elif op == 0x9:
                        continue
                    else:
                        raise AssertionError("unexpected opcode %#x" % op)
            except ConnClosed:
                close = "EOF"
            except socket.timeout:
                pass
            want = [ev("added", name(i)) for i in range(n_ev)]
            assert got == want[:len(got)], "gap or reordering after %d events" % next(
                i for i, (a, b) in enumerate(zip(got, want)) if a != b)
            print("slow client: %d/%d events, then %r" % (len(got), n_ev, close))
            if len(got) < n_ev:
                assert close in (1013, "EOF"), "fell behind without 1013: close %r" % close
            else:
                assert close is None, "got everything, then closed %r" % close
        finally:
            slow.close()


if __name__ == "__main__":
    run([test_stuck_readers_dropped_others_unaffected, test_write_deadline_alone,
         test_lapped_client_no_silent_gap])
