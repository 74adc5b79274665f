#!/usr/bin/python3
"""Integration: periodic rescans racing with a stream of changes keep the
events in the order of the changes.

A listing made while files are renamed in may return a later file and miss an
earlier one (ext4 lists a directory in hash order); a rescan that committed
what it saw would put the later file's event before the earlier one's, which
arrives only with its notification.  Rescans every 10 ms race with every burst
of renames here.  (On a file system that lists in creation order, tmpfs, the
race cannot reorder additions and this passes either way; the Check test
test_rescan_racing_changes_in_order in tests/check_source_dir.c does not depend on
the file system.)
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import Daemon, ev, recv, run, ws_connect  # noqa: E402

BURSTS = 10
PER_BURST = 200
N_EVENTS = BURSTS * PER_BURST


def name(i):
    return "r-%05d" % i   # zero-padded: name order is the order of the renames


async def test_rescans_racing_renames_keep_order():
    with Daemon(workers=1, flags=["--rescan-interval=0.01"]) as d:
        stage = os.path.join(d.tmp, "stage")
        os.mkdir(stage)
        for i in range(N_EVENTS):
            with open(os.path.join(stage, "r%05d.json" % i), "w") as f:
                f.write('{"name": "%s", "spec": {}}' % name(i))
        ws = await ws_connect(d, max_queue=None)
        try:
            got = []
            for b in range(BURSTS):
                for i in range(b * PER_BURST, (b + 1) * PER_BURST):
                    f = "r%05d.json" % i
                    os.rename(os.path.join(stage, f), d.path(f))
                while len(got) < (b + 1) * PER_BURST:
                    got.append(await recv(ws, timeout=10))
            want = [ev("added", name(i)) for i in range(N_EVENTS)]
            bad = [i for i in range(N_EVENTS) if got[i] != want[i]]
            assert not bad, ("%d of %d events out of place; event %d is %s, want %s"
                             % (len(bad), N_EVENTS, bad[0], got[bad[0]], want[bad[0]]))
            print("%d events in the order of the renames" % N_EVENTS)
        finally:
            await ws.close()


if __name__ == "__main__":
    run([test_rescans_racing_renames_keep_order])
