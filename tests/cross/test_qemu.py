#!/usr/bin/python3
"""Cross build under qemu-user: the daemon built by contrib/cross/build HOST,
run through qemu-aarch64 / qemu-arm on loopback against python3-websockets
and the harness's HTTP client.

Run by tests/cross/run-qemu.sh HOST, which sets PERSONAD to a wrapper that
execs qemu on the target binary, PERSONAD_TARGET to that binary and
PERSONAD_TARGET_MACHINE to its ELF e_machine (183 aarch64, 40 arm).  Not part
of make check: it needs the cross build.

Each test first proves it is not testing a native binary: the file is an ELF
of the target's machine and class, and the running master and workers are
qemu processes (their /proc/PID/exe).
"""

import asyncio
import os
import signal
import struct
import sys

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
import websockets  # noqa: E402
from harness import Daemon, expect, expect_silence, persona_api, persona_k8s, run, ws_connect  # noqa: E402

TARGET = os.environ.get("PERSONAD_TARGET", "")
MACHINE = int(os.environ.get("PERSONAD_TARGET_MACHINE", "0"))
ELF_CLASS = {183: 2, 40: 1}   # e_machine -> EI_CLASS (64-bit aarch64, 32-bit arm)
SEED = {"alpha.json": persona_k8s("alpha"), "bravo.json": persona_api("bravo")}


def elf_header(path):
    with open(path, "rb") as f:
        head = f.read(20)
    assert head[:4] == b"\x7fELF", "%s is not an ELF file" % path
    ei_class, ei_data = head[4], head[5]
    (e_machine,) = struct.unpack("<H" if ei_data == 1 else ">H", head[18:20])
    return ei_class, e_machine


def exe_of(pid):
    return os.path.basename(os.readlink("/proc/%d/exe" % pid))


def shm_mapped(pid):
    with open("/proc/%d/maps" % pid) as f:
        return {ln.split(None, 5)[5].strip() for ln in f
                if len(ln.split(None, 5)) == 6 and ln.split(None, 5)[5].startswith("/dev/shm/")}


def assert_emulated(d, workers):
    """The master and its workers run inside qemu (not natively), and the
    workers map the master's shared memory (shm_open through /dev/shm)."""
    pids = [d.pid] + d.wait_workers(workers)
    for pid in pids:
        assert exe_of(pid).startswith("qemu-"), "pid %d runs %s, not qemu" % (pid, exe_of(pid))
    for pid in pids[1:]:
        assert shm_mapped(pid), "worker %d maps nothing from /dev/shm" % pid


def test_target_binary():
    assert TARGET and MACHINE in ELF_CLASS, "PERSONAD_TARGET(_MACHINE) not set: run tests/cross/run-qemu.sh"
    ei_class, e_machine = elf_header(TARGET)
    assert (ei_class, e_machine) == (ELF_CLASS[MACHINE], MACHINE), (ei_class, e_machine)


def test_healthz_and_list():
    with Daemon(workers=2, seed=SEED) as d:
        assert_emulated(d, 2)
        st, obj = d.get_json("/healthz")
        assert st == 200 and obj == {"status": "ok"}, (st, obj)
        assert d.cluster_names() == ["alpha", "bravo"], d.cluster_names()
        st, obj = d.get_json("/api/clusters/alpha")
        assert st == 200 and obj["spec"] == SEED["alpha.json"]["spec"], (st, obj)
        st, _ = d.get_json("/api/clusters/nope")
        assert st == 404, st


async def test_events_and_sigterm():
    """inotify -> ring -> worker epoll -> WebSocket, byte-exact; then SIGTERM:
    close 1001 to the client and exit status 0."""
    with Daemon(workers=2, seed=SEED) as d:
        assert_emulated(d, 2)
        ws = await ws_connect(d)
        await expect_silence(ws, 0.3)
        d.write("charlie.json", persona_k8s("charlie"))
        await expect(ws, "added", "charlie", timeout=10)
        d.write("charlie.json", persona_k8s("charlie", nodes=5))
        await expect(ws, "updated", "charlie", timeout=10)
        d.remove("alpha.json")
        await expect(ws, "deleted", "alpha", timeout=10)
        assert d.cluster_names() == ["bravo", "charlie"], d.cluster_names()
        # inotify, not the 30 s periodic rescan, delivered them; each worker
        # has its own SO_REUSEPORT socket, as natively
        log = d.log_text()
        assert "inotify" not in log and "SO_REUSEPORT" in log, log
        d.send_signal(signal.SIGTERM)
        try:
            got = await asyncio.wait_for(ws.recv(), 10)
            raise AssertionError("expected a close on SIGTERM, got %r" % (got,))
        except websockets.exceptions.ConnectionClosed as e:
            assert e.rcvd is not None and e.rcvd.code == 1001, e
        rc = d.stop(grace=10)
        assert rc == 0, "personad under qemu exited with %r on SIGTERM" % (rc,)
        assert not d.group_alive(), "processes left in the daemon's group"


if __name__ == "__main__":
    run([test_target_binary, test_healthz_and_list, test_events_and_sigterm], timeout=120)
