#!/usr/bin/python3
"""Integration: --web-root=DIR (issue 13, "a drop-in for the original server's UI").

A small single-page app of the tests' own (tests/data/webroot), copied into a
temporary DIR beside a secret file and hostile entries (a symlink out of DIR,
an absolute symlink, a FIFO, a directory, a dotfile, a sparse file over the
size bound).  Over raw sockets: Content-Type by extension, exact bodies and
Content-Length, ETag/304, HEAD, index.html for /, the SPA fallback for
unknown paths, /api, /ws, /healthz and /metrics unaffected, 405 for other
methods, traversal attempts refused with their status and no byte of the
secret, a DIR replaced while running served at once, the config-file key,
and a DIR that is not there refused at start (exit 1).
"""

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import Daemon, expect, persona_k8s, personad_path, run, ws_connect  # noqa: E402
from rest_util import RawHTTP, assert_json_error, get  # noqa: E402

SRC = os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                   "tests", "data", "webroot")
SECRET = b"TOP-SECRET-OUTSIDE-THE-WEB-ROOT"
FILE_MAX = 64 << 20  # HTTP_WEBROOT_FILE_MAX

TYPES = {
    "/index.html": "text/html; charset=utf-8",
    "/static/js/main.js": "text/javascript; charset=utf-8",
    "/static/css/main.css": "text/css; charset=utf-8",
    "/favicon.svg": "image/svg+xml",
    "/manifest.webmanifest": "application/manifest+json",
    "/LICENSE": "application/octet-stream",
}


