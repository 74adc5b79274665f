#!/usr/bin/python3
"""Integration: /metrics counts Server-Sent Events streams and replays
(issue 11 with issue 13).  An SSE stream is an open connection of protocol
"sse", not "websocket"; its 200 is an HTTP response like any other; a client
that goes away is a drop of an SSE stream; events replayed from the shared
ring are event messages written like live ones."""

import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import Daemon, persona_api, run  # noqa: E402
from test_sse import SSE  # noqa: E402

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')
PROMTOOL = shutil.which("promtool")


def scrape(d):
    st, body, _ = d.http("GET", "/metrics")
    assert st == 200, "GET /metrics -> %d" % st
    text = body.decode()
    if PROMTOOL is not None:
        p = subprocess.run([PROMTOOL, "check", "metrics"], input=body, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
        assert p.returncode == 0 and p.stdout == b"", p.stdout.decode()
    values = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, "bad sample line %r" % line
        values[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return values


def val(values, name, labels=""):
    assert (name, labels) in values, "no series %s%s" % (name, labels)
    return values[(name, labels)]


def wait_for(d, pred, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        v = scrape(d)
        if pred(v):
            return v
        assert time.monotonic() < deadline, "%s; last scrape %r" % (
            what, {k: x for k, x in v.items() if "connections" in k[0]})
        time.sleep(0.05)


def test_replayed_events_counted_as_frames():
    """A replay from the shared ring (since=0, every event older than the
    worker's window) counts its events in personad_stream_frames_written_total
    as live events are counted."""
    n = 20
    with Daemon(workers=1) as d:
        for i in range(n):
            d.write("p%02d.json" % i, persona_api("p%02d" % i))
        deadline = time.monotonic() + 10
        while True:
            _, lst = d.get_json("/api/clusters")
            if lst["seq"] >= n:
                break
            assert time.monotonic() < deadline, "the list reached seq %d" % lst["seq"]
            time.sleep(0.05)
        head, epoch = lst["seq"], lst["epoch"]
        v0 = scrape(d)
        c = SSE(d.port, "/api/events?since=0&epoch=" + epoch)
        try:
            for seq in range(1, head + 1):
                e = c.data_event()
                assert e["id"] == "%s:%d" % (epoch, seq), (seq, e)
            v1 = wait_for(d, lambda v: val(v, "personad_stream_frames_written_total") -
                          val(v0, "personad_stream_frames_written_total") >= head,
                          "%d replayed events counted as frames written" % head, timeout=5)
            assert val(v1, "personad_stream_frames_written_total") - \
                val(v0, "personad_stream_frames_written_total") == head
        finally:
            c.close()


if __name__ == "__main__":
    run([test_replayed_events_counted_as_frames], timeout=90.0)
