#!/usr/bin/python3
"""Integration: issue 10's binary budget, the stripped personad within 150 KB
with every feature built in (x86-64, default build): 149 768 bytes with TLS,
the Kubernetes source and the dashboard gzip-compressed (doc/footprint.md,
"The last page").  The file grows in 4 KB steps (page-aligned segments), so
one import or a few hundred bytes of code can cross the line: the figure and
each segment's slack before the next one are printed, to say where it went.
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


def segment_room(path):
    """Each LOAD segment's file size and its slack: the bytes between its end
    and the next segment's start in the file.  Past that, the next segment
    moves by a page and the file grows by one.  The data segment's start is
    set by its relro part (it ends on a page), so data.rel.ro growing eats the
    slack after .rodata too."""
    out = subprocess.run([os.environ.get("READELF", "readelf"), "-lW", path],
                         capture_output=True, text=True, timeout=60).stdout
    loads = []
    for line in out.splitlines():
        f = line.split()
        if f[:1] == ["LOAD"]:
            loads.append((int(f[1], 16), int(f[4], 16), " ".join(f[6:-1])))
    loads.sort()
    rows = []
    for i, (offset, filesz, flags) in enumerate(loads):
        if i + 1 < len(loads):
            slack = "%d before the next segment" % (loads[i + 1][0] - offset - filesz)
        else:
            slack = "the last"
        rows.append("LOAD at %#x %s: %d bytes, %s" % (offset, flags, filesz, slack))
    return "\n".join(rows)


def test_stripped_binary_within_150_kb():
    binary = os.path.join(TOP_BUILDDIR, "src", "personad")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "personad")
        subprocess.run([os.environ.get("STRIP", "strip"), "-o", out, binary], check=True, timeout=60)
        size = os.path.getsize(out)
        print(segment_room(out))
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
