#!/usr/bin/python3
"""Integration: a change on disk reaches connected clients at once
(inotify -> ring -> eventfd -> worker; no sleep-polling on the hot path)."""

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import Daemon, ev, persona_api, recv, run, ws_connect  # noqa: E402

ROUNDS = 25
LIMIT_S = 1.0


async def test_latency():
    # a long rescan interval, so only the watcher can explain fast events
    with Daemon(workers=2, flags=["--rescan-interval=60"]) as d:
        ws = await ws_connect(d)
        other = await ws_connect(d)
        try:
            lat = []
            for i in range(ROUNDS):
                name = "lat-%d" % i
                t0 = d.write(name + ".json", persona_api(name, nodes=i))
                got = await recv(ws, 5.0)
                dt = time.monotonic() - t0
                assert got == ev("added", name), got
                assert await recv(other, 5.0) == got
                lat.append(dt)
                time.sleep(0.02)
            med = statistics.median(lat)
            print("latency over %d changes: median %.2f ms, max %.2f ms"
                  % (ROUNDS, med * 1000, max(lat) * 1000))
            slow = [x for x in lat if x >= LIMIT_S]
            assert not slow, "changes took >= %.1fs: %r" % (LIMIT_S, slow)
            assert med < 0.2, "median latency %.0f ms: not 'within milliseconds'" % (med * 1000)
        finally:
            await ws.close()
            await other.close()


if __name__ == "__main__":
    run([test_latency])
