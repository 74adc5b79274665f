#!/usr/bin/python3
"""Integration: the per-worker connection cap, idle memory per connection,
and the signals a supervisor sends (HUP rescans, USR1 is harmless)."""

import asyncio
import json
import os
import signal
import sys
import resource

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import (Daemon, RawWS, expect, persona_api, run, ws_connect)  # noqa: E402

import websockets  # noqa: E402


def vm_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


async def test_connection_cap_answers_503():
    with Daemon(workers=1, flags=["--max-connections=3"]) as d:
        conns = [await ws_connect(d) for _ in range(3)]
        try:
            try:
                extra = await ws_connect(d)
            except websockets.exceptions.InvalidStatusCode as e:
                assert e.status_code == 503, e
            else:
                await extra.close()
                raise AssertionError("a 4th connection was accepted with --max-connections=3")
            await conns.pop().close()
            await asyncio.sleep(0.2)
            conns.append(await ws_connect(d))       # room again
            d.write("cap.json", persona_api("cap"))
            for c in conns:
                await expect(c, "added", "cap")
        finally:
            for c in conns:
                await c.close()


def test_idle_connections_are_cheap():
    """1000 idle upgraded connections cost well under 2 KB of worker RSS each
    (~0.5 KB measured: MHD's pool and wslay's 8 KB context are released)."""
    n = 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < n + 100:
        print("SKIP: RLIMIT_NOFILE hard limit %d is too low" % hard)
        sys.exit(77)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, n + 100), hard))
    with Daemon(workers=1) as d:
        (w,) = d.worker_pids()
        with open("/proc/%d/maps" % w) as f:
            if "libasan" in f.read():
                # ASan's redzones and quarantine make RSS meaningless here.
                print("SKIP: memory figures need a build without sanitizers")
                return
        warm = [RawWS(d.port) for _ in range(50)]
        before = vm_rss_kb(w)
        socks = [RawWS(d.port) for _ in range(n)]
        try:
            after = vm_rss_kb(w)
            per_conn = (after - before) * 1024 / n
            print("worker RSS %d KB -> %d KB: %.0f bytes per idle connection"
                  % (before, after, per_conn))
            assert per_conn < 2048, "%.0f bytes per idle connection" % per_conn
            d.write("idle.json", persona_api("idle"))
            for s in socks[:: n // 10]:              # they are live, not just open
                fin, op, payload = s.read_message()
                assert op == 0x1 and json.loads(payload)["data"]["name"] == "idle", (op, payload)
        finally:
            for s in socks + warm:
                s.close()


async def test_sighup_rescans_and_usr1_is_harmless():
    # A file written but still open produces no IN_CLOSE_WRITE; with a long
    # rescan interval only SIGHUP's rescan can find it.
    with Daemon(workers=1, flags=["--rescan-interval=3600"]) as d:
        ws = await ws_connect(d)
        try:
            with open(d.path("held.json"), "w") as f:
                f.write(json.dumps(persona_api("held-open")))
                f.flush()
                await asyncio.sleep(0.3)
                d.send_signal(signal.SIGUSR1)
                d.send_signal(signal.SIGHUP)
                await expect(ws, "added", "held-open", what="SIGHUP rescan")
            assert d.group_alive(), "a signal killed the daemon"
            assert d.wait_log(lambda ln: "SIGUSR1" in ln, 3), "SIGUSR1 not acknowledged in the log"
        finally:
            await ws.close()


if __name__ == "__main__":
    run([test_connection_cap_answers_503, test_idle_connections_are_cheap,
         test_sighup_rescans_and_usr1_is_harmless])
