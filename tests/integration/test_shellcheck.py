#!/usr/bin/python3
"""shellcheck (POSIX sh) is clean on the supervisor scripts: the built init
script, runit's run and log/run, s6's run."""

import os
import sys

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import run  # noqa: E402
from supervise_util import need, sh, top_builddir, top_srcdir  # noqa: E402

need("shellcheck")

SCRIPTS = [os.path.join(top_builddir(), "contrib", "init.d", "personad")] + [
    os.path.join(top_srcdir(), "contrib", p)
    for p in ("runit/personad/run", "runit/personad/log/run", "s6/personad/run")]


def test_shellcheck():
    for s in SCRIPTS:
        assert os.access(s, os.X_OK), "%s is not an executable file" % s
        with open(s) as f:
            assert f.readline() == "#!/bin/sh\n", "%s: not a /bin/sh script" % s
    rc, out, err = sh("shellcheck", "--shell=sh", "--severity=style", *SCRIPTS)
    assert rc == 0, "shellcheck:\n%s%s" % (out, err)


if __name__ == "__main__":
    run([test_shellcheck])
