"""Helpers of the supervisor tests (test_initd, test_runit, test_s6,
test_systemd_unit): where the shipped files are, a scratch directory with a
personas dir and a port, and polling."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import http.client

from harness import free_port, personad_path, pid_alive  # noqa: F401


def top_srcdir():
    return os.path.abspath(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."))


def top_builddir():
    return os.path.abspath(os.environ.get("TOP_BUILDDIR", "."))


def need(*tools):
    """Skip (exit 77) unless every tool is on PATH."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        print("SKIP: %s not installed (Debian: see contrib/quickstart)" % " ".join(missing))
        sys.exit(77)


class Scratch:
    """A temp dir with personas/ and a free port; removed at exit."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="personad-sv-")
        self.personas = os.path.join(self.tmp, "personas")
        os.mkdir(self.personas)
        self.port = free_port()

    def opts(self, workers=2):
        return "-l 127.0.0.1:%d -d %s -w %d" % (self.port, self.personas, workers)

    def healthz(self):
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            c.request("GET", "/healthz")
            st = c.getresponse().status
            c.close()
            return st
        except OSError:
            return None

    def __enter__(self):
        return self

    def kill_leftovers(self):
        """SIGKILL every process whose command line names this scratch dir
        (a personad the supervisor under test left behind when a test failed:
        supervisors start services in sessions of their own)."""
        marker = self.tmp.encode()
        for d in os.listdir("/proc"):
            if not d.isdigit() or int(d) == os.getpid():
                continue
            try:
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    if marker in f.read():
                        os.kill(int(d), signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass

    def __exit__(self, *exc):
        self.kill_leftovers()
        shutil.rmtree(self.tmp, ignore_errors=True)
        return False


def wait_until(pred, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, what))
        time.sleep(0.05)


def file_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def sh(*argv, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("timeout", 30)
    kw.setdefault("stdin", subprocess.DEVNULL)
    p = subprocess.run(list(argv), **kw)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
