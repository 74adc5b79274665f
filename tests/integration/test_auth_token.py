#!/usr/bin/python3
"""Integration: --auth-token-file (issue 12, bearer tokens).  With real
clients (python3-websockets, curl, http.client, raw sockets): /ws,
/api/clusters, /api/events and /metrics with the right, a wrong and no token,
by header and by query (a 401 JSON with WWW-Authenticate before any upgrade
or SSE hand-off; the access_token parameter beside since/epoch); /healthz and
the dashboard stay open; bad token files at start (exit 1); SIGHUP re-reads
the file (the old token refused, the new one taken, open connections kept,
a file gone bad keeps the old tokens); an access_token value in a logged
line reads REDACTED, on stderr and in syslog."""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import (Daemon, expect, free_port, persona_api, personad_path, raw_http,  # noqa: E402
                     run, ws_connect)
import websockets.exceptions  # noqa: E402

TOKEN = "s3cret-Tok.en_1~+/=="
TOKEN_Q = "s3cret-Tok.en_1~%2B%2F%3D%3D"  # its query form: '+' would be a space
OTHER = "0ther-token"
CHALLENGE = 'Bearer realm="personad"'


def token_daemon(tokens_text, workers=2, flags=(), seed=None):
    d = Daemon(workers=workers, flags=list(flags), seed=seed)
    path = os.path.join(d.tmp, "tokens")
    write_tokens(path, tokens_text)
    d.flags.append("--auth-token-file=" + path)
    return d, path


