#!/usr/bin/python3
"""Integration: stream positions and resumable /ws (issue 11).

GET /api/clusters carries "epoch" beside "seq"; GET /ws?since=N&epoch=E
replays N+1..head from the shared ring then goes live, or starts with a
resync; every message of such a connection carries its seq; plain /ws is
unchanged.  Real clients: python3-websockets and raw sockets.
"""

import asyncio
import json
import os
import re
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import (Daemon, RawWS, conn_owner, ev, expect_silence, persona_api,  # noqa: E402
                     raw_http, recv, run, ws_connect, ws_local_port)

EPOCH_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def position(d):
    st, obj = d.get_json("/api/clusters")
    assert st == 200, st
    return obj["seq"], obj["epoch"]


def with_seq(payload, seq):
    return payload[:-1] + ',"seq":%d}' % seq


def make_events(d, n, prefix="e", start=0):
    """n real events (cluster additions); waits until the list shows them."""
    seq0, _ = position(d)
    for i in range(start, start + n):
        d.write("%s%d.json" % (prefix, i), persona_api("%s%d" % (prefix, i)))
    deadline = time.monotonic() + 30
    while position(d)[0] < seq0 + n:
        assert time.monotonic() < deadline, "events did not arrive"
        time.sleep(0.05)
    return position(d)


async def drain(ws, secs=0.5):
    out = []
    try:
        while True:
            out.append(json.loads(await asyncio.wait_for(ws.recv(), secs)))
    except asyncio.TimeoutError:
        return out


async def test_epoch_in_list_same_on_every_worker():
    with Daemon(workers=2, seed={"a.json": persona_api("a")}, expect_worker_deaths=True) as d:
        epochs = set()
        for _ in range(20):  # SO_REUSEPORT spreads these over both workers
            seq, e = position(d)
            epochs.add(e)
        assert len(epochs) == 1 and EPOCH_RE.match(epochs.pop()), epochs
        _, e = position(d)
        # The list is the seed's plus "epoch" after "seq", nothing else.
        st, obj = d.get_json("/api/clusters")
        assert list(obj.keys()) == ["clusters", "seq", "epoch"], obj.keys()
        # A respawned worker reports the same epoch.
        for pid in d.worker_pids():
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.3)
        d.wait_workers(2)
        deadline = time.monotonic() + 10
        while True:
            try:
                got = {position(d)[1] for _ in range(10)}
                break
            except Exception:  # noqa: BLE001  (workers still starting)
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert got == {e}, (got, e)


async def test_plain_ws_unchanged_and_resumed_has_seq():
    with Daemon(workers=1) as d:
        seq, e = position(d)
        plain = await ws_connect(d)
        resumed = await ws_connect(d.ws_url + "?since=%d&epoch=%s" % (seq, e))
        unknown = await ws_connect(d.ws_url + "?foo=1&bar")  # unknown parameters: ignored
        try:
            d.write("x.json", persona_api("x"))
            p = await recv(plain)
            assert p == ev("added", "x"), p
            assert await recv(unknown) == p
            r = await recv(resumed)
            assert r == with_seq(p, seq + 1), r
        finally:
            for w in (plain, resumed, unknown):
                await w.close()


