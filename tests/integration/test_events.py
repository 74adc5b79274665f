#!/usr/bin/python3
"""Integration: persona directory -> /ws events, byte-exact, and the REST list.

Every "emits nothing" check is proven by then making a real change and
requiring that change's event to be the very next message.
"""

import asyncio
import json
import os
import sys

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import (Daemon, ev, event_payloads, expect, expect_silence, persona_api,  # noqa: E402
                     persona_k8s, recv, run, ws_connect)

SEED = {"alpha.json": persona_k8s("alpha"), "bravo.json": persona_api("bravo")}


async def probe(d, ws, counter=[0]):
    """Make a real change (a fresh cluster) and require it as next message."""
    counter[0] += 1
    name = "probe-%d" % counter[0]
    d.write(name + ".json", persona_api(name))
    await expect(ws, "added", name, what="the probe change must be the next message")
    return name


def warned_about(d, fname, since=0, timeout=3.0):
    return d.wait_log(lambda ln: fname in ln and "warn" in ln.lower(), timeout, since)


async def test_initial_scan_silent_and_rest():
    with Daemon(workers=2, seed=SEED) as d:
        assert d.cluster_names() == ["alpha", "bravo"], d.cluster_names()
        st, obj = d.get_json("/api/clusters/alpha")
        assert st == 200 and obj["name"] == "alpha", (st, obj)
        assert obj["spec"] == SEED["alpha.json"]["spec"], obj
        ws = await ws_connect(d)
        try:
            await expect_silence(ws, 0.5)   # the initial scan is the baseline
            await probe(d, ws)
        finally:
            await ws.close()


async def test_added_updated_deleted_exact():
    with Daemon(workers=2, seed=SEED) as d:
        ws = await ws_connect(d)
        try:
            d.write("charlie.json", persona_k8s("charlie"))
            got = await recv(ws)
            assert got == '{"type":"cluster.added","data":{"name":"charlie"}}', got
            d.write("charlie.json", persona_k8s("charlie", nodes=5))
            got = await recv(ws)
            assert got == '{"type":"cluster.updated","data":{"name":"charlie"}}', got
            st, obj = d.get_json("/api/clusters/charlie")
            assert st == 200 and len(obj["spec"]["nodes"]) == 5, obj
            d.write("charlie.json", persona_k8s("charlie", nodes=5, phase="Degraded"))
            await expect(ws, "updated", "charlie", what="status change")
            d.remove("charlie.json")
            got = await recv(ws)
            assert got == '{"type":"cluster.deleted","data":{"name":"charlie"}}', got
            st, obj = d.get_json("/api/clusters/charlie")
            assert st == 404 and obj == {"error": "cluster not found"}, (st, obj)
            # API shape works the same way
            d.write("delta.json", persona_api("delta"))
            await expect(ws, "added", "delta")
            d.write("delta.json", persona_api("delta", nodes=9))
            await expect(ws, "updated", "delta")
            # renamed away (file no longer *.json) -> deleted
            d.rename("delta.json", "delta.json.old")
            await expect(ws, "deleted", "delta", what="file renamed away")
            # renamed back -> added
            d.rename("delta.json.old", "delta.json")
            await expect(ws, "added", "delta", what="file renamed back")
            assert d.cluster_names() == ["alpha", "bravo", "delta"], d.cluster_names()
            # metadata.name wins over name
            d.write("both.json", {"metadata": {"name": "meta-name"}, "name": "plain-name",
                                  "spec": {}, "status": {}})
            await expect(ws, "added", "meta-name", what="metadata.name before name")
            # a client that connects now gets no replay of earlier events
            late = await ws_connect(d)
            try:
                await expect_silence(late, 0.3)
                d.remove("both.json")
                await expect(late, "deleted", "meta-name", what="late client")
                await expect(ws, "deleted", "meta-name")
            finally:
                await late.close()
        finally:
            await ws.close()