class WebRoot:
    """tests/data/webroot copied to TMP/root, TMP/secret.txt beside it, and
    the hostile entries inside."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="personad-webroot-")
        self.root = os.path.join(self.tmp, "root")
        shutil.copytree(SRC, self.root, symlinks=True)
        secret = os.path.join(self.tmp, "secret.txt")
        with open(secret, "wb") as f:
            f.write(SECRET + b"\n")
        os.symlink("../secret.txt", os.path.join(self.root, "out.txt"))
        os.symlink(secret, os.path.join(self.root, "abs.txt"))
        os.symlink("..", os.path.join(self.root, "up"))
        os.symlink("js/main.js", os.path.join(self.root, "static", "alias.js"))
        os.mkfifo(os.path.join(self.root, "pipe.js"))
        os.mkdir(os.path.join(self.root, "empty"))
        with open(os.path.join(self.root, ".env"), "wb") as f:
            f.write(SECRET + b"\n")
        with open(os.path.join(self.root, "big.bin"), "wb") as f:
            f.truncate(FILE_MAX + 1)  # sparse: no disk used
        with open(os.path.join(self.root, "max.bin"), "wb") as f:
            f.truncate(FILE_MAX)

    def data(self, path):
        with open(os.path.join(self.root, path.lstrip("/")), "rb") as f:
            return f.read()

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


def served(port, target, method="GET", headers=None):
    with RawHTTP(port) as c:
        return c.roundtrip(method, target, headers)


def assert_file(r, body, ctype, what):
    assert r.status == 200, "%s: %r" % (what, r)
    assert r.header("content-type") == ctype, "%s: Content-Type %r" % (what, r.header("content-type"))
    assert int(r.header("content-length")) == len(body), "%s: %r" % (what, r.raw_head)
    assert r.body == body, "%s: body %r" % (what, r.body[:200])
    assert r.header("x-content-type-options") == "nosniff", what
    assert r.header("cache-control") == "no-cache", what
    etag = r.header("etag")
    assert etag and len(etag) == 18 and etag[0] == etag[-1] == '"', "%s: ETag %r" % (what, etag)
    return etag


def with_root(fn):
    def wrapped():
        wr = WebRoot()
        try:
            with Daemon(workers=2, flags=["--web-root=" + wr.root],
                        seed={"a.json": persona_k8s("alpha")}) as d:
                return fn(d, wr)
        finally:
            wr.cleanup()
    wrapped.__name__ = fn.__name__
    return wrapped


@with_root
def test_files_and_types(d, wr):
    """Every file with its Content-Type, exact body and length; / is index.html."""
    index = wr.data("/index.html")
    for path, ctype in TYPES.items():
        assert_file(served(d.port, path), wr.data(path), ctype, path)
    assert_file(served(d.port, "/"), index, TYPES["/index.html"], "/")
    # an escaped character that is allowed decodes to the file's name
    assert_file(served(d.port, "/static/js/m%61in.js"), wr.data("/static/js/main.js"),
                TYPES["/static/js/main.js"], "escaped name")
    # a symlink inside DIR pointing inside DIR is followed (openat2 beneath)
    r = served(d.port, "/static/alias.js")
    assert r.status in (200, 403), r  # 403 where the kernel lacks openat2
    if r.status == 200:
        assert r.body == wr.data("/static/js/main.js"), r
    # a file of exactly the size bound is served (HEAD: the headers only)
    r = served(d.port, "/max.bin", "HEAD")
    assert r.status == 200 and int(r.header("content-length")) == FILE_MAX, r


@with_root
def test_etag_304_and_head(d, wr):
    body = wr.data("/static/js/main.js")
    r = served(d.port, "/static/js/main.js")
    etag = assert_file(r, body, TYPES["/static/js/main.js"], "GET")
    # the same file, asked again: the same tag; 304 with no body
    assert served(d.port, "/static/js/main.js").header("etag") == etag
    with RawHTTP(d.port) as c:
        r = c.roundtrip("GET", "/static/js/main.js", {"If-None-Match": etag})
        assert r.status == 304 and r.header("etag") == etag, r
        assert r.header("content-type") is None, r.raw_head
        r = c.roundtrip("GET", "/static/js/main.js", {"If-None-Match": '"0000000000000000"'})
        assert r.status == 200 and r.body == body, r  # keep-alive intact after the 304
        rest, _ = c.read_rest(0.3)
        assert rest == b"", rest
    # HEAD: the GET's headers, no body
    with RawHTTP(d.port) as c:
        r = c.roundtrip("HEAD", "/static/js/main.js")
        assert r.status == 200 and int(r.header("content-length")) == len(body), r
        assert r.header("etag") == etag and r.header("content-type") == TYPES["/static/js/main.js"]
        rest, _ = c.read_rest(0.3)
        assert rest == b"", "HEAD sent a body: %r" % rest
    # a rewritten file gets a new tag and its new content
    p = os.path.join(wr.root, "static", "js", "main.js")
    with open(p + ".tmp", "wb") as f:
        f.write(b"// rebuilt\n")
    os.rename(p + ".tmp", p)
    r = served(d.port, "/static/js/main.js", headers={"If-None-Match": etag})
    assert r.status == 200 and r.body == b"// rebuilt\n" and r.header("etag") != etag, r


@with_root
def test_spa_fallback(d, wr):
    """Unknown paths are the app's routes: index.html, 200."""
    index = wr.data("/index.html")
    etag = served(d.port, "/").header("etag")
    for path in ["/clusters", "/clusters/prod-eu-west", "/some/deep/route/", "/static/js/nope.js",
                 "/index.html/x", "/favicon.svg/x", "/route?x=1", "/.env", "/static/.hidden",
                 "/api2", "/wsx", "/healthzz", "/metricsx"]:
        r = served(d.port, path)
        assert_file(r, index, TYPES["/index.html"], path)
        assert r.header("etag") == etag, path
        assert SECRET not in r.body, path
    r = served(d.port, "/clusters/x", "HEAD")
    assert r.status == 200 and int(r.header("content-length")) == len(index), r


