#!/usr/bin/python3
"""Integration: the personas directory removed or replaced (issue 8, item 10).

While the directory is missing personad keeps serving the last state, says
so once in the log and on /healthz (still 200: {"status":"degraded",
"reason":"personas directory missing"}), and reopens the path with back-off
(100 ms doubling to 5 s).  Once a directory is back, it is watched and
rescanned, and the differences become events as for any rescan.
"""

import asyncio
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import (Daemon, expect, expect_silence, persona_api, recv, run,  # noqa: E402
                     ws_connect)

DEGRADED = {"status": "degraded", "reason": "personas directory missing"}
BACK_WITHIN = 7.0   # the back-off is at most 5 s


def healthz(d):
    st, body, _ = d.http("GET", "/healthz")
    return st, json.loads(body)


def wait_healthz(d, want, timeout):
    deadline = time.monotonic() + timeout
    while True:
        st, body = healthz(d)
        if st == 200 and body == want:
            return
        if time.monotonic() > deadline:
            raise AssertionError("/healthz is %d %r after %.1fs, want 200 %r"
                                 % (st, body, timeout, want))
        time.sleep(0.05)


def lines_with(d, *words):
    return [ln for ln in d.log_text().splitlines() if all(w in ln for w in words)]


def fill(path, personas):
    os.makedirs(path)
    for name, p in personas.items():
        with open(os.path.join(path, name + ".json"), "w") as f:
            json.dump(p, f)


async def events_until(ws, model, want, timeout):
    """Apply events (added/updated/deleted) to the set model until it equals
    want; every event must make sense for the model (no addition of a name
    present, no update or deletion of an absent one).  Returns the events."""
    seen = []
    deadline = time.monotonic() + timeout
    while model != want:
        left = deadline - time.monotonic()
        assert left > 0, "state %r, want %r; events %r" % (sorted(model), sorted(want), seen)
        msg = json.loads(await recv(ws, left))
        kind, name = msg["type"].split(".")[1], msg["data"]["name"]
        seen.append((kind, name))
        if kind == "added":
            assert name not in model, "added %s, already there; events %r" % (name, seen)
            model.add(name)
        elif kind == "deleted":
            assert name in model, "deleted %s, not there; events %r" % (name, seen)
            model.discard(name)
        else:
            assert name in model, "updated %s, not there; events %r" % (name, seen)
    return seen


async def test_removed_then_recreated():
    seed = {"a.json": persona_api("a"), "b.json": persona_api("b")}
    with Daemon(workers=2, seed=seed) as d:
        ws = await ws_connect(d)
        assert healthz(d) == (200, {"status": "ok"})
        shutil.rmtree(d.dir)
        wait_healthz(d, DEGRADED, 3.0)
        # The REST API still answers, from the last state it published (an
        # "rm -rf" removes the files first, which may or may not have been
        # seen as deletions before the directory went).
        st, obj = d.get_json("/api/clusters")
        assert st == 200 and {c["name"] for c in obj["clusters"]} <= {"a", "b"}, obj
        await asyncio.sleep(1.0)            # a few retries: still one line
        gone = lines_with(d, "personas directory", "serving the last known clusters")
        assert len(gone) == 1, "want one line saying the directory is gone: %r" % gone
        fill(d.dir, {"b": persona_api("b", nodes=7), "c": persona_api("c")})
        got = await events_until(ws, {"a", "b"}, {"b", "c"}, BACK_WITHIN)
        kept_b = ("deleted", "b") not in got
        if kept_b and ("updated", "b") not in got:
            await expect(ws, "updated", "b")    # updates come last in a batch
        wait_healthz(d, {"status": "ok"}, 1.0)
        st, b = d.get_json("/api/clusters/b")
        assert st == 200 and b["spec"]["nodes"] == 7, b
        back = lines_with(d, "personas directory", "is back; rescanning")
        assert len(back) == 1, "want one line saying the directory is back: %r" % back
        # Watched again: a change is an event (and the next one).
        d.write("d.json", persona_api("d"))
        await expect(ws, "added", "d")
        print("after rm -rf: %s; events when back: %r"
              % ("the state was kept" if kept_b else "deletions were seen", got))
        await ws.close()


async def test_moved_away_then_replaced():
    seed = {"a.json": persona_api("a"), "b.json": persona_api("b"), "c.json": persona_api("c")}
    with Daemon(workers=2, seed=seed) as d:
        ws = await ws_connect(d)
        old = d.dir + ".old"
        os.rename(d.dir, old)
        wait_healthz(d, DEGRADED, 3.0)
        assert d.cluster_names() == ["a", "b", "c"], "state not kept: %r" % d.cluster_names()
        # The directory that moved away is not the personas directory any more.
        with open(os.path.join(old, "x.json"), "w") as f:
            json.dump(persona_api("x"), f)
        await expect_silence(ws, 0.5)
        # Its replacement, prepared elsewhere and renamed into place.
        new = d.dir + ".new"
        fill(new, {"a": persona_api("a"), "b": persona_api("b", nodes=9),
                   "d": persona_api("d")})
        os.rename(new, d.dir)
        for kind, name in (("deleted", "c"), ("added", "d"), ("updated", "b")):
            await expect(ws, kind, name, timeout=BACK_WITHIN)
        wait_healthz(d, {"status": "ok"}, 1.0)
        assert d.cluster_names() == ["a", "b", "d"], d.cluster_names()
        with open(os.path.join(old, "y.json"), "w") as f:
            json.dump(persona_api("y"), f)
        d.write("e.json", persona_api("e"))
        await expect(ws, "added", "e", what="the new directory is watched, the old one not")
        back = lines_with(d, "personas directory", "is back; rescanning")
        assert len(back) == 1, "want one line saying the directory is back: %r" % back
        shutil.rmtree(old)
        await ws.close()


async def test_replaced_in_place():
    """mv dir dir.old; mkdir dir: the new, empty directory is picked up, and
    files written into it afterwards are events."""
    with Daemon(workers=1, seed={"a.json": persona_api("a")}) as d:
        ws = await ws_connect(d)
        old = d.dir + ".old"
        os.rename(d.dir, old)
        os.mkdir(d.dir)
        await expect(ws, "deleted", "a", timeout=BACK_WITHIN)
        wait_healthz(d, {"status": "ok"}, 2.0)
        d.write("n.json", persona_api("n"))
        await expect(ws, "added", "n")
        shutil.rmtree(old)
        await ws.close()


if __name__ == "__main__":
    run([test_removed_then_recreated, test_moved_away_then_replaced, test_replaced_in_place])
