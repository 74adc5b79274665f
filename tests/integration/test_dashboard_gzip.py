#!/usr/bin/python3
"""Integration: the dashboard's files embedded gzip-compressed
(--enable-compressed-assets, the default with zlib).

Against the real daemon, with curl (--compressed and without) and
http.client:
  - a request whose Accept-Encoding takes gzip gets the gzip bytes,
    Content-Encoding: gzip, Vary: Accept-Encoding and an ETag of its own (the
    identity one with "-gz"); they decompress to exactly the identity bytes;
  - no Accept-Encoding, "identity", "gzip;q=0", "*;q=0", "deflate" get the
    identity bytes: the minified source (contrib/min-assets.awk, as
    embed-assets.sh runs it), with the ETag of those bytes (cksum), as an
    uncompressed build serves them;
  - If-None-Match with either ETag gets a 304 for its own coding only; HEAD
    sends the headers of GET without a body;
  - a binary whose embedded gzip bytes are damaged answers the identity
    requests 500 (JSON) and logs it once per worker, and still serves gzip.
A build with --disable-compressed-assets must serve identity to every
request, with no Vary.
"""

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

TOP_SRCDIR = os.environ.get("TOP_SRCDIR", os.path.join(os.path.dirname(__file__), "..", ".."))
TOP_BUILDDIR = os.environ.get("TOP_BUILDDIR", os.path.join(TOP_SRCDIR, "build"))
sys.path.insert(0, os.path.join(TOP_SRCDIR, "tests", "integration"))
from harness import Daemon, run  # noqa: E402

AWK = os.path.join(TOP_SRCDIR, "contrib", "min-assets.awk")
DASH = os.path.join(TOP_SRCDIR, "src", "dashboard")
ASSETS = (("/", "index.html"), ("/app.js", "app.js"), ("/app.css", "app.css"))


def config():
    with open(os.path.join(TOP_BUILDDIR, "build_config.h")) as f:
        return f.read()


COMPRESSED = "#define ENABLE_COMPRESSED_ASSETS 1" in config()


def identity(name):
    """The bytes embed-assets.sh embeds for src/dashboard/name."""
    path = os.path.join(DASH, name)
    with open(path, "rb") as f:
        raw = f.read()
    if not name.endswith((".js", ".css")):
        return raw
    p = subprocess.run(["awk", "-v", "js=%d" % name.endswith(".js"), "-f", AWK, path],
                       capture_output=True, timeout=30, env=dict(os.environ, LC_ALL="C"))
    if p.returncode == 3:
        return raw
    assert p.returncode == 0, (name, p.returncode)
    return p.stdout


def cksum_etag(data):
    p = subprocess.run(["cksum"], input=data, capture_output=True, timeout=30, check=True)
    crc, length = p.stdout.split()[:2]
    return '"%08x-%x"' % (int(crc), int(length))


def curl(port, path, *args):
    """(headers dict lower-cased, body) of curl's GET."""
    with tempfile.TemporaryDirectory() as tmp:
        hdr, body = os.path.join(tmp, "h"), os.path.join(tmp, "b")
        subprocess.run(["curl", "-sS", "--max-time", "10", "-D", hdr, "-o", body] + list(args)
                       + ["http://127.0.0.1:%d%s" % (port, path)], check=True, timeout=20)
        with open(hdr, "rb") as f:
            lines = f.read().decode("latin-1").split("\r\n")
        data = b""
        if os.path.exists(body):  # curl writes no file for an empty body (a 304)
            with open(body, "rb") as f:
                data = f.read()
    heads = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            heads[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), heads, data


def get(d, path, method="GET", **headers):
    st, body, r = d.http(method, path, headers=headers)
    return st, body, r


