#!/usr/bin/python3
"""Integration: the shortened fault campaign (issue 8, doc/reliability.md).

contrib/bench/fault-campaign --quick against the built daemon: 200 healthy, 20
stuck and 3 pausing clients, 100 events/s for 48 s, a worker killed every 12 s
(SIGKILL and SIGTERM in turn), the master stopped for 1 s every 12 s, 10 % of the
healthy connections churned per second.  It asserts invariants, not latencies: no
session sees a gap, a duplicate or a reordering; every session that owes events
got them; every killed worker is respawned; the private memory of the master and
of the worker that is never killed stays flat; the daemon stops cleanly.  This
test then checks that the campaign really exercised what it claims to.
"""

import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import personad_path, run  # noqa: E402

TOP_SRCDIR = os.path.abspath(os.environ.get("TOP_SRCDIR",
                                            os.path.join(os.path.dirname(__file__), "..", "..")))
TOP_BUILDDIR = os.path.abspath(os.environ.get("TOP_BUILDDIR", "."))


def test_quick_campaign_holds_every_invariant():
    script = os.path.join(TOP_SRCDIR, "contrib", "bench", "fault-campaign")
    wscampaign = os.path.join(TOP_BUILDDIR, "contrib", "bench", "wscampaign")
    assert os.access(wscampaign, os.X_OK), "%s is not built (make check builds it)" % wscampaign
    with tempfile.TemporaryDirectory(prefix="fault-campaign-test-") as tmp:
        out = os.path.join(tmp, "result.json")
        res = subprocess.run([sys.executable, script, "--quick", "--quiet",
                              "--personad", personad_path(), "--wscampaign", wscampaign,
                              "--json-out", out],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             timeout=240)
        print(res.stdout)
        if res.stderr:
            print(res.stderr[-4000:])
        assert os.path.exists(out), "no result (exit %d)" % res.returncode
        with open(out) as f:
            result = json.load(f)
    r = result["campaign"]
    assert res.returncode == 0, "fault campaign failed (exit %d): %s" % (
        res.returncode, "; ".join(result["problems"]))
    assert result["problems"] == [], result["problems"]

    # The run did what it says: faults happened, every class had sessions that were
    # checked, and there were events to check.
    o = r["options"]
    assert r["injections"] >= 0.8 * o["rate"] / 2 * o["duration_s"], r["injections"]
    kills = r["kills"]
    assert len(kills) >= 3, kills
    assert {k["signal"] for k in kills} == {9, 15}, kills
    assert all(k["respawn_ms"] >= 0 and k["sessions"] > 0 for k in kills), kills
    assert len(r["stops"]) >= 3, r["stops"]
    assert r["churn_closes"] >= 0.5 * o["healthy"] * o["churn_pct"] / 100 * o["duration_s"]
    by = {(c["class"], c["end"]): c for c in r["classes"]}
    for key in (("healthy", "open at the end"), ("healthy", "churn close"),
                ("healthy", "worker kill"), ("stuck", "open at the end"),
                ("lapped", "open at the end")):
        assert key in by and by[key]["received"] > 0, "no checked %s sessions: %r" % (key, by)
    # The stuck clients really never read until the end: each holds a phase's worth.
    stuck = by[("stuck", "open at the end")]
    assert stuck["received"] / stuck["sessions"] > o["rate"] * 5, stuck
    # A long pause is cut by the server (the write deadline); the session ends cleanly.
    assert ("lapped", "closed or dropped by the server") in by, by
    print("campaign: %d sessions, %d kills, %d master stops, p99 %.1f / %.1f ms "
          "(without / with the stuck clients, quiet events)"
          % (sum(c["sessions"] for c in r["classes"]), len(kills), len(r["stops"]),
             r["latency"]["without_stuck"]["quiet"]["p99_ms"],
             r["latency"]["with_stuck"]["quiet"]["p99_ms"]))


if __name__ == "__main__":
    run([test_quick_campaign_holds_every_invariant], timeout=300)
