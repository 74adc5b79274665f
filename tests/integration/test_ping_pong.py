#!/usr/bin/python3
"""Integration: server pings every --ping-period; a pong or any other client
frame resets the --pong-wait deadline; silence past it closes the connection.
Runs with --ping-period=0.3 --pong-wait=1."""

import asyncio
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import (ConnClosed, Daemon, RawWS, ev, expect, persona_api, run,  # noqa: E402
                     ws_connect)
import socket  # noqa: E402

PING = 0.3
PONG_WAIT = 1.0
TOL = 1.5          # scheduling slack on a shared 2-core machine
FLAGS = ["--ping-period=%g" % PING, "--pong-wait=%g" % PONG_WAIT]


def collect(c, secs, answer=True, send_every=None):
    """Read for secs; return (ping times, data frames, closed_at or None)."""
    pings, data = [], []
    t0 = time.monotonic()
    next_send = t0 + send_every if send_every else None
    end = t0 + secs
    while True:
        now = time.monotonic()
        if now >= end:
            return pings, data, None
        wake = end if next_send is None else min(end, next_send)
        try:
            fin, op, p = c.read_frame(timeout=max(0.001, wake - now))
        except socket.timeout:
            if next_send is not None and time.monotonic() >= next_send:
                c.send_frame(0x1, b"keepalive")
                next_send += send_every
            continue
        except ConnClosed:
            return pings, data, time.monotonic()
        if op == 0x9:
            pings.append(time.monotonic())
            if answer:
                c.send_frame(0xA, p)
        elif op == 0x8:
            return pings, data, time.monotonic()
        else:
            data.append((op, p))
        if next_send is not None and time.monotonic() >= next_send:
            c.send_frame(0x1, b"keepalive")
            next_send += send_every


def test_pings_periodic_and_pong_keeps_alive():
    with Daemon(workers=1, flags=FLAGS) as d:
        c = RawWS(d.port)
        try:
            pings, data, closed = collect(c, 3 * PONG_WAIT, answer=True)
            assert closed is None, "answering client was closed after %.2fs" % (closed - pings[0]
                                                                                  if pings else 0)
            assert len(pings) >= 6, "only %d pings in %.1fs with --ping-period=%g" % (
                len(pings), 3 * PONG_WAIT, PING)
            gaps = [b - a for a, b in zip(pings, pings[1:])]
            med = statistics.median(gaps)
            print("ping gaps: median %.3fs min %.3fs max %.3fs" % (med, min(gaps), max(gaps)))
            assert 0.5 * PING <= med <= 2 * PING, "median ping gap %.3fs, want ~%gs" % (med, PING)
            # still a working subscription
            d.write("pp.json", persona_api("pp"))
            fin, op, p = c.read_message(timeout=3)
            assert (op, p.decode()) == (0x1, ev("added", "pp")), (op, p)
        finally:
            c.close()


async def test_library_client_survives():
    """websockets answers pings by itself (and here never pings on its own)."""
    with Daemon(workers=2, flags=FLAGS) as d:
        ws = await ws_connect(d)
        try:
            await asyncio.sleep(3 * PONG_WAIT)
            assert ws.open, "websockets client dropped although it answers pings (%r)" % (
                ws.close_code,)
            d.write("lib.json", persona_api("lib"))
            await expect(ws, "added", "lib")
        finally:
            await ws.close()


def test_silent_client_closed_after_pong_wait():
    with Daemon(workers=1, flags=FLAGS) as d:
        c = RawWS(d.port)
        t0 = time.monotonic()
        try:
            pings, _, closed = collect(c, PONG_WAIT + PING + TOL + 2, answer=False)
            assert pings, "no ping before the close"
            assert closed is not None, "client that never answers pings still open after %.1fs" % (
                time.monotonic() - t0)
            dt = closed - t0
            print("silent client closed after %.2fs (pong-wait %gs)" % (dt, PONG_WAIT))
            assert dt >= 0.8 * PONG_WAIT, "closed too early: %.2fs" % dt
            assert dt <= PONG_WAIT + PING + TOL, "closed too late: %.2fs" % dt
            assert c.wait_eof(2.0), "socket not shut"
        finally:
            c.close()


def test_any_frame_resets_pong_wait():
    with Daemon(workers=1, flags=FLAGS) as d:
        c = RawWS(d.port)
        try:
            # ignore pings, but send a text frame every PONG_WAIT/3
            pings, data, closed = collect(c, 3 * PONG_WAIT, answer=False,
                                          send_every=PONG_WAIT / 3)
            assert closed is None, "client sending frames was closed after pong-wait"
            assert pings, "no pings seen"
            # then go silent: now it must be closed
            t0 = time.monotonic()
            pings, data, closed = collect(c, PONG_WAIT + PING + TOL + 2, answer=False)
            assert closed is not None, "silent client never closed"
            assert closed - t0 <= PONG_WAIT + PING + TOL, "closed after %.2fs" % (closed - t0)
        finally:
            c.close()


def test_pong_wait_longer_than_period_unanswered_mixed():
    """Two clients on one worker: the answering one survives while the silent
    one is dropped."""
    with Daemon(workers=1, flags=FLAGS) as d:
        good = RawWS(d.port)
        bad = RawWS(d.port)
        try:
            t0 = time.monotonic()
            end = t0 + PONG_WAIT + PING + TOL
            bad_closed = None
            while time.monotonic() < end:
                try:
                    good.read_message(timeout=0.05)   # answers pings
                except socket.timeout:
                    pass
                if bad_closed is None:
                    try:
                        bad.read_frame(timeout=0.05)     # ignores pings
                    except socket.timeout:
                        pass
                    except ConnClosed:
                        bad_closed = time.monotonic()
            assert bad_closed is not None, "silent client not closed"
            d.write("mix.json", persona_api("mix"))
            fin, op, p = good.read_message(timeout=3)
            assert p.decode() == ev("added", "mix"), p
        finally:
            good.close()
            bad.close()


if __name__ == "__main__":
    run([test_pings_periodic_and_pong_keeps_alive, test_library_client_survives,
         test_silent_client_closed_after_pong_wait, test_any_frame_resets_pong_wait,
         test_pong_wait_longer_than_period_unanswered_mixed])