async def test_every_position_class():
    ring = 32
    with Daemon(workers=1, flags=["--ring-size=%d" % ring]) as d:
        head, e = make_events(d, ring + 10)

        async def first_messages(since, epoch, n):
            ws = await ws_connect(d.ws_url + "?since=%s&epoch=%s" % (since, epoch))
            try:
                got = [json.loads(await recv(ws)) for _ in range(n)]
                rest = await drain(ws, 0.3)
                return got + rest, ws
            except Exception:
                await ws.close()
                raise

        resync = {"type": "resync", "data": {"seq": head, "epoch": e}}
        # current (the list's own seq) and head: nothing replayed, then live
        for since in (head,):
            ws = await ws_connect(d.ws_url + "?since=%d&epoch=%s" % (since, e))
            await expect_silence(ws, 0.3)
            d.write("live.json", persona_api("live"))
            m = json.loads(await recv(ws))
            assert m == {"type": "cluster.added", "data": {"name": "live"}, "seq": head + 1}, m
            await ws.close()
        head += 1
        resync["data"]["seq"] = head
        # one behind, and the ring's edge exactly: N = head - ring, all of N+1..head
        for since in (head - 1, head - ring):
            got, ws = await first_messages(since, e, head - since)
            assert [m["seq"] for m in got] == list(range(since + 1, head + 1)), \
                (since, [m.get("seq") for m in got])
            await ws.close()
        # too old (one past the edge), future, another epoch: resync, then live
        other = e[:-1] + ("A" if e[-1] != "A" else "B")
        cases = (lambda h: (h - ring - 1, e), lambda h: (0, e), lambda h: (h + 1, e),
                 lambda h: (10 ** 19, e), lambda h: (h, "other"), lambda h: (h, other))
        for case in cases:
            since, epoch = case(head)
            got, ws = await first_messages(since, epoch, 1)
            assert got == [resync], (since, epoch, got)
            name = "after-%d" % len(d.cluster_names())
            d.write(name + ".json", persona_api(name))
            m = json.loads(await recv(ws))
            head += 1
            resync["data"]["seq"] = head
            assert m == {"type": "cluster.added", "data": {"name": name}, "seq": head}, m
            await ws.close()


