#!/usr/bin/python3
"""Integration: issue 10's binary budget, the stripped personad within 150 KB
with every feature built in (x86-64, default build).

An EXPECTED FAILURE (XFAIL_TESTS in tests/integration/tests.am) since TLS
(issue 12) and the Kubernetes source (issue 14) were built in: 170 248 bytes
with every feature, 153 752 without Kubernetes, 149 656 without Kubernetes and
TLS; with the dashboard embedded gzip-compressed (--enable-compressed-assets,
zlib) 153 864 bytes with every feature, 264 over (doc/footprint.md).  Issue 10
is open again for it.  When the budget is
met again this test passes, automake counts the XPASS as a failure, and it
must leave XFAIL_TESTS: the budget cannot be forgotten silently.
"""

import os
import subprocess
import sys
import tempfile

TOP_SRCDIR = os.environ.get("TOP_SRCDIR", os.path.join(os.path.dirname(__file__), "..", ".."))
TOP_BUILDDIR = os.environ.get("TOP_BUILDDIR", os.path.join(TOP_SRCDIR, "build"))
sys.path.insert(0, os.path.join(TOP_SRCDIR, "tests", "integration"))
from harness import run  # noqa: E402

BUDGET = 150 * 1024


def test_stripped_binary_within_150_kb():
    binary = os.path.join(TOP_BUILDDIR, "src", "personad")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "personad")
        subprocess.run([os.environ.get("STRIP", "strip"), "-o", out, binary], check=True, timeout=60)
        size = os.path.getsize(out)
    print("stripped personad: %d bytes (budget %d)" % (size, BUDGET))
    assert size <= BUDGET, "stripped binary %d bytes > 150 KB" % size


FEATURES = ("ENABLE_DASHBOARD", "ENABLE_COMPRESSED_ASSETS", "ENABLE_WEB_ROOT", "ENABLE_TLS",
            "ENABLE_KUBERNETES")


def unbudgeted():
    """Why this build is not what the budget is for (a sanitizer build, or one
    without every feature), or None."""
    dyn = subprocess.run(["readelf", "-d", os.path.join(TOP_BUILDDIR, "src", "personad")],
                         capture_output=True, text=True).stdout
    if "libasan" in dyn or "libubsan" in dyn:
        return "a sanitizer build"
    with open(os.path.join(TOP_BUILDDIR, "build_config.h")) as f:
        config = f.read()
    missing = [x for x in FEATURES if "#define %s 1" % x not in config]
    return "built without " + ", ".join(missing) if missing else None


if __name__ == "__main__":
    why = unbudgeted()
    if why:
        print("SKIP: %s (the budget is for a build with every feature)" % why)
        sys.exit(77)
    run([test_stripped_binary_within_150_kb])
