#!/usr/bin/python3
"""Install: `make install DESTDIR=...` puts personad in sbindir, the two man
pages in mandir and personad.conf.sample in sysconfdir, and nothing else
(no personad.conf: an existing one is the admin's); the installed sample
parses with --check-config, and uncommented it gives exactly the defaults;
`make uninstall` takes every file away again."""

import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import run  # noqa: E402

BUILD = os.path.abspath(os.environ.get("TOP_BUILDDIR", "."))


def make(*args):
    env = dict(os.environ)
    for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"):
        env.pop(k, None)  # a make of its own, not a job of the one running the tests
    p = subprocess.run(["make", "-s", "-C", BUILD] + list(args), env=env, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, "make %s: %s\n%s" % (" ".join(args), p.stdout, p.stderr)
    return p.stdout


def dirs():
    """sbindir, mandir, sysconfdir as this build's Makefile has them."""
    out = {}
    with open(os.path.join(BUILD, "Makefile")) as f:
        mk = f.read()
    for var in ("prefix", "exec_prefix", "datarootdir", "sbindir", "mandir", "sysconfdir"):
        m = re.search(r"^%s = (.*)$" % var, mk, re.M)
        assert m, var
        out[var] = m.group(1).strip()

    def expand(v):
        for _ in range(5):
            v = re.sub(r"\$\{(\w+)\}|\$\((\w+)\)",
                       lambda g: out[g.group(1) or g.group(2)], v)
        return v
    return {k: expand(v) for k, v in out.items()}


def files_under(root):
    found = set()
    for d, _, names in os.walk(root):
        for n in names:
            found.add(os.path.relpath(os.path.join(d, n), root))
    return found


def check_config(binary, conf):
    p = subprocess.run([binary, "--config=" + conf, "--check-config"], capture_output=True,
                       text=True, timeout=10)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    assert p.stderr == "", p.stderr
    return p.stdout


def test_install_and_uninstall():
    dest = tempfile.mkdtemp(prefix="personad-install-")
    try:
        make("install", "DESTDIR=" + dest)
        d = dirs()
        rel = lambda p: p.lstrip("/")  # noqa: E731
        want = {
            os.path.join(rel(d["sbindir"]), "personad"),
            os.path.join(rel(d["mandir"]), "man8", "personad.8"),
            os.path.join(rel(d["mandir"]), "man5", "personad.conf.5"),
            os.path.join(rel(d["sysconfdir"]), "personad.conf.sample"),
        }
        got = files_under(dest)
        assert want <= got, "missing: %s (installed: %s)" % (sorted(want - got), sorted(got))
        assert not any(p.endswith("/personad.conf") for p in got), sorted(got)
        assert not any(re.search(r"(^|/)bin/personad$", p) for p in got), sorted(got)
        binary = os.path.join(dest, rel(d["sbindir"]), "personad")
        sample = os.path.join(dest, rel(d["sysconfdir"]), "personad.conf.sample")
        assert os.access(binary, os.X_OK)

        # Commented out, it changes nothing; uncommented, it holds the defaults.
        defaults = check_config(binary, "/dev/null")
        assert check_config(binary, sample) == defaults
        with open(sample) as f:
            text = f.read()
        keys = re.findall(r"^#([a-z][a-z0-9-]*) = ", text, re.M)
        assert [line.split(" = ")[0] for line in defaults.splitlines()] == keys, keys
        active = os.path.join(dest, "uncommented.conf")
        with open(active, "w") as f:
            f.write(re.sub(r"^#([a-z][a-z0-9-]*) = ", r"\1 = ", text, flags=re.M))
        got_cfg = check_config(binary, active).splitlines()
        # workers' default is the CPU count: the sample shows an example
        strip = lambda lines: [l for l in lines if not l.startswith("workers = ")]  # noqa
        assert strip(got_cfg) == strip(defaults.splitlines()), (got_cfg, defaults)

        make("uninstall", "DESTDIR=" + dest)
        left = files_under(dest) - {"uncommented.conf"}
        assert left == set(), sorted(left)
    finally:
        shutil.rmtree(dest, ignore_errors=True)


if __name__ == "__main__":
    run([test_install_and_uninstall], timeout=600)