@with_root
def test_api_ws_healthz_metrics_unaffected(d, wr):
    r = served(d.port, "/api/clusters")
    assert r.status == 200 and r.header("content-type") == "application/json", r
    assert [c["name"] for c in r.json()["clusters"]] == ["alpha"], r.body
    assert served(d.port, "/api/clusters/alpha").json()["name"] == "alpha"
    assert_json_error(served(d.port, "/api/clusters/nope"), 404, "unknown cluster")
    for path in ["/api", "/api/", "/api/nope", "/ws/", "/ws/x", "/healthz/x", "/metrics/x"]:
        assert_json_error(served(d.port, path), 404, path)
    r = served(d.port, "/metrics")
    assert r.status == 200 and r.header("content-type").startswith("text/plain"), r
    assert b"personad_build_info" in r.body, r.body[:200]
    r = served(d.port, "/healthz")
    assert r.status == 200 and r.json() == {"status": "ok"}, r

    async def ws():
        c = await ws_connect(d)
        try:
            d.write("b.json", persona_k8s("beta"))
            await expect(c, "added", "beta")
        finally:
            await c.close()
    asyncio.run(ws())


@with_root
def test_methods(d, wr):
    for path in ["/", "/static/js/main.js", "/some/route", "/out.txt"]:
        for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"]:
            r = served(d.port, path, method)
            assert_json_error(r, 405, "%s %s" % (method, path))
            assert r.header("allow") == "GET, HEAD", r


