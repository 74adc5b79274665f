#!/usr/bin/python3
"""Integration: GET /metrics (issue 13).  Scrapes taken while events stream
to clients pass `promtool check metrics`, and their values are what the test
did: the connections it holds open, the events it caused by type, the close
codes it provoked (1009 too big, 1002 protocol error, a client that stops
reading: 1013 or dropped, an echoed 1000), the HTTP statuses it asked for (a
404, a 405), the persona file it broke, and a worker it killed (restarts +1,
its open connections counted as worker_exit drops, no counter backwards).
HEAD and the other methods of /metrics behave like the other routes'; a
scrape is answered while the master is stopped.  Server-Sent Events streams
(raw sockets and curl -N) are counted under protocol="sse", WebSockets under
"websocket", each with its own opens, resumes (replayed, resync), closes and
drops by reason, across a stopped and a killed worker."""

import http.client
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import (ConnClosed, Daemon, RawWS, conn_owner, ev, persona_api, run,  # noqa: E402
                     server_side_closed)
from test_sse import SSE  # noqa: E402

TEXT, CLOSE = 0x1, 0x8
MAX = 300
RING = 64
READERS = 6
N_ADD = 700          # ~300-byte frames: more than a non-reader's kernel buffers hold
BURST = 40           # below the ring and window (64): readers are never lapped
PAD = "m" * 240
PROMTOOL = shutil.which("promtool")
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def name(i):
    return "%s-%04d" % (PAD, i)


def scrape(d):
    st, body, r = d.http("GET", "/metrics")
    assert st == 200, "GET /metrics -> %d" % st
    assert r.getheader("Content-Type") == "text/plain; version=0.0.4; charset=utf-8", \
        r.getheader("Content-Type")
    return body.decode()


def promtool(text, what):
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    assert p.returncode == 0 and p.stdout == b"", \
        "%s: promtool check metrics exit %d:\n%s" % (what, p.returncode, p.stdout.decode())


