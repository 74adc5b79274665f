#!/usr/bin/python3
"""Documentation: every long
option of `personad --help` is in personad(8)'s option list and in README.md's,
and every option those lists name is in --help; the keys of personad.conf(5)
and of the sample configuration are exactly the keys --check-config prints."""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import personad_path, run  # noqa: E402

SRC = os.environ.get("TOP_SRCDIR", os.path.join(os.path.dirname(__file__), "..", ".."))
MAN8 = os.path.join(SRC, "doc", "personad.8")
MAN5 = os.path.join(SRC, "doc", "personad.conf.5")
SAMPLE = os.path.join(SRC, "contrib", "personad.conf.sample.in")
README = os.path.join(SRC, "README.md")
LONG = re.compile(r"--([a-z][a-z0-9-]*)")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def help_options():
    out = subprocess.run([personad_path(), "--help"], capture_output=True, text=True,
                         timeout=10, check=True).stdout
    opts = set()
    for line in out.splitlines():
        m = re.match(r"^\s+(?:-\w, )?--([a-z][a-z0-9-]*)", line)
        if m:
            opts.add(m.group(1))
    assert len(opts) > 10, out
    return opts


def section(text, name):
    """The lines of one .Sh section of an mdoc page."""
    m = re.search(r"^\.Sh %s\n(.*?)(?=^\.Sh )" % re.escape(name), text, re.M | re.S)
    assert m, "no .Sh %s" % name
    return m.group(1)


def man_options():
    """The long options of personad(8)'s OPTIONS list (its .It lines)."""
    opts = set()
    for line in section(read(MAN8), "OPTIONS").splitlines():
        if line.startswith(".It "):
            opts.update(re.findall(r"Fl \\-([a-z][a-z0-9-]*)", line))
    return opts


def readme_options():
    """The long options of README.md's option list (the block under "Running")."""
    text = read(README)
    m = re.search(r"^    personad \[OPTION\]\.\.\.\n(.*?)\n\n", text, re.M | re.S)
    assert m, "no option list in README.md"
    opts = set()
    for line in m.group(1).splitlines():
        m2 = re.match(r"^\s+(?:-\w, )?--([a-z][a-z0-9-]*)", line)
        if m2:
            opts.add(m2.group(1))
        # "-h, --help    -V, --version": two on one line
        opts.update(o for o in LONG.findall(line) if re.search(r"-\w, --" + o, line))
    return opts


def check_keys():
    out = subprocess.run([personad_path(), "--check-config"], capture_output=True, text=True,
                         timeout=10, check=True).stdout
    return [line.split(" = ", 1)[0] for line in out.splitlines()]


def test_help_man_readme_name_the_same_options():
    h, m, r = help_options(), man_options(), readme_options()
    assert h - m == set(), "in --help, not in personad.8: %s" % sorted(h - m)
    assert m - h == set(), "in personad.8, not in --help: %s" % sorted(m - h)
    assert h - r == set(), "in --help, not in README.md: %s" % sorted(h - r)
    assert r - h == set(), "in README.md, not in --help: %s" % sorted(r - h)


def test_conf_page_and_sample_name_every_key():
    keys = check_keys()
    page = re.findall(r"^\.It Cm ([a-z][a-z0-9-]*) No =", section(read(MAN5), "KEYS"), re.M)
    sample = re.findall(r"^#([a-z][a-z0-9-]*) = ", read(SAMPLE), re.M)
    assert page == keys, "personad.conf.5 keys %s, --check-config %s" % (page, keys)
    assert sample == keys, "sample keys %s, --check-config %s" % (sample, keys)


if __name__ == "__main__":
    run([test_help_man_readme_name_the_same_options,
         test_conf_page_and_sample_name_every_key])
