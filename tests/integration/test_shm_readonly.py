#!/usr/bin/python3
"""Integration: workers map the shared memory read-only (issue 8, item 5).

A worker is what clients talk to; were it compromised through their input, it
must not be able to write the ring or the snapshot the master reads.  Every
worker's mappings of the two shm objects are r--s (shared, read-only) in
/proc/PID/maps, and it holds no descriptor of them open for writing (fdinfo
flags), nor does the master; a worker respawned after kill -9 is mapped the
same way, and events and REST still flow through read-only mappings.

The stats area (issue 13, GET /metrics) is read-only in a worker too, except
exactly one page: its own slot (a different one per worker, the same one for
a respawned worker).
"""

import asyncio
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import Daemon, expect, persona_k8s, run, ws_connect  # noqa: E402

O_ACCMODE = 0o3
O_RDONLY = 0
PAGE = os.sysconf("SC_PAGE_SIZE")


def shm_prefix(d):
    return "/dev/shm/personad-127.0.0.1-%d-" % d.port


def shm_mappings(pid, prefix):
    """{kind: [perms, ...]} of pid's mappings of the daemon's shm objects."""
    out = {}
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].startswith(prefix):
                kind = parts[5][len(prefix):].split()[0]
                out.setdefault(kind, []).append(parts[1])
    return out


def stats_writable(pid, prefix):
    """[(offset, length)] of pid's writable mappings of the stats object."""
    out = []
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].split()[0] == prefix + "stats" and \
                    parts[1] != "r--s":
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                out.append((int(parts[2], 16), hi - lo))
    return out


def shm_fds(pid, prefix):
    """[(fd, flags)] of pid's descriptors of the daemon's shm objects."""
    out = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if not link.startswith(prefix):
            continue
        with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
            flags = [int(ln.split()[1], 8) for ln in f if ln.startswith("flags:")][0]
        out.append((int(fd), flags))
    return out


def wait_worker_running(pid, timeout=5.0):
    """Wait until pid has created its epoll fd: worker_main does that first, and
    the master's fork path maps the shared memory read-only before calling it,
    so a worker seen right after fork (still on the inherited mapping) is not
    judged too early."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == "anon_inode:[eventpoll]":
                    return
            except OSError:
                pass
        time.sleep(0.01)
    raise AssertionError("worker %d never started its loop" % pid)


def check_worker(pid, prefix):
    """Returns the offset of the worker's one writable stats page."""
    wait_worker_running(pid)
    maps = shm_mappings(pid, prefix)
    assert sorted(maps) == ["ring", "snapshot", "stats"], "worker %d maps %r" % (pid, maps)
    for kind in ("ring", "snapshot"):
        perms = maps[kind]
        assert perms == ["r--s"], "worker %d maps the %s %r, not read-only" % (pid, kind, perms)
    assert "rw-s" in maps["stats"] and all(p in ("r--s", "rw-s") for p in maps["stats"]), \
        "worker %d maps the stats %r" % (pid, maps["stats"])
    rw = stats_writable(pid, prefix)
    assert len(rw) == 1 and rw[0][1] == PAGE, \
        "worker %d: writable stats mappings %r, want one page (its slot)" % (pid, rw)
    writable = [(fd, oct(fl)) for fd, fl in shm_fds(pid, prefix) if fl & O_ACCMODE != O_RDONLY]
    assert not writable, "worker %d holds shm descriptors open for writing: %r" % (pid, writable)
    return rw[0][0]


async def test_workers_map_shm_readonly():
    with Daemon(workers=2, seed={"a.json": persona_k8s("alpha")},
                expect_worker_deaths=True) as d:
        prefix = shm_prefix(d)
        workers = d.wait_workers(2)
        assert len(workers) == 2, workers
        slot = {pid: check_worker(pid, prefix) for pid in workers}
        # worker k's slot is page 2 + k (the header, the master's slot, then theirs)
        assert sorted(slot.values()) == [PAGE * 2, PAGE * 3], slot
        # The master writes (rw-s) but keeps only read-only descriptors, for
        # the workers it will fork.
        mmaps = shm_mappings(d.pid, prefix)
        assert sorted(mmaps) == ["ring", "snapshot", "stats"], mmaps
        assert all(p == ["rw-s"] for p in mmaps.values()), mmaps
        mfds = shm_fds(d.pid, prefix)
        assert len(mfds) == 3 and all(fl & O_ACCMODE == O_RDONLY for _, fl in mfds), mfds

        # A respawned worker gets the same treatment.
        victim = workers[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while True:
            now = d.worker_pids()
            if len(now) == 2 and victim not in now:
                break
            assert time.monotonic() < deadline, "no respawn: %r" % now
            time.sleep(0.05)
        # the respawned worker writes its predecessor's slot, and only that
        assert {check_worker(pid, prefix) for pid in now} == set(slot.values())
        assert check_worker([p for p in now if p not in workers][0], prefix) == slot[victim]

        # Both workers still serve events and REST from their read-only maps.
        conns = [await ws_connect(d) for _ in range(4)]
        try:
            d.write("b.json", persona_k8s("bravo"))
            for ws in conns:
                await expect(ws, "added", "bravo", timeout=5)
            for _ in range(6):
                st, obj = d.get_json("/api/clusters")
                assert st == 200 and [c["name"] for c in obj["clusters"]] == ["alpha", "bravo"]
        finally:
            for ws in conns:
                await ws.close()


if __name__ == "__main__":
    run([test_workers_map_shm_readonly])
