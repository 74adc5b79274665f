#!/usr/bin/python3
"""Integration: the README's secure deployment, every issue-12 option at once.

--user=nobody (when run as root), --auth-token-file, --tls-cert/--tls-key,
--allowed-hosts and --max-connections-per-ip together, as "A secure
deployment" in README.md shows them.  Each option has its own test; this one
checks that they work in one daemon: the workers run as nobody, a wss client
with the token (by query, as a browser sends it, with a same-origin Origin)
gets the seed's events byte-exact, one without it gets 401, a foreign Origin
403, an unlisted Host 421, and a SIGHUP re-reads the token file and the
certificate as nobody (new token and new certificate for new connections, the
open stream keeps going).
"""

import asyncio
import os
import pwd
import shutil
import signal
import sys

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
import test_tls  # noqa: E402  (skips itself without openssl/curl; makes the test CA)
from harness import ev, persona_api, recv, run  # noqa: E402
from test_tls import CERT1, CERT2, KEY1, KEY2, TLSDaemon, serial_seen, wss  # noqa: E402
import websockets.exceptions  # noqa: E402

TOKEN = "deploy-token-1"
TOKEN2 = "deploy-token-2"


def tls_built():
    import subprocess
    out = subprocess.run([test_tls.personad_path(), "--help"], capture_output=True, text=True).stdout
    return "--tls-cert" in out


def uid_of(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return [int(x) for x in line.split()[1:]]
    raise AssertionError("no Uid line for %d" % pid)


def write_file(path, text, mode=0o644):
    with open(path + ".new", "w") as f:
        f.write(text)
    os.chmod(path + ".new", mode)
    os.rename(path + ".new", path)


async def refused(url, status, **kw):
    try:
        ws = await wss(url, **kw)
    except websockets.exceptions.InvalidStatusCode as e:
        assert e.status_code == status, (url, e.status_code, status)
        return
    await ws.close()
    raise AssertionError("%s: upgraded, wanted %d" % (url, status))


async def test_everything_at_once():
    as_root = os.geteuid() == 0
    d = TLSDaemon(workers=2, seed={"a.json": persona_api("a")})
    tokens = os.path.join(d.tmp, "tokens")
    write_file(tokens, "# the operator's token\n%s\n" % TOKEN)
    d.flags += ["--auth-token-file=" + tokens, "--allowed-hosts=127.0.0.1",
                "--max-connections-per-ip=16"]
    if as_root:
        nobody = pwd.getpwnam("nobody")
        d.flags.append("--user=nobody")
        # what the workers re-read on SIGHUP must be readable by the user
        for p in (d.tmp, d.dir):
            os.chmod(p, 0o755)
        for p in (d.cert, d.key):
            os.chmod(p, 0o644)
    with d:
        if as_root:
            for pid in [d.pid] + d.wait_workers(2):
                assert uid_of(pid) == [nobody.pw_uid] * 4, (pid, uid_of(pid))
        origin = "https://127.0.0.1:%d" % d.port
        url = d.ws_url + "?access_token=" + TOKEN
        ws = await wss(url, extra_headers={"Origin": origin})
        try:
            d.write("b.json", persona_api("b"))
            assert await recv(ws) == ev("added", "b")
            await refused(d.ws_url, 401, extra_headers={"Origin": origin})
            await refused(url, 403, extra_headers={"Origin": "https://evil.example"})
            st, body, _ = d.http("GET", "/api/clusters", headers={"Authorization": "Bearer " + TOKEN})
            assert st == 200, (st, body)
            st, _, _ = d.http("GET", "/api/clusters",
                              headers={"Authorization": "Bearer " + TOKEN, "Host": "evil.example"})
            assert st == 421, st
            assert d.http("GET", "/api/clusters")[0] == 401
            assert d.http("GET", "/healthz")[0] == 200
            # SIGHUP: a new token and a new certificate, read again by the workers
            # (as nobody when root started it); the open stream keeps going.
            assert serial_seen(d.port) == "1001"
            write_file(tokens, TOKEN2 + "\n")
            for src, dst in ((CERT2, d.cert), (KEY2, d.key)):
                shutil.copy(src, dst + ".new")
                os.chmod(dst + ".new", 0o644)
                os.rename(dst + ".new", dst)
            off = len(d.log_text())
            d.send_signal(signal.SIGHUP)
            d.wait_log(lambda ln: "reload: TLS: new connections get" in ln, 5, since=off)
            for _ in range(100):
                if d.http("GET", "/api/clusters",
                          headers={"Authorization": "Bearer " + TOKEN2})[0] == 200:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the new token was not taken: " + d.log_text()[off:])
            assert d.http("GET", "/api/clusters",
                          headers={"Authorization": "Bearer " + TOKEN})[0] == 401
            for _ in range(100):
                if serial_seen(d.port) == "2002":
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the new certificate was not served: " + d.log_text()[off:])
            assert "keeping" not in d.log_text()[off:], d.log_text()[off:]
            d.write("c.json", persona_api("c"))
            assert await recv(ws) == ev("added", "c")
        finally:
            await ws.close()


if __name__ == "__main__":
    if not tls_built():
        print("SKIP: built with --disable-tls")
        sys.exit(77)
    run([test_everything_at_once])
