#!/usr/bin/python3
"""Integration: read-your-event under load (issue 3, the snapshot invariant).

Two workers, several WebSocket clients and a writer that rewrites a set of
personas as fast as it can for about 10 s; every rewrite of a persona adds one
to its status.applicationCount (0, 1, 2, ...).  All clients connect before the
first write, so the k-th event a client receives has seq k.  On every event a
client at once GETs /api/clusters/{name} (and every third time the list, over
a connection to the other worker) and checks:

  - the list's seq >= k (the snapshot includes the event);
  - the count it reads for the name >= j, where the event is the j-th
    cluster.updated for that name: j changes mean at least j writes were
    published, and the j-th write wrote j;
  - counts never go backwards for one client (each GET sees the newest
    generation at the time it is served).

A bulky padding cluster makes each snapshot publish take long enough that a
daemon appending events before publishing is caught (see doc/performance.md).
At the end every client must have received exactly seq events (no gap) and the
final counts must equal the writes.
"""

import asyncio
import json
import multiprocessing
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import Daemon, conn_owner, run, ws_connect  # noqa: E402
from rest_util import AsyncHTTP, get_ok_json, realistic  # noqa: E402

NAMES = ["rye-%d" % i for i in range(6)]
CLIENTS = 4
DURATION_S = float(os.environ.get("REST_RYE_SECONDS", "10"))
# Padding: clusters of 1200 nodes (~0.8 MB each; a file may not exceed 1 MiB).
PAD_CLUSTERS = int(os.environ.get("REST_RYE_PAD_CLUSTERS", "3"))
PAD_NODES = 1200
WRITE_PAUSE_S = 0.004


def persona(name, count):
    p = realistic(name, nodes=2, app_count=count)
    p["status"]["generation"] = count
    return p


def poller(port, stop_at):
    """A separate process that keeps both workers busy with GET /healthz
    over keep-alive connections, so a worker runs its loop (and pulls the
    ring) at any moment, not only when the master rings the doorbell."""
    import socket
    conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
    req = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    while time.monotonic() < stop_at:
        for c in conns:
            c.sendall(req)
        for c in conns:
            got = b""
            while not got.endswith(b'{"status":"ok"}'):
                d = c.recv(4096)
                if not d:
                    return
                got += d
    for c in conns:
        c.close()


class Writer(threading.Thread):
    def __init__(self, d):
        super().__init__(daemon=True)
        self.d = d
        self.counts = {n: 0 for n in NAMES}
        self.writes = 0
        self.stop = threading.Event()
        self.error = None

    def run(self):
        try:
            i = 0
            while not self.stop.is_set():
                name = NAMES[i % len(NAMES)]
                i += 1
                self.counts[name] += 1
                self.d.write(name + ".json", persona(name, self.counts[name]))
                self.writes += 1
                time.sleep(WRITE_PAUSE_S)
        except Exception as e:  # noqa: BLE001
            self.error = e


async def http_pair(d):
    """Two keep-alive connections, one to each worker (SO_REUSEPORT spreads
    connections by hash, so open until both workers are covered)."""
    by_worker = {}
    spare = []
    for _ in range(40):
        c = await AsyncHTTP(d.port).connect()
        st, _, _ = await c.get("/healthz")
        assert st == 200
        owner = conn_owner(d, c.local_port)
        if owner is not None and owner not in by_worker:
            by_worker[owner] = c
            if len(by_worker) == 2:
                break
        else:
            spare.append(c)
    for c in spare:
        c.close()
    assert len(by_worker) == 2, "could not reach both workers: %r" % list(by_worker)
    return by_worker


def list_seq_and_object(body, name):
    """seq and one cluster of a list body without parsing megabytes of
    padding: the list is {"clusters":[obj,...],"seq":N,"epoch":"E"} with each obj in
    canonical form, starting {"name":...}."""
    text = body.decode("utf-8")
    tail = text.rindex(',"seq":')
    assert text.endswith('"}'), text[-50:]
    seq = int(text[tail + 7:text.rindex(',"epoch":"')])
    at = text.index('{"name":%s,' % json.dumps(name))
    obj, _ = json.JSONDecoder().raw_decode(text, at)
    return seq, obj