async def test_name_escaping():
    names = ['q"uote', "back\\slash", 'both\\"x', "caf\u00e9-\u65e5\u672c-\U0001F600",
             "sp ace/slash"]
    with Daemon(workers=2) as d:
        ws = await ws_connect(d)
        try:
            for i, n in enumerate(names):
                d.write("esc-%d.json" % i, persona_k8s(n))
                got = await recv(ws)
                assert got in event_payloads("added", n), \
                    "name %r: got %r, want one of %r" % (n, got, event_payloads("added", n))
            # REST finds them by percent-encoded name
            from urllib.parse import quote
            for n in names:
                st, obj = d.get_json("/api/clusters/" + quote(n, safe=""))
                assert st == 200 and obj["name"] == n, "GET /api/clusters/%s -> %d %r" % (
                    quote(n, safe=""), st, obj)
            # quotes and backslash have exactly one compact spelling
            assert ev("added", 'q"uote') == '{"type":"cluster.added","data":{"name":"q\\"uote"}}'
            for i, n in enumerate(names):
                d.remove("esc-%d.json" % i)
                got = await recv(ws)
                assert got in event_payloads("deleted", n), (n, got)
            assert d.cluster_names() == [], d.cluster_names()
        finally:
            await ws.close()


async def test_rename_name_field():
    with Daemon(workers=2, seed=SEED) as d:
        ws = await ws_connect(d)
        try:
            d.write("alpha.json", persona_k8s("alpha2"))
            await expect(ws, "deleted", "alpha", what="name A->B: first deleted A")
            await expect(ws, "added", "alpha2", what="name A->B: then added B")
            d.write("bravo.json", persona_api("bravo-renamed"))
            await expect(ws, "deleted", "bravo")
            await expect(ws, "added", "bravo-renamed")
            assert d.cluster_names() == ["alpha2", "bravo-renamed"], d.cluster_names()
        finally:
            await ws.close()


async def test_identical_and_reformatted_emit_nothing():
    with Daemon(workers=2, seed=SEED) as d:
        ws = await ws_connect(d)
        try:
            a = SEED["alpha.json"]
            d.write("alpha.json", a)                               # identical bytes
            await asyncio.sleep(0.3)
            d.write("alpha.json", a, indent=4)                     # reformatted
            await asyncio.sleep(0.3)
            d.write("alpha.json", a, indent=1, sort_keys=True)     # key order changed
            await asyncio.sleep(0.3)
            reordered = dict(reversed(list(a.items())))
            d.write("alpha.json", reordered)
            await asyncio.sleep(0.3)
            os.utime(d.path("alpha.json"))                         # touch only
            await asyncio.sleep(0.3)
            await probe(d, ws)
            # a real change to the same file is reported
            d.write("alpha.json", persona_k8s("alpha", nodes=7), indent=2)
            await expect(ws, "updated", "alpha")
        finally:
            await ws.close()


async def test_bad_files():
    with Daemon(workers=2, seed=SEED) as d:
        ws = await ws_connect(d)
        try:
            since = len(d.log_text())
            d.write("broken.json", '{"name": "broken", "spec": ')       # invalid JSON
            assert warned_about(d, "broken.json", since), \
                "no warning naming broken.json; log:\n" + d.log_text()[since:]
            bad = {
                "array.json": "[1, 2, 3]",
                "noname.json": json.dumps({"spec": {}, "status": {}}),
                "emptyname.json": json.dumps({"name": "", "spec": {}}),
                "numname.json": json.dumps({"metadata": {"name": 42}, "spec": {}}),
                "longname.json": json.dumps({"name": "x" * 254, "spec": {}}),
                "huge.json": json.dumps({"name": "huge", "spec": {"pad": "p" * (1 << 20)}}),
            }
            for f, content in bad.items():
                d.write(f, content)
            for f in bad:
                assert warned_about(d, f, since), \
                    "no warning naming %s; log:\n%s" % (f, d.log_text()[since:])
            await probe(d, ws)
            names = d.cluster_names()
            for n in ("broken", "huge", "x" * 254):
                assert n not in names, names
            # a name of exactly 253 bytes is fine
            d.write("maxname.json", json.dumps({"name": "n" * 253, "spec": {}}))
            await expect(ws, "added", "n" * 253)
        finally:
            await ws.close()


