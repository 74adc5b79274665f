#!/usr/bin/python3
"""The firmware recipes (contrib/buildroot, contrib/openwrt) against the real
configure and the real daemon.  No Buildroot or OpenWrt tree can be fetched
here, so each recipe's makefile is evaluated by GNU make with the build
system's entry points stubbed (autotools-package; rules.mk, package.mk,
BuildPackage), once per combination of its dashboard and TLS options, and what
it would hand to configure must be configure's own switches (configure accepts
an unknown --enable-X with a warning only: a renamed switch would go
unnoticed), with every switch whose default depends on what the sysroot holds
given explicitly (a recipe's result must not depend on what else was built).  The
shipped daemon configurations are started: /etc/personad.conf through
--config, and /etc/config/personad through the procd init script's own
start_service (procd's and UCI's shell functions stubbed) - every option must
reach personad, and personad must start with them and exit 0 on SIGTERM."""

import os
import re
import shlex
import subprocess
import sys
import tempfile

TOP = os.environ.get("TOP_SRCDIR", os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
from harness import Daemon, personad_path, persona_api, run  # noqa: E402

BR = os.path.join(TOP, "contrib", "buildroot")
OW = os.path.join(TOP, "contrib", "openwrt")


def configure_switches():
    """The feature names of configure's --enable/--disable/--with/--without."""
    out = subprocess.run(["sh", os.path.join(TOP, "configure"), "--help"], capture_output=True,
                         text=True, check=True, timeout=60).stdout
    feats = set(re.findall(r"^\s+--(?:enable|disable)-([a-z0-9-]+)", out, re.M))
    pkgs = set(re.findall(r"^\s+--with(?:out)?-([a-z0-9-]+)", out, re.M))
    assert "dashboard" in feats, "configure --help lists no --disable-dashboard:\n" + out
    return feats, pkgs


def configure_auto_switches():
    """The features whose default is decided by what configure finds
    ("default: on when pkg-config finds gnutls", "... when zlib is found")."""
    out = subprocess.run(["sh", os.path.join(TOP, "configure"), "--help"], capture_output=True,
                         text=True, check=True, timeout=60).stdout
    auto = set()
    for m in re.finditer(r"^\s+--(?:enable|disable)-([a-z0-9-]+)(.*(?:\n {20,}.*)*)", out, re.M):
        text = " ".join(m.group(2).split())
        if re.search(r"default: [^)]*when [^)]*(?:finds|found)", text):
            auto.add(m.group(1))
    assert {"tls", "compressed-assets", "kubernetes"} <= auto, auto
    return auto


def check_explicit(args, where):
    given = {re.sub(r"^--(?:enable|disable)-", "", a) for a in args
             if re.match(r"--(?:enable|disable)-", a)}
    missing = configure_auto_switches() - given
    assert not missing, "%s leaves %s to what the sysroot holds" % (where, sorted(missing))


def personad_long_options():
    out = subprocess.run([personad_path(), "--help"], capture_output=True, text=True,
                         timeout=10).stdout
    opts = set(re.findall(r"--([a-z][a-z0-9-]*)", out))
    assert {"listen", "personas-dir", "workers"} <= opts, out
    return opts - {"help", "version", "config"}


def check_switches(args, where):
    feats, pkgs = configure_switches()
    for a in args:
        m = re.match(r"--(enable|disable|with|without)-([a-z0-9-]+)(=.*)?$", a)
        assert m, "%s passes %r to configure: not a switch" % (where, a)
        known = feats if m.group(1) in ("enable", "disable") else pkgs
        assert m.group(2) in known, "%s passes %s: configure --help has no such switch" % (where, a)


def make_eval(stub, variables, assign):
    """Evaluate a makefile with GNU make (a stub that includes it) and print
    the given variables, one per line."""
    with tempfile.TemporaryDirectory(prefix="personad-recipe-") as tmp:
        mk = os.path.join(tmp, "eval.mk")
        with open(mk, "w") as f:
            f.write(stub.replace("@TMP@", tmp))
            f.write("\nprint:\n")
            for v in variables:
                f.write("\t@echo '%s=$(strip $(%s))'\n" % (v, v))
        for name, body in (("rules.mk", ""), ("package.mk", "BuildPackage =\n")):
            with open(os.path.join(tmp, name), "w") as f:
                f.write(body)
        # A make of its own: not the calling make check's flags and jobserver.
        env = {k: v for k, v in os.environ.items()
               if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
        out = subprocess.run(["make", "-s", "--no-print-directory", "-r", "-f", mk, "print"]
                             + ["%s=%s" % kv for kv in assign.items()],
                             capture_output=True, text=True, timeout=30, env=env)
        assert out.returncode == 0, out.stderr
        got = dict(ln.split("=", 1) for ln in out.stdout.splitlines() if "=" in ln)
        assert set(got) == set(variables), out.stdout
        return got


# --- Buildroot ---------------------------------------------------------------

def br_eval(dashboard, tls=False):
    stub = "autotools-package =\ninclude %s\n" % os.path.join(BR, "personad.mk")
    return make_eval(stub, ["PERSONAD_CONF_OPTS", "PERSONAD_DEPENDENCIES", "PERSONAD_SOURCE",
                            "PERSONAD_INSTALL_INIT_SYSV"],
                     {"BR2_PACKAGE_PERSONAD_DASHBOARD": "y" if dashboard else "",
                      "BR2_PACKAGE_PERSONAD_TLS": "y" if tls else ""})


def test_buildroot_conf_opts():
    for dashboard in (True, False):
        for tls in (True, False):
            v = br_eval(dashboard, tls)
            opts = v["PERSONAD_CONF_OPTS"].split()
            deps = v["PERSONAD_DEPENDENCIES"].split()
            check_switches(opts, "personad.mk")
            check_explicit(opts, "personad.mk")
            want = "--enable-dashboard" if dashboard else "--disable-dashboard"
            assert want in opts and len({o for o in opts if "-dashboard" in o}) == 1, \
                (dashboard, opts)
            assert ("--enable-tls" if tls else "--disable-tls") in opts, (tls, opts)
            assert ("gnutls" in deps) == tls and ("zlib" in deps) == dashboard, (deps, opts)
            assert v["PERSONAD_SOURCE"] == "personad-0.1.0.tar.gz", v


def test_buildroot_config_in():
    """Each Config.in sub-option is used by personad.mk (and only those), and
    each selected library is a build dependency."""
    with open(os.path.join(BR, "Config.in")) as f:
        cfg = f.read()
    with open(os.path.join(BR, "personad.mk")) as f:
        mk = f.read()
    defined = set(re.findall(r"^config (BR2_PACKAGE_PERSONAD_\w+)", cfg, re.M))
    used = set(re.findall(r"\b(BR2_PACKAGE_PERSONAD_\w+)", mk))
    assert defined and defined == used, (defined, used)
    selected = {s.lower() for s in re.findall(r"^\s+select BR2_PACKAGE_(\w+)", cfg, re.M)}
    deps = set(br_eval(True, True)["PERSONAD_DEPENDENCIES"].split())
    assert deps - {"host-pkgconf"} == selected and "host-pkgconf" in deps, (deps, selected)
    for lib in ("libmicrohttpd", "wslay", "cjson", "nettle"):
        assert lib in deps, deps


def test_buildroot_init_files_and_conf():
    """The files PERSONAD_INSTALL_INIT_SYSV installs exist; every key of the
    shipped /etc/personad.conf is a personad option; personad starts with it."""
    with open(os.path.join(BR, "personad.mk")) as f:
        files = re.findall(r"\$\(PERSONAD_PKGDIR\)/([\w.-]+)", f.read())
    assert "S50personad" in files and "personad.conf" in files, files
    for name in files:
        assert os.path.isfile(os.path.join(BR, name)), name
    opts = personad_long_options()
    conf = os.path.join(BR, "personad.conf")
    with open(conf) as f:
        keys = [ln.split("=", 1)[0].strip() for ln in f
                if ln.strip() and not ln.lstrip().startswith("#")]
    assert keys and set(keys) <= opts, set(keys) - opts
    # The harness's -l/-d (command line) win over the file's listen and dir.
    with Daemon(workers=1, flags=["--config", os.path.abspath(conf)],
                seed={"a.json": persona_api("a")}) as d:
        assert d.cluster_names() == ["a"]
        assert d.stop() == 0


# --- OpenWrt -----------------------------------------------------------------

def ow_eval(dashboard, tls=False):
    stub = "TOPDIR = @TMP@\nINCLUDE_DIR = @TMP@\ninclude %s\n" % os.path.join(OW, "Makefile")
    return make_eval(stub, ["CONFIGURE_ARGS", "PKG_NAME", "PKG_SOURCE"],
                     {"CONFIG_PERSONAD_DASHBOARD": "y" if dashboard else "",
                      "CONFIG_PERSONAD_TLS": "y" if tls else ""})


def test_openwrt_configure_args():
    for dashboard in (True, False):
        for tls in (True, False):
            v = ow_eval(dashboard, tls)
            args = v["CONFIGURE_ARGS"].split()
            check_switches(args, "contrib/openwrt/Makefile")
            check_explicit(args, "contrib/openwrt/Makefile")
            want = "--enable-dashboard" if dashboard else "--disable-dashboard"
            assert want in args, (dashboard, args)
            assert ("--enable-tls" if tls else "--disable-tls") in args, (tls, args)
            assert v["PKG_SOURCE"] == "personad-0.1.0.tar.gz", v
    with open(os.path.join(OW, "Makefile")) as f:
        mk = f.read()
    for name in re.findall(r"\./files/([\w.-]+)", mk):
        assert os.path.isfile(os.path.join(OW, "files", name)), name
    assert "/etc/config/personad" in mk and "/etc/init.d/personad" in mk


def uci_sections(path):
    """`config personad 'NAME'` sections of a UCI file: {name: {option: value}}."""
    secs, cur = {}, None
    with open(path) as f:
        for ln in f:
            w = shlex.split(ln, comments=True)
            if not w:
                continue
            if w[0] == "config":
                assert w[1] == "personad" and len(w) == 3, ln
                cur = secs.setdefault(w[2], {})
            elif w[0] == "option":
                assert cur is not None and len(w) == 3, ln
                cur[w[1]] = w[2]
            else:
                raise AssertionError("unexpected UCI line: %r" % ln)
    return secs


# UCI's and procd's shell functions as far as the init script uses them: the
# section's options come from the test, the instance's command and params are
# printed one per line, and so is a mkdir (not run: it would be /etc's).
PROCD_STUBS = r'''
config_load() { :; }
config_foreach() { for s in $SECTIONS; do "$1" "$s"; done; }
config_get() { eval "$1=\${UCI_${2}_$3-\${4-}}"; }
config_get_bool() {
    config_get "$@"
    eval "case \$$1 in 1|on|true|yes|enabled) $1=1;; *) $1=0;; esac"
}
procd_open_instance() { echo "instance $1"; }
procd_set_param() { echo "param $*"; }
procd_append_param() { shift; for a in "$@"; do echo "append $a"; done; }
procd_close_instance() { echo "close"; }
mkdir() { echo "mkdir $*"; }
'''


def init_commands(secs):
    """Run the init script's start_service on these sections: {instance: (argv, params)}."""
    env = dict(os.environ, SECTIONS=" ".join(secs))
    for name, opts in secs.items():
        for k, v in opts.items():
            env["UCI_%s_%s" % (name, k)] = v
    with tempfile.TemporaryDirectory(prefix="personad-procd-") as tmp:
        script = os.path.join(tmp, "run.sh")
        with open(script, "w") as f:
            f.write(PROCD_STUBS + ". '%s'\nstart_service\n"
                    % os.path.join(OW, "files", "personad.init"))
        out = subprocess.run(["sh", "-eu", script], capture_output=True, text=True, env=env,
                             timeout=10)
    assert out.returncode == 0, out.stderr
    got, cur = {}, None
    for ln in out.stdout.splitlines():
        kind, _, rest = ln.partition(" ")
        if kind == "mkdir":
            got.setdefault("mkdir", []).append(rest)
        elif kind == "instance":
            cur = got.setdefault(rest, ([], []))
        elif kind == "param" and rest.startswith("command "):
            cur[0][:] = [rest.split(" ", 1)[1]]
        elif kind == "param":
            cur[1].append(rest)
        elif kind == "append":
            cur[0].append(rest)
    return got


def test_openwrt_uci_to_command():
    """Every option of /etc/config/personad reaches personad's command line
    as its long option; procd respawns it and sends its output to logd."""
    opts = personad_long_options()
    secs = uci_sections(os.path.join(OW, "files", "personad.config"))
    assert list(secs) == ["main"], secs
    cmds = init_commands(secs)
    assert cmds.pop("mkdir") == ["-p " + secs["main"]["personas_dir"]], cmds
    argv, params = cmds["main"]
    assert argv[0] == "/usr/bin/personad", argv
    for a in argv[1:]:
        name = a[2:].split("=", 1)[0]
        assert a.startswith("--") and name in opts, "%r is not a personad option" % a
    for k, v in secs["main"].items():
        if k == "enabled":
            continue
        if k == "verbose":
            assert ("--verbose" in argv) == (v == "1"), argv
        else:
            assert "--%s=%s" % (k.replace("_", "-"), v) in argv, (k, v, argv)
    assert {"respawn", "stdout 1", "stderr 1"} <= set(params), params
    # enabled '0': no instance
    off = {"main": dict(secs["main"], enabled="0")}
    assert init_commands(off) == {}, init_commands(off)
    # an option left out is left to personad's default
    less = {"main": {k: v for k, v in secs["main"].items() if k != "ring_size"}}
    assert not [a for a in init_commands(less)["main"][0] if a.startswith("--ring-size")]


class UciDaemon(Daemon):
    """personad started with the command the init script builds from the
    shipped UCI file (listen and personas_dir pointed at the test's)."""

    def argv(self):
        secs = uci_sections(os.path.join(OW, "files", "personad.config"))
        secs["main"].update(listen="127.0.0.1:%d" % self.port,
                            personas_dir=os.path.join(self.tmp, "uci-personas"))
        self.dir = secs["main"]["personas_dir"]
        os.makedirs(self.dir, exist_ok=True)
        argv, _ = init_commands(secs)["main"]
        return [personad_path()] + argv[1:]


def test_openwrt_command_starts_personad():
    with UciDaemon(workers=1) as d:
        st, _, _ = d.http("GET", "/healthz")
        assert st == 200
        assert d.cluster_names() == []
        assert d.stop() == 0


if __name__ == "__main__":
    run([test_buildroot_conf_opts, test_buildroot_config_in, test_buildroot_init_files_and_conf,
         test_openwrt_configure_args, test_openwrt_uci_to_command,
         test_openwrt_command_starts_personad])
