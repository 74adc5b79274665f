#!/usr/bin/python3
"""Integration: Server-Sent Events on GET /api/events, with real clients
(curl -N, a raw-socket client): the exact response head, retry, events with
their id and seq, the position rules (Last-Event-ID, since/epoch, 400s, the
header winning, resync), ping comments, the write deadline and the queue cap,
405 for other methods, shutdown, and the memory of idle streams."""

import json
import os
import re
import resource
import select
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import (Daemon, conn_owner, ev, inode_owners, persona_api, run,  # noqa: E402
                     server_side_closed, tcp_sockets)

HEAD = (b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: text/event-stream\r\n"
        b"Cache-Control: no-cache\r\n"
        b"Connection: close\r\n"
        b"\r\n")
EPOCH_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def with_seq(payload, seq):
    """The seed's JSON with ,"seq":N before the closing brace."""
    assert payload.endswith("}")
    return payload[:-1] + ',"seq":%d}' % seq


class SSE:
    """A raw-socket SSE client: one request, then events parsed as the
    WHATWG rules say (field: value lines, comments, an empty line ends an
    event)."""

    def __init__(self, port, target="/api/events", headers=(), rcvbuf=None, timeout=5.0,
                 read_head=True):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.local_port = self.sock.getsockname()[1]
        req = "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: text/event-stream\r\n" % (
            target, port)
        for h in headers:
            req += h + "\r\n"
        self.sock.sendall((req + "\r\n").encode())
        self.buf = b""
        self.comments = []
        self.head = None
        if read_head:
            self.read_head()

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("timed out reading the stream; have %r" % self.buf[-200:])
        self.sock.settimeout(left)
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("stream ended; have %r" % self.buf[-200:])
        self.buf += data

    def read_head(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            self._fill(deadline)
        i = self.buf.index(b"\r\n\r\n") + 4
        self.head, self.buf = self.buf[:i], self.buf[i:]
        return self.head

    def status(self):
        return int(self.head.split(b" ", 2)[1])

    def line(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            self._fill(deadline)
        i = self.buf.index(b"\n")
        ln, self.buf = self.buf[:i], self.buf[i + 1:]
        return ln.decode()

    def event(self, timeout=5.0):
        """The next dispatched event's fields {"id", "data", "retry"}; comment
        lines are collected in self.comments; an empty event (only retry or
        comments) is returned too, as such."""
        deadline = time.monotonic() + timeout
        fields = {}
        while True:
            ln = self.line(max(0.01, deadline - time.monotonic()))
            if ln == "":
                if fields:
                    return fields
                continue
            if ln.startswith(":"):
                self.comments.append(ln)
                continue
            name, _, value = ln.partition(":")
            if value.startswith(" "):
                value = value[1:]
            fields[name] = fields[name] + "\n" + value if name in fields else value

    def data_event(self, timeout=5.0):
        """The next event with data (skipping retry-only ones)."""
        while True:
            e = self.event(timeout)
            if "data" in e:
                return e

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def body_error(port, target, headers=()):
    """Status and JSON body of a request answered with a complete response."""
    c = SSE(port, target, headers)
    try:
        st = c.status()
        m = re.search(rb"Content-Length: (\d+)", c.head)
        n = int(m.group(1)) if m else 0
        deadline = time.monotonic() + 5
        while len(c.buf) < n:
            c._fill(deadline)
        return st, json.loads(c.buf[:n]) if n else None
    finally:
        c.close()


def unix_sockets_of(pid):
    """The inodes of pid's unix-domain sockets."""
    with open("/proc/net/unix") as f:
        next(f)
        unix = {int(ln.split()[6]) for ln in f if len(ln.split()) > 6}
    return sorted(i for i in inode_owners([pid]) if i in unix)


def first_epoch(d):
    """The run's epoch as the stream names it (the id of a first event)."""
    c = SSE(d.port)
    try:
        d.write("epoch-probe.json", persona_api("epoch-probe"))
        e = c.data_event()
        epoch, _, seq = e["id"].partition(":")
        assert EPOCH_RE.match(epoch), e
        return epoch, int(seq)
    finally:
        c.close()


def test_curl_gets_retry_then_events():
    """curl -N sees the retry line first, then each change as an event whose
    id is EPOCH:SEQ and whose data is the seed's JSON with its seq."""
    with Daemon(workers=1) as d:
        p = subprocess.Popen(["curl", "-sN", "--max-time", "20", "http://127.0.0.1:%d/api/events"
                              % d.port], stdout=subprocess.PIPE)
        try:
            out = b""
            deadline = time.monotonic() + 5

            def need(pred):
                nonlocal out
                while not pred(out):
                    assert time.monotonic() < deadline, "curl got only %r" % out
                    r, _, _ = select.select([p.stdout], [], [], 0.1)
                    if r:
                        chunk = os.read(p.stdout.fileno(), 65536)
                        assert chunk, "curl's stream ended: %r" % out
                        out += chunk

            need(lambda o: b"retry: 5000\n" in o)
            assert out.startswith(b"retry: 5000\n"), out
            d.write("a.json", persona_api("alpha"))
            need(lambda o: o.count(b"\n\n") >= 2)
            d.write("a.json", persona_api("alpha", nodes=5))
            need(lambda o: o.count(b"\n\n") >= 3)  # read before the file goes
            d.remove("a.json")
            need(lambda o: o.count(b"\n\n") >= 4)
            blocks = [b for b in out.decode().split("\n\n") if b]
            assert blocks[0] == "retry: 5000", blocks
            events = blocks[1:4]
            kinds = ["added", "updated", "deleted"]
            epochs = set()
            for i, (blk, kind) in enumerate(zip(events, kinds)):
                lines = blk.split("\n")
                assert len(lines) == 2, lines
                assert lines[0].startswith("id: ") and lines[1].startswith("data: "), lines
                epoch, _, seq = lines[0][4:].partition(":")
                assert EPOCH_RE.match(epoch), lines
                assert int(seq) == i + 1, lines
                epochs.add(epoch)
                assert lines[1][6:] == with_seq(ev(kind, "alpha"), i + 1), lines
            assert len(epochs) == 1, epochs
        finally:
            p.kill()
            p.wait()


def test_response_head_exact():
    """The response head, byte for byte: 200, text/event-stream, no-cache,
    no Content-Length, no chunking; then the retry line.  MHD never answers
    for the stream (no Date header, none of its own lines), the socket
    outlives MHD's side (events arrive after it let go), and nothing is logged
    about the hand-off's refusal."""
    with Daemon(workers=1, flags=["-v"]) as d:
        (w,) = d.worker_pids()
        unix_before = unix_sockets_of(w)
        c = SSE(d.port)
        more = []
        try:
            assert c.head == HEAD, c.head
            assert c.line() == "retry: 5000", c.buf
            more = [SSE(d.port) for _ in range(5)]
            # MHD has closed its side (the placeholders are unix sockets): the
            # worker holds no more of them than before, and one TCP socket per
            # stream.
            deadline = time.monotonic() + 3
            while unix_sockets_of(w) != unix_before:
                assert time.monotonic() < deadline, (unix_before, unix_sockets_of(w))
                time.sleep(0.05)
            own = inode_owners([w])
            socks = tcp_sockets(d.port)
            for s in [c] + more:
                assert socks[s.local_port][1] in own, "stream not held by the worker"
            held = [ino for ino in own if ino in {v[1] for v in socks.values()}]
            assert len(held) == 6, (len(held), "one server socket per stream")
            d.write("h.json", persona_api("head"))
            for s in [c] + more:
                e = s.data_event()
                assert e["data"] == with_seq(ev("added", "head"), 1), e
                assert "id" in e and e["id"].endswith(":1"), e
        finally:
            for s in [c] + more:
                s.close()
        log = d.log_text()
        assert "libmicrohttpd" not in log, log


def test_position_bad_input_is_400():
    """Malformed positions get a 400 JSON error before anything is streamed;
    a bad query beside a Last-Event-ID is not looked at (the header wins)."""
    with Daemon(workers=1) as d:
        bad_queries = ["since=1", "epoch=abc", "since=&epoch=abc", "since=1&epoch=",
                       "since=-1&epoch=abc", "since=+1&epoch=abc", "since=abc&epoch=abc",
                       "since=1e3&epoch=abc", "since=%31&epoch=abc", "since=1&epoch=a.b",
                       "since=1&epoch=" + "a" * 33, "since=" + "1" * 21 + "&epoch=abc",
                       "since=18446744073709551616&epoch=abc", "since&epoch=abc"]
        for q in bad_queries:
            st, body = body_error(d.port, "/api/events?" + q)
            assert st == 400, (q, st, body)
            assert isinstance(body.get("error"), str) and body["error"], (q, body)
        for q in ["since=1", "epoch=abc", "since=1&foo=bar"]:
            st, body = body_error(d.port, "/api/events?" + q)
            assert (st, body) == (400, {"error": "since and epoch go together"}), (q, st, body)
        bad_ids = ["nocolon", "abc:", ":5", "abc:x", "a.b:5", "abc:-1", "abc:5:6",
                   "a" * 33 + ":1", "abc:" + "9" * 21]
        for i in bad_ids:
            st, body = body_error(d.port, "/api/events", ["Last-Event-ID: " + i])
            assert st == 400, (i, st, body)
            st, body = body_error(d.port, "/api/events?since=0&epoch=abc",
                                  ["Last-Event-ID: " + i])
            assert st == 400, ("header wins, even a bad one", i, st, body)
        # A good header with a bad query: the header wins, the query is ignored.
        c = SSE(d.port, "/api/events?since=banana", ["Last-Event-ID: abc:0"])
        try:
            assert c.status() == 200, c.head
        finally:
            c.close()
        # Unknown parameters are ignored.
        c = SSE(d.port, "/api/events?foo=bar&x")
        try:
            assert c.status() == 200, c.head
        finally:
            c.close()


def test_position_resync_and_head():
    """A position of this run at the head continues without a word; another
    epoch or a future seq gets a resync event first (id EPOCH:HEAD), then the
    live stream from HEAD+1.  The header wins over the query."""
    with Daemon(workers=2) as d:
        epoch, head = first_epoch(d)
        assert head == 1

        def expect_resync(c, what):
            e = c.data_event()
            assert e["id"] == "%s:%d" % (epoch, head), (what, e)
            assert json.loads(e["data"]) == {"type": "resync",
                                             "data": {"seq": head, "epoch": epoch}}, (what, e)
            assert e["data"] == '{"type":"resync","data":{"seq":%d,"epoch":"%s"}}' % (
                head, epoch), (what, e)

        cases = [
            ("other epoch (header)", "/api/events", ["Last-Event-ID: x%s:%d" % (epoch, head)],
             True),
            ("future (header)", "/api/events", ["Last-Event-ID: %s:%d" % (epoch, head + 5)], True),
            ("other epoch (query)", "/api/events?since=%d&epoch=zz" % head, [], True),
            ("future (query)", "/api/events?since=%d&epoch=%s" % (head + 1, epoch), [], True),
            ("at head (header)", "/api/events", ["Last-Event-ID: %s:%d" % (epoch, head)], False),
            ("at head (query)", "/api/events?since=%d&epoch=%s" % (head, epoch), [], False),
            ("header wins over a good query", "/api/events?since=%d&epoch=%s" % (head, epoch),
             ["Last-Event-ID: other:%d" % head], True),
            ("header at head wins over a bad position",
             "/api/events?since=%d&epoch=other" % head,
             ["Last-Event-ID: %s:%d" % (epoch, head)], False),
            ("no position", "/api/events", [], False),
        ]
        clients = []
        try:
            for what, target, hdrs, resync in cases:
                c = SSE(d.port, target, hdrs)
                assert c.status() == 200, (what, c.head)
                clients.append((what, c, resync))
            for what, c, resync in clients:
                if resync:
                    expect_resync(c, what)
            d.write("b.json", persona_api("beta"))
            for what, c, resync in clients:
                e = c.data_event()
                assert e["id"] == "%s:%d" % (epoch, head + 1), (what, e)
                assert e["data"] == with_seq(ev("added", "beta"), head + 1), (what, e)
        finally:
            for _, c, _ in clients:
                c.close()


def test_replay_then_live():
    """A position of this run inside the ring: events N+1 ... head in order,
    then the live stream, no gap, no duplicate; from the query (list+watch)
    and from a Last-Event-ID (an EventSource reconnect)."""
    with Daemon(workers=2) as d:
        epoch, _ = first_epoch(d)
        head = 1

        def publish(name):
            nonlocal head
            d.write(name + ".json", persona_api(name))
            head += 1
            deadline = time.monotonic() + 5
            while d.get_json("/api/clusters")[1]["seq"] < head:
                assert time.monotonic() < deadline
                time.sleep(0.02)

        for i in range(2, 8):
            publish("r%d" % i)
        for since, target, hdrs in ((3, "/api/events?since=3&epoch=" + epoch, []),
                                    (5, "/api/events?since=1&epoch=other",
                                     ["Last-Event-ID: %s:5" % epoch])):
            c = SSE(d.port, target, hdrs)
            try:
                for seq in range(since + 1, head + 1):
                    e = c.data_event()
                    assert e["id"] == "%s:%d" % (epoch, seq), (target, seq, e)
                    assert json.loads(e["data"])["seq"] == seq, e
                name = "live%d" % since
                publish(name)
                e = c.data_event()
                assert e["id"] == "%s:%d" % (epoch, head), e
                assert e["data"] == with_seq(ev("added", name), head), e
            finally:
                c.close()


def test_epoch_same_on_every_worker():
    """Every worker names the same epoch; a new run of the daemon another."""
    with Daemon(workers=2) as d:
        workers = set(d.worker_pids())
        seen = {}
        clients = []
        try:
            for _ in range(40):
                c = SSE(d.port)
                clients.append(c)
                seen.setdefault(conn_owner(d, c.local_port), c)
                if set(seen) >= workers:
                    break
            assert set(seen) >= workers, "connections did not reach both workers: %s" % seen
            d.write("e.json", persona_api("eps"))
            ids = {w: c.data_event()["id"] for w, c in seen.items() if w in workers}
            assert len(set(ids.values())) == 1, ids
            epoch = next(iter(ids.values())).split(":")[0]
        finally:
            for c in clients:
                c.close()
    with Daemon(workers=1) as d2:
        epoch2, _ = first_epoch(d2)
    assert epoch2 != epoch, (epoch, epoch2)


def test_ping_comments():
    """A comment line every --ping-period, between events only."""
    with Daemon(workers=1, flags=["--ping-period=0.2"]) as d:
        c = SSE(d.port)
        try:
            t0 = time.monotonic()
            pings = 0
            while time.monotonic() - t0 < 1.5:
                ln = c.line()
                if ln == ": ping":
                    pings += 1
                else:
                    assert ln in ("retry: 5000", ""), ln
            assert pings >= 4, "only %d pings in 1.5 s with --ping-period=0.2" % pings
            d.write("p.json", persona_api("pinged"))
            e = c.data_event()
            assert e["data"] == with_seq(ev("added", "pinged"), 1), e
        finally:
            c.close()


NAME_PAD = "s" * 240
BURST = 300  # ~100 KB of SSE events


def stage_events(d, n):
    """n persona files in a sibling directory, to move in one rename each."""
    stage = os.path.join(d.tmp, "stage")
    os.mkdir(stage)
    for i in range(n):
        with open(os.path.join(stage, "w%05d.json" % i), "w") as f:
            f.write('{"name": "%s-%05d", "spec": {"nodes": 1}}' % (NAME_PAD, i))
    return stage


def stalled_client_is_closed(flags, n_events, limit_s):
    """A client that stops reading (small receive buffer) is closed by the
    server within limit_s after the burst, while a reading one on the same
    worker gets every event.  The log and a /metrics scrape."""
    with Daemon(workers=1, flags=flags) as d:
        stage = stage_events(d, n_events)
        stuck = SSE(d.port, rcvbuf=4096)
        good = SSE(d.port)
        try:
            got = 0
            # Bursts well below the cap, each read by the good client before
            # the next (a reader 256 KiB behind is too slow, by contract).
            for start in range(0, n_events, BURST):
                for i in range(start, min(n_events, start + BURST)):
                    os.rename(os.path.join(stage, "w%05d.json" % i),
                              d.path("w%05d.json" % i))
                while got < min(n_events, start + BURST):
                    e = good.data_event(timeout=10)
                    got += 1
                    assert e["id"].endswith(":%d" % got), (got, e)
            t_end = time.monotonic()
            while not server_side_closed(d, stuck.local_port):
                assert time.monotonic() - t_end < limit_s, (
                    "stalled SSE client still open %.1fs after the burst: %s" %
                    (limit_s, tcp_sockets(d.port).get(stuck.local_port)))
                time.sleep(0.1)
            # The stream counts as open while it is closing (its goodbye and
            # the linger for it), a little after its socket has gone: scrape
            # until the gauge has let it go, at most 5 s.
            deadline = time.monotonic() + 5
            while True:
                st, metrics, _ = d.http("GET", "/metrics")
                assert st == 200, st
                if ('personad_connections{protocol="sse"} 1' in metrics.decode().splitlines()
                        or time.monotonic() > deadline):
                    return d.log_text(), metrics.decode()
                time.sleep(0.1)
        finally:
            stuck.close()
            good.close()


def expect_sse_ends(metrics, **want):
    """/metrics shows the stalled client's end under its reason (closed:
    too_slow, shutdown; dropped: the rest) and nothing else: two SSE streams
    opened, the good one still open, no WebSocket."""
    got = {}
    for m in re.finditer(r'^personad_connections_(closed|dropped)_total\{protocol="sse",'
                         r'reason="([a-z_]+)"\} (\d+)$', metrics, re.M):
        got[m.group(2)] = int(m.group(3))
    assert "too_slow" in got and "write_deadline" in got, metrics
    assert {k: v for k, v in got.items() if v} == want, (got, want)
    for line in ('personad_connections_opened_total{protocol="sse"} 2',
                 'personad_connections{protocol="sse"} 1',
                 'personad_connections_opened_total{protocol="websocket"} 0'):
        assert line in metrics.splitlines(), (line, metrics)


def test_write_deadline_closes_stalled_client():
    # ~230 KB: more than the socket buffers hold, less than they and the
    # 256 KiB cap do, so only the write deadline can close it.
    log, metrics = stalled_client_is_closed(["--write-deadline=1", "--ring-size=8192"], 700, 6.0)
    assert "write deadline exceeded, dropped" in log, log[-2000:]
    assert "client too slow" not in log, log[-2000:]
    expect_sse_ends(metrics, write_deadline=1)


def test_queue_cap_closes_stalled_client():
    # A long write deadline: only the 256 KiB cap can close it.
    log, metrics = stalled_client_is_closed(["--write-deadline=60", "--ring-size=32768", "-v"],
                                            2000, 10.0)
    assert "closing: client too slow" in log, log[-2000:]
    assert "write deadline exceeded" not in log, log[-2000:]
    expect_sse_ends(metrics, too_slow=1)


def test_other_methods_405():
    with Daemon(workers=1) as d:
        for m in ("HEAD", "POST", "PUT", "DELETE", "OPTIONS"):
            st, body, r = d.http(m, "/api/events")
            assert st == 405, (m, st)
            assert r.getheader("Allow") == "GET", (m, r.getheaders())


def test_shutdown_ends_streams():
    """SIGTERM: the stream says why in a comment and ends (EOF)."""
    d = Daemon(workers=1).start()
    try:
        c = SSE(d.port)
        assert c.line() == "retry: 5000"
        d.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 4
        rest = b""
        while True:
            assert time.monotonic() < deadline, rest
            try:
                c._fill(deadline)
            except EOFError:
                break
        rest = c.buf
        assert b": closing: server shutting down\n" in rest, rest
        c.close()
    finally:
        d.stop()
        d.cleanup()


def vm_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def test_idle_streams_are_cheap():
    """2000 idle SSE streams cost at most 8 KB of worker RSS each (MHD's pool
    and connection are released at the hand-off; what stays is the set's
    connection), all of them live; a client that leaves is closed."""
    n = 2000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < n + 200:
        print("SKIP: RLIMIT_NOFILE hard limit %d is too low" % hard)
        sys.exit(77)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, n + 200), hard))
    with Daemon(workers=1) as d:
        (w,) = d.worker_pids()
        with open("/proc/%d/maps" % w) as f:
            if "libasan" in f.read():
                print("SKIP: memory figures need a build without sanitizers")
                return
        warm = [SSE(d.port) for _ in range(50)]
        time.sleep(0.3)
        before = vm_rss_kb(w)
        clients = []
        try:
            for _ in range(n):
                clients.append(SSE(d.port, read_head=False))
            for c in clients:
                c.read_head()
                assert c.head == HEAD, c.head
            time.sleep(1.5)  # MHD's cleanup and the worker's malloc_trim after churn
            after = vm_rss_kb(w)
            per_conn = (after - before) * 1024 / n
            print("worker RSS %d KB -> %d KB: %.0f bytes per idle SSE connection"
                  % (before, after, per_conn))
            assert per_conn <= 8192, "%.0f bytes per idle SSE connection" % per_conn
            d.write("idle.json", persona_api("idle"))
            for c in clients[:: n // 20]:
                e = c.data_event()
                assert e["data"] == with_seq(ev("added", "idle"), 1), e
            gone = clients.pop()
            port = gone.local_port
            gone.close()
            deadline = time.monotonic() + 3
            while not server_side_closed(d, port):
                assert time.monotonic() < deadline, "server kept a closed client's stream"
                time.sleep(0.05)
        finally:
            for c in clients + warm:
                c.close()


if __name__ == "__main__":
    run([test_curl_gets_retry_then_events, test_response_head_exact,
         test_position_bad_input_is_400, test_position_resync_and_head,
         test_replay_then_live, test_epoch_same_on_every_worker, test_ping_comments,
         test_write_deadline_closes_stalled_client, test_queue_cap_closes_stalled_client,
         test_other_methods_405, test_shutdown_ends_streams, test_idle_streams_are_cheap],
        timeout=120.0)