def parse(text):
    """{(name, labels): value} and {name: type}; every series once."""
    values, types = {}, {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, n, t = line.split(" ", 3)
            types[n] = t
            continue
        if line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, "bad sample line %r" % line
        key = (m.group(1), m.group(2) or "")
        assert key not in values, "series twice: %r" % (key,)
        values[key] = float(m.group(3))
    return values, types


def val(values, name, labels=""):
    key = (name, labels)
    assert key in values, "no series %s%s" % key
    return values[key]


def closed(values, code):
    return val(values, "personad_connections_closed_total",
               '{protocol="websocket",code="%s"}' % code)


def dropped(values, reason):
    return val(values, "personad_connections_dropped_total",
               '{protocol="websocket",reason="%s"}' % reason)


def wait_metrics(d, pred, what, timeout=10.0):
    """Scrape until pred(values) holds; the last values.  A connection reset
    is retried: while a killed worker awaits its respawn, what the kernel had
    queued on its listening socket is reset (README: "Running"); so is a refused
    one: with no worker alive the master closes the listening socket until one
    is back (slow under ASan)."""
    deadline = time.monotonic() + timeout
    values = {}
    while True:
        try:
            values, _ = parse(scrape(d))
        except (ConnectionResetError, ConnectionRefusedError, http.client.RemoteDisconnected):
            values = None
        if values is not None and pred(values):
            return values
        if time.monotonic() > deadline:
            raise AssertionError("%s: not within %.0fs; last scrape: %s" % (
                what, timeout, {"%s%s" % k: v for k, v in (values or {}).items()
                                if "connections" in k[0] or "worker" in k[0]}))
        time.sleep(0.05)


def expect_close(c, code, what):
    got, _ = c.read_close(timeout=3.0)
    assert got == code, "%s: close %r, want %d" % (what, got, code)


def read_events(readers, want):
    for i, c in enumerate(readers):
        for w in want:
            fin, op, p = c.read_message(timeout=5.0)
            assert (op, p.decode()) == (TEXT, w), "reader %d: %r, want %r" % (i, p, w)


def test_metrics_under_load():
    flags = ["--max-message=%d" % MAX, "--ring-size=%d" % RING, "--write-deadline=1",
             "--ping-period=30", "--pong-wait=60"]
    seed = {"seed-a.json": persona_api("seed-a"), "seed-b.json": persona_api("seed-b")}
    with Daemon(workers=2, flags=flags, seed=seed, expect_worker_deaths=True) as d:
        assert len(d.wait_workers(2)) == 2
        stage = os.path.join(d.tmp, "stage")
        os.mkdir(stage)
        for i in range(N_ADD):
            with open(os.path.join(stage, "a%04d.json" % i), "w") as f:
                f.write('{"name": "%s", "spec": {"nodes": 1}}' % name(i))

        text0 = scrape(d)
        promtool(text0, "first scrape")
        v0, types = parse(text0)
        assert val(v0, "personad_build_info", '{version="%s"}' % version(d)) == 1
        assert types["personad_build_info"] == "gauge"
        assert abs(val(v0, "personad_start_time_seconds") - time.time()) < 120
        assert val(v0, "personad_workers") == 2
        assert val(v0, "personad_worker_restarts_total") == 0
        assert val(v0, "personad_ring_capacity_events") == RING
        assert val(v0, "personad_ring_head_seq") == 0
        assert val(v0, "personad_connections", '{protocol="websocket"}') == 0
        assert val(v0, "personad_personas", '{state="valid"}') == 2
        assert val(v0, "personad_snapshot_publishes_total") >= 1
        for n, t in types.items():
            assert (t == "counter") == n.endswith("_total"), "%s is a %s" % (n, t)

        # HTTP: a 404, a 405 (with the route's Allow), HEAD without a body
        assert d.http("GET", "/nope")[0] == 404
        st, _, r = d.http("POST", "/metrics")
        assert st == 405 and r.getheader("Allow") == "GET, HEAD", (st, r.getheader("Allow"))
        st, body, r = d.http("HEAD", "/metrics")
        assert st == 200 and body == b"" and r.getheader("Content-Type").startswith(
            "text/plain; version=0.0.4"), (st, body)

        readers = [RawWS(d.port) for _ in range(READERS)]
        # 1009: a message over --max-message; 1002: an unmasked frame
        big = RawWS(d.port)
        big.send_frame(TEXT, b"a" * (MAX + 1))
        expect_close(big, 1009, "too big")
        big.close()
        bad = RawWS(d.port)
        bad.send_frame(TEXT, b"hi", mask=False)
        expect_close(bad, 1002, "unmasked")
        bad.close()
        stuck = RawWS(d.port, rcvbuf=4096)  # never reads

        # events, with a scrape taken in the middle of each burst
        want_all = []
        for b in range(0, N_ADD, BURST):
            want = []
            for i in range(b, min(N_ADD, b + BURST)):
                f = "a%04d.json" % i
                os.rename(os.path.join(stage, f), d.path(f))
                want.append(ev("added", name(i)))
            if b % (5 * BURST) == 0:
                promtool(scrape(d), "scrape under load (burst %d)" % (b // BURST))
            read_events(readers, want)
            want_all += want
        for i in range(5):
            d.write("a%04d.json" % i, '{"name": "%s", "spec": {"nodes": 2}}' % name(i))
        read_events(readers, [ev("updated", name(i)) for i in range(5)])
        for i in range(5, 8):
            d.remove("a%04d.json" % i)
        read_events(readers, [ev("deleted", name(i)) for i in range(5, 8)])
        d.write("broken.json", "{not json")

        # the non-reader is gone, by the cap/window (1013) or a drop
        def stuck_gone(v):
            return closed(v, "1013") + dropped(v, "lapped") + dropped(v, "write_deadline") >= 1
        wait_metrics(d, stuck_gone, "the non-reading client ended")
        v1 = wait_metrics(d, lambda v: val(v, "personad_connections",
                                           '{protocol="websocket"}') == READERS and
                          val(v, "personad_persona_file_errors_total") == 1 and
                          all(val(v, "personad_worker_lag_events", '{worker="%d"}' % w) == 0
                              for w in (0, 1)),
                          "only the readers open, lag 0, the broken file seen")
        text1 = scrape(d)
        promtool(text1, "after the load")
        v1, _ = parse(text1)
        n_ev = N_ADD + 5 + 3
        assert val(v1, "personad_events_total", '{type="cluster.added"}') == N_ADD
        assert val(v1, "personad_events_total", '{type="cluster.updated"}') == 5
        assert val(v1, "personad_events_total", '{type="cluster.deleted"}') == 3
        assert val(v1, "personad_ring_head_seq") == n_ev
        assert val(v1, "personad_connections_opened_total", '{protocol="websocket"}') == \
            READERS + 3
        assert closed(v1, "1009") == 1 and closed(v1, "1002") == 1
        assert closed(v1, "1013") + dropped(v1, "lapped") + dropped(v1, "write_deadline") == 1
        print("non-reader: close 1013 %d, dropped lapped %d, write_deadline %d" % (
            closed(v1, "1013"), dropped(v1, "lapped"), dropped(v1, "write_deadline")))
        assert closed(v1, "1000") == 0 and closed(v1, "1001") == 0
        assert dropped(v1, "worker_exit") == 0
        # the closing clients closed their sockets after the close: peer_gone
        # is only counted for an open connection, so nothing else ended
        assert dropped(v1, "peer_gone") == 0, dropped(v1, "peer_gone")
        http = lambda v, c: val(v, "personad_http_responses_total", '{code="%s"}' % c)  # noqa
        assert http(v1, "404") == 1 and http(v1, "405") == 1
        assert http(v1, "101") == READERS + 3
        assert http(v1, "200") >= 3
        assert val(v1, "personad_personas", '{state="valid"}') == 2 + N_ADD - 3
        assert val(v1, "personad_personas", '{state="invalid"}') == 1
        frames = val(v1, "personad_stream_frames_written_total")
        assert frames >= READERS * n_ev, frames
        assert val(v1, "personad_stream_written_bytes_total") > READERS * N_ADD * len(PAD)
        st, body, _ = d.http("GET", "/api/clusters")
        assert val(v1, "personad_snapshot_bytes") > len(body)
        assert val(v1, "personad_worker_events_read_total") >= 2 * n_ev

        # kill -9 the worker of reader 0: restarts +1, its open connections
        # become worker_exit drops, nothing goes backwards
        workers = d.wait_workers(2)
        victim = conn_owner(d, readers[0].local_port)
        assert victim in workers, (victim, workers)
        on_victim = [c for c in readers if conn_owner(d, c.local_port) == victim]
        survivors = [c for c in readers if c not in on_victim]
        print("killing worker %d with %d of the %d readers" % (victim, len(on_victim), READERS))
        os.kill(victim, signal.SIGKILL)
        for c in on_victim:
            try:
                c.wait_eof(3.0)
            finally:
                c.close()
        v2 = wait_metrics(d, lambda v: val(v, "personad_worker_restarts_total") == 1 and
                          all(val(v, "personad_worker_up", '{worker="%d"}' % w) == 1
                              for w in (0, 1)), "the killed worker respawned", timeout=15)
        d.write("post.json", persona_api("post"))
        read_events(survivors, [ev("added", "post")])
        v2 = wait_metrics(d, lambda v: all(val(v, "personad_worker_lag_events",
                                               '{worker="%d"}' % w) == 0 for w in (0, 1)),
                          "lag 0 after the respawn")
        text2 = scrape(d)
        promtool(text2, "after the respawn")
        v2, types2 = parse(text2)
        for key, before in v1.items():
            if types2.get(key[0]) == "counter":
                assert v2[key] >= before, "%s%s went backwards: %s -> %s" % (
                    key[0], key[1], before, v2[key])
        assert dropped(v2, "worker_exit") == len(on_victim), (dropped(v2, "worker_exit"),
                                                              len(on_victim))
        assert val(v2, "personad_connections", '{protocol="websocket"}') == len(survivors)
        assert val(v2, "personad_connections_opened_total", '{protocol="websocket"}') == \
            READERS + 3
        assert val(v2, "personad_events_total", '{type="cluster.added"}') == N_ADD + 1
        assert val(v2, "personad_ring_head_seq") == n_ev + 1
        assert http(v2, "101") == READERS + 3

        # the survivors close politely: their 1000s are echoed and counted
        for c in survivors:
            c.send_frame(CLOSE, struct.pack("!H", 1000))
            expect_close(c, 1000, "polite close")
            c.close()
        v3 = wait_metrics(d, lambda v: val(v, "personad_connections",
                                           '{protocol="websocket"}') == 0,
                          "every connection ended")
        assert closed(v3, "1000") == len(survivors)
        opened = val(v3, "personad_connections_opened_total", '{protocol="websocket"}')
        ended = sum(v for (n, _), v in v3.items()
                    if n in ("personad_connections_closed_total",
                             "personad_connections_dropped_total"))
        assert ended == opened, "opened %s, closed + dropped %s" % (opened, ended)
        stuck.close()


def test_scrape_while_master_stopped():
    """A scrape never waits for the master: with the master stopped (SIGSTOP)
    every worker still answers, with the figures as they were."""
    with Daemon(workers=2, seed={"a.json": persona_api("alpha")}) as d:
        assert len(d.wait_workers(2)) == 2
        c = RawWS(d.port)
        try:
            wait_metrics(d, lambda v: val(v, "personad_connections",
                                          '{protocol="websocket"}') == 1, "one connection")
            os.kill(d.pid, signal.SIGSTOP)
            try:
                for _ in range(6):  # SO_REUSEPORT spreads them over both workers
                    t0 = time.monotonic()
                    text = scrape(d)
                    assert time.monotonic() - t0 < 2.0, "scrape took %.1fs" % (
                        time.monotonic() - t0)
                    promtool(text, "master stopped")
                    v, _ = parse(text)
                    assert val(v, "personad_connections", '{protocol="websocket"}') == 1
                    assert val(v, "personad_personas", '{state="valid"}') == 1
            finally:
                os.kill(d.pid, signal.SIGCONT)
        finally:
            c.close()


def by_proto(values, name, proto, label=None):
    """{label value: value} of name's series of protocol proto (label None:
    the one series without a further label)."""
    out = {}
    for (n, labels), v in values.items():
        if n != name:
            continue
        m = re.fullmatch(r'\{protocol="([a-z]+)"(?:,([a-z]+)="([^"]*)")?\}', labels)
        assert m, "%s%s: unexpected labels" % (n, labels)
        if m.group(1) != proto:
            continue
        assert m.group(2) == label, "%s%s: label %r, want %r" % (n, labels, m.group(2), label)
        out[m.group(3)] = v
    return out


def protocol_figures(values, proto):
    """open, opened, closed {reason or code}, dropped {reason}, resumed {result}."""
    opened = by_proto(values, "personad_connections_opened_total", proto)
    open_ = by_proto(values, "personad_connections", proto)
    assert list(opened) == [None] and list(open_) == [None], (proto, opened, open_)
    return (open_[None], opened[None],
            by_proto(values, "personad_connections_closed_total", proto,
                     "code" if proto == "websocket" else "reason"),
            by_proto(values, "personad_connections_dropped_total", proto, "reason"),
            by_proto(values, "personad_connections_resumed_total", proto, "result"))


def expect_protocol(values, proto, open_, opened, closed=None, dropped=None, resumed=None):
    """Exactly these figures for proto: every closed/dropped/resumed series
    not named is 0, and opened = open + closed + dropped."""
    got = protocol_figures(values, proto)
    want_c, want_d, want_r = closed or {}, dropped or {}, resumed or {}
    assert got[0] == open_ and got[1] == opened, \
        "%s: open %s opened %s, want %s and %s" % (proto, got[0], got[1], open_, opened)
    for what, have, want in (("closed", got[2], want_c), ("dropped", got[3], want_d),
                             ("resumed", got[4], want_r)):
        assert set(want) <= set(have), "%s %s: no series %s" % (proto, what, set(want) - set(have))
        for k, v in have.items():
            assert v == want.get(k, 0), "%s %s %s: %s, want %s (all: %s)" % (
                proto, what, k, v, want.get(k, 0), have)
    assert got[1] == got[0] + sum(got[2].values()) + sum(got[3].values()), (proto, got)


def no_counter_backwards(before, after, types):
    for key, v in before.items():
        if types.get(key[0]) == "counter":
            assert after[key] >= v, "%s%s went backwards: %s -> %s" % (key[0], key[1], v,
                                                                        after[key])


def wait_closed(d, clients, timeout=5.0):
    deadline = time.monotonic() + timeout
    for c in clients:
        while not server_side_closed(d, c.local_port):
            assert time.monotonic() < deadline, "connection of port %d still open" % c.local_port
            time.sleep(0.05)


def test_metrics_by_protocol():
    """N SSE streams and M WebSockets show as exactly that per protocol;
    their ends move them to closed and dropped under the right reasons: the
    peer going (curl killed, a socket closed, both protocols), a polite
    WebSocket close (1000), a worker stopped (SSE shutdown, WebSocket 1001),
    a worker killed (worker_exit), an SSE client that stops reading
    (write_deadline).  Resumes are counted as replayed or resync."""
    flags = ["--write-deadline=1", "--ring-size=8192", "--ping-period=30", "--pong-wait=60"]
    with Daemon(workers=2, flags=flags, seed={"a.json": persona_api("alpha")},
                expect_worker_deaths=True) as d:
        assert len(d.wait_workers(2)) == 2
        st, body, _ = d.http("GET", "/api/clusters")
        assert st == 200
        listing = json.loads(body)
        epoch, head = listing["epoch"], listing["seq"]
        url = "http://127.0.0.1:%d/api/events" % d.port
        curl = subprocess.Popen(["curl", "-sN", "-o", os.devnull, "--max-time", "120", url])
        try:
            sse = [SSE(d.port) for _ in range(3)]
            sse.append(SSE(d.port, headers=["Last-Event-ID: %s:%d" % (epoch, head)]))
            sse.append(SSE(d.port, target="/api/events?since=%d&epoch=%s" % (head, epoch)))
            sse.append(SSE(d.port, target="/api/events?since=0&epoch=another-run"))
            ws = [RawWS(d.port) for _ in range(2)]
            ws.append(RawWS(d.port, path="/ws?since=%d&epoch=%s" % (head, epoch)))
            ws.append(RawWS(d.port, path="/ws?since=%d&epoch=%s" % (head + 5, epoch)))
            ws.append(RawWS(d.port, path="/ws?since=0&epoch=another-run"))
            # Both workers get an SSE stream and a WebSocket that stay open
            # until the workers are stopped and killed (sse[0], ws[0] and
            # ws[1] end first), so each end below counts something.
            workers = d.wait_workers(2)
            for _ in range(40):
                have = {(conn_owner(d, c.local_port), kind)
                        for kind, cs in (("sse", sse[1:]), ("ws", ws[2:])) for c in cs}
                missing = [(p, k) for p in workers for k in ("sse", "ws") if (p, k) not in have]
                if not missing:
                    break
                if missing[0][1] == "sse":
                    sse.append(SSE(d.port))
                else:
                    ws.append(RawWS(d.port))
            assert not missing, missing
            n_sse, n_ws = len(sse) + 1, len(ws)
            wait_metrics(d, lambda v: sum(x for (n, _), x in v.items()
                                          if n == "personad_connections") == n_sse + n_ws,
                         "every stream counted (curl's too)")
            text = scrape(d)
            promtool(text, "SSE and WebSocket streams open")
            v0, types = parse(text)
            expect_protocol(v0, "websocket", n_ws, n_ws, resumed={"replayed": 1, "resync": 2})
            expect_protocol(v0, "sse", n_sse, n_sse, resumed={"replayed": 2, "resync": 1})

            # the peers go: curl killed, an SSE socket closed, a WebSocket's
            # socket closed without a close frame, a WebSocket closing politely
            curl.terminate()
            curl.wait(timeout=10)
            sse.pop(0).close()
            ws.pop(0).close()
            polite = ws.pop(0)
            polite.send_frame(CLOSE, struct.pack("!H", 1000))
            expect_close(polite, 1000, "polite close")
            polite.close()
            v1 = wait_metrics(d, lambda v: val(v, "personad_connections", '{protocol="sse"}') ==
                              n_sse - 2 and val(v, "personad_connections",
                                                '{protocol="websocket"}') == n_ws - 2,
                              "the peers' ends counted")
            expect_protocol(v1, "sse", n_sse - 2, n_sse, dropped={"peer_gone": 2},
                            resumed={"replayed": 2, "resync": 1})
            expect_protocol(v1, "websocket", n_ws - 2, n_ws, closed={"1000": 1},
                            dropped={"peer_gone": 1}, resumed={"replayed": 1, "resync": 2})
            no_counter_backwards(v0, v1, types)

            # SIGTERM one worker (its streams are closed: SSE "shutdown",
            # WebSocket 1001), then SIGKILL the other (worker_exit)
            assert sorted(d.wait_workers(2)) == sorted(workers)
            owner = {c: conn_owner(d, c.local_port) for c in sse + ws}
            assert all(o in workers for o in owner.values()), (owner, workers)
            stopped, killed = workers[0], workers[1]
            on = lambda pid, cs: [c for c in cs if owner[c] == pid]  # noqa: E731
            print("worker %d: %d SSE, %d WS; worker %d: %d SSE, %d WS" % (
                stopped, len(on(stopped, sse)), len(on(stopped, ws)),
                killed, len(on(killed, sse)), len(on(killed, ws))))
            os.kill(stopped, signal.SIGTERM)
            wait_closed(d, on(stopped, sse + ws))
            os.kill(killed, signal.SIGKILL)
            wait_closed(d, on(killed, sse + ws))
            for c in sse + ws:
                c.close()
            v2 = wait_metrics(d, lambda v: val(v, "personad_worker_restarts_total") == 2 and
                              all(val(v, "personad_worker_up", '{worker="%d"}' % w) == 1
                                  for w in (0, 1)), "both workers respawned", timeout=15)
            text = scrape(d)
            promtool(text, "after a stopped and a killed worker")
            v2, _ = parse(text)
            expect_protocol(v2, "sse", 0, n_sse,
                            closed={"shutdown": len(on(stopped, sse))},
                            dropped={"peer_gone": 2, "worker_exit": len(on(killed, sse))},
                            resumed={"replayed": 2, "resync": 1})
            expect_protocol(v2, "websocket", 0, n_ws,
                            closed={"1000": 1, "1001": len(on(stopped, ws))},
                            dropped={"peer_gone": 1, "worker_exit": len(on(killed, ws))},
                            resumed={"replayed": 1, "resync": 2})
            no_counter_backwards(v1, v2, types)
        finally:
            if curl.poll() is None:
                curl.kill()
                curl.wait(timeout=10)

        # an SSE client that stops reading: the write deadline drops it,
        # while a reading one on the same worker gets every event
        n_events = 700  # ~230 KB: more than the socket buffers hold
        stage = os.path.join(d.tmp, "stage")
        os.mkdir(stage)
        for i in range(n_events):
            with open(os.path.join(stage, "w%04d.json" % i), "w") as f:
                f.write('{"name": "%s", "spec": {"nodes": 1}}' % name(i))
        stuck = SSE(d.port, rcvbuf=4096)
        good = SSE(d.port)
        try:
            got = 0
            for start in range(0, n_events, 300):
                for i in range(start, min(n_events, start + 300)):
                    os.rename(os.path.join(stage, "w%04d.json" % i), d.path("w%04d.json" % i))
                while got < min(n_events, start + 300):
                    e = good.data_event(timeout=10)
                    got += 1
                    assert e["id"] == "%s:%d" % (epoch, head + got), (got, e)
            v3 = wait_metrics(d, lambda v: val(v, "personad_connections",
                                               '{protocol="sse"}') == 1,
                              "the stalled SSE client dropped")
            text = scrape(d)
            promtool(text, "after the stalled SSE client")
            v3, _ = parse(text)
            expect_protocol(v3, "sse", 1, n_sse + 2, closed={"shutdown": len(on(stopped, sse))},
                            dropped={"peer_gone": 2, "worker_exit": len(on(killed, sse)),
                                     "write_deadline": 1},
                            resumed={"replayed": 2, "resync": 1})
            expect_protocol(v3, "websocket", 0, n_ws,
                            closed={"1000": 1, "1001": len(on(stopped, ws))},
                            dropped={"peer_gone": 1, "worker_exit": len(on(killed, ws))},
                            resumed={"replayed": 1, "resync": 2})
            no_counter_backwards(v2, v3, types)
        finally:
            stuck.close()
            good.close()


def version(d):
    out = subprocess.run([d.argv()[0], "--version"], stdout=subprocess.PIPE, timeout=10)
    return out.stdout.decode().split()[-1]


if __name__ == "__main__":
    if PROMTOOL is None:
        print("SKIP: promtool not found (Debian: apt-get install prometheus)")
        sys.exit(77)
    run([test_metrics_under_load, test_scrape_while_master_stopped, test_metrics_by_protocol],
        timeout=180)
