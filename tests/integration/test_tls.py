#!/usr/bin/python3
"""Integration: --tls-cert/--tls-key (HTTPS and WSS only, issue 12).

A test CA and server certificates are made at test time with openssl in a
temp dir.  Real clients: curl (REST, /healthz, SSE), python ssl + websockets
(events byte-exact, close codes, a 1 MB message, a burst to a slow reader,
SIGTERM), openssl s_client (TLS 1.0/1.1 refused, 1.2 and 1.3 accepted), a
raw socket (plain HTTP to the TLS port), and SIGHUP reloads (new serial for
new connections, old connections keep streaming, a bad pair is refused and
the running one kept).  Bad files at start exit 1 with a clear message.
"""

import asyncio
import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import (Daemon, ev, free_port, personad_path, persona_api, recv, run,  # noqa: E402
                     server_side_closed, ws_connect, ws_local_port)

if shutil.which("openssl") is None or shutil.which("curl") is None:
    print("SKIP: openssl or curl missing")
    sys.exit(77)

PKI = tempfile.mkdtemp(prefix="personad-tls-")


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, timeout=30, **kw)


def make_ca():
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", os.path.join(PKI, "ca.key"), "-out", os.path.join(PKI, "ca.pem"), "-days", "2",
       "-subj", "/CN=personad test CA")


def make_cert(name, serial):
    """A server certificate for localhost/127.0.0.1 signed by the CA: (cert, key)."""
    key, csr = os.path.join(PKI, name + ".key"), os.path.join(PKI, name + ".csr")
    crt, ext = os.path.join(PKI, name + ".pem"), os.path.join(PKI, name + ".ext")
    sh("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    sh("openssl", "x509", "-req", "-in", csr, "-CA", os.path.join(PKI, "ca.pem"), "-CAkey",
       os.path.join(PKI, "ca.key"), "-set_serial", serial, "-days", "2", "-extfile", ext,
       "-out", crt)
    return crt, key


make_ca()
CA = os.path.join(PKI, "ca.pem")
CERT1, KEY1 = make_cert("one", "0x1001")
CERT2, KEY2 = make_cert("two", "0x2002")


def client_ctx():
    return ssl.create_default_context(cafile=CA)


class TLSDaemon(Daemon):
    """The harness's daemon with the serving pair in a file of its own (so a
    test can replace it) and its HTTP over TLS."""

    def __init__(self, flags=(), cert=CERT1, key=KEY1, **kw):
        super().__init__(flags=list(flags), **kw)
        self.cert, self.key = os.path.join(self.tmp, "cert.pem"), os.path.join(self.tmp, "key.pem")
        shutil.copy(cert, self.cert)
        shutil.copy(key, self.key)
        self.flags += ["--tls-cert=" + self.cert, "--tls-key=" + self.key,
                       "--max-connections=1000"]

    def replace_pair(self, cert, key):
        for src, dst in ((cert, self.cert), (key, self.key)):
            shutil.copy(src, dst + ".new")
            os.rename(dst + ".new", dst)

    def http(self, method, path, headers=None, body=None, timeout=5.0):
        c = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                        context=client_ctx())
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.read(), r
        finally:
            c.close()

    @property
    def ws_url(self):
        return "wss://127.0.0.1:%d/ws" % self.port


async def wss(d, **kw):
    kw.setdefault("ssl", client_ctx())
    return await ws_connect(d, **kw)


def curl(d, path, *extra):
    return subprocess.run(["curl", "-sS", "--cacert", CA, "--max-time", "5", *extra,
                           "https://127.0.0.1:%d%s" % (d.port, path)],
                          capture_output=True, timeout=15)


