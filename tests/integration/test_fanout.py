#!/usr/bin/python3
"""Integration: 2 workers, 200 concurrent websockets clients; every client
receives every event exactly once, all in the same order."""

import asyncio
import collections
import os
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import (Daemon, conn_owner, ev, persona_api, run, ws_connect,  # noqa: E402
                     ws_local_port)

CLIENTS = 200
WORKERS = 2


def plan():
    """(action, file, content or None, expected payload) in three phases;
    each phase touches every file at most once."""
    adds = [("w", "f%02d.json" % i, persona_api("fan-%02d" % i), ev("added", "fan-%02d" % i))
            for i in range(25)]
    upd = [("w", "f%02d.json" % i, persona_api("fan-%02d" % i, nodes=10 + i),
            ev("updated", "fan-%02d" % i)) for i in range(15)]
    dels = [("rm", "f%02d.json" % i, None, ev("deleted", "fan-%02d" % i)) for i in range(15, 25)]
    return [adds, upd, dels]


async def test_fanout_200_clients_2_workers():
    with Daemon(workers=WORKERS, flags=["--ping-period=30", "--pong-wait=60"]) as d:
        workers = d.wait_workers(WORKERS)
        assert len(workers) == WORKERS, "want %d workers, have %r" % (WORKERS, workers)
        t0 = time.monotonic()
        conns = await asyncio.gather(*[ws_connect(d, max_queue=None) for _ in range(CLIENTS)])
        print("%d clients connected in %.2fs" % (CLIENTS, time.monotonic() - t0))
        try:
            owners = collections.Counter(conn_owner(d, ws_local_port(w)) for w in conns)
            print("connections per worker: %r" % dict(owners))
            assert set(owners) == set(workers), \
                "connections not spread over all workers: %r (workers %r)" % (owners, workers)
            phases = plan()
            n_events = sum(len(p) for p in phases)
            got = [[] for _ in conns]

            async def reader(i, ws):
                while len(got[i]) < n_events:
                    got[i].append(await ws.recv())

            tasks = [asyncio.create_task(reader(i, w)) for i, w in enumerate(conns)]
            want = []
            for ph in phases:
                for act, f, content, payload in ph:
                    if act == "w":
                        d.write(f, content)
                    else:
                        d.remove(f)
                    want.append(payload)
                # wait for the phase to reach client 0 before the next one, so
                # no two writes to one file can be coalesced
                deadline = time.monotonic() + 10
                while len(got[0]) < len(want) and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
            done, pending = await asyncio.wait(tasks, timeout=15)
            for t in pending:
                t.cancel()
            short = [(i, len(g)) for i, g in enumerate(got) if len(g) != n_events]
            assert not short, "%d clients missed events (index, count): %r" % (len(short),
                                                                              short[:10])
            for t in done:
                t.result()
            ref = got[0]
            assert sorted(ref) == sorted(want), "client 0 got a different set of events"
            assert len(set(ref)) == n_events, "duplicate events"
            differ = [i for i, g in enumerate(got) if g != ref]
            assert not differ, "%d clients saw a different order (first: %d)" % (len(differ),
                                                                                differ[0])
            assert ref == want, "order differs from the order of changes"
            # no extra messages afterwards
            extra = await asyncio.gather(*[asyncio.wait_for(w.recv(), 0.3) for w in conns[:20]],
                                         return_exceptions=True)
            assert all(isinstance(x, asyncio.TimeoutError) for x in extra), \
                "extra messages: %r" % [x for x in extra if isinstance(x, str)][:3]
            print("%d events x %d clients OK in %.2fs" % (n_events, CLIENTS,
                                                          time.monotonic() - t0))
        finally:
            await asyncio.gather(*[w.close() for w in conns], return_exceptions=True)


if __name__ == "__main__":
    run([test_fanout_200_clients_2_workers])
