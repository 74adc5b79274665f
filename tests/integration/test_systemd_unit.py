#!/usr/bin/python3
"""The systemd unit (contrib/systemd/personad.service, as built): no @...@
left, Type=notify with a SIGHUP reload and a watchdog; `systemd-analyze
verify` is silent on it (with ExecStart pointed at the built daemon: verify
checks the binary), and `systemd-analyze security` rates it at most 2.0
(doc/operations.md records the figure).  verify needs no running systemd."""

import os
import re
import sys

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import run  # noqa: E402
from supervise_util import Scratch, need, personad_path, sh, top_builddir  # noqa: E402

need("systemd-analyze")

MAX_EXPOSURE = 2.0


def unit_text():
    path = os.path.join(top_builddir(), "contrib", "systemd", "personad.service")
    with open(path) as f:
        return f.read()


def local_unit(sc):
    """The unit with ExecStart= on the built daemon, in a scratch dir."""
    text = re.sub(r"^ExecStart=\S+", "ExecStart=" + personad_path(), unit_text(), flags=re.M)
    path = os.path.join(sc.tmp, "personad.service")
    with open(path, "w") as f:
        f.write(text)
    return path


def test_unit_contents():
    text = unit_text()
    assert not re.search(r"@[a-z_]+@", text), "unsubstituted @...@ in the unit"
    keys = {}
    for ln in text.splitlines():
        if ln and not ln.startswith("#") and "=" in ln:
            k, v = ln.split("=", 1)
            keys.setdefault(k, []).append(v)
    assert keys["Type"] == ["notify"], keys["Type"]
    assert keys["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert keys["WatchdogSec"] and keys["NotifyAccess"] == ["main"]
    for k in ("ProtectSystem", "NoNewPrivileges", "PrivateTmp", "ProtectHome",
              "RestrictAddressFamilies", "MemoryDenyWriteExecute", "SystemCallFilter",
              "CapabilityBoundingSet", "DynamicUser"):
        assert k in keys, "no %s=" % k
    assert keys["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]


def test_verify():
    with Scratch() as sc:
        rc, out, err = sh("systemd-analyze", "verify", local_unit(sc))
        assert rc == 0 and out == "" and err == "", "verify: %d\n%s%s" % (rc, out, err)


def test_security_score():
    with Scratch() as sc:
        rc, out, err = sh("systemd-analyze", "security", "--offline=yes", local_unit(sc))
        m = re.search(r"Overall exposure level for personad.service: ([0-9.]+)", out)
        assert m, "no score: %d\n%s%s" % (rc, out, err)
        score = float(m.group(1))
        print("systemd-analyze security: %.1f" % score)
        assert score <= MAX_EXPOSURE, "exposure %.1f > %.1f:\n%s" % (score, MAX_EXPOSURE, out)


if __name__ == "__main__":
    run([test_unit_contents, test_verify, test_security_score])