def test_malformed_is_400_before_upgrade():
    with Daemon(workers=1) as d:
        _, e = position(d)
        bad = ["since=1", "epoch=" + e, "since=&epoch=" + e, "since=abc&epoch=" + e,
               "since=-1&epoch=" + e, "since=%2B1&epoch=" + e, "since=1.5&epoch=" + e,
               "since=" + "1" * 21 + "&epoch=" + e, "since=18446744073709551616&epoch=" + e,
               "since=1&epoch=", "since=1&epoch=" + "a" * 33, "since=1&epoch=a%3Ab",
               "since&epoch=" + e]
        for q in bad:
            req = ("GET /ws?%s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                   "Connection: close\r\n\r\n" % q)
            s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
            s.sendall(req.encode())
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            s.close()
            head, _, body = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 400"), (q, head)
            assert b"application/json" in head.lower(), (q, head)
            assert "error" in json.loads(body), (q, body)
        # the largest valid values are accepted (future: resync)
        st, _ = raw_http(d.port, "GET /ws?since=18446744073709551615&epoch=%s HTTP/1.1\r\n"
                         "Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n" % ("a" * 32))
        assert st == 101, st


class Writer(threading.Thread):
    """Changes the personas directory until stopped: adds, updates, deletes."""

    def __init__(self, d, prefix, pause=0.004, limit=1500):
        super().__init__(daemon=True)
        self.d, self.prefix, self.pause, self.limit = d, prefix, pause, limit
        self.stop_ev = threading.Event()
        self.n = 0

    def run(self):
        # At most limit changes: fewer than the ring keeps, so however slowly a
        # loaded machine runs the readers, no position can fall out of it.
        while not self.stop_ev.is_set() and self.n < self.limit:
            i = self.n % 40
            fname = "%s%d.json" % (self.prefix, i)
            if self.n % 7 == 6:
                try:
                    self.d.remove(fname)
                except FileNotFoundError:
                    pass
            else:
                self.d.write(fname, persona_api("%s%d" % (self.prefix, i), nodes=self.n))
            self.n += 1
            time.sleep(self.pause)

    def stop(self):
        self.stop_ev.set()
        self.join()


async def test_list_watch_and_resume_no_gap_under_changes():
    """list (seq N) then /ws?since=N, disconnecting and resuming from the last
    seq seen many times while changes keep coming: the seqs seen are exactly
    N+1..head, once each, in order, across reconnects and both workers."""
    with Daemon(workers=2, flags=["--ring-size=4096"]) as d:
        w = Writer(d, "w")
        w.start()
        try:
            await asyncio.sleep(0.2)
            start, e = position(d)  # list ...
            last = start
            seen = []
            owners = set()
            for round_ in range(12):  # ... then watch, resuming each time
                ws = await ws_connect(d.ws_url + "?since=%d&epoch=%s" % (last, e))
                owners.add(conn_owner(d, ws_local_port(ws)))
                for _ in range(5 + round_ * 3):
                    try:
                        m = json.loads(await recv(ws, 2))
                    except AssertionError:
                        if w.is_alive():
                            raise
                        break  # the writer is done: the final join below
                    assert m["type"] != "resync", m
                    seen.append(m["seq"])
                    last = m["seq"]
                await ws.close()
                await asyncio.sleep(0.05 * (round_ % 3))  # events pile up meanwhile
        finally:
            w.stop()
        # the join after the last reconnect: everything up to the final head
        head, _ = position(d)
        ws = await ws_connect(d.ws_url + "?since=%d&epoch=%s" % (last, e))
        while last < head:
            m = json.loads(await recv(ws, 5))
            seen.append(m["seq"])
            last = m["seq"]
        await ws.close()
        assert seen == list(range(start + 1, head + 1)), "gap or duplicate: %r" % [
            (a, b) for a, b in zip(seen, seen[1:]) if b != a + 1][:5]
        assert len(owners - {None}) == 2, "both workers must have served: %r" % owners


async def test_replay_join_with_live_no_gap():
    """A replay of many events races with new events: the connection gets
    N+1..head as one contiguous sequence, no gap and no duplicate where the
    replay ends and the live stream begins."""
    with Daemon(workers=2, flags=["--ring-size=4096"]) as d:
        make_events(d, 300, prefix="pre")
        w = Writer(d, "j", pause=0.002)
        w.start()
        try:
            conns = []
            for k in range(6):
                await asyncio.sleep(0.05)
                conns.append(await ws_connect(d.ws_url + "?since=%d&epoch=%s" % (
                    k * 40, position(d)[1])))
            await asyncio.sleep(0.3)
        finally:
            w.stop()
        head, _ = position(d)
        for k, ws in enumerate(conns):
            seqs = []
            while not seqs or seqs[-1] < head:
                m = json.loads(await recv(ws, 5))
                seqs.append(m["seq"])
            assert seqs == list(range(k * 40 + 1, head + 1)), (k, seqs[:3], len(seqs))
            await ws.close()


async def test_resume_after_worker_killed():
    with Daemon(workers=2, expect_worker_deaths=True) as d:
        make_events(d, 5)
        seq, e = position(d)
        ws = await ws_connect(d.ws_url + "?since=%d&epoch=%s" % (seq, e))
        owner = conn_owner(d, ws_local_port(ws))
        assert owner in d.worker_pids(), owner
        os.kill(owner, signal.SIGKILL)
        try:
            await recv(ws, 3)
        except Exception:  # noqa: BLE001  (the connection died with its worker)
            pass
        deadline = time.monotonic() + 10
        while owner in d.worker_pids() or len(d.worker_pids()) < 2:
            assert time.monotonic() < deadline, "no respawn"
            time.sleep(0.05)
        time.sleep(0.3)  # the new worker listens
        head, _ = make_events(d, 20, prefix="k")  # missed while disconnected
        ws2 = await ws_connect(d.ws_url + "?since=%d&epoch=%s" % (seq, e))
        try:
            got = [json.loads(await recv(ws2)) for _ in range(head - seq)]
            assert [m["seq"] for m in got] == list(range(seq + 1, head + 1)), got
            assert sorted(m["data"]["name"] for m in got) == sorted("k%d" % i for i in range(20)), got
            await expect_silence(ws2, 0.3)
        finally:
            await ws2.close()


def read_until_end(c, prev, timeout=10):
    """Read a raw client's messages until its close frame or EOF; each must be
    the next seq after prev.  Returns (last seq, close code or None)."""
    while True:
        try:
            fin, op, p = c.read_message(timeout=timeout)
        except Exception:  # noqa: BLE001  (EOF: the linger ended before we read the close)
            return prev, None
        if op == 0x8:
            return prev, int.from_bytes(p[:2], "big")
        m = json.loads(p)
        assert m["seq"] == prev + 1, (m["seq"], prev)  # never a gap before the close
        prev = m["seq"]


def closed_1013(d, c, code):
    """The close was 1013: seen on the wire, or (when the client read too late
    for the 1 s linger) in the daemon's log line for that connection."""
    if code is not None:
        return code == 1013
    port = ":%d:" % c.local_port
    return any(port in ln and "close 1013" in ln for ln in d.log_text().splitlines())


def test_full_ring_replay_small_rcvbuf_not_closed():
    """The whole ring (far over the 256 KiB queue cap) to a client with a 4 KiB
    receive buffer that reads slowly but steadily: every event, in order, no
    close.  A second client that stops reading is closed 1013 once the live
    events it did not take pass the cap."""
    ring = 1200
    with Daemon(workers=1, flags=["--ring-size=%d" % ring, "--write-deadline=20"]) as d:
        long = "n" * 200
        for i in range(ring):
            d.write("f%d.json" % i, persona_api("%s-%04d" % (long, i)))
        deadline = time.monotonic() + 60
        while position(d)[0] < ring:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        head, e = position(d)
        c = RawWS(d.port, path="/ws?since=%d&epoch=%s" % (head - ring, e), rcvbuf=4096)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        total = 0
        for s in range(head - ring + 1, head + 1):
            fin, op, p = c.read_message(timeout=10)
            assert op == 0x1, (op, p[:80])
            m = json.loads(p)
            assert m["seq"] == s, (m, s)
            total += len(p)
            if s % 50 == 0:
                time.sleep(0.05)  # slow, but it keeps reading
        assert total > 256 * 1024, total
        c.sock.settimeout(0.3)
        try:
            extra = c.sock.recv(1)
        except socket.timeout:
            extra = None
        assert extra is None, "the connection must stay open and quiet: %r" % extra
        c.close()

        # A resumed client that stops reading: still 1013 once live > cap.
        stuck = RawWS(d.port, path="/ws?since=%d&epoch=%s" % (head - ring, e), rcvbuf=4096)
        for i in range(ring):  # 1200 live events of ~270 bytes: over 256 KiB
            d.write("f%d.json" % i, persona_api("%s-%04d" % (long, i), nodes=10))
        last, code = read_until_end(stuck, head - ring)
        assert closed_1013(d, stuck, code), (code, d.log_text()[-800:])
        assert last < position(d)[0], "it cannot have had everything"
        stuck.close()


def test_ring_laps_replay_1013():
    """The ring overwrites events a replay has not sent yet (the replay is far
    larger than the socket buffers, the client waits, then more than a ring's
    worth of small events come): the client gets what was read, in order, then
    close 1013; never a silent gap."""
    ring = 1200
    with Daemon(workers=1, flags=["--ring-size=%d" % ring]) as d:
        head, e = make_events(d, ring, prefix="m" * 200)
        c = RawWS(d.port, path="/ws?since=%d&epoch=%s" % (head - ring, e), rcvbuf=2048)
        time.sleep(0.2)  # the replay fills the socket buffers and waits
        end, _ = make_events(d, ring + 100, prefix="z")  # small: under the cap
        prev, code = read_until_end(c, head - ring)
        assert closed_1013(d, c, code), (code, d.log_text()[-800:])
        assert prev < end, "it cannot have had everything"
        c.close()


async def test_master_restart_new_epoch_resync():
    d = Daemon(workers=1, keep_dir=True)
    d.start()
    try:
        head1, e1 = make_events(d, 3)
    finally:
        d.stop()
    d2 = Daemon(workers=1, personas_dir=d.dir)
    with d2:
        head2, e2 = position(d2)
        assert e2 != e1 and EPOCH_RE.match(e2), (e1, e2)
        ws = await ws_connect(d2.ws_url + "?since=%d&epoch=%s" % (head1, e1))
        try:
            m = json.loads(await recv(ws))
            assert m == {"type": "resync", "data": {"seq": head2, "epoch": e2}}, m
            d2.write("new.json", persona_api("new"))
            m = json.loads(await recv(ws))
            assert m == {"type": "cluster.added", "data": {"name": "new"},
                         "seq": head2 + 1}, m
        finally:
            await ws.close()
    d.cleanup()


if __name__ == "__main__":
    run([test_epoch_in_list_same_on_every_worker, test_plain_ws_unchanged_and_resumed_has_seq,
         test_every_position_class, test_malformed_is_400_before_upgrade,
         test_list_watch_and_resume_no_gap_under_changes, test_replay_join_with_live_no_gap,
         test_resume_after_worker_killed, test_full_ring_replay_small_rcvbuf_not_closed,
         test_ring_laps_replay_1013, test_master_restart_new_epoch_resync], timeout=120)
