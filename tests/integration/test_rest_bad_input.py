#!/usr/bin/python3
"""Integration: hostile REST paths (issue 3, "Bad input").

Over-long paths, %00 and invalid escapes, "..", extra segments, quotes,
slashes, Unicode and control characters, raw bytes on the request line: each
gets a clean JSON 400 or 404 (never a crash, never a file outside the
snapshot), and the daemon keeps serving with the same workers.  Requests go
over raw sockets, byte for byte, so nothing normalises them on the way.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import Daemon, persona_api, run  # noqa: E402
from rest_util import (RawHTTP, assert_json_error, assert_still_serving, get,  # noqa: E402
                       get_ok_json, serving_state)

LONG_NAME = "\u65e5" * 84 + "a"          # 253 bytes of UTF-8: the longest legal name
SEED = {"a.json": persona_api("a"), "b.json": persona_api("b"),
        "long.json": persona_api(LONG_NAME), "q.json": persona_api('q"uote'),
        "slash.json": persona_api("x/y")}

BAD_ESCAPE = "invalid percent-encoding in cluster name"

# (request target, status, error text or None for "any")
CASES = [
    # escapes
    ("/api/clusters/%00", 400, BAD_ESCAPE),
    ("/api/clusters/a%00", 400, BAD_ESCAPE),
    ("/api/clusters/a%00b", 400, BAD_ESCAPE),
    ("/api/clusters/%zz", 400, BAD_ESCAPE),
    ("/api/clusters/%4", 400, BAD_ESCAPE),
    ("/api/clusters/a%4", 400, BAD_ESCAPE),
    ("/api/clusters/%", 400, BAD_ESCAPE),
    ("/api/clusters/a%", 400, BAD_ESCAPE),
    ("/api/clusters/%%41", 400, BAD_ESCAPE),
    ("/api/clusters/%g1", 400, BAD_ESCAPE),
    ("/api/clusters/%1g", 400, BAD_ESCAPE),
    ("/api/clusters/%+1", 400, BAD_ESCAPE),
    ("/api/clusters/%-1", 400, BAD_ESCAPE),
    ("/api/clusters/% 1", 400, BAD_ESCAPE),
    ("/api/clusters/a" + "%41" * 100 + "%", 400, BAD_ESCAPE),
    # over-long names and paths (3000 characters and more)
    ("/api/clusters/" + "a" * 254, 404, "cluster not found"),
    ("/api/clusters/" + "a" * 3000, 404, "cluster not found"),
    ("/api/clusters/" + "%41" * 1000, 404, "cluster not found"),
    ("/api/clusters/" + "%E6%97%A5" * 84 + "ab", 404, "cluster not found"),   # 254 bytes
    ("/api/clusters/" + "a" * 12000, 404, "cluster not found"),
    ("/api/" + "x" * 3000, 404, "not found"),
    ("/" + "x" * 3000, 404, "not found"),
    ("/api/clusters/" + "a/" * 1500, 404, "not found"),
    # dot segments: matched as names or refused, never resolved
    ("/api/clusters/..", 404, "cluster not found"),
    ("/api/clusters/.", 404, "cluster not found"),
    ("/api/clusters/%2E%2E", 404, "cluster not found"),
    ("/api/clusters/../healthz", 404, "not found"),
    ("/api/clusters/../../../../etc/passwd", 404, "not found"),
    ("/api/clusters/..%2F..%2F..%2Fetc%2Fpasswd", 404, "cluster not found"),
    ("/api/clusters/%2e%2e%2f%2e%2e%2fetc%2fpasswd", 404, "cluster not found"),
    ("/api/clusters/..%5C..%5Cetc%5Cpasswd", 404, "cluster not found"),
    ("/api/../api/clusters", 404, "not found"),
    ("/api/clusters/./a", 404, "not found"),
    ("/../../../../etc/passwd", 404, "not found"),
    ("/%2e%2e/%2e%2e/etc/passwd", 404, "not found"),
    ("/app.js/../../../etc/passwd", 404, "not found"),
    ("/etc/passwd", 404, "not found"),
    ("//etc/passwd", 404, "not found"),
    # extra segments
    ("/api/clusters/a/b", 404, "not found"),
    ("/api/clusters/a/", 404, "not found"),
    ("/api/clusters//a", 404, "not found"),
    ("/api/clusters/", 404, "not found"),
    ("/api/clusters/x/y", 404, "not found"),              # the cluster "x/y" needs %2F
    # quotes, slashes, controls, Unicode: valid escapes, unknown names
    ("/api/clusters/%22", 404, "cluster not found"),
    ("/api/clusters/q%22", 404, "cluster not found"),
    ("/api/clusters/%22%7D%2C%22x%22%3A%22", 404, "cluster not found"),
    ("/api/clusters/%01", 404, "cluster not found"),
    ("/api/clusters/a%01", 404, "cluster not found"),
    ("/api/clusters/%1F%7F", 404, "cluster not found"),
    ("/api/clusters/%0D%0AX-Injected:%201", 404, "cluster not found"),
    ("/api/clusters/%FF%FE", 404, "cluster not found"),          # not UTF-8
    ("/api/clusters/%C0%AF", 404, "cluster not found"),          # overlong '/'
    ("/api/clusters/%ED%A0%80", 404, "cluster not found"),       # surrogate
    ("/api/clusters/%F0%9F%98", 404, "cluster not found"),       # truncated UTF-8
    ("/api/clusters/%2F", 404, "cluster not found"),
    ("/api/clusters/x%2Fy%2F", 404, "cluster not found"),
    ("/api/clusters/%5C", 404, "cluster not found"),
    # raw bytes on the request line
    (b"/api/clusters/a\x01b", 404, None),
    (b"/api/clusters/\x7f", 404, None),
    (b"/api/clusters/\xff\xfe", 404, None),
    (b"/api/clusters/q\"", 404, None),
    (b"/api/clusters/a\tb", 404, None),
    (b"http://127.0.0.1/api/clusters/zz", 404, None),
    (b"*", 404, None),
]

# Names that exist must be found through their exact escapes, next to the above.
GOOD = [("/api/clusters/q%22uote", 'q"uote'), ("/api/clusters/x%2Fy", "x/y"),
        ("/api/clusters/x%2fy", "x/y"), ("/api/clusters/" + "%E6%97%A5" * 84 + "a", LONG_NAME),
        ("/api/clusters/" + LONG_NAME, LONG_NAME), ("/api/clusters/a", "a")]


def check_case(d, target, status, err, method="GET"):
    with RawHTTP(d.port) as c:
        c.request(method, target)
        r = c.read_response(head_only=(method == "HEAD"))
        what = "%s %r" % (method, target[:80])
        if method == "HEAD":
            assert r.status == status, "%s: %r" % (what, r)
            assert r.header("content-type") == "application/json", what
        else:
            got = assert_json_error(r, status, what)
            assert err is None or got == err, "%s: error %r, want %r" % (what, got, err)
            assert r.header("x-injected") is None, what
        # the connection survives a 400/404: a second request on it works
        r2 = c.roundtrip("GET", "/api/clusters/a")
        assert r2.status == 200 and r2.json()["name"] == "a", "%s: then %r" % (what, r2)


def test_bad_paths():
    with Daemon(workers=2, seed=SEED) as d:
        workers = serving_state(d)
        assert len(workers) == 2, workers
        for target, name in GOOD:
            r = get(d.port, target)
            assert r.status == 200 and r.json()["name"] == name, (target, r)
        for target, status, err in CASES:
            for method in ("GET", "HEAD"):
                check_case(d, target, status, err, method)
        assert_still_serving(d, workers, "after the bad paths")
        names = [c["name"] for c in get_ok_json(d.port, "/api/clusters")["clusters"]]
        assert names == sorted(names, key=str.encode) and len(names) == len(SEED), names
        log = d.log_text()
        for word in ("panic", "abort", "assert", "malformed", "snapshot unavailable"):
            assert word not in log.lower(), "log mentions %r:\n%s" % (word, log[-2000:])


def test_nul_byte_on_request_line():
    """A raw NUL in the target must not cut the name short: /api/clusters/a<NUL>b
    is not the cluster "a" (the %00 rule, sent unescaped).  libmicrohttpd 0.9.75
    hands the handler the target cut at the NUL; the daemon must notice and
    answer 400 wherever the NUL is (path, query, after a valid route)."""
    with Daemon(workers=1, seed=SEED) as d:
        workers = serving_state(d)
        for target in (b"/api/clusters/a\x00b", b"/api/clusters/a\x00", b"/api/clusters\x00/a",
                       b"/api/clusters\x00", b"/healthz\x00", b"/api/clusters/a?x=\x00",
                       b"/\x00"):
            with RawHTTP(d.port) as c:
                c.send(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
                r = c.read_response()
                assert_json_error(r, 400, repr(target))
                assert b'"name"' not in r.body, r
                # the connection is still usable
                r2 = c.roundtrip("GET", "/api/clusters/a?x=1")
                assert r2.status == 200 and r2.json()["name"] == "a", r2
        assert_still_serving(d, workers, "after NUL bytes")


def test_oversized_request_head():
    """A long path that fits the worker's per-connection memory (40 KiB) gets the
    API's JSON 404; past it MHD refuses the request itself (414 or 431) and
    closes; the daemon must survive both."""
    with Daemon(workers=2, seed=SEED) as d:
        workers = serving_state(d)
        for n in (16500, 30000):
            with RawHTTP(d.port) as c:
                c.send("GET /api/clusters/%s HTTP/1.1\r\nHost: x\r\n\r\n" % ("a" * n))
                r = c.read_response()
                assert r.status == 404 and r.json() == {"error": "cluster not found"}, \
                    "%d-byte path -> %r" % (n, r)
        for n in (45000, 65536, 300000):
            with RawHTTP(d.port) as c:
                try:
                    c.send("GET /api/clusters/%s HTTP/1.1\r\nHost: x\r\n\r\n" % ("a" * n))
                    r = c.read_response()
                except (BrokenPipeError, ConnectionResetError):
                    r = None        # closed while we were still sending
                if r is not None:
                    assert r.status in (414, 431), "%d-byte path -> %r" % (n, r)
                    rest, eof = c.read_rest(3.0)
                    assert eof, "connection not closed after %d" % r.status
        # many headers instead of a long path (~45 KB, past the 40 KiB pool)
        with RawHTTP(d.port) as c:
            hdrs = "".join("X-H%d: %s\r\n" % (i, "v" * 140) for i in range(300))
            try:
                c.send("GET /api/clusters HTTP/1.1\r\nHost: x\r\n%s\r\n" % hdrs)
                r = c.read_response()
                assert r.status in (413, 414, 431), r
            except (BrokenPipeError, ConnectionResetError, EOFError):
                pass
        assert_still_serving(d, workers, "after oversized request heads")


if __name__ == "__main__":
    run([test_bad_paths, test_nul_byte_on_request_line, test_oversized_request_head])