def write_tokens(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


def assert_401(d, method, path, headers=None):
    st, body, r = d.http(method, path, headers=headers)
    assert st == 401, "%s %s %r -> %d %r" % (method, path, headers, st, body)
    assert r.getheader("WWW-Authenticate") == CHALLENGE, r.getheaders()
    assert r.getheader("Content-Type") == "application/json", r.getheaders()
    if method != "HEAD":
        assert json.loads(body) == {"error": "unauthorized"}, body


def test_bad_files_at_start():
    """A missing file, one without a token, a directory, an invalid or an
    over-long token: exit 1 before serving, with a message naming the file
    (and line), never the token."""
    d = Daemon(workers=1)
    try:
        cases = [("missing", None, "cannot open"),
                 ("empty", "", "no token in the file"),
                 ("comments", "# only a comment\n\n   \n", "no token in the file"),
                 ("dir", "DIR", "not a regular file"),
                 ("blank-inside", "good\nbad token\n", ":2: not a token"),
                 ("long", "x" * 513 + "\n", ":1: a token longer than 512 characters")]
        for name, text, want in cases:
            path = os.path.join(d.tmp, name)
            if text == "DIR":
                os.mkdir(path)
            elif text is not None:
                with open(path, "w") as f:
                    f.write(text)
            p = subprocess.run([personad_path(), "-l", "127.0.0.1:%d" % free_port(), "-d", d.dir, "-w", "1",
                                "--auth-token-file=" + path],
                               capture_output=True, text=True, timeout=10)
            assert p.returncode == 1, (name, p.returncode, p.stderr)
            assert "personad: --auth-token-file: " in p.stderr and want in p.stderr, \
                (name, p.stderr)
            assert path in p.stderr, (name, p.stderr)
            assert "listening" not in p.stderr, (name, p.stderr)
            if name == "blank-inside":
                assert "good" not in p.stderr.replace(path, ""), p.stderr
    finally:
        d.cleanup()


def test_rest_and_metrics():
    """/api/clusters, /api/clusters/NAME and /metrics: 401 without a token,
    with a wrong one, with another scheme, with the right one after a wrong
    Bearer header; 200 with the right one by header (any case of "Bearer")
    or percent-encoded in access_token.  /healthz, /, /app.js, OPTIONS and an
    unknown path keep their answers."""
    d, _ = token_daemon("# ops\n%s\n  %s  \n" % (TOKEN, OTHER), seed={"a.json": persona_api("a")})
    with d:
        for path in ("/api/clusters", "/api/clusters/a", "/metrics", "/api/events", "/ws",
                     "/api/nothing"):
            assert_401(d, "GET", path)
            assert_401(d, "GET", path, bearer("wrong"))
            assert_401(d, "GET", path, bearer(TOKEN + "x"))
            assert_401(d, "GET", path, bearer(TOKEN[:-1]))
            assert_401(d, "GET", path, {"Authorization": "Basic " + TOKEN})
            assert_401(d, "GET", path, {"Authorization": "Bearer"})
            assert_401(d, "GET", path + "?access_token=wrong")
            assert_401(d, "GET", path + "?access_token=")
            assert_401(d, "GET", path + "?access_token=" + TOKEN)  # raw '+' is a space
            assert_401(d, "GET", path + "?access_token=%zz")
            # a wrong Bearer header is not saved by a right parameter
            assert_401(d, "GET", path + "?access_token=" + TOKEN_Q, bearer("wrong"))
        assert_401(d, "HEAD", "/api/clusters")
        for path in ("/api/clusters", "/api/clusters/a", "/metrics"):
            for h in (bearer(TOKEN), bearer(OTHER), {"Authorization": "bEaReR " + TOKEN}):
                st, body, _ = d.http("GET", path, headers=h)
                assert st == 200, (path, h, st, body)
            st, body, _ = d.http("GET", path + "?access_token=" + TOKEN_Q)
            assert st == 200, (path, st, body)
            st, body, _ = d.http("GET", path + "?x=1&access_token=" + OTHER + "&y")
            assert st == 200, (path, st, body)
        st, body, _ = d.http("GET", "/api/clusters", headers=bearer(TOKEN))
        assert [c["name"] for c in json.loads(body)["clusters"]] == ["a"], body
        st, body, _ = d.http("GET", "/api/nothing", headers=bearer(TOKEN))
        assert st == 404, (st, body)
        # Open: health, the dashboard, preflights (whatever they answer), other paths.
        assert d.http("GET", "/healthz")[0] == 200
        assert d.http("GET", "/healthz", headers=bearer("wrong"))[0] == 200
        for path in ("/", "/app.js", "/app.css"):
            st, _, _ = d.http("GET", path)
            assert st in (200, 404), (path, st)  # 404: --disable-dashboard
        assert d.http("GET", "/nowhere")[0] == 404
        assert d.http("OPTIONS", "/api/clusters")[0] != 401
        assert d.http("OPTIONS", "/ws")[0] != 401


def test_with_allowed_origins():
    """Tokens and --allowed-origins together: a UI on an allowed origin can
    read the 401 (it carries that origin's CORS headers, so the page can ask
    for a token), its preflight allows the Authorization header, and with the
    token it reads the list; a foreign origin's 401 has no CORS headers and its
    /ws is refused for the Origin (403) before the token is looked at."""
    ui = "http://ui.example:8000"
    d, _ = token_daemon(TOKEN + "\n", flags=["--allowed-origins=" + ui],
                        seed={"a.json": persona_api("a")})
    with d:
        st, body, r = d.http("GET", "/api/clusters", headers={"Origin": ui})
        assert st == 401, (st, body)
        assert r.getheader("Access-Control-Allow-Origin") == ui, r.getheaders()
        assert r.getheader("Vary") == "Origin", r.getheaders()
        st, _, r = d.http("OPTIONS", "/api/clusters",
                          headers={"Origin": ui, "Access-Control-Request-Method": "GET",
                                   "Access-Control-Request-Headers": "authorization"})
        assert st == 204, st
        assert r.getheader("Access-Control-Allow-Headers") == "Authorization", r.getheaders()
        st, body, r = d.http("GET", "/api/clusters", headers=dict(bearer(TOKEN), Origin=ui))
        assert st == 200 and r.getheader("Access-Control-Allow-Origin") == ui, (st, body)
        st, _, r = d.http("GET", "/api/clusters", headers={"Origin": "http://evil.example"})
        assert st == 401 and r.getheader("Access-Control-Allow-Origin") is None, r.getheaders()
        st, body, _ = d.http("GET", "/ws", headers={"Origin": "http://evil.example"})
        assert st == 403 and json.loads(body) == {"error": "origin not allowed"}, (st, body)


def test_default_is_open():
    """Without --auth-token-file nothing changes: no token needed, and a
    stray Authorization header or access_token parameter is ignored."""
    with Daemon(workers=1, seed={"a.json": persona_api("a")}) as d:
        for path in ("/api/clusters", "/metrics", "/api/clusters/a"):
            assert d.http("GET", path)[0] == 200
            assert d.http("GET", path, headers=bearer("anything"))[0] == 200
            assert d.http("GET", path + "?access_token=x")[0] == 200


async def ws_refused(d, url, **kw):
    try:
        ws = await ws_connect(url, **kw)
    except websockets.exceptions.InvalidStatusCode as e:
        assert e.status_code == 401, e
        return
    await ws.close()
    raise AssertionError("%s %r: upgraded without a valid token" % (url, kw))


async def test_ws_python():
    """python3-websockets: no, wrong, right token by header and by query.  The
    refused handshakes get a 401 with WWW-Authenticate and no upgrade; the
    right ones stream events, and access_token beside since/epoch leaves the
    position alone (the replay comes)."""
    d, _ = token_daemon(TOKEN + "\n", seed={"a.json": persona_api("a")})
    with d:
        await ws_refused(d, d.ws_url)
        await ws_refused(d, d.ws_url, extra_headers=bearer("wrong"))
        await ws_refused(d, d.ws_url + "?access_token=wrong")
        await ws_refused(d, d.ws_url + "?since=0&access_token=")
        # the raw handshake: the exact refusal, and the socket is still HTTP
        st, hdrs = raw_http(d.port, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                            "Sec-WebSocket-Version: 13\r\n\r\n")
        assert st == 401, (st, hdrs)
        assert hdrs.get("www-authenticate") == CHALLENGE, hdrs
        assert "upgrade" not in hdrs and "sec-websocket-accept" not in hdrs, hdrs
        # right, by header and by query
        by_header = await ws_connect(d, extra_headers=bearer(TOKEN))
        by_query = await ws_connect(d.ws_url + "?access_token=" + TOKEN_Q)
        await asyncio.sleep(0.2)
        d.write("b.json", persona_api("b"))
        await expect(by_header, "added", "b", what="by header")
        await expect(by_query, "added", "b", what="by query")
        await by_header.close()
        await by_query.close()
        # since/epoch with the token before and after them: the replay of b's event
        st, body, _ = d.http("GET", "/api/clusters", headers=bearer(TOKEN))
        lst = json.loads(body)
        seq, epoch = lst["seq"], lst["epoch"]
        d.write("c.json", persona_api("c"))
        for q in ("?access_token=%s&since=%d&epoch=%s" % (TOKEN_Q, seq, epoch),
                  "?since=%d&epoch=%s&access_token=%s" % (seq, epoch, TOKEN_Q),
                  "?since=%d&access_token=%s&epoch=%s" % (seq, TOKEN_Q, epoch)):
            ws = await ws_connect(d.ws_url + q)
            got = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert got["type"] == "cluster.added" and got["data"]["name"] == "c", (q, got)
            assert got["seq"] == seq + 1, (q, got)
            await ws.close()


def test_events_curl():
    """curl on /api/events: 401 without or with a wrong token (no stream
    begins), a stream with the right one by header and by query."""
    d, _ = token_daemon(TOKEN + "\n", workers=1, seed={"a.json": persona_api("a")})
    with d:
        url = "http://127.0.0.1:%d/api/events" % d.port
        for extra in ([], ["-H", "Authorization: Bearer wrong"]):
            p = subprocess.run(["curl", "-sS", "-i", "--max-time", "5"] + extra + [url],
                               capture_output=True, text=True, timeout=10)
            assert p.stdout.startswith("HTTP/1.1 401 "), p.stdout
            assert "WWW-Authenticate: " + CHALLENGE in p.stdout, p.stdout
            assert "text/event-stream" not in p.stdout, p.stdout
            assert p.stdout.endswith('{"error":"unauthorized"}'), p.stdout
        procs = []
        for extra, u in ((["-H", "Authorization: Bearer " + TOKEN], url),
                         ([], url + "?access_token=" + TOKEN_Q)):
            procs.append(subprocess.Popen(["curl", "-sS", "-N", "-i", "--max-time", "4"] + extra +
                                          [u], stdout=subprocess.PIPE, text=True))
        time.sleep(1.0)
        d.write("b.json", persona_api("b"))
        for p in procs:
            out, _ = p.communicate(timeout=15)
            assert out.startswith("HTTP/1.1 200 OK"), out
            assert "Content-Type: text/event-stream" in out, out
            assert '"type":"cluster.added","data":{"name":"b"}' in out, out


async def test_reload_on_sighup():
    """SIGHUP re-reads the file: the old token is refused from then on and the
    new one taken, in every worker; a connection opened with the old token
    stays open (tokens are checked at the handshake) and keeps receiving.  A
    file that became empty, invalid or missing keeps the tokens (an error in
    the log); a good file after that is taken again.  Works without --config."""
    d, path = token_daemon(TOKEN + "\n", workers=2, seed={"a.json": persona_api("a")})
    with d:
        old_conn = await ws_connect(d, extra_headers=bearer(TOKEN))
        await asyncio.sleep(0.2)
        write_tokens(path, "# rotated\n" + OTHER + "\n")
        mark = len(d.log_text())
        d.send_signal(signal.SIGHUP)
        line = d.wait_log(lambda ln: "reload: --auth-token-file: 1 token(s)" in ln, since=mark)
        assert line, d.log_text()[mark:]

        def statuses(tok, n=8):
            # new connections each time: both workers answer some of them
            return {d.http("GET", "/api/clusters", headers=bearer(tok))[0] for _ in range(n)}
        deadline = time.monotonic() + 5
        while (statuses(TOKEN), statuses(OTHER)) != ({401}, {200}):
            assert time.monotonic() < deadline, (statuses(TOKEN), statuses(OTHER))
            await asyncio.sleep(0.05)
        assert d.http("GET", "/api/clusters", headers=bearer(OTHER))[0] == 200
        await ws_refused(d, d.ws_url, extra_headers=bearer(TOKEN))
        new_conn = await ws_connect(d, extra_headers=bearer(OTHER))
        await asyncio.sleep(0.2)
        d.write("b.json", persona_api("b"))
        await expect(old_conn, "added", "b", what="connection opened before the reload")
        await expect(new_conn, "added", "b", what="connection opened after")
        # files gone bad: the tokens stay, the error is logged
        for bad in ("", "# nothing\n", "two words\n", None):
            mark = len(d.log_text())
            if bad is None:
                os.unlink(path)
            else:
                write_tokens(path, bad)
            d.send_signal(signal.SIGHUP)
            line = d.wait_log(lambda ln: "error: reload: --auth-token-file: " in ln, since=mark)
            assert line and "keep the tokens read before" in line, d.log_text()[mark:]
            time.sleep(0.3)
            assert statuses(OTHER) == {200}, (bad, statuses(OTHER))
            assert statuses(TOKEN) == {401}
            assert "two words" not in d.log_text()[mark:]
        write_tokens(path, TOKEN + "\n")
        mark = len(d.log_text())
        d.send_signal(signal.SIGHUP)
        assert d.wait_log(lambda ln: "reload: --auth-token-file: 1 token(s)" in ln, since=mark)
        deadline = time.monotonic() + 5
        while (statuses(TOKEN), statuses(OTHER)) != ({200}, {401}):
            assert time.monotonic() < deadline, (statuses(TOKEN), statuses(OTHER))
            await asyncio.sleep(0.05)
        await old_conn.close()
        await new_conn.close()
        # only the master reads a bad file: the workers are not sent SIGHUP for it
        assert not [ln for ln in d.log_text().splitlines()
                    if re.search(r": worker \d+: --auth-token-file", ln)], d.log_text()


def test_respawned_worker_fails_closed():
    """A worker that starts (respawned after a crash) while the file is bad
    has no tokens: it refuses every protected request, logs why, and serves
    /healthz; the next SIGHUP with a good file lets tokens in again."""
    d = Daemon(workers=1, expect_worker_deaths=True, seed={"a.json": persona_api("a")})
    path = os.path.join(d.tmp, "tokens")
    write_tokens(path, TOKEN + "\n")
    d.flags.append("--auth-token-file=" + path)
    with d:
        assert d.http("GET", "/api/clusters", headers=bearer(TOKEN))[0] == 200
        write_tokens(path, "# emptied\n")
        old = d.wait_workers(1)
        os.kill(old[0], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while True:
            now = d.worker_pids()
            if len(now) == 1 and now != old:
                try:
                    if d.http("GET", "/healthz", timeout=1)[0] == 200:
                        break
                except OSError:
                    pass
            assert time.monotonic() < deadline, "no worker respawned"
            time.sleep(0.05)
        assert d.wait_log(lambda ln: re.search(r"error: worker 0: --auth-token-file: .*no token "
                                               r"in the file; keeping the 0 token", ln))
        assert_401(d, "GET", "/api/clusters", bearer(TOKEN))
        assert_401(d, "GET", "/ws?access_token=" + TOKEN_Q)
        write_tokens(path, TOKEN + "\n")
        d.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while d.http("GET", "/api/clusters", headers=bearer(TOKEN))[0] != 200:
            assert time.monotonic() < deadline, "a good file after SIGHUP was not taken"
            time.sleep(0.05)


SECRET_NAME = "evil?since=1&access_token=S3cretInAName%2B%2F~x&next=1.json"
REDACTED_NAME = "evil?since=1&access_token=REDACTED&next=1.json"


def test_redacted_on_stderr():
    """Every logged line has its access_token values redacted, whatever text
    carries them: a persona file named like a request target with a token,
    which the master logs (it does not parse), reads REDACTED on stderr."""
    with Daemon(workers=1) as d:
        mark = len(d.log_text())
        d.write(SECRET_NAME, "{ not json")
        line = d.wait_log(lambda ln: "evil?since=1" in ln, timeout=5, since=mark)
        assert line is not None, d.log_text()[mark:]
        assert REDACTED_NAME in line, line
        assert "S3cret" not in d.log_text(), d.log_text()[mark:]


def test_redacted_in_syslog():
    """The same over --log=syslog (the test's own /dev/log stand-in)."""
    from test_syslog import ENV, LogSocket
    logsock = LogSocket()
    try:
        os.environ[ENV] = logsock.path
        with Daemon(workers=1, flags=["--log=syslog"]) as d:
            d.write(SECRET_NAME, "{ not json")
            m = logsock.read(lambda m: b"evil?since=1" in m)
            assert REDACTED_NAME.encode() in m, m
            assert not [x for x in logsock.msgs if b"S3cret" in x], logsock.msgs
    finally:
        os.environ.pop(ENV, None)
        logsock.close()


if __name__ == "__main__":
    run([test_bad_files_at_start, test_rest_and_metrics, test_with_allowed_origins,
         test_default_is_open, test_ws_python,
         test_events_curl, test_reload_on_sighup, test_respawned_worker_fails_closed,
         test_redacted_on_stderr,
         test_redacted_in_syslog])