@with_root
def test_nothing_from_outside(d, wr):
    """Traversal attempts: a defined status, JSON, no byte of the secret."""
    cases = [
        ("/../secret.txt", 400), ("/static/../../secret.txt", 400), ("/./index.html", 400),
        ("/static/./js/main.js", 400), ("/..", 400), ("/static/..", 400),
        ("/%2e%2e/secret.txt", 400), ("/%2E%2E/secret.txt", 400), ("/.%2e/secret.txt", 400),
        ("/%2e/index.html", 400), ("/static%2f..%2f..%2fsecret.txt", 400),
        ("/%2fetc%2fpasswd", 400), ("/static%2Fjs%2Fmain.js", 400), ("/a%00", 400),
        ("/index.html%00.js", 400), ("/%", 400), ("/%2", 400), ("/%zz", 400),
        ("/out.txt", 403), ("/abs.txt", 403), ("/up/secret.txt", 403), ("/up", 403),
        ("/empty", 403), ("/empty/", 403), ("/static", 403), ("/static/js/", 403),
        ("/pipe.js", 403), ("/big.bin", 500),
        ("/" + "a/" * 3000 + "x", 400),  # longer than any path
    ]
    for target, status in cases:
        with RawHTTP(d.port) as c:
            c.request("GET", target)
            r = c.read_response()
            assert_json_error(r, status, target)
            assert SECRET not in r.body, target
            rest, _ = c.read_rest(0.1)
            assert SECRET not in rest, target
    # a raw NUL in the target stays the router's 400
    with RawHTTP(d.port) as c:
        c.send(b"GET /index.html\x00/../../secret.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert r.status == 400 and SECRET not in r.body, r
    # the workers are all still there
    assert len(d.wait_workers(2)) == 2


def test_root_replaced_while_running():
    """DIR is opened per request: a new build renamed into place is served at once."""
    wr = WebRoot()
    try:
        with Daemon(workers=1, flags=["--web-root=" + wr.root]) as d:
            old = served(d.port, "/")
            assert old.status == 200 and b"test-spa-index" in old.body, old
            new = os.path.join(wr.tmp, "new")
            os.mkdir(new)
            with open(os.path.join(new, "index.html"), "wb") as f:
                f.write(b"<!doctype html><title>v2</title>\n")
            os.rename(wr.root, os.path.join(wr.tmp, "old"))
            os.rename(new, wr.root)
            r = served(d.port, "/some/route")
            assert r.status == 200 and r.body == b"<!doctype html><title>v2</title>\n", r
            assert r.header("etag") != old.header("etag")
            # DIR gone: 503, and back when it is back
            os.rename(wr.root, os.path.join(wr.tmp, "gone"))
            assert_json_error(served(d.port, "/"), 503, "web root missing")
            os.rename(os.path.join(wr.tmp, "gone"), wr.root)
            assert served(d.port, "/").status == 200
            # no index.html: the fallback is a 404, never a listing
            os.unlink(os.path.join(wr.root, "index.html"))
            assert_json_error(served(d.port, "/"), 404, "no index.html")
            assert_json_error(served(d.port, "/some/route"), 404, "no index.html")
    finally:
        wr.cleanup()


def test_config_key_and_missing_dir():
    wr = WebRoot()
    try:
        cfg = os.path.join(wr.tmp, "personad.conf")
        with open(cfg, "w") as f:
            f.write("web-root = %s\n" % wr.root)
        with Daemon(workers=1, flags=["-c", cfg]) as d:
            r = served(d.port, "/favicon.svg")
            assert_file(r, wr.data("/favicon.svg"), TYPES["/favicon.svg"], "config key")
        # not a directory, or not there: exit 1 at start, naming it
        for bad in [os.path.join(wr.tmp, "nope"), os.path.join(wr.tmp, "secret.txt")]:
            p = subprocess.run([personad_path(), "-l", "127.0.0.1:1", "-d", wr.root, "-w", "1",
                                "--web-root=" + bad], capture_output=True, timeout=10)
            assert p.returncode == 1, (bad, p.returncode, p.stderr)
            assert b"--web-root" in p.stderr and bad.encode() in p.stderr, p.stderr
    finally:
        wr.cleanup()


def test_spa_in_chromium():
    """The app in a real browser: a deep link is index.html, whose script (from
    DIR) runs and routes on the client.  Skipped without /usr/bin/chromium."""
    chromium = "/usr/bin/chromium"
    if not os.access(chromium, os.X_OK):
        print("skipped: no %s" % chromium)
        return
    wr = WebRoot()
    try:
        with Daemon(workers=1, flags=["--web-root=" + wr.root]) as d:
            # no process group of its own: killed by pid below if it outlives the timeout
            p = subprocess.Popen([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                                  "--no-first-run", "--disable-background-networking",
                                  "--disable-component-update", "--disable-sync",
                                  "--user-data-dir=" + os.path.join(wr.tmp, "profile"),
                                  "--dump-dom", "http://127.0.0.1:%d/clusters/prod-eu" % d.port],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
            try:
                dom, _ = p.communicate(timeout=60)
            finally:
                if p.poll() is None:
                    os.killpg(p.pid, 9)
                    p.wait()
            dom = dom.decode("utf-8", "replace")
            assert '<div id="root">route /clusters/prod-eu</div>' in dom, dom[-1500:]
    finally:
        wr.cleanup()


def test_without_web_root_unchanged():
    """No --web-root: / is the embedded dashboard (or a 404 without one), and an
    unknown path is a 404, as before."""
    with Daemon(workers=1) as d:
        r = get(d.port, "/")
        assert r.status in (200, 404), r
        assert b"test-spa-index" not in r.body
        assert_json_error(get(d.port, "/some/route"), 404, "no SPA fallback by default")


def built_in():
    """--disable-web-root leaves it out (the daemon refuses the option)."""
    top = os.environ.get("TOP_BUILDDIR")
    if top is None:
        return True
    with open(os.path.join(top, "build_config.h")) as f:
        return "#define ENABLE_WEB_ROOT 1" in f.read()


if __name__ == "__main__":
    if not built_in():
        print("SKIP: configured with --disable-web-root")
        sys.exit(77)
    run([test_files_and_types, test_etag_304_and_head, test_spa_fallback,
         test_api_ws_healthz_metrics_unaffected, test_methods, test_nothing_from_outside,
         test_root_replaced_while_running, test_config_key_and_missing_dir,
         test_spa_in_chromium, test_without_web_root_unchanged])
