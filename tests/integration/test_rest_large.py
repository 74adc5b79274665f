#!/usr/bin/python3
"""Integration: large REST snapshots and the --snapshot-max limit (issue 3).

- 200 clusters x 200 nodes (~20 MB of JSON): the list returns all of them,
  byte-exact Content-Length, from both workers; a slow reader that started
  before a change gets a whole, consistent old list (its response keeps its
  snapshot copy alive).
- A snapshot over --snapshot-max is not published: the error is logged, the
  last good snapshot keeps being served (same ETag, same seq), the held-back
  change emits no event, and once the data fits again the held-back changes
  are emitted.
"""

import asyncio
import json
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import Daemon, conn_owner, expect, expect_silence, run, ws_connect  # noqa: E402
from rest_util import RawHTTP, byte_sorted, get, get_ok_json, realistic, rest_object  # noqa: E402

CLUSTERS = 200
NODES = 200


def big_seed():
    seed = {}
    for i in range(CLUSTERS):
        name = "c%03d-%s" % ((i * 37) % CLUSTERS, "eks" if i % 2 else "GKE")
        seed["f%03d.json" % i] = realistic(name, nodes=NODES, app_count=i)
    return seed


def read_list(c):
    r = c.roundtrip("GET", "/api/clusters")
    assert r.status == 200, r
    assert int(r.header("content-length")) == len(r.body), (r.header("content-length"),
                                                            len(r.body))
    return r


async def test_200_clusters_of_200_nodes():
    seed = big_seed()
    names = byte_sorted(rest_object(p)["name"] for p in seed.values())
    with Daemon(workers=2, seed=seed) as d:
        # one connection to each worker
        seen = {}
        for _ in range(40):
            c = RawHTTP(d.port, timeout=20)
            owner = conn_owner(d, c.local_port)
            if owner in seen or owner is None:
                c.close()
                continue
            seen[owner] = c
            if len(seen) == 2:
                break
        assert len(seen) == 2, seen
        bodies = []
        try:
            for c in seen.values():
                t0 = time.monotonic()
                r = read_list(c)
                took = time.monotonic() - t0
                bodies.append(r.body)
                obj = json.loads(r.body)
                assert obj["seq"] == 0
                assert [o["name"] for o in obj["clusters"]] == names
                for o in obj["clusters"]:
                    assert len(o["status"]["nodes"]) == NODES, o["name"]
                by = {o["name"]: o for o in obj["clusters"]}
                for p in list(seed.values())[:5]:
                    assert by[p["metadata"]["name"]] == rest_object(p)
                print("list: %d bytes in %.3f s" % (len(r.body), took), flush=True)
            assert len(bodies[0]) > 15_000_000, len(bodies[0])
            assert bodies[0] == bodies[1], "the workers serve different lists"
            # detail of the first, middle and last cluster
            for n in (names[0], names[CLUSTERS // 2], names[-1]):
                r = get(d.port, "/api/clusters/" + n)
                assert r.status == 200 and r.json()["name"] == n
                assert int(r.header("content-length")) == len(r.body)
        finally:
            for c in seen.values():
                c.close()

        # a slow reader keeps its (old) snapshot while the daemon moves on
        ws = await ws_connect(d)
        s = socket.socket()
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.settimeout(20)
            s.connect(("127.0.0.1", d.port))
            s.sendall(b"GET /api/clusters HTTP/1.1\r\nHost: x\r\n\r\n")
            got = s.recv(4096)
            assert got.startswith(b"HTTP/1.1 200"), got[:100]
            changed = dict(list(seed.items())[:3])
            for fn, p in changed.items():
                p = json.loads(json.dumps(p))
                p["status"]["applicationCount"] += 1000
                d.write(fn, p)
            for _ in changed:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
                assert msg["type"] == "cluster.updated", msg
            # both workers (the slow reader's among them) move to the new snapshot
            served_by = set()
            for _ in range(40):
                with RawHTTP(d.port, timeout=20) as c:
                    served_by.add(conn_owner(d, c.local_port))
                    newest = read_list(c).body
                    assert re.search(rb',"seq":3,"epoch":"[A-Za-z0-9_-]+"}$', newest), newest[-40:]
                if len(served_by) == 2:
                    break
            assert len(served_by) == 2, served_by
            while b"\r\n\r\n" not in got:
                got += s.recv(65536)
            head, _, first = got.partition(b"\r\n\r\n")
            length = int([h for h in head.split(b"\r\n")
                          if h.lower().startswith(b"content-length:")][0].split(b":")[1])
            body = bytearray(first)
            while len(body) < length:
                x = s.recv(1 << 20)
                assert x, "EOF after %d of %d bytes" % (len(body), length)
                body += x
            assert body == bodies[0], "the slow reader's list is not the snapshot it began with"
        finally:
            s.close()
            await ws.close()


async def test_snapshot_max_keeps_last_good():
    small = {"a.json": realistic("alpha", nodes=1), "b.json": realistic("bravo", nodes=1)}
    with Daemon(workers=2, flags=["--snapshot-max=65536"], seed=small) as d:
        ws = await ws_connect(d)
        try:
            before = get(d.port, "/api/clusters")
            assert before.status == 200 and before.json()["seq"] == 0
            etag = before.header("etag")
            mark = len(d.log_text())
            # 300 nodes: ~150 KB, over the 64 KiB limit
            d.write("huge.json", realistic("huge", nodes=300))
            line = d.wait_log(lambda ln: "exceeds --snapshot-max" in ln, timeout=5, since=mark)
            assert line is not None, "no error logged:\n%s" % d.log_text()[mark:]
            assert "error" in line, line
            # nothing published, nothing emitted
            await expect_silence(ws, 0.8)
            for _ in range(4):   # both workers
                r = get(d.port, "/api/clusters")
                assert r.status == 200 and r.header("etag") == etag and r.body == before.body, r
                r = get(d.port, "/api/clusters/huge")
                assert r.status == 404, r
            # another change while held back: still the last good snapshot
            upd = realistic("alpha", nodes=1, app_count=99)
            d.write("a.json", upd)
            await expect_silence(ws, 0.8)
            assert get(d.port, "/api/clusters").body == before.body
            assert d.proc.poll() is None
            # the data fits again: the held-back change comes out, the huge
            # cluster never existed for clients
            d.remove("huge.json")
            await expect(ws, "updated", "alpha", timeout=5)
            await expect_silence(ws, 0.5)
            obj = get_ok_json(d.port, "/api/clusters")
            assert obj["seq"] == 1, obj["seq"]
            assert [o["name"] for o in obj["clusters"]] == ["alpha", "bravo"]
            assert obj["clusters"][0] == rest_object(upd)
            # a small "huge" is fine
            d.write("huge.json", realistic("huge", nodes=2))
            await expect(ws, "added", "huge", timeout=5)
            assert get_ok_json(d.port, "/api/clusters")["seq"] == 2
            assert get(d.port, "/api/clusters/huge").status == 200
        finally:
            await ws.close()


if __name__ == "__main__":
    run([test_200_clusters_of_200_nodes, test_snapshot_max_keeps_last_good])
