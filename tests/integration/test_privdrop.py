#!/usr/bin/python3
"""Integration (issue 12, privilege drop): --user=NAME [--group=NAME].

Started as root with --user nobody, the master binds the port, creates the
shared memory and writes the pidfile, then every worker (before it serves)
and the master itself run as nobody: /proc/PID/status shows nobody's ids in
all four Uid and Gid fields and no group but nobody's, and setuid(0) cannot
give root back (a worker respawned by the dropped master is nobody too).
Events still flow, SIGHUP still re-reads the config file and the personas,
SIGTERM still exits 0 and removes the pidfile (its directory is nobody's).
An unknown user or group is an error at start with exit status 1; a process
that is not root may not name another user, and may name itself.

These tests need root (the test environment runs as root); otherwise they
are skipped.
"""

import os
import pwd
import grp
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import (Daemon, expect, free_port, persona_api, personad_path,  # noqa: E402
                     run, ws_connect)


def need_root():
    if os.geteuid() != 0:
        print("SKIP: needs root (to start personad as root and drop to nobody)")
        sys.exit(77)
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        print("SKIP: no user nobody")
        sys.exit(77)


def creds(pid):
    """(uids, gids, groups) of pid from /proc/PID/status."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Uid", "Gid", "Groups"):
                out[k] = [int(x) for x in v.split()]
    return out["Uid"], out["Gid"], out["Groups"]


def assert_runs_as(pid, uid, gid, groups, what):
    uids, gids, grps = creds(pid)
    assert uids == [uid] * 4, "%s (pid %d): Uid %r, want %d in all four" % (what, pid, uids, uid)
    assert gids == [gid] * 4, "%s (pid %d): Gid %r, want %d in all four" % (what, pid, gids, gid)
    assert sorted(grps) == sorted(groups), "%s (pid %d): Groups %r, want %r" % (
        what, pid, grps, groups)


def wait_serving(d, pid, since=0):
    """Wait for worker pid's "ready" line (-v): it drops before it logs it, so
    its ids are final from then on.  (Read before that, a freshly forked
    worker still shows the master's root ids.)"""
    line = d.wait_log(lambda ln: ln.startswith("personad[%d]:" % pid) and ln.endswith(" ready"),
                      5, since=since)
    assert line is not None, "worker %d never reported ready:\n%s" % (pid, d.log_text()[since:])


def wait_master_dropped(d):
    """Wait for the master's "running as user" line: it drops after forking
    the workers and writing the pidfile, and logs that line right after."""
    line = d.wait_log(lambda ln: "running as user " in ln, 5)
    assert line is not None, "the master never said it dropped:\n%s" % d.log_text()


def open_for(d, uid, gid):
    """The daemon's temp dir and personas dir readable by uid (mkdtemp made it
    0700); a directory owned by uid for the pidfile."""
    os.chmod(d.tmp, 0o755)
    os.chmod(d.dir, 0o755)
    run_dir = os.path.join(d.tmp, "run")
    os.mkdir(run_dir, 0o755)
    os.chown(run_dir, uid, gid)
    return run_dir


async def test_user_nobody():
    nobody = need_root()
    uid, gid = nobody.pw_uid, nobody.pw_gid
    groups = sorted({gid} | {g.gr_gid for g in grp.getgrall() if "nobody" in g.gr_mem})
    d = Daemon(workers=2, expect_worker_deaths=True)  # one worker is killed below
    run_dir = open_for(d, uid, gid)
    pf = os.path.join(run_dir, "personad.pid")
    conf = os.path.join(d.tmp, "personad.conf")
    with open(conf, "w") as f:
        f.write("rest-deadline = 30\n")
    os.chmod(conf, 0o644)
    d.flags += ["-v", "--user=nobody", "--pidfile=" + pf, "-c", conf]
    with d:
        workers = d.wait_workers(2)
        wait_master_dropped(d)
        assert_runs_as(d.pid, uid, gid, groups, "master")
        for w in workers:
            wait_serving(d, w)
            assert_runs_as(w, uid, gid, groups, "worker")
        with open(pf) as f:
            assert f.read() == "%d\n" % d.pid
        assert "running as user nobody" in d.log_text(), d.log_text()
        ws = await ws_connect(d)
        try:
            d.write("a.json", persona_api("a"))
            await expect(ws, "added", "a", what="as nobody")
            # SIGHUP: the config file and the directory are re-read as nobody.
            with open(conf, "w") as f:
                f.write("rest-deadline = 20\n")
            off = len(d.log_text())
            d.send_signal(signal.SIGHUP)
            d.wait_log(lambda ln: "reload: rest-deadline: 30 -> 20" in ln, 5, since=off)
            d.write("b.json", persona_api("b"))
            await expect(ws, "added", "b", what="after SIGHUP")
            assert "keeping its options" not in d.log_text()[off:], d.log_text()[off:]
            assert sorted(d.worker_pids()) == sorted(workers), "a worker was replaced by SIGHUP"
        finally:
            await ws.close()
        # A worker respawned by the dropped master runs as nobody too.
        off = len(d.log_text())
        os.kill(workers[0], signal.SIGKILL)
        t0 = time.monotonic()
        while True:
            now = d.worker_pids()
            new = [p for p in now if p not in workers]
            if len(now) == 2 and new:
                break
            assert time.monotonic() - t0 < 10, "worker not respawned: %r" % now
            time.sleep(0.05)
        wait_serving(d, new[0], since=off)
        assert_runs_as(new[0], uid, gid, groups, "respawned worker")
        st, _, _ = d.http("GET", "/healthz")
        assert st == 200, st
        rc = d.stop()
        assert rc == 0, "exit status %r after SIGTERM" % rc
        assert not os.path.exists(pf), "pidfile left behind"


async def test_group_option():
    """--group: that group, and no supplementary groups."""
    nobody = need_root()
    try:
        daemon_gid = grp.getgrnam("daemon").gr_gid
    except KeyError:
        print("no group daemon; skipped")
        return
    d = Daemon(workers=1)
    open_for(d, nobody.pw_uid, daemon_gid)
    d.flags += ["-v", "--user=nobody", "--group=daemon"]
    with d:
        (w,) = d.wait_workers(1)
        wait_serving(d, w)
        wait_master_dropped(d)
        assert_runs_as(d.pid, nobody.pw_uid, daemon_gid, [], "master")
        assert_runs_as(w, nobody.pw_uid, daemon_gid, [], "worker")
        ws = await ws_connect(d)
        try:
            d.write("g.json", persona_api("g"))
            await expect(ws, "added", "g")
        finally:
            await ws.close()


def start_fails(args, want, preexec=None):
    port = free_port()
    p = subprocess.run([personad_path(), "-l", "127.0.0.1:%d" % port, "-d", "/"] + args,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=10,
                       preexec_fn=preexec)
    err = p.stderr.decode()
    assert p.returncode == 1, "%r: exit status %r, want 1; stderr %r" % (args, p.returncode, err)
    assert want in err, "%r: stderr %r lacks %r" % (args, err, want)
    print("%r -> 1: %s" % (args, err.strip()))


def test_unknown_user_or_group():
    need_root()
    start_fails(["--user=no-such-user-xyz"], "--user=no-such-user-xyz: no such user")
    start_fails(["--user=nobody", "--group=no-such-group-xyz"],
                "--group=no-such-group-xyz: no such group")
    start_fails(["--group=daemon"], "--group=daemon needs --user")


def as_nobody():
    nobody = pwd.getpwnam("nobody")
    os.setgroups([])
    os.setgid(nobody.pw_gid)
    os.setuid(nobody.pw_uid)


def binary_for_nobody():
    """A copy of personad that nobody can run: the build tree may sit where
    nobody cannot reach it (a clone in /root, mode 0700, on a fresh machine)."""
    d = tempfile.mkdtemp(prefix="personad-nobody-")
    os.chmod(d, 0o755)
    exe = os.path.join(d, "personad")
    shutil.copy(personad_path(), exe)
    os.chmod(exe, 0o755)
    return exe


def test_not_root():
    """Not root: another user is refused; oneself is fine (nothing to drop)."""
    need_root()
    exe = binary_for_nobody()
    before = os.environ.get("PERSONAD")
    os.environ["PERSONAD"] = exe  # start_fails and the Daemon below run this copy
    try:
        start_fails(["--user=root"], "only root can switch", preexec=as_nobody)
        d = Daemon(workers=1)
        open_for(d, 0, 0)
        d.flags += ["--user=nobody"]
        run_as_nobody(d)
    finally:
        if before is None:
            del os.environ["PERSONAD"]
        else:
            os.environ["PERSONAD"] = before
        shutil.rmtree(os.path.dirname(exe), ignore_errors=True)


def run_as_nobody(d):
    """d started by nobody, with --user=nobody: nothing to drop."""
    def spawn_as_nobody():
        d.errf = open(d.log_path, "ab")
        d.outf = open(d.out_path, "ab")
        d.proc = subprocess.Popen(d.argv(), stdin=subprocess.DEVNULL, stdout=d.outf,
                                  stderr=d.errf, process_group=0, preexec_fn=as_nobody)
        d.pgid = d.proc.pid
        d.started_at = time.monotonic()
    d._spawn = spawn_as_nobody
    with d:
        (w,) = d.wait_workers(1)
        assert creds(w)[0] == [pwd.getpwnam("nobody").pw_uid] * 4


run([test_user_nobody, test_group_option, test_unknown_user_or_group, test_not_root])