def serial_seen(port):
    """The serial number of the certificate a new connection is served."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with client_ctx().wrap_socket(s, server_hostname="localhost") as t:
            return t.getpeercert()["serialNumber"].upper()


def s_client(port, *version):
    """openssl s_client with the given version flags: the negotiated protocol, or None."""
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-CAfile", CA,
                        "-cipher", "DEFAULT:@SECLEVEL=0", *version],
                       input=b"", capture_output=True, timeout=15)
    out = r.stdout.decode(errors="replace")
    for line in out.splitlines():  # "New, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384"
        if line.startswith("New, ") and "Cipher is (NONE)" not in line:
            return line.split(",")[1].strip()
    return None


def test_curl_rest_and_healthz():
    with TLSDaemon(workers=1, seed={"a.json": persona_api("a")}) as d:
        r = curl(d, "/healthz")
        assert r.returncode == 0 and b'"ok"' in r.stdout, r
        r = curl(d, "/api/clusters")
        assert r.returncode == 0 and b'"name":"a"' in r.stdout, r
        # Only HTTPS: the same port does not serve plain HTTP.
        r = subprocess.run(["curl", "-sS", "--max-time", "5", "http://127.0.0.1:%d/healthz"
                            % d.port], capture_output=True, timeout=15)
        assert b'"ok"' not in r.stdout, r


def test_large_rest_body_to_slow_reader():
    """A ~600 KB cluster over https to a reader with a 4 KB receive buffer that
    takes 4 KB every 5 ms: the front waits for it, and the body is whole and exact."""
    import json
    desc = "".join("%06d." % i for i in range(85000))  # 595 KB, no escapes
    with TLSDaemon(workers=1, flags=["--snapshot-max=8388608"],
                   seed={"big.json": persona_api("big", description=desc)}) as d:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(10)
        s.connect(("127.0.0.1", d.port))
        t = client_ctx().wrap_socket(s, server_hostname="localhost")
        t.sendall(b"GET /api/clusters/big HTTP/1.1\r\nHost: localhost\r\n"
                  b"Connection: close\r\n\r\n")
        data = b""
        while True:
            b = t.recv(4096)
            if not b:
                break
            data += b
            time.sleep(0.005)
        t.close()
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        assert json.loads(body)["spec"]["description"] == desc


def test_plain_http_to_tls_port_gets_400():
    with TLSDaemon(workers=1) as d:
        workers = d.worker_pids()
        with socket.create_connection(("127.0.0.1", d.port), timeout=5) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while True:
                b = s.recv(4096)
                if not b:
                    break
                data += b
        assert data.startswith(b"HTTP/1.1 400 "), data
        assert b"HTTPS only" in data, data
        assert d.worker_pids() == workers, "a worker died"
        assert curl(d, "/healthz").returncode == 0


def test_tls_versions():
    with TLSDaemon(workers=1) as d:
        assert s_client(d.port, "-tls1_3") == "TLSv1.3"
        assert s_client(d.port, "-tls1_2") == "TLSv1.2"
        assert s_client(d.port, "-tls1_1") is None, "TLS 1.1 accepted"
        assert s_client(d.port, "-tls1") is None, "TLS 1.0 accepted"
        # python's ssl with TLS 1.1 at most: refused as well
        ctx = client_ctx()
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        try:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        except ssl.SSLError:
            pass
        with socket.create_connection(("127.0.0.1", d.port), timeout=5) as s:
            try:
                ctx.wrap_socket(s, server_hostname="localhost")
                raise AssertionError("TLS 1.1 handshake succeeded")
            except (ssl.SSLError, ConnectionError):
                pass


async def test_wss_events_byte_exact_and_close_1000():
    with TLSDaemon(workers=1) as d:
        ws = await wss(d)
        d.write("b.json", persona_api("b"))
        assert await recv(ws, 5) == ev("added", "b")
        d.write("b.json", persona_api("b", nodes=4))
        assert await recv(ws, 5) == ev("updated", "b")
        await ws.close(1000)
        assert ws.close_rcvd is not None and ws.close_rcvd.code == 1000, ws.close_rcvd


async def test_wss_large_message_gets_1009():
    with TLSDaemon(workers=1) as d:
        ws = await wss(d, max_size=None)
        try:
            await ws.send("x" * 1000000)
        except Exception:  # noqa: BLE001 (the server may close while we send)
            pass
        try:
            await asyncio.wait_for(ws.recv(), 10)
            raise AssertionError("a message instead of a close")
        except Exception as e:  # noqa: BLE001
            if isinstance(e, AssertionError):
                raise
        assert ws.close_rcvd is not None and ws.close_rcvd.code == 1009, (ws.close_rcvd, repr(e))


async def test_wss_burst_to_slow_reader_complete():
    """600 events (~200 KB, under the 256 KiB cap) while the client does not
    read for a second, then every one arrives, whole and in order."""
    n = 600
    pad = "p" * 240
    with TLSDaemon(workers=1, flags=["--ring-size=4096"]) as d:
        stage = os.path.join(d.tmp, "stage")
        os.mkdir(stage)
        for i in range(n):
            with open(os.path.join(stage, "s%04d.json" % i), "w") as f:
                f.write('{"name": "%s-%04d", "spec": {"nodes": 1}}' % (pad, i))
        ws = await wss(d, max_queue=None)
        for i in range(n):
            os.rename(os.path.join(stage, "s%04d.json" % i), d.path("s%04d.json" % i))
        await asyncio.sleep(1.0)
        got = [await recv(ws, 10) for _ in range(n)]
        want = [ev("added", "%s-%04d" % (pad, i)) for i in range(n)]
        assert got == want, "events missing, out of order or changed"
        await ws.close()


async def test_sigterm_sends_1001_to_every_wss_client():
    d = TLSDaemon(workers=2)
    d.start()
    try:
        clients = [await wss(d) for _ in range(4)]
        d.send_signal(signal.SIGTERM)
        codes = []
        for ws in clients:
            try:
                await asyncio.wait_for(ws.recv(), 5)
            except Exception:  # noqa: BLE001
                pass
            codes.append(ws.close_rcvd.code if ws.close_rcvd else None)
        assert codes == [1001] * 4, codes
        d.proc.wait(timeout=5)
    finally:
        d.stop()
        d.cleanup()


async def test_wss_write_deadline_drops_stuck_client():
    """A wss client that stops reading is dropped after --write-deadline (and
    the front's linger for its last bytes), while another one on the same
    worker receives every event."""
    deadline, linger, tol = 1.0, 2.0, 3.0
    n, pad = 1500, "d" * 240  # ~440 KB: past every buffer, under the cap when written
    with TLSDaemon(workers=1, flags=["--write-deadline=%g" % deadline, "--ring-size=4096"]) as d:
        sock = socket.create_connection(("127.0.0.1", d.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck = await wss(d, sock=sock, server_hostname="localhost", max_queue=1,
                          read_limit=4096)
        port = ws_local_port(stuck)
        normal = await wss(d, max_queue=None)
        stage = os.path.join(d.tmp, "stage")
        os.mkdir(stage)
        for i in range(n):
            with open(os.path.join(stage, "d%04d.json" % i), "w") as f:
                f.write('{"name": "%s-%04d", "spec": {"nodes": 1}}' % (pad, i))
        for i in range(n):
            os.rename(os.path.join(stage, "d%04d.json" % i), d.path("d%04d.json" % i))
        got = [await recv(normal, 10) for _ in range(n)]
        assert got == [ev("added", "%s-%04d" % (pad, i)) for i in range(n)]
        t0 = time.monotonic()
        while not server_side_closed(d, port):
            assert time.monotonic() - t0 < deadline + linger + tol, "stuck wss client kept"
            await asyncio.sleep(0.1)
        assert d.wait_log(lambda t: "write deadline exceeded" in t, timeout=1), d.log_text()[-2000:]
        await normal.close()
        assert normal.close_rcvd is not None and normal.close_rcvd.code == 1000
        stuck.transport.abort()


def test_sse_over_https():
    with TLSDaemon(workers=1) as d:
        p = subprocess.Popen(["curl", "-sSN", "-i", "--cacert", CA, "--max-time", "4",
                              "https://127.0.0.1:%d/api/events" % d.port],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.0)
        d.write("c.json", persona_api("c"))
        out, err = p.communicate(timeout=15)
        assert b"HTTP/1.1 200" in out and b"text/event-stream" in out, (out, err)
        assert b"retry: 5000" in out, out
        assert b'data: {"type":"cluster.added","data":{"name":"c"},"seq":' in out, out


async def test_sighup_reloads_certificate():
    with TLSDaemon(workers=2) as d:
        assert serial_seen(d.port) == "1001"
        ws = await wss(d)
        d.replace_pair(CERT2, KEY2)
        off = len(d.log_text())
        d.send_signal(signal.SIGHUP)
        assert d.wait_log(lambda t: "serial 2002" in t, timeout=5, since=off), d.log_text()[-2000:]
        # every worker takes it: several new connections, all the new serial
        deadline = time.monotonic() + 5
        seen = set()
        while time.monotonic() < deadline:
            seen = {serial_seen(d.port) for _ in range(6)}
            if seen == {"2002"}:
                break
            time.sleep(0.2)
        assert seen == {"2002"}, seen
        # the connection made before the reload still streams
        d.write("r.json", persona_api("r"))
        assert await recv(ws, 5) == ev("added", "r")
        # a bad pair at reload: logged, the running certificate kept
        d.replace_pair(CERT1, KEY2)  # key of another certificate
        off = len(d.log_text())
        d.send_signal(signal.SIGHUP)
        assert d.wait_log(lambda t: "keeping the running certificate" in t, timeout=5,
                          since=off), d.log_text()[-2000:]
        time.sleep(0.5)
        assert {serial_seen(d.port) for _ in range(4)} == {"2002"}
        assert d.group_alive()
        await ws.close()


NODE_WSS = r"""
'use strict';
const WebSocket = require('ws');
const fs = require('fs');
const [port, ca] = process.argv.slice(1);
const ws = new WebSocket('wss://127.0.0.1:' + port + '/ws', { ca: fs.readFileSync(ca) });
ws.on('open', () => console.log('open'));
ws.on('message', (m) => { console.log('message ' + m); ws.close(1000); });
ws.on('close', (code) => { console.log('close ' + code); process.exit(0); });
ws.on('error', (e) => { console.log('error ' + e.message); process.exit(1); });
setTimeout(() => { console.log('timeout'); process.exit(1); }, 15000);
"""


def test_node_ws_over_wss():
    """Node's ws with the test CA (its ca option): an event, then close 1000 echoed."""
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        print("skipped: no node")
        return
    env = dict(os.environ)
    env.setdefault("NODE_PATH", "/usr/share/nodejs:/usr/lib/nodejs")
    with TLSDaemon(workers=1) as d:
        p = subprocess.Popen([node, "-e", NODE_WSS, str(d.port), CA], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env, start_new_session=True)
        try:
            line = p.stdout.readline().decode().strip()
            if line.startswith("error Cannot find module"):
                print("skipped: node ws module missing")
                return
            assert line == "open", (line, p.stderr.read())
            d.write("n.json", persona_api("n"))
            out, err = p.communicate(timeout=20)
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        lines = out.decode().split("\n")
        assert lines[0] == "message " + ev("added", "n"), (out, err)
        assert lines[1] == "close 1000", (out, err)


def spki_hash(cert):
    pub = sh("openssl", "x509", "-in", cert, "-pubkey", "-noout").stdout
    der = sh("openssl", "pkey", "-pubin", "-outform", "der", input=pub).stdout
    dig = sh("openssl", "dgst", "-sha256", "-binary", input=der).stdout
    import base64
    return base64.b64encode(dig).decode()


def test_dashboard_in_chromium_over_https():
    """Headless Chromium trusting the test certificate by its SPKI hash loads the
    dashboard over https and shows an event it received over wss ("event #N ·
    time" is written only for a /ws event)."""
    chromium = "/usr/bin/chromium"
    if not os.access(chromium, os.X_OK):
        print("skipped: no %s" % chromium)
        return
    import threading
    with TLSDaemon(workers=1, seed={"a.json": persona_api("a")}) as d:
        if d.http("GET", "/")[0] == 404:
            print("skipped: built with --disable-dashboard (no page at /)")
            return
        stop = threading.Event()

        def writer():
            i = 0
            while not stop.wait(0.05):
                d.write("live%03d.json" % i, persona_api("live%03d" % i))
                i += 1
        t = threading.Thread(target=writer, daemon=True)
        t.start()
        # --virtual-time-budget runs the page's timers ahead of real time while
        # the daemon answers in real time: a slow daemon (a sanitizer build, a
        # loaded box) can miss one budget, so a few fresh runs are allowed; one
        # of them must show an event that came over wss.
        head = ""
        try:
            for attempt in range(3):
                p = subprocess.Popen([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                                      "--no-first-run", "--disable-background-networking",
                                      "--disable-component-update", "--disable-sync",
                                      "--user-data-dir=" + os.path.join(d.tmp, "profile%d" % attempt),
                                      "--ignore-certificate-errors-spki-list=" + spki_hash(d.cert),
                                      "--virtual-time-budget=15000",
                                      "--dump-dom", "https://127.0.0.1:%d/" % d.port],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
                try:
                    dom, _ = p.communicate(timeout=90)
                finally:
                    if p.poll() is None:
                        os.killpg(p.pid, signal.SIGKILL)
                        p.wait()
                dom = dom.decode("utf-8", "replace")
                head = dom[dom.find("<header"):dom.find("</header>")]
                if "event #" in head and " · " in head:
                    break
        finally:
            stop.set()
            t.join()
        assert "event #" in head and " · " in head, head


async def test_per_ip_limit_answers_503_over_tls():
    """Past --max-connections-per-ip, a TLS port answers what plain HTTP does,
    over TLS (503, Retry-After, the JSON error), to curl and python ssl.  At
    most TLS_FRONT_REFUSING_MAX (64) such answers are under way at once per
    worker: past that, under a flood of handshakes that never finish, a
    refused connection is only closed, and once the flood is gone the answer
    comes back.  A place freed admits again."""
    want_body = b'{"error":"too many connections from this address"}'
    with TLSDaemon(workers=1, flags=["--max-connections-per-ip=2"]) as d:
        a, b = await wss(d), await wss(d)
        try:
            p = curl(d, "/api/clusters", "-i")
            out = p.stdout.replace(b"\r\n", b"\n")
            assert p.returncode == 0, (p.returncode, p.stderr)
            assert out.startswith(b"HTTP/1.1 503 "), out[:200]
            assert b"\nRetry-After: 10\n" in out, out
            assert out.endswith(b"\n\n" + want_body), out
            st, got, r = d.http("GET", "/healthz")
            assert (st, got, r.getheader("Retry-After")) == (503, want_body, "10"), (st, got)
            # A flood of TCP connections that never start a handshake: the
            # first 64 are each held for theirs; the next is closed at once.
            flood = [socket.create_connection(("127.0.0.1", d.port), timeout=5)
                     for _ in range(64)]
            try:
                time.sleep(0.5)
                extra = socket.create_connection(("127.0.0.1", d.port), timeout=5)
                t0 = time.monotonic()
                try:
                    assert extra.recv(1) == b"", "the 65th refusal was answered"
                finally:
                    extra.close()
                assert time.monotonic() - t0 < 2, "the 65th refusal was not closed at once"
                flood[0].settimeout(0.2)
                try:
                    got = flood[0].recv(1)
                    raise AssertionError("a held refusal was closed: %r" % got)
                except socket.timeout:
                    pass
            finally:
                for s_ in flood:
                    s_.close()
            deadline = time.monotonic() + 5
            while True:  # the flood's fronts go as the daemon sees them close
                st, got, _ = d.http("GET", "/healthz")
                if st == 503 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert (st, got) == (503, want_body), "no answer after the flood: %r" % ((st, got),)
        finally:
            await a.close()
        # a's place is free once the daemon has closed its side
        deadline = time.monotonic() + 5
        while True:
            st, _, _ = d.http("GET", "/healthz")
            if st == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert st == 200, "a freed place does not admit: %d" % st
        await b.close()
        log = d.log_text()
        assert "refused a connection from 127.0.0.1: 2 open from it" in log, log[-2000:]
        print("503 over TLS to curl and python ssl; the 65th of a flood closed at once")


def mapped_gnutls(d):
    """{pid: [paths]} of the GnuTLS libraries each process of d maps."""
    out = {}
    for pid in [d.pid] + d.worker_pids():
        with open("/proc/%d/maps" % pid) as f:
            out[pid] = sorted({ln.split()[-1] for ln in f
                               if "/libgnutls" in ln.rsplit(None, 1)[-1]})
    return out


def mhd_links_gnutls(d):
    """Whether the libmicrohttpd the daemon runs with links GnuTLS itself."""
    with open("/proc/%d/maps" % d.pid) as f:
        paths = {ln.split()[-1] for ln in f if "libmicrohttpd" in ln}
    assert len(paths) == 1, paths
    dyn = subprocess.run(["readelf", "-d", paths.pop()], capture_output=True, text=True,
                         timeout=10).stdout
    return "libgnutls" in dyn


def test_gnutls_loaded_only_for_tls_cert():
    """personad loads GnuTLS (dlopen) when --tls-cert is given, not before:
    without it, with a TLS-less libmicrohttpd (the firmware configuration),
    no process maps GnuTLS; with it, every process does."""
    plain = Daemon(workers=2)
    with plain:
        plain.wait_workers(2)
        if mhd_links_gnutls(plain):
            assert os.environ.get("PERSONAD_TEST_MHD") != "notls", \
                "PERSONAD_TEST_MHD=notls, but this libmicrohttpd links GnuTLS"
            print("this libmicrohttpd links GnuTLS: its constructor loads it in every "
                  "process, so only the TLS side is checked (CI runs this test with a "
                  "TLS-less one, contrib/mhd-notls)")
        else:
            m = mapped_gnutls(plain)
            assert not any(m.values()), "GnuTLS mapped without --tls-cert: %r" % m
            print("no --tls-cert: no process maps GnuTLS")
    with TLSDaemon(workers=2) as d:
        d.wait_workers(2)
        m = mapped_gnutls(d)
        assert len(m) == 3 and all(m.values()), "GnuTLS not mapped with --tls-cert: %r" % m
        st, body, _ = d.http("GET", "/healthz")
        assert st == 200, (st, body)
        print("--tls-cert: GnuTLS mapped in all %d processes, HTTPS answers" % len(m))


def start_fails(flags):
    tmp = tempfile.mkdtemp(prefix="personad-tls-bad-")
    try:
        r = subprocess.run([personad_path(), "-l", "127.0.0.1:%d" % free_port(), "-d", tmp, "-w", "1", *flags],
                           capture_output=True, timeout=15)
        return r.returncode, r.stderr.decode(errors="replace")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_bad_files_at_start():
    garbage = os.path.join(PKI, "garbage.pem")
    with open(garbage, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    cases = [
        (["--tls-cert=" + os.path.join(PKI, "missing.pem"), "--tls-key=" + KEY1],
         "missing.pem: No such file"),
        (["--tls-cert=" + garbage, "--tls-key=" + KEY1], "no PEM certificate"),
        (["--tls-cert=" + CERT1, "--tls-key=" + garbage], "no unencrypted PEM private key"),
        (["--tls-cert=" + CERT1, "--tls-key=" + KEY2], "is not the key of the certificate"),
        (["--tls-cert=" + CERT1], "--tls-cert and --tls-key go together"),
    ]
    for flags, want in cases:
        rc, err = start_fails(flags)
        assert rc == 1 and want in err, (flags, rc, err)


if __name__ == "__main__":
    rc, err = start_fails(["--tls-cert=" + CERT1, "--tls-key=" + KEY2])
    if "not built in" in err:
        shutil.rmtree(PKI, ignore_errors=True)
        print("SKIP: built with --disable-tls (%s)" % err.strip())
        sys.exit(77)
    try:
        run([test_curl_rest_and_healthz, test_large_rest_body_to_slow_reader,
             test_plain_http_to_tls_port_gets_400, test_tls_versions,
             test_wss_events_byte_exact_and_close_1000, test_wss_large_message_gets_1009,
             test_wss_burst_to_slow_reader_complete, test_wss_write_deadline_drops_stuck_client,
             test_sigterm_sends_1001_to_every_wss_client,
             test_sse_over_https, test_sighup_reloads_certificate, test_node_ws_over_wss,
             test_dashboard_in_chromium_over_https, test_bad_files_at_start,
             test_gnutls_loaded_only_for_tls_cert, test_per_ip_limit_answers_503_over_tls],
            timeout=90)
    finally:
        shutil.rmtree(PKI, ignore_errors=True)
