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
                     server_side_closed, ws_connect, ws_local_port)

DEADLINE = 2.0
TOL = 1.5
N_EVENTS = 1500
NAME_PAD = "s" * 200          # ~240-byte frames: ~360 KB in all


def name(i):
    return "%s-%04d" % (NAME_PAD, i)


async def produce_and_watch(d, stuck, normal):
    """Write N_EVENTS new clusters while a reader task drains `normal`.
    Returns (t_last_write, received payloads, t_last_receive, closed_at)."""
    got = []
    last_rx = [None]
    closed_at = [None]

    async def reader():
        while len(got) < N_EVENTS:
            m = await asyncio.wait_for(normal.recv(), 10)
            got.append(m)
            last_rx[0] = time.monotonic()

    async def watcher():
        while closed_at[0] is None:
            if server_side_closed(d, stuck.local_port):
                closed_at[0] = time.monotonic()
                return
            await asyncio.sleep(0.05)

    rt = asyncio.create_task(reader())
    wt = asyncio.create_task(watcher())
    body = '{"name": "%s", "spec": {"nodes": 1}, "status": {"phase": "Running"}}'
    for i in range(N_EVENTS):
        d.write("w%04d.json" % i, body % name(i))
        if i % 50 == 49:
            await asyncio.sleep(0)       # let the reader run
    t_last = time.monotonic()
    await rt
    try:
        await asyncio.wait_for(wt, DEADLINE + TOL + 5)
    except asyncio.TimeoutError:
        pass
    return t_last, got, last_rx[0], closed_at[0]


async def test_stuck_reader_dropped_others_unaffected():
    with Daemon(workers=1, flags=["--write-deadline=%g" % DEADLINE, "--ping-period=30",
                                  "--pong-wait=60"]) as d:
        stuck = RawWS(d.port, rcvbuf=4096)
        normal = await ws_connect(d)
        try:
            (w,) = d.worker_pids()
            assert conn_owner(d, stuck.local_port) == w
            assert conn_owner(d, ws_local_port(normal)) == w
            t_start = time.monotonic()
            t_last, got, last_rx, closed_at = await produce_and_watch(d, stuck, normal)
            want = [ev("added", name(i)) for i in range(N_EVENTS)]
            assert len(got) == N_EVENTS and sorted(got) == sorted(want), \
                "normal client got %d/%d events" % (len(got), N_EVENTS)
            assert got == want, "normal client's events out of order"
            lag = last_rx - t_last
            print("production %.2fs; normal client done %.2fs after last write"
                  % (t_last - t_start, lag))
            assert lag < DEADLINE, "normal client was held up %.2fs (>= write deadline)" % lag
            assert closed_at is not None, \
                "stuck client still connected %.1fs after the last event (write deadline %gs)" % (
                    time.monotonic() - t_last, DEADLINE)
            print("stuck client dropped %.2fs after the last write" % (closed_at - t_last))
            assert closed_at - t_last <= DEADLINE + TOL, \
                "stuck client dropped only after %.2fs" % (closed_at - t_last)
            # Draining now must reach the end of the stream: no more data
            # is coming, the socket is finished.  If a close frame is there,
            # it is 1013 (queue cap) or a normal code.
            stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            codes = []
            try:
                while True:
                    fin, op, p = stuck.read_frame(timeout=5)
                    if op == 0x8:
                        codes.append(int.from_bytes(p[:2], "big") if len(p) >= 2 else None)
            except ConnClosed:
                pass
            except socket.timeout:
                raise AssertionError("stuck client's socket never reached EOF after drop")
            print("stuck client close frames: %r" % codes)
            for code in codes:
                assert code in (1013, 1001, 1008, 1011, 1000, None), "odd close code %r" % code
            # the worker is still fine
            d.write("after.json", '{"name": "after", "spec": {}}')
            m = await asyncio.wait_for(normal.recv(), 3)
            assert m == ev("added", "after"), m
        finally:
            stuck.close()
            await normal.close()


async def test_many_stuck_readers_one_normal():
    """Ten stuck clients on one worker do not slow a normal client."""
    with Daemon(workers=1, flags=["--write-deadline=%g" % DEADLINE]) as d:
        stuck = [RawWS(d.port, rcvbuf=4096) for _ in range(10)]
        normal = await ws_connect(d)
        try:
            t0 = time.monotonic()
            body = '{"name": "%s", "spec": {}}'
            for i in range(300):
                d.write("m%03d.json" % i, body % name(i))
            t_last = time.monotonic()
            got = []
            for _ in range(300):
                got.append(await asyncio.wait_for(normal.recv(), 5))
            lag = time.monotonic() - t_last
            assert got == [ev("added", name(i)) for i in range(300)], "events lost or reordered"
            assert lag < DEADLINE, "normal client lagged %.2fs behind" % lag
            print("300 events in %.2fs with 10 stuck peers" % (time.monotonic() - t0))
        finally:
            for s in stuck:
                s.close()
            await normal.close()


if __name__ == "__main__":
    run([test_stuck_reader_dropped_others_unaffected, test_many_stuck_readers_one_normal])