def test_gzip_and_identity():
    with Daemon(workers=1) as d:
        for path, name in ASSETS:
            want = identity(name)
            etag = cksum_etag(want)
            # identity: no header, and every refusal of gzip
            for ae in (None, "identity", "gzip;q=0", "*;q=0", "deflate", "identity, gzip;q=0"):
                hdrs = {} if ae is None else {"Accept-Encoding": ae}
                st, body, r = get(d, path, **hdrs)
                assert st == 200, (path, ae, st)
                assert body == want, (path, ae, "identity bytes differ from the minified source")
                assert r.getheader("ETag") == etag, (path, ae, r.getheader("ETag"), etag)
                assert r.getheader("Content-Encoding") is None, (path, ae)
                vary = r.getheader("Vary")
                assert vary == ("Accept-Encoding" if COMPRESSED else None), (path, ae, vary)
            st, body, r = get(d, path, **{"If-None-Match": etag})
            assert st == 304 and body == b"", (path, st)
            assert r.getheader("ETag") == etag
            # gzip
            for ae in ("gzip", "GZip", "deflate, gzip;q=0.5", "*", "br;q=1.0, gzip;q=0.8",
                       "x-gzip", "gzip, identity;q=0.5"):
                st, body, r = get(d, path, **{"Accept-Encoding": ae})
                assert st == 200, (path, ae, st)
                if not COMPRESSED:
                    assert body == want and r.getheader("Content-Encoding") is None, (path, ae)
                    continue
                assert r.getheader("Content-Encoding") == "gzip", (path, ae)
                assert r.getheader("Vary") == "Accept-Encoding", (path, ae)
                assert r.getheader("ETag") == etag[:-1] + '-gz"', (path, ae, r.getheader("ETag"))
                assert body[:2] == b"\x1f\x8b" and len(body) < len(want), (path, ae, len(body))
                assert gzip.decompress(body) == want, (path, ae, "gzip bytes decompress wrong")
                assert int(r.getheader("Content-Length")) == len(body)
            if not COMPRESSED:
                continue
            gz_etag = etag[:-1] + '-gz"'
            # each ETag is a 304 for its own coding only
            st, body, r = get(d, path, **{"Accept-Encoding": "gzip", "If-None-Match": gz_etag})
            assert st == 304 and body == b"", (path, st)
            assert r.getheader("ETag") == gz_etag and r.getheader("Vary") == "Accept-Encoding"
            st, body, r = get(d, path, **{"Accept-Encoding": "gzip", "If-None-Match": etag})
            assert st == 200 and gzip.decompress(body) == want, (path, st)
            st, body, r = get(d, path, **{"If-None-Match": gz_etag})
            assert st == 200 and body == want, (path, st)
            st, body, r = get(d, path, **{"Accept-Encoding": "gzip;q=0", "If-None-Match": etag})
            assert st == 304, (path, st)
            # HEAD: GET's headers, no body
            st, body, r = get(d, path, "HEAD", **{"Accept-Encoding": "gzip"})
            assert st == 200 and body == b"", (path, st)
            assert r.getheader("Content-Encoding") == "gzip" and r.getheader("ETag") == gz_etag
            st, body, r = get(d, path, "HEAD")
            assert st == 200 and body == b"" and r.getheader("ETag") == etag, (path, st)
            assert r.getheader("Content-Encoding") is None


def test_curl():
    with Daemon(workers=2) as d:
        for path, name in ASSETS:
            want = identity(name)
            etag = cksum_etag(want)
            st, h, body = curl(d.port, path)
            assert st == 200 and body == want and h.get("etag") == etag, (path, st, h)
            assert "content-encoding" not in h, h
            st, h, body = curl(d.port, path, "--compressed")
            assert st == 200 and body == want, (path, st, "curl --compressed: bytes differ")
            if COMPRESSED:
                assert h.get("content-encoding") == "gzip", (path, h)
                assert h.get("etag") == etag[:-1] + '-gz"', (path, h)
                st, h, body = curl(d.port, path, "--compressed",
                                   "-H", "If-None-Match: " + h["etag"])
                assert st == 304 and body == b"", (path, st)
            st, h, body = curl(d.port, path, "-H", "Accept-Encoding: gzip;q=0")
            assert st == 200 and body == want and "content-encoding" not in h, (path, st, h)


class DamagedDaemon(Daemon):
    def __init__(self, binary, **kw):
        super().__init__(**kw)
        self.binary = binary

    def argv(self):
        return [self.binary] + super().argv()[1:]


def test_damaged_gzip_is_a_500_logged_once():
    if not COMPRESSED:
        print("built with --disable-compressed-assets: no gzip bytes to damage")
        return
    want = identity("app.js")
    gz = subprocess.run(["gzip", "-9n"], input=want, capture_output=True, timeout=30,
                        check=True).stdout
    src = os.environ.get("PERSONAD") or os.path.join(TOP_BUILDDIR, "src", "personad")
    with open(src, "rb") as f:
        image = bytearray(f.read())
    at = image.find(gz)
    assert at > 0 and image.find(gz, at + 1) < 0, "app.js's gzip bytes not found once in the binary"
    for i in range(len(gz) // 2, len(gz) // 2 + 8):  # the middle of the deflate data
        image[at + i] ^= 0x55
    tmp = tempfile.mkdtemp(prefix="personad-gz-")
    try:
        binary = os.path.join(tmp, "personad")
        with open(binary, "wb") as f:
            f.write(image)
        os.chmod(binary, 0o755)
        with DamagedDaemon(binary, workers=1) as d:
            for _ in range(3):
                st, body, r = get(d, "/")
                assert st == 500, st
                assert r.getheader("Content-Type") == "application/json"
                assert "error" in json.loads(body), body
            st, body, r = get(d, "/", **{"Accept-Encoding": "gzip"})
            assert st == 200 and gzip.decompress(body) == identity("index.html"), st
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and "inflate" not in d.log_text():
                time.sleep(0.05)
            lines = [l for l in d.log_text().splitlines() if "cannot inflate" in l]
            assert len(lines) == 1, lines
            assert re.search(r"/app\.js", lines[0]), lines[0]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if "#define ENABLE_DASHBOARD 1" not in config():
        print("SKIP: built with --disable-dashboard")
        sys.exit(77)
    run([test_gzip_and_identity, test_curl, test_damaged_gzip_is_a_500_logged_once])