class Client:
    def __init__(self, idx):
        self.idx = idx
        self.events = 0
        self.per_name = {n: 0 for n in NAMES}
        self.seen = {n: 0 for n in NAMES}      # highest count read so far
        self.violations = []
        self.gets = 0
        self.cross = 0                          # GETs served by the other worker

    def read_count(self, obj, name, where, j):
        assert obj["name"] == name, obj["name"]
        v = obj["status"]["applicationCount"]
        assert obj["status"]["generation"] == v, "torn object %r" % obj["status"]
        if v < j:
            self.violations.append("client %d event %d: %s is the %d-th update of %s, %s "
                                   "shows count %d" % (self.idx, self.events, where, j, name,
                                                       where, v))
        if v < self.seen[name]:
            self.violations.append("client %d: %s count of %s went back %d -> %d" % (
                self.idx, where, name, self.seen[name], v))
        self.seen[name] = max(self.seen[name], v)

    async def run(self, d, ws, conns, ws_worker, done):
        other = [c for w, c in conns.items() if w != ws_worker]
        same = [c for w, c in conns.items() if w == ws_worker]
        order = other + same
        while True:
            if done.is_set() and self.events >= done.final_seq:
                return
            try:
                msg = await asyncio.wait_for(ws.recv(), 0.5)
            except asyncio.TimeoutError:
                continue
            ev = json.loads(msg)
            assert ev["type"] == "cluster.updated" and ev["data"]["name"] in NAMES, msg
            name = ev["data"]["name"]
            self.events += 1
            self.per_name[name] += 1
            j = self.per_name[name]
            c = order[self.events % 2]
            st, _, body = await c.get("/api/clusters/" + name)
            self.gets += 1
            self.cross += c is other[0]
            assert st == 200, "GET %s -> %d %r" % (name, st, body[:200])
            self.read_count(json.loads(body), name, "detail", j)
            if self.events % 3 == 0:
                st, _, body = await other[0].get("/api/clusters")
                self.gets += 1
                self.cross += 1
                assert st == 200, st
                seq, obj = list_seq_and_object(body, name)
                if seq < self.events:
                    self.violations.append("client %d: list seq %d after event %d" % (
                        self.idx, seq, self.events))
                self.read_count(obj, name, "list", j)


async def test_read_your_event_under_load():
    seed = {n + ".json": persona(n, 0) for n in NAMES}
    for i in range(PAD_CLUSTERS):
        seed["zz-padding-%d.json" % i] = realistic("zz-padding-%d" % i, nodes=PAD_NODES)
    with Daemon(workers=2, seed=seed) as d:
        workers = d.wait_workers(2)
        assert len(workers) == 2, workers
        obj = get_ok_json(d.port, "/api/clusters")
        assert obj["seq"] == 0 and len(obj["clusters"]) == len(NAMES) + PAD_CLUSTERS
        wss, conns, owners = [], [], []
        try:
            for _ in range(CLIENTS):
                ws = await ws_connect(d, max_size=2 ** 20)
                wss.append(ws)
                owners.append(conn_owner(d, ws.transport.get_extra_info("sockname")[1]))
                conns.append(await http_pair(d))
            assert all(o in workers for o in owners), (owners, workers)
            clients = [Client(i) for i in range(CLIENTS)]
            done = asyncio.Event()
            done.final_seq = 1 << 60
            tasks = [asyncio.ensure_future(c.run(d, wss[i], conns[i], owners[i], done))
                     for i, c in enumerate(clients)]
            writer = Writer(d)
            t0 = time.monotonic()
            poll = multiprocessing.get_context("fork").Process(
                target=poller, args=(d.port, t0 + DURATION_S), daemon=True)
            poll.start()
            writer.start()
            while time.monotonic() - t0 < DURATION_S:
                await asyncio.sleep(0.2)
                for t in tasks:
                    if t.done():
                        t.result()   # raise a client's assertion now
            writer.stop.set()
            poll.join(5)
            if poll.is_alive():
                poll.kill()
            await asyncio.get_running_loop().run_in_executor(None, writer.join, 5)
            assert writer.error is None, writer.error
            # wait until the daemon has caught up with the last write
            final = None
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                obj = get_ok_json(d.port, "/api/clusters")
                counts = {o["name"]: o["status"]["applicationCount"] for o in obj["clusters"]}
                if all(counts[n] == writer.counts[n] for n in NAMES):
                    final = obj
                    break
                await asyncio.sleep(0.1)
            assert final is not None, "snapshot never reached the last writes %r: %r" % (
                writer.counts, counts)
            done.final_seq = final["seq"]
            done.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 15)
            violations = [v for c in clients for v in c.violations]
            print("writes %d, events %d, GETs %d (%d to the other worker), clients %d, "
                  "snapshot %d bytes, %.1f s" % (
                      writer.writes, final["seq"], sum(c.gets for c in clients),
                      sum(c.cross for c in clients), CLIENTS, len(json.dumps(final)),
                      time.monotonic() - t0), flush=True)
            assert not violations, "%d read-your-event violations, e.g.:\n  %s" % (
                len(violations), "\n  ".join(violations[:10]))
            for c in clients:
                assert c.events == final["seq"], "client %d got %d events, seq is %d" % (
                    c.idx, c.events, final["seq"])
            assert writer.writes >= 200, "only %d writes in %.0f s" % (writer.writes, DURATION_S)
            assert final["seq"] >= 100, "only %d events" % final["seq"]
            # nothing else arrived
            for ws in wss:
                try:
                    extra = await asyncio.wait_for(ws.recv(), 0.2)
                    raise AssertionError("extra event %r" % extra)
                except asyncio.TimeoutError:
                    pass
            assert d.wait_workers(2) == workers, "a worker was replaced during the run"
        finally:
            for ws in wss:
                await ws.close()
            for pair in conns:
                for c in pair.values():
                    c.close()


if __name__ == "__main__":
    run([test_read_your_event_under_load], timeout=50)
