#!/usr/bin/python3
"""Integration: contrib/runit/personad (run and log/run) under the real runsv:
it serves, sv status says run, sv hup is a rescan (seen in svlogd's log),
sv down stops it cleanly (close 1001 path, "stopped" logged, not restarted),
sv up starts it again, sv exit ends runsv."""

import os
import re
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import run  # noqa: E402
from supervise_util import (Scratch, file_text, need, personad_path, pid_alive,  # noqa: E402
                            sh, top_srcdir, wait_until)

need("runsv", "sv", "svlogd")


def status(svc):
    rc, out, err = sh("sv", "status", svc)
    return out.strip()


def run_pid(svc):
    m = re.match(r"run: [^:]+: \(pid (\d+)\)", status(svc))
    return int(m.group(1)) if m else None


def test_runsv():
    with Scratch() as sc:
        svc = os.path.join(sc.tmp, "personad")
        shutil.copytree(os.path.join(top_srcdir(), "contrib", "runit", "personad"), svc)
        with open(os.path.join(svc, "conf"), "w") as f:
            f.write('PERSONAD=%s\nPERSONAD_OPTS="%s"\n' % (personad_path(), sc.opts()))
        log = os.path.join(svc, "log", "main", "current")
        out = os.path.join(sc.tmp, "runsv.log")
        with open(out, "wb") as o:
            rsv = subprocess.Popen(["runsv", svc], stdin=subprocess.DEVNULL, stdout=o, stderr=o,
                                   process_group=0)
        pid = None
        try:
            pid = wait_until(lambda: run_pid(svc), 10, "sv status: run")
            wait_until(lambda: sc.healthz() == 200, 10, "/healthz")
            assert "run: log:" in status(svc), status(svc)
            wait_until(lambda: "listening on" in file_text(log), 5, "svlogd's log")
            rc, _, err = sh("sv", "hup", svc)
            assert rc == 0, err
            wait_until(lambda: "SIGHUP: rescanning" in file_text(log), 5, "SIGHUP in the log")
            rc, o2, err = sh("sv", "-w", "10", "down", svc)
            assert rc == 0 and o2.startswith("ok: down"), (rc, o2, err)
            wait_until(lambda: not pid_alive(pid), 5, "personad to exit")
            wait_until(lambda: "info: stopped" in file_text(log), 5, "'stopped' in the log")
            st = status(svc)
            assert st.startswith("down: ") and "normally up" in st, st
            assert sc.healthz() is None, "still serving after sv down"
            rc, o2, err = sh("sv", "-w", "10", "up", svc)
            assert rc == 0, (o2, err)
            pid2 = wait_until(lambda: run_pid(svc), 10, "sv status: run again")
            assert pid2 != pid
            pid = pid2
            wait_until(lambda: sc.healthz() == 200, 10, "/healthz after sv up")
            rc, _, err = sh("sv", "exit", svc)
            assert rc == 0, err
            assert rsv.wait(10) == 0
            wait_until(lambda: not pid_alive(pid), 5, "personad to exit with runsv")
        finally:
            if rsv.poll() is None:
                os.killpg(rsv.pid, signal.SIGKILL)
                rsv.wait()
            if pid is not None and pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    run([test_runsv])
