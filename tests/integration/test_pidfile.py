#!/usr/bin/python3
"""Integration: --pidfile=FILE.  It appears (renamed into place, mode 0644
whatever the umask, no temporary left) only once the workers run, holds the
master's pid, and is removed at exit.  A directory that cannot take it is an
error at start; a file naming a running personad is an error; a stale one (a
pid that is gone, or not a personad) is replaced with a warning."""

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import Daemon, children, free_port, personad_path, run  # noqa: E402


def test_written_after_workers_and_removed():
    tmp = tempfile.mkdtemp(prefix="personad-pid-")
    pf = os.path.join(tmp, "personad.pid")
    old = os.umask(0o077)
    try:
        d = Daemon(workers=3, flags=["--pidfile=" + pf], ready=False)
        with d:
            t0 = time.monotonic()
            while not os.path.exists(pf):
                assert time.monotonic() - t0 < 10, "no pidfile after 10 s"
                assert d.proc.poll() is None, d.log_text()
                time.sleep(0.002)
            # the moment it exists, the workers run
            assert len(children(d.pid)) == 3, "pidfile before the workers: %r" % children(d.pid)
            with open(pf) as f:
                assert f.read() == "%d\n" % d.pid
            mode = stat.S_IMODE(os.stat(pf).st_mode)
            assert mode == 0o644, "mode %o" % mode
            assert os.listdir(tmp) == ["personad.pid"], os.listdir(tmp)
            d.wait_ready()
            d.send_signal(signal.SIGTERM)
            assert d.proc.wait(5) == 0
            assert not os.path.exists(pf), "pidfile left after exit"
            assert os.listdir(tmp) == [], os.listdir(tmp)
    finally:
        os.umask(old)
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)


def start_fails(pf, want):
    tmp = tempfile.mkdtemp(prefix="personad-pid-")
    try:
        try:
            p = subprocess.run([personad_path(), "-l", "127.0.0.1:%d" % free_port(), "-d", tmp,
                                "-w", "1", "--pidfile=" + pf], stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=10)
        except subprocess.TimeoutExpired:
            raise AssertionError("personad started (ran 10 s) instead of refusing") from None
        err = p.stderr.decode()
        assert p.returncode == 1, "exit %d: %s" % (p.returncode, err)
        assert want in err, "stderr %r, want %r" % (err, want)
        assert "listening on" not in err, err
    finally:
        os.rmdir(tmp)


def test_unwritable_directory():
    start_fails("/nonexistent-personad-dir/personad.pid",
                "--pidfile=/nonexistent-personad-dir/personad.pid: cannot create "
                "/nonexistent-personad-dir/personad.pid.")


def test_running_personad_refused():
    tmp = tempfile.mkdtemp(prefix="personad-pid-")
    pf = os.path.join(tmp, "personad.pid")
    try:
        with Daemon(workers=1, flags=["--pidfile=" + pf]) as d:
            start_fails(pf, "--pidfile=%s: personad is already running as pid %d" % (pf, d.pid))
            with open(pf) as f:
                assert f.read() == "%d\n" % d.pid, "the refused start touched the pidfile"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_stale(content, what, logged=True):
    tmp = tempfile.mkdtemp(prefix="personad-pid-")
    pf = os.path.join(tmp, "personad.pid")
    with open(pf, "w") as f:
        f.write(content)
    try:
        with Daemon(workers=1, flags=["--pidfile=" + pf]) as d:
            with open(pf) as f:
                assert f.read() == "%d\n" % d.pid, "stale pidfile (%s) not replaced" % what
            if logged:
                assert "replacing a stale pidfile" in d.log_text(), d.log_text()
        assert not os.path.exists(pf)
    finally:
        os.rmdir(tmp)


def test_stale_dead_pid_replaced():
    p = subprocess.Popen(["true"])
    p.wait()
    check_stale("%d\n" % p.pid, "a pid that is gone")


def test_stale_other_program_replaced():
    check_stale("%d\n" % os.getpid(), "a python3's pid")


def test_garbage_replaced():
    """A file that names no pid (empty, a sign, 0, a blank, not a number, past
    what a pid_t holds) is not an error: it is overwritten."""
    for content in ("", "\n", "-1\n", "+1\n", "0\n", "00\n", " 1\n", "1x\n", "pid\n",
                    "99999999999999999999\n", "18446744073709551617\n"):
        check_stale(content, repr(content), logged=False)


if __name__ == "__main__":
    run([test_written_after_workers_and_removed, test_unwritable_directory,
         test_running_personad_refused, test_stale_dead_pid_replaced,
         test_stale_other_program_replaced, test_garbage_replaced])
