#!/usr/bin/python3
"""Integration: the SysV init script (contrib/init.d/personad, as built) with
the real start-stop-daemon, paths moved into a scratch directory through
PERSONAD_DEFAULTS (an /etc/default-style file).  start returns once personad
is ready (--notify-await: its READY=1) and it writes --pidfile; status,
reload (SIGHUP), a second start (no second daemon), restart (a new pid),
stop (pidfile removed), and a master killed with -9 (status 1, then a start
replaces the stale pidfile)."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import children, run  # noqa: E402
from supervise_util import (Scratch, file_text, need, personad_path, pid_alive,  # noqa: E402
                            sh, top_builddir, wait_until)

need("start-stop-daemon")


def test_init_script():
    script = os.path.join(top_builddir(), "contrib", "init.d", "personad")
    assert os.access(script, os.X_OK), "%s not built" % script
    with Scratch() as sc:
        pidfile = os.path.join(sc.tmp, "run", "personad.pid")
        logfile = os.path.join(sc.tmp, "personad.log")
        defaults = os.path.join(sc.tmp, "default")
        with open(defaults, "w") as f:
            f.write('DAEMON=%s\nPIDFILE=%s\nLOGFILE=%s\nDAEMON_OPTS="%s"\nSTART_TIMEOUT=20\n'
                    % (personad_path(), pidfile, logfile, sc.opts()))
        env = dict(os.environ, PERSONAD_DEFAULTS=defaults)
        started = []

        def init(cmd):
            return sh(script, cmd, env=env)

        def pid():
            return int(file_text(pidfile).strip())

        try:
            rc, out, err = init("start")
            assert rc == 0, "start: %d %s %s\n%s" % (rc, out, err, file_text(logfile))
            # --notify-await: start returned after READY=1, so it serves now
            p1 = pid()
            started.append(p1)
            assert sc.healthz() == 200, "not serving when start returned"
            assert len(children(p1)) == 2, children(p1)
            rc, out, _ = init("status")
            assert rc == 0 and "is running (pid %d)" % p1 in out, (rc, out)
            rc, out, _ = init("start")
            assert rc == 0 and "already running" in out, (rc, out)
            assert pid() == p1
            rc, _, err = init("reload")
            assert rc == 0, err
            wait_until(lambda: "SIGHUP: rescanning" in file_text(logfile), 5, "SIGHUP logged")
            rc, out, err = init("restart")
            assert rc == 0, (out, err)
            p2 = pid()
            started.append(p2)
            assert p2 != p1, (p1, p2)
            wait_until(lambda: not pid_alive(p1), 2, "pid %d to finish its exit" % p1)
            assert sc.healthz() == 200
            # a crash: the pidfile stays, status says so, start replaces it
            workers = children(p2)
            os.kill(p2, signal.SIGKILL)
            wait_until(lambda: not pid_alive(p2) and not any(pid_alive(w) for w in workers), 5,
                       "the killed master's group to go")
            rc, out, _ = init("status")
            assert rc == 1 and "not running, but" in out, (rc, out)
            rc, out, err = init("start")
            assert rc == 0, (out, err, file_text(logfile))
            p3 = pid()
            started.append(p3)
            assert p3 != p2 and sc.healthz() == 200
            assert "replacing a stale pidfile" in file_text(logfile)
            t0 = time.monotonic()
            rc, out, err = init("stop")
            assert rc == 0, (out, err)
            # start-stop-daemon sees it gone once its memory is (/proc/PID/exe),
            # a moment before the kernel finishes the exit
            wait_until(lambda: not pid_alive(p3), 2, "pid %d to finish its exit" % p3)
            assert not os.path.exists(pidfile), "pidfile left after stop"
            assert time.monotonic() - t0 < 5
            # the master killed with -9 logged nothing
            assert file_text(logfile).count("info: stopped") == 2, file_text(logfile)
            rc, out, _ = init("status")
            assert rc == 3 and "is not running" in out, (rc, out)
            rc, out, _ = init("stop")
            assert rc == 0, "stop when stopped: %d %s" % (rc, out)
        finally:
            for p in started:
                if pid_alive(p):
                    os.kill(p, signal.SIGKILL)


if __name__ == "__main__":
    run([test_init_script])
