"""Black-box harness for personad integration tests.

Used by tests/integration/test_*.py (found via $TOP_SRCDIR).  It starts the
real built daemon ($PERSONAD) on a free 127.0.0.1 port with a temp personas
directory, waits for GET /healthz, and always stops the whole process group
and removes the directory.  It also has a raw-socket WebSocket client for
hand-crafted frames, /proc helpers to find workers and which worker holds
which connection, and a tiny sequential test runner.

Exit codes follow automake: 0 pass, 77 skip, 1 fail, 99 hard error.
"""

import asyncio
import base64
import hashlib
import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback

try:
    import websockets  # noqa: F401  (Debian python3-websockets 10.4)
    import websockets.exceptions  # noqa: F401
except ImportError:  # pragma: no cover
    print("SKIP: python websockets module missing (use /usr/bin/python3)")
    sys.exit(77)

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
READY_TIMEOUT = 10.0


def personad_path():
    p = os.environ.get("PERSONAD")
    if not p:
        top = os.environ.get("TOP_BUILDDIR", ".")
        p = os.path.join(top, "src", "personad")
    if not os.access(p, os.X_OK):
        print("ERROR: personad binary not found: %s" % p)
        sys.exit(99)
    return os.path.abspath(p)


def free_port():
    """A port that was free on 127.0.0.1 a moment ago."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --- personas -------------------------------------------------------------


def persona_k8s(name, nodes=3, phase="Running", version="1.29.4", **extra):
    """A ClusterPersona in Kubernetes shape (as kubectl prints it)."""
    obj = {
        "apiVersion": "platform.example.com/v1alpha1",
        "kind": "ClusterPersona",
        "metadata": {"name": name, "labels": {"env": "test"}},
        "spec": {
            "kubernetesVersion": version,
            "nodes": [{"name": "node-%d" % i, "role": "worker"} for i in range(nodes)],
            "addons": ["coredns", "metrics-server"],
        },
        "status": {"phase": phase, "readyNodes": nodes},
    }
    obj["spec"].update(extra)
    return obj


def persona_api(name, nodes=3, phase="Running", **extra):
    """A ClusterPersona in API shape (name, spec, status)."""
    obj = {
        "name": name,
        "spec": {"nodes": nodes, "addons": ["coredns"]},
        "status": {"phase": phase},
    }
    obj["spec"].update(extra)
    return obj


def event_payloads(kind, name):
    """The accepted byte-exact payloads of one event.

    Compact, keys in order type, data, name.  Quotes and backslashes have
    exactly one JSON escape; non-ASCII may be sent raw (UTF-8) or as \\u
    escapes, so both spellings are accepted.  For ASCII names both are equal.
    """
    obj = {"type": "cluster." + kind, "data": {"name": name}}
    raw = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    esc = json.dumps(obj, separators=(",", ":"), ensure_ascii=True)
    return {raw, esc}


def ev(kind, name):
    """The canonical payload (non-ASCII left raw)."""
    obj = {"type": "cluster." + kind, "data": {"name": name}}
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


# --- the daemon -----------------------------------------------------------


class DaemonError(Exception):
    pass


class Daemon:
    """One personad process group with its own port and personas dir.

    with Daemon(workers=2, flags=["--ping-period=0.3"], seed={...}) as d:
        d.write("a.json", persona_k8s("a"))
    """

    def __init__(self, workers=2, flags=(), seed=None, port=None, personas_dir=None,
                 ready=True, keep_dir=False, expect_worker_deaths=False):
        self.workers = workers
        self.flags = list(flags)
        self.port = port
        self.proc = None
        self.ready = ready
        self.own_dir = personas_dir is None
        self.keep_dir = keep_dir
        self.expect_worker_deaths = expect_worker_deaths
        self.tmp = tempfile.mkdtemp(prefix="personad-it-")
        self.dir = personas_dir or os.path.join(self.tmp, "personas")
        os.makedirs(self.dir, exist_ok=True)
        self.log_path = os.path.join(self.tmp, "stderr.log")
        self.out_path = os.path.join(self.tmp, "stdout.log")
        for fname, content in (seed or {}).items():
            self.write(fname, content)

    # -- lifecycle
    def argv(self):
        return [personad_path(), "-l", "127.0.0.1:%d" % self.port, "-d", self.dir,
                "-w", str(self.workers)] + self.flags

    def start(self):
        fixed_port = self.port is not None
        for attempt in range(3):
            if not fixed_port:
                self.port = free_port()
            self._spawn()
            if not self.ready:
                return self
            try:
                self.wait_ready()
                return self
            except DaemonError:
                log = self.log_text()
                self.stop()
                if (not fixed_port and attempt < 2 and "in use" in log.lower()):
                    continue  # lost a race for the port
                raise
        return self

    def _spawn(self):
        self.errf = open(self.log_path, "ab")
        self.outf = open(self.out_path, "ab")
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                     stdout=self.outf, stderr=self.errf,
                                     process_group=0)
        self.pgid = self.proc.pid
        self.started_at = time.monotonic()

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DaemonError("personad exited with %s before ready; stderr:\n%s"
                                  % (self.proc.returncode, self.log_text()[-3000:]))
            try:
                st, body, _ = self.http("GET", "/healthz", timeout=1.0)
                if st == 200:
                    return body
                last = "status %d" % st
            except OSError as e:
                last = repr(e)
            time.sleep(0.05)
        raise DaemonError("personad not ready after %.0fs (%s); stderr:\n%s"
                          % (timeout, last, self.log_text()[-3000:]))

    @property
    def pid(self):
        return self.proc.pid

    def group_alive(self):
        """True while any process of the daemon's group exists (zombies of
        other parents included; our own child is reaped first)."""
        self.proc.poll()
        try:
            os.killpg(self.pgid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True

    def send_signal(self, sig):
        os.kill(self.proc.pid, sig)

    def stop(self, sig=signal.SIGTERM, grace=5.0):
        """Stop the daemon and everything in its process group.  Returns the
        master's exit status (None if it had to be killed)."""
        if self.proc is None:
            return None
        rc = self.proc.poll()
        if rc is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                rc = self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                rc = None
        deadline = time.monotonic() + grace
        while self.group_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.group_alive() or rc is None:
            try:
                os.killpg(self.pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        for f in (getattr(self, "errf", None), getattr(self, "outf", None)):
            if f:
                f.close()
        return rc

    def cleanup(self):
        self.stop()
        if not self.keep_dir:
            import shutil
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, *exc):
        # Every test doubles as a clean-shutdown and sanitizer check: a daemon
        # still running here must exit 0 on SIGTERM, and its stderr must hold
        # no sanitizer report and no unexpected worker death.
        problems = []
        if self.proc is not None:
            was_running = self.proc.poll() is None
            rc = self.stop()
            if was_running and rc != 0:
                problems.append("personad exited with status %r on SIGTERM" % (rc,))
        log = self.log_text()
        for pat in ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                    "runtime error:"):
            if pat in log:
                problems.append("sanitizer report in personad's stderr (%s)" % pat)
        if not self.expect_worker_deaths:
            for pat in ("killed by signal", "respawning"):
                if pat in log:
                    problems.append("a worker died unexpectedly (%r in the log)" % pat)
        if exc[0] is not None or problems:
            print("---- personad stderr (tail) ----\n%s\n--------" % log[-4000:])
        self.cleanup()
        if problems and exc[0] is None:
            raise AssertionError("; ".join(problems))
        return False

    # -- logs
    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_lines_since(self, offset):
        return self.log_text()[offset:]

    def wait_log(self, predicate, timeout=3.0, since=0):
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_text()[since:]
            for line in text.splitlines():
                if predicate(line):
                    return line
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)

    # -- persona files
    def path(self, fname):
        return os.path.join(self.dir, fname)

    def write(self, fname, content, indent=None, sort_keys=False):
        """Atomically write a persona file: DIR/.tmp-xxx then rename."""
        if isinstance(content, (dict, list)):
            data = json.dumps(content, indent=indent, sort_keys=sort_keys).encode()
        elif isinstance(content, str):
            data = content.encode()
        else:
            data = content
        target = self.path(fname)
        tmp = os.path.join(os.path.dirname(target),
                           ".tmp-%d-%s" % (os.getpid(), os.path.basename(target)))
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, target)
        return time.monotonic()

    def remove(self, fname):
        os.unlink(self.path(fname))
        return time.monotonic()

    def rename(self, a, b):
        os.rename(self.path(a), self.path(b))
        return time.monotonic()

    # -- HTTP
    def http(self, method, path, headers=None, body=None, timeout=5.0):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.read(), r
        finally:
            c.close()

    def get_json(self, path):
        st, body, _ = self.http("GET", path)
        return st, json.loads(body) if body else None

    def cluster_names(self):
        st, obj = self.get_json("/api/clusters")
        assert st == 200, "GET /api/clusters -> %d" % st
        return [c["name"] for c in obj["clusters"]]

    @property
    def ws_url(self):
        return "ws://127.0.0.1:%d/ws" % self.port

    # -- processes
    def worker_pids(self):
        return children(self.proc.pid)

    def wait_workers(self, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            w = self.worker_pids()
            if len(w) == n:
                return w
            if time.monotonic() > deadline:
                return w
            time.sleep(0.05)


def children(pid):
    """Live child pids of pid (from /proc/PID/task/*/children)."""
    out = set()
    try:
        for t in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                    out.update(int(x) for x in f.read().split())
            except OSError:
                pass
    except OSError:
        return []
    return sorted(p for p in out if pid_alive(p))


def pid_alive(pid):
    """True if pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return False
    return st[st.rindex(")") + 2] != "Z"


# --- /proc/net/tcp: who holds which connection ----------------------------

TCP_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
              "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
              "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING"}


def tcp_sockets(local_port):
    """Sockets on 127.0.0.1 whose local port is local_port:
    {remote_port: (state, inode, tx_queue)}; LISTEN sockets skipped."""
    out = {}
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            p = line.split()
            lport = int(p[1].split(":")[1], 16)
            rport = int(p[2].split(":")[1], 16)
            st = TCP_STATES.get(p[3], p[3])
            if lport != local_port or st == "LISTEN":
                continue
            tx = int(p[4].split(":")[0], 16)
            out[rport] = (st, int(p[9]), tx)
    return out


def inode_owners(pids):
    """{socket inode: pid} for the given pids."""
    own = {}
    for pid in pids:
        try:
            fds = os.listdir("/proc/%d/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if link.startswith("socket:["):
                own[int(link[8:-1])] = pid
    return own


def conn_owner(daemon, client_port, pids=None):
    """pid of the daemon process holding the server side of the connection
    whose client port is client_port (None if none does)."""
    socks = tcp_sockets(daemon.port)
    if client_port not in socks:
        return None
    inode = socks[client_port][1]
    own = inode_owners(pids if pids is not None else [daemon.pid] + daemon.worker_pids())
    return own.get(inode)


def server_side_closed(daemon, client_port):
    """True once the daemon has closed or shut down its side of this
    connection: gone, orphaned (inode 0) or past ESTABLISHED by the daemon's
    act.  CLOSE_WAIT is the client's close that the daemon has not acted on
    yet, so it is still open."""
    socks = tcp_sockets(daemon.port)
    if client_port not in socks:
        return True
    st, inode, _ = socks[client_port]
    return inode == 0 or st not in ("ESTABLISHED", "CLOSE_WAIT")


def server_side_released(daemon, client_port):
    """True once the daemon holds no descriptor of this connection's socket
    (gone or orphaned): whatever the daemon counted for it is gone too."""
    socks = tcp_sockets(daemon.port)
    return client_port not in socks or socks[client_port][1] == 0


def daemon_holds_no_connection(daemon):
    """True when the daemon holds no connection's socket at all (the
    harness's own readiness probes included)."""
    return all(inode == 0 for _, inode, _ in tcp_sockets(daemon.port).values())


def ws_local_port(ws):
    """The client-side port of a websockets connection."""
    return ws.transport.get_extra_info("sockname")[1]


# --- raw WebSocket client (hand-crafted frames) ---------------------------


def accept_key(key):
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


class ConnClosed(Exception):
    """EOF or reset while reading."""


def build_frame(opcode, payload=b"", fin=True, mask=True, rsv=0, length=None, mask_key=None):
    """One client frame.  length overrides the encoded payload length field
    choice (7-bit, 16-bit or 64-bit) only through the payload size."""
    if isinstance(payload, str):
        payload = payload.encode()
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        hdr = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask:
        key = mask_key if mask_key is not None else os.urandom(4)
        masked = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
        return hdr + key + masked
    return hdr + payload


class RawWS:
    """A blocking WebSocket client on a plain socket."""

    def __init__(self, port, path="/ws", rcvbuf=None, timeout=5.0, handshake=True,
                 extra_headers=None):
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.local_port = self.sock.getsockname()[1]
        self.buf = b""
        self.status = None
        self.headers = {}
        if handshake:
            self.handshake(path, extra_headers)

    def handshake(self, path="/ws", extra_headers=None):
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\n" % (path, self.port, key))
        for k, v in (extra_headers or {}).items():
            req += "%s: %s\r\n" % (k, v)
        self.sock.sendall((req + "\r\n").encode())
        self.status, self.headers = self.read_http_head()
        assert self.status == 101, "handshake status %r" % self.status
        assert self.headers.get("sec-websocket-accept") == accept_key(key), \
            "bad Sec-WebSocket-Accept %r" % self.headers.get("sec-websocket-accept")

    def read_http_head(self):
        while b"\r\n\r\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise ConnClosed("EOF in HTTP response head: %r" % self.buf)
            self.buf += d
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        return status, hdrs

    def send(self, data):
        self.sock.sendall(data)

    def send_frame(self, opcode, payload=b"", **kw):
        self.sock.sendall(build_frame(opcode, payload, **kw))

    def _need(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out reading frame")
            self.sock.settimeout(left)
            try:
                d = self.sock.recv(65536)
            except ConnectionResetError as e:
                raise ConnClosed("reset") from e
            if not d:
                raise ConnClosed("EOF")
            self.buf += d

    def read_frame(self, timeout=5.0):
        """(fin, opcode, payload) of the next server frame.  Asserts the
        server never masks and never sets reserved bits."""
        deadline = time.monotonic() + timeout
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        assert not (b1 & 0x80), "server frame is masked"
        assert not (b0 & 0x70), "server frame has reserved bits set"
        n = b1 & 0x7F
        off = 2
        if n == 126:
            self._need(4, deadline)
            n = struct.unpack("!H", self.buf[2:4])[0]
            off = 4
        elif n == 127:
            self._need(10, deadline)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            off = 10
        self._need(off + n, deadline)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def read_message(self, timeout=5.0, answer_pings=True):
        """Next text/binary/close frame; control frames in between are
        handled (pings answered unless answer_pings is False)."""
        deadline = time.monotonic() + timeout
        while True:
            fin, op, p = self.read_frame(max(0.0, deadline - time.monotonic()))
            if op == 0x9:
                if answer_pings:
                    self.send_frame(0xA, p)
                continue
            if op == 0xA:
                continue
            return fin, op, p

    def read_close(self, timeout=5.0):
        """Read frames until a close frame; return (code or None, reason).
        Raises ConnClosed if the socket ends without a close frame."""
        deadline = time.monotonic() + timeout
        while True:
            fin, op, p = self.read_frame(max(0.0, deadline - time.monotonic()))
            if op == 0x8:
                if len(p) >= 2:
                    return struct.unpack("!H", p[:2])[0], p[2:]
                return None, b""

    def wait_eof(self, timeout=3.0):
        """Drain until EOF/reset; True if it came within timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionResetError, BrokenPipeError):
                return True
            if not d:
                return True
            self.buf += d

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def raw_http(port, request, timeout=5.0):
    """Send a hand-written HTTP request; return (status, headers, sock).
    The caller closes sock."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    s.sendall(request.encode() if isinstance(request, str) else request)
    r = RawWS.__new__(RawWS)
    r.sock, r.buf, r.port = s, b"", port
    try:
        status, hdrs = r.read_http_head()
    finally:
        s.close()
    return status, hdrs


# --- websockets client helpers --------------------------------------------


async def ws_connect(daemon_or_url, **kw):
    import websockets
    url = daemon_or_url if isinstance(daemon_or_url, str) else daemon_or_url.ws_url
    kw.setdefault("ping_interval", None)   # never let the library ping for us
    kw.setdefault("open_timeout", 10)
    kw.setdefault("close_timeout", 3)
    kw.setdefault("max_size", 2 ** 20)
    return await websockets.connect(url, **kw)


async def recv(ws, timeout=3.0):
    """Next message, or AssertionError on timeout."""
    try:
        return await asyncio.wait_for(ws.recv(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError("no message within %.1fs" % timeout) from None


async def expect(ws, kind, name, timeout=3.0, what=""):
    got = await recv(ws, timeout)
    want = event_payloads(kind, name)
    assert got in want, "%sexpected %s, got %r" % (what and what + ": ", sorted(want), got)
    return got


async def expect_silence(ws, secs):
    """Nothing may arrive for secs."""
    try:
        got = await asyncio.wait_for(ws.recv(), secs)
    except asyncio.TimeoutError:
        return
    raise AssertionError("expected no message, got %r" % (got,))


# --- runner ---------------------------------------------------------------


def run(tests, timeout=60.0):
    """Run test functions (sync or async) in order; exit 0/1.  Names given
    on the command line select a subset."""
    sel = sys.argv[1:]
    failed = []
    t0 = time.monotonic()
    for fn in tests:
        name = fn.__name__
        if sel and name not in sel:
            continue
        start = time.monotonic()
        try:
            if asyncio.iscoroutinefunction(fn):
                asyncio.run(asyncio.wait_for(fn(), timeout))
            else:
                fn()
            print("PASS %s (%.2fs)" % (name, time.monotonic() - start), flush=True)
        except Exception as e:  # noqa: BLE001
            failed.append(name)
            print("FAIL %s (%.2fs): %s: %s" % (name, time.monotonic() - start,
                                              type(e).__name__, e), flush=True)
            traceback.print_exc()
    print("%d failed, total %.1fs" % (len(failed), time.monotonic() - t0))
    sys.exit(1 if failed else 0)
