#!/usr/bin/python3
"""Integration: which directory entries personad reads (issue 8, item 7).

Only regular files, and symlinks that stay inside the personas directory (a
Kubernetes ConfigMap volume's layout), are read.  A FIFO is never opened (a
writer blocked in open(O_WRONLY) would get through the moment anyone opened
it for reading), a symlink to a persona outside the directory is ignored, and
each is warned about once, however many rescans look at it.
"""

import asyncio
import errno
import json
import os
import shutil
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import Daemon, event_payloads, expect, persona_api, recv, run, ws_connect  # noqa: E402


async def probe(d, ws, counter=[0]):
    """A real change whose event must be the next message."""
    counter[0] += 1
    name = "probe-%d" % counter[0]
    d.write(name + ".json", persona_api(name))
    await expect(ws, "added", name, what="the probe change must be the next message")


def lines_with(d, *words):
    return [ln for ln in d.log_text().splitlines() if all(w in ln for w in words)]


async def rescans(d, ws, n=3):
    """n SIGHUP rescans, each finished (a probe event comes after it)."""
    for _ in range(n):
        since = len(d.log_text())
        d.send_signal(signal.SIGHUP)
        assert d.wait_log(lambda ln: "SIGHUP" in ln, 3.0, since), "no SIGHUP line"
        await probe(d, ws)


class BlockedWriter:
    """A thread blocked in open(fifo, O_WRONLY) until some process opens the
    FIFO for reading: the kernel lets it through even if that reader closes
    again at once."""

    def __init__(self, path):
        self.path = path
        self.opened = threading.Event()
        self.fd = None
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        self.fd = os.open(self.path, os.O_WRONLY)
        self.opened.set()

    def release(self):
        """Open the FIFO for reading ourselves, so the thread ends."""
        r = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        self.t.join(5)
        os.close(r)
        if self.fd is not None:
            os.close(self.fd)


async def test_fifo_never_opened():
    with Daemon(workers=1, seed={"a.json": persona_api("a")}) as d:
        ws = await ws_connect(d)
        fifo = d.path("pipe.json")
        os.mkfifo(fifo)
        w = BlockedWriter(fifo)
        try:
            await rescans(d, ws)
            d.write("a.json", persona_api("a", nodes=9))      # notifications still read
            await expect(ws, "updated", "a")
            assert not w.opened.is_set(), "personad opened the FIFO"
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                os.close(fd)
                raise AssertionError("a reader holds the FIFO open")
            except OSError as e:
                assert e.errno == errno.ENXIO, "open(O_WRONLY|O_NONBLOCK): %r, want ENXIO" % e
            warned = lines_with(d, "pipe.json", "not a regular file (a FIFO); ignored")
            assert len(warned) == 1, "want one warning for pipe.json, got %r" % warned
        finally:
            w.release()
            await ws.close()


async def test_symlink_outside_ignored_once():
    with Daemon(workers=1, seed={"a.json": persona_api("a")}) as d:
        ws = await ws_connect(d)
        outside = os.path.join(d.tmp, "outside.json")     # beside the personas dir
        with open(outside, "w") as f:
            json.dump(persona_api("secret"), f)
        os.symlink("../outside.json", d.path("secret.json"))
        os.symlink(outside, d.path("secret-abs.json"))
        await probe(d, ws)
        await rescans(d, ws)
        names = d.cluster_names()
        assert "secret" not in names, "a persona outside the directory is served: %r" % names
        out = lines_with(d, "secret.json", "symbolic link leads out of the directory; ignored")
        assert len(out) == 1, "want one warning for secret.json, got %r" % out
        absl = lines_with(d, "secret-abs.json", "absolute path")
        assert len(absl) == 1, "want one warning for secret-abs.json, got %r" % absl
        # A file that stays bad is warned about once as well.
        d.write("bad.json", "{broken")
        await probe(d, ws)
        os.utime(d.path("bad.json"))                       # a notification, same bytes
        await rescans(d, ws)
        bad = lines_with(d, "bad.json", "invalid JSON")
        assert len(bad) == 1, "want one warning for bad.json, got %r" % bad
        await ws.close()


def configmap_update(d, ts, files, old_ts, old_files):
    """What the kubelet's atomic writer does: a new timestamped directory, the
    "..data" link swapped by one rename, links for new keys added, links for
    removed keys deleted, the old directory removed."""
    new = d.path(ts)
    os.mkdir(new)
    for fname, content in files.items():
        with open(os.path.join(new, fname), "w") as f:
            json.dump(content, f)
    os.symlink(ts, d.path("..data_tmp"))
    os.rename(d.path("..data_tmp"), d.path("..data"))
    for fname in files:
        if fname not in old_files:
            os.symlink("..data/" + fname, d.path(fname))
    for fname in old_files:
        if fname not in files:
            os.unlink(d.path(fname))
    if old_ts:
        shutil.rmtree(d.path(old_ts))


async def test_configmap_layout():
    # A small --max-connections: the warning checked for below is about persona files,
    # not the descriptor limit that a machine with a low hard RLIMIT_NOFILE warns about.
    d = Daemon(workers=2, flags=["--max-connections=1000"])
    first = {"a.json": persona_api("a"), "b.json": persona_api("b")}
    configmap_update(d, "..2026_01_01_00_00_00.000000001", first, None, {})
    with d:
        assert d.cluster_names() == ["a", "b"], d.cluster_names()
        ws = await ws_connect(d)
        second = {"a.json": persona_api("a", nodes=5), "c.json": persona_api("c")}
        configmap_update(d, "..2026_01_01_00_01_00.000000002", second,
                         "..2026_01_01_00_00_00.000000001", first)
        # Exactly these, in whatever batches the notifications came.
        want = {("deleted", "b"), ("updated", "a"), ("added", "c")}
        got = set()
        for _ in want:
            msg = await recv(ws, 3.0)
            match = {(k, n) for k, n in want if msg in event_payloads(k, n)}
            assert match and not match & got, "unexpected event %r (want %r)" % (msg, want)
            got |= match
        await probe(d, ws)                                 # and nothing else
        names = d.cluster_names()
        assert "a" in names and "c" in names and "b" not in names, names
        st, a = d.get_json("/api/clusters/a")
        assert st == 200 and a["spec"]["nodes"] == 5, a
        assert not lines_with(d, "warning"), "warnings: %r" % lines_with(d, "warning")
        await ws.close()


if __name__ == "__main__":
    run([test_fifo_never_opened, test_symlink_outside_ignored_once, test_configmap_layout])
