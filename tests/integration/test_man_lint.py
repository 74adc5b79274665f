#!/usr/bin/python3
"""Documentation: personad(8) and personad.conf(5) are clean under
`mandoc -Tlint` (Debian: mandoc; skipped without it)."""

import os
import re
import shutil
import subprocess
import sys

SRC = os.environ.get("TOP_SRCDIR", os.path.join(os.path.dirname(__file__), "..", ".."))
MAN8 = os.path.join(SRC, "doc", "personad.8")
MAN5 = os.path.join(SRC, "doc", "personad.conf.5")


def test_mandoc_lint():
    if shutil.which("mandoc") is None:
        print("SKIP: mandoc not installed (Debian: mandoc)")
        sys.exit(77)
    for page in (MAN8, MAN5):
        p = subprocess.run(["mandoc", "-Tlint", page], capture_output=True, text=True, timeout=20)
        problems = []
        for line in (p.stdout + p.stderr).splitlines():
            if page not in line:
                continue  # e.g. "outdated mandoc.db": about the system, not the page
            # Whether a referenced page is installed is about the machine, not the
            # page: the two refer to each other (not installed here), and syslog(3),
            # kill(1)... exist only with manpages-dev etc.  A malformed .Xr is still
            # an error ("Xr" without a section is a WARNING mandoc reports).
            if re.search(r"STYLE: referenced manual not found: Xr [A-Za-z0-9._-]+ [1-9]", line):
                continue
            problems.append(line)
        assert not problems, "\n".join(problems)


if __name__ == "__main__":
    test_mandoc_lint()
    print("PASS test_mandoc_lint")