async def test_file_turns_bad_keeps_state():
    with Daemon(workers=2, seed=SEED) as d:
        ws = await ws_connect(d)
        try:
            st, before = d.get_json("/api/clusters/alpha")
            assert st == 200
            since = len(d.log_text())
            d.write("alpha.json", '{"metadata": {"name": "alpha"}, "spec": {')   # turns bad
            assert warned_about(d, "alpha.json", since), "no warning naming alpha.json"
            await probe(d, ws)                          # no deleted/updated for alpha
            st, during = d.get_json("/api/clusters/alpha")
            assert st == 200 and during == before, "bad file changed state: %r" % during
            assert "alpha" in d.cluster_names()
            d.write("alpha.json", persona_k8s("alpha", nodes=4))      # fixed, new content
            await expect(ws, "updated", "alpha", what="fixed file")
            st, after = d.get_json("/api/clusters/alpha")
            assert len(after["spec"]["nodes"]) == 4, after
            # bad again, then removed -> deleted
            d.write("alpha.json", "not json at all")
            await probe(d, ws)
            d.remove("alpha.json")
            await expect(ws, "deleted", "alpha", what="bad file removed")
        finally:
            await ws.close()


async def test_duplicate_names_smallest_file_wins():
    with Daemon(workers=2) as d:
        ws = await ws_connect(d)
        try:
            d.write("dup-b.json", persona_api("dup", nodes=2))
            await expect(ws, "added", "dup")
            since = len(d.log_text())
            # a larger file name claims the same name: ignored, warned
            d.write("dup-c.json", persona_api("dup", nodes=3))
            line = d.wait_log(lambda ln: "warn" in ln.lower()
                              and ("dup-c.json" in ln or "dup-b.json" in ln), 3, since)
            assert line, "no warning about dup-c.json; log:\n" + d.log_text()[since:]
            await probe(d, ws)
            st, obj = d.get_json("/api/clusters/dup")
            assert obj["spec"]["nodes"] == 2, "dup-b.json must win over dup-c.json: %r" % obj
            # a smaller file name claims it: it wins, content changes -> updated
            d.write("dup-a.json", persona_api("dup", nodes=1))
            await expect(ws, "updated", "dup", what="smaller file name takes over")
            st, obj = d.get_json("/api/clusters/dup")
            assert obj["spec"]["nodes"] == 1, "dup-a.json must win: %r" % obj
            # winner removed: next smallest takes over
            d.remove("dup-a.json")
            await expect(ws, "updated", "dup", what="dup-b.json takes over again")
            st, obj = d.get_json("/api/clusters/dup")
            assert obj["spec"]["nodes"] == 2, obj
            d.remove("dup-b.json")
            await expect(ws, "updated", "dup", what="dup-c.json takes over")
            d.remove("dup-c.json")
            await expect(ws, "deleted", "dup", what="last file removed")
            assert "dup" not in d.cluster_names(), d.cluster_names()
        finally:
            await ws.close()


async def test_ignored_files():
    with Daemon(workers=2) as d:
        ws = await ws_connect(d)
        try:
            d.write("upper.JSON", persona_api("upper"))
            d.write("mixed.Json", persona_api("mixed"))
            d.write("notes.txt", persona_api("txt"))
            d.write("backup.json.bak", persona_api("bak"))
            d.write("jsonfile", persona_api("nosuffix"))
            d.write(".hidden.json", persona_api("hidden"))
            d.write("..dots.json", persona_api("dots"))
            os.mkdir(d.path("sub"))
            d.write("sub/nested.json", persona_api("nested"))
            os.mkdir(d.path("dir.json"))
            await asyncio.sleep(0.3)
            await probe(d, ws)
            names = d.cluster_names()
            for n in ("upper", "mixed", "txt", "bak", "nosuffix", "hidden", "dots", "nested"):
                assert n not in names, "%s should be ignored: %r" % (n, names)
            # renaming a hidden file to a visible name makes it count
            d.rename(".hidden.json", "visible.json")
            await expect(ws, "added", "hidden")
        finally:
            await ws.close()


