#!/usr/bin/python3
"""Integration: contrib/s6/personad under the real s6-supervise.  Readiness
goes through ./notification-fd (personad --ready-fd=3): s6-svwait -U returns
once personad serves, s6-svstat says "ready"; s6-svc -h is a rescan;
s6-svc -d stops it with exit code 0 and s6 keeps it down."""

import os
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import run  # noqa: E402
from supervise_util import (Scratch, file_text, need, personad_path, sh,  # noqa: E402
                            top_srcdir, wait_until)

need("s6-supervise", "s6-svc", "s6-svwait", "s6-svstat")


def test_s6_supervise():
    with Scratch() as sc:
        svc = os.path.join(sc.tmp, "personad")
        shutil.copytree(os.path.join(top_srcdir(), "contrib", "s6", "personad"), svc)
        with open(os.path.join(svc, "conf"), "w") as f:
            f.write('PERSONAD=%s\nPERSONAD_OPTS="%s"\n' % (personad_path(), sc.opts()))
        out = os.path.join(sc.tmp, "out.log")
        with open(out, "wb") as o:
            sup = subprocess.Popen(["s6-supervise", svc], stdin=subprocess.DEVNULL, stdout=o,
                                   stderr=o, process_group=0)
        try:
            wait_until(lambda: os.path.exists(os.path.join(svc, "supervise", "status")), 10,
                       "s6-supervise's status file")
            rc, _, err = sh("s6-svwait", "-U", "-t", "10000", svc)
            assert rc == 0, "s6-svwait -U: %d %s\n%s" % (rc, err, file_text(out))
            # ready means serving, at once
            assert sc.healthz() == 200, "not serving when s6 says ready"
            rc, st, _ = sh("s6-svstat", svc)
            assert rc == 0 and st.startswith("up (pid ") and ", ready " in st, st
            pid = int(st.split("(pid ")[1].split(")")[0])
            rc, _, err = sh("s6-svc", "-h", svc)
            assert rc == 0, err
            wait_until(lambda: "SIGHUP: rescanning" in file_text(out), 5, "the SIGHUP log line")
            rc, _, err = sh("s6-svc", "-d", svc)
            assert rc == 0, err
            rc, _, err = sh("s6-svwait", "-D", "-t", "10000", svc)
            assert rc == 0, "s6-svwait -D: %d %s" % (rc, err)
            rc, st, _ = sh("s6-svstat", svc)
            assert st.startswith("down (exitcode 0)"), "after s6-svc -d: %r\n%s" % (
                st, file_text(out))
            assert "info: stopped" in file_text(out), file_text(out)
            try:
                os.kill(pid, 0)
                raise AssertionError("personad (pid %d) still running after s6-svc -d" % pid)
            except ProcessLookupError:
                pass
            rc, _, err = sh("s6-svc", "-x", svc)
            assert rc == 0, err
            assert sup.wait(10) == 0
        finally:
            if sup.poll() is None:
                os.killpg(sup.pid, signal.SIGKILL)
                sup.wait()


if __name__ == "__main__":
    run([test_s6_supervise])
