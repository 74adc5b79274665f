#!/usr/bin/python3
"""Integration: no persona file stalls the master (issue 8, item 3).

SIGTERM must stop the daemon with exit status 0 within 2 s (the README's
promise) whatever it is parsing: during the initial scan of large files,
while it reads a large file a notification named, and during a rescan (a
ConfigMap "..data" swap that re-points many large files at once).  The files
are of the maximum accepted size (1 MiB) and shape: nine objects of 10 000
members each, keys ascending, which the old insertion sort took ~2.5 s per
file for (and 1 MiB of one repeated key, refused now, took over a minute).
"""

import asyncio
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import Daemon, expect, persona_api, run, ws_connect  # noqa: E402

MAX_BYTES = 1 << 20
STOP_WITHIN = 2.0


def big_persona(name):
    """1 MiB at most: 9 objects x 10 000 members (the caps), keys ascending."""
    objs = ",".join('"o%d":{%s}' % (o, ",".join('"k%05d":0' % i for i in range(10000)))
                    for o in range(9))
    text = '{"name":"%s","spec":{%s}}' % (name, objs)
    assert len(text) <= MAX_BYTES, len(text)
    return text


def repeated_key():
    """1 MiB of one repeated member name: refused now (duplicates, and over
    the value cap); the old sort was quadratic in it."""
    head, tail = '{"name":"dup","spec":{', '"z":0}}'
    return head + '"a":0,' * ((MAX_BYTES - len(head) - len(tail)) // 6) + tail


def stop_and_time(d, what):
    """SIGTERM; the master's exit status and the seconds until the whole
    process group is gone (bounded: at most 6 s are waited)."""
    t0 = time.monotonic()
    d.send_signal(signal.SIGTERM)
    try:
        rc = d.proc.wait(6)
    except Exception:
        rc = None
    while d.group_alive() and time.monotonic() - t0 < 6:
        time.sleep(0.02)
    dt = time.monotonic() - t0
    print("%s: exit status %r, group gone after %.2fs" % (what, rc, dt))
    assert rc is not None, "%s: master still running %.1fs after SIGTERM" % (what, dt)
    assert not d.group_alive(), "%s: process group alive %.1fs after SIGTERM" % (what, dt)
    assert rc == 0, "%s: exit status %r after SIGTERM, want 0" % (what, rc)
    assert dt <= STOP_WITHIN, "%s: SIGTERM took %.2fs, want <= %.1fs" % (what, dt, STOP_WITHIN)


def test_sigterm_during_initial_scan():
    """Twenty large files: the initial scan takes a while; SIGTERM in the
    middle of it is a clean stop, not a death by signal, and not a wait."""
    text = big_persona("big")
    seed = {"big-%02d.json" % i: text.replace('"big"', '"big-%02d"' % i) for i in range(20)}
    seed["dup.json"] = repeated_key()
    d = Daemon(workers=1, seed=seed, ready=False)
    with d:
        time.sleep(0.3)             # in the initial scan (~2.5 s here)
        stop_and_time(d, "SIGTERM during the initial scan")
        log = d.log_text()
        assert "stopping" in log, log[-2000:]
        print("stopped %s" % ("during the initial scan" if "during the initial scan" in log
                              else "after the initial scan"))


async def test_sigterm_while_a_notified_file_is_parsed():
    with Daemon(workers=1, seed={"a.json": persona_api("a")}) as d:
        ws = await ws_connect(d)
        d.write("dup.json", repeated_key())
        d.write("big.json", big_persona("big"))
        await asyncio.sleep(0.3)
        await ws.close()
        stop_and_time(d, "SIGTERM while notified files are parsed")


async def test_sigterm_during_rescan():
    """A ConfigMap volume whose "..data" swap re-points twenty links at large
    files: one rescan reads them all."""
    d = Daemon(workers=1)
    small = os.path.join(d.dir, "..2026_01_01_00_00_00.000000001")
    big = os.path.join(d.dir, "..2026_01_01_00_01_00.000000002")
    os.mkdir(small)
    os.mkdir(big)
    text = big_persona("big")
    for i in range(20):
        name = "big-%02d" % i
        with open(os.path.join(small, name + ".json"), "w") as f:
            f.write('{"name":"%s"}' % name)
        with open(os.path.join(big, name + ".json"), "w") as f:
            f.write(text.replace('"big"', '"%s"' % name))
        os.symlink("..data/%s.json" % name, d.path(name + ".json"))
    os.symlink(os.path.basename(small), d.path("..data"))
    with d:
        assert len(d.cluster_names()) == 20, d.cluster_names()
        ws = await ws_connect(d)
        d.write("probe.json", persona_api("probe"))
        await expect(ws, "added", "probe")
        os.symlink(os.path.basename(big), d.path("..data_tmp"))
        os.rename(d.path("..data_tmp"), d.path("..data"))
        await asyncio.sleep(0.3)    # in the rescan
        await ws.close()
        stop_and_time(d, "SIGTERM during a rescan")


if __name__ == "__main__":
    run([test_sigterm_during_initial_scan, test_sigterm_while_a_notified_file_is_parsed,
         test_sigterm_during_rescan])