async def test_partial_write_not_parsed():
    # no periodic rescan may happen to read the half-written file
    with Daemon(workers=2, flags=["--rescan-interval=3600"]) as d:
        ws = await ws_connect(d)
        try:
            since = len(d.log_text())
            data = json.dumps(persona_k8s("partial")).encode()
            with open(d.path("partial.json"), "wb") as f:
                f.write(data[: len(data) // 2])
                f.flush()
                os.fsync(f.fileno())
                await expect_silence(ws, 0.5)
                f.write(data[len(data) // 2:])
            await expect(ws, "added", "partial", what="after close_write")
            log = d.log_text()[since:]
            warned = [ln for ln in log.splitlines()
                      if "partial.json" in ln and "warn" in ln.lower()]
            assert not warned, "daemon parsed a half-written file:\n" + log
        finally:
            await ws.close()


async def test_periodic_rescan_safety_net():
    """A change inotify does not report as finished (file written but still
    open) is found by the periodic rescan."""
    with Daemon(workers=1, flags=["--rescan-interval=0.5"]) as d:
        ws = await ws_connect(d)
        try:
            f = open(d.path("open.json"), "w")
            try:
                f.write(json.dumps(persona_api("still-open")))
                f.flush()
                await expect(ws, "added", "still-open", timeout=3.0,
                             what="periodic rescan (--rescan-interval=0.5)")
            finally:
                f.close()
            await probe(d, ws)          # closing it changes nothing
        finally:
            await ws.close()


async def test_delete_last_and_rest_agrees():
    with Daemon(workers=2, seed=SEED) as d:
        ws = await ws_connect(d)
        model = {"alpha", "bravo"}
        try:
            st, obj = d.get_json("/api/clusters")
            seq0 = obj["seq"]
            for i in range(5):
                d.write("m%d.json" % i, persona_api("m%d" % i))
                await expect(ws, "added", "m%d" % i)
                model.add("m%d" % i)
                assert d.cluster_names() == sorted(model)
            for f, n in (("alpha.json", "alpha"), ("m2.json", "m2"), ("bravo.json", "bravo")):
                d.remove(f)
                await expect(ws, "deleted", n)
                model.discard(n)
                assert d.cluster_names() == sorted(model), (d.cluster_names(), sorted(model))
            for i in (0, 1, 3, 4):
                d.remove("m%d.json" % i)
                await expect(ws, "deleted", "m%d" % i)
            st, obj = d.get_json("/api/clusters")
            assert st == 200 and obj["clusters"] == [], obj
            # 5 added + 3 deleted + 4 deleted: the sequence moved by exactly 12
            assert obj.get("seq") == seq0 + 12, "seq %r -> %r after 12 events" % (seq0,
                                                                              obj.get("seq"))
        finally:
            await ws.close()


async def test_events_are_ordered_like_writes():
    with Daemon(workers=2) as d:
        ws = await ws_connect(d)
        try:
            want = []
            for i in range(30):
                d.write("o%02d.json" % i, persona_api("o%02d" % i))
                want.append(ev("added", "o%02d" % i))
            got = [await recv(ws) for _ in want]
            assert got == want, "order differs:\n%r\n%r" % (got, want)
        finally:
            await ws.close()


if __name__ == "__main__":
    run([test_initial_scan_silent_and_rest, test_added_updated_deleted_exact, test_name_escaping,
         test_rename_name_field, test_identical_and_reformatted_emit_nothing, test_bad_files,
         test_file_turns_bad_keeps_state, test_duplicate_names_smallest_file_wins,
         test_ignored_files, test_partial_write_not_parsed, test_periodic_rescan_safety_net,
         test_delete_last_and_rest_agrees,
         test_events_are_ordered_like_writes])
