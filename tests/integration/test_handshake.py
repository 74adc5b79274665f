#!/usr/bin/python3
"""Integration: the /ws opening handshake (RFC 6455 section 4) and /healthz."""

import os
import sys

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import (Daemon, RawWS, accept_key, raw_http, run, ws_connect, persona_k8s,  # noqa: E402
                     expect)
import json  # noqa: E402

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3 sample


def req(method="GET", path="/ws", key=KEY, version="13", upgrade="websocket",
        connection="Upgrade", extra=""):
    r = "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n" % (method, path)
    if upgrade is not None:
        r += "Upgrade: %s\r\n" % upgrade
    if connection is not None:
        r += "Connection: %s\r\n" % connection
    if key is not None:
        r += "Sec-WebSocket-Key: %s\r\n" % key
    if version is not None:
        r += "Sec-WebSocket-Version: %s\r\n" % version
    return r + extra + "\r\n"


def test_healthz():
    with Daemon(workers=2) as d:
        st, body, resp = d.http("GET", "/healthz")
        assert st == 200, st
        assert json.loads(body) == {"status": "ok"}, body
        ct = resp.getheader("Content-Type", "")
        assert ct.startswith("application/json"), "Content-Type %r" % ct


def test_healthz_only_after_initial_scan():
    """200 from /healthz means the initial scan is published and workers
    accept connections: the first REST read already sees every persona."""
    seed = {"s%04d.json" % i: persona_k8s("seeded-%04d" % i, nodes=2) for i in range(800)}
    with Daemon(workers=2, seed=seed) as d:
        names = d.cluster_names()
        assert len(names) == 800, "healthz was 200 with only %d/800 personas published" % len(
            names)
        c = RawWS(d.port)
        c.close()


def test_handshake_ok_accept_header():
    with Daemon(workers=1) as d:
        # The RFC's own sample key and answer, byte for byte.
        assert accept_key(KEY) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        st, hdrs = raw_http(d.port, req())
        assert st == 101, "valid handshake -> %d" % st
        assert hdrs.get("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", hdrs
        assert hdrs.get("upgrade", "").lower() == "websocket", hdrs
        assert "upgrade" in hdrs.get("connection", "").lower(), hdrs
        # Random keys, header names in odd case, "keep-alive, Upgrade" token list.
        for _ in range(5):
            c = RawWS(d.port)
            c.close()
        st, hdrs = raw_http(d.port, req(connection="keep-alive, Upgrade", upgrade="WebSocket"))
        assert st == 101, "Connection token list / Upgrade case -> %d" % st


def test_handshake_rejects_400():
    with Daemon(workers=1) as d:
        cases = {
            "POST": req(method="POST"),
            "PUT": req(method="PUT"),
            "missing key": req(key=None),
            "key not base64": req(key="not-a-base64-key!!"),
            "key decodes to 15 bytes": req(key="AAAAAAAAAAAAAAAAAAAA"),
            "key decodes to 17 bytes": req(key="AAAAAAAAAAAAAAAAAAAAAAA="),
            "missing Upgrade": req(upgrade=None),
            "Upgrade not websocket": req(upgrade="h2c"),
            "missing Connection": req(connection=None),
        }
        bad = []
        for what, r in cases.items():
            st, _ = raw_http(d.port, r)
            if st != 400:
                bad.append("%s -> %d" % (what, st))
        assert not bad, "expected 400 for: " + "; ".join(bad)
        # the daemon still serves after all that
        st, _, _ = d.http("GET", "/healthz")
        assert st == 200


def test_handshake_version_426():
    with Daemon(workers=1) as d:
        for v in ("8", "12", "14"):
            st, hdrs = raw_http(d.port, req(version=v))
            assert st == 426, "Sec-WebSocket-Version %s -> %d (want 426)" % (v, st)
            assert hdrs.get("sec-websocket-version") == "13", \
                "426 must carry Sec-WebSocket-Version: 13, got %r" % hdrs


async def test_library_client_gets_events():
    """websockets' own handshake check (it verifies the accept key)."""
    with Daemon(workers=2) as d:
        ws = await ws_connect(d)
        try:
            d.write("hs.json", persona_k8s("hs"))
            await expect(ws, "added", "hs")
        finally:
            await ws.close()


if __name__ == "__main__":
    run([test_healthz, test_healthz_only_after_initial_scan, test_handshake_ok_accept_header, test_handshake_rejects_400,
         test_handshake_version_426, test_library_client_gets_events])
