#!/usr/bin/env python3
"""A fake Kubernetes API server serving ClusterPersonas (dorgu.io/v1), for tests.

Python 3 standard library only.  It implements what personad's Kubernetes
source and kubectl use, shaped like the real API server answers, and lets a
test break it on purpose.  tests/integration/test_kube_fake.py proves it
against the real kubectl.  It is not a Kubernetes: one resource, in memory.

Use from a test (tests/integration is on sys.path):

    from kube_fake import FakeKube
    kube = FakeKube(token="s3cret", tls=True)   # tls: a test CA made with openssl
    url = kube.start()                          # "https://127.0.0.1:PORT"
    kube.create("prod", {"name": "prod"}, {"phase": "Ready"})
    ...
    kube.stop()

Run as a script for manual use (prints its URL, serves until Ctrl-C):

    python3 tests/integration/kube_fake.py [--port P] [--token T] [--tls]
            [--personas-dir examples/personas] [--objects N]

API (all methods are thread-safe; names are ClusterPersona names):

  FakeKube(token=None, tls=False, certdir=None, port=0, bookmark_interval=None,
           watch_max_seconds=None, host="127.0.0.1")
      token: when not None, every request needs "Authorization: Bearer TOKEN"
      (else 401 with a Status body).  tls: serve https with a certificate from
      make_test_certs(certdir) (a temp dir when None); .ca_file names the CA.
      bookmark_interval: seconds between BOOKMARK events on watches that asked
      for them (allowWatchBookmarks=true); None: only send_bookmark() sends one.
      watch_max_seconds: the server ends every watch after this (as the API
      server's --min-request-timeout does), whatever timeoutSeconds asked.
      host: the address to listen on ("::1" works too; the URL brackets it).
  .start() -> base URL        .stop()        .url  .port  .ca_file
  .create(name, spec, status=None, labels=None, raw=None) -> object
      raw: a dict merged over the object as stored (e.g. {"spec": 42} for a
      malformed object).
  .modify(name, spec=None, status=None, metadata_only=False, labels=None)
      -> object.  spec replaces spec (generation + 1), status replaces status
      (a status subresource write: generation unchanged), metadata_only bumps
      resourceVersion, an annotation and managedFields only.
  .delete(name) -> the deleted object (with the deletion resourceVersion)
  .objects() -> {name: object} (deep copies)     .resource_version() -> str
  .compact()  lists with continue tokens and watches from any
      resourceVersion older than now get 410 Expired (like etcd compaction).
  .expire_continue()  every continue token given out so far answers 410.
  .cut_watches(mid_line=False, reset=False)  drop every open watch connection
      (no final chunk; a FIN, or with reset a TCP RST); mid_line: first write
      the first half of the next line (the next pending event when one is
      queued, e.g. under set_hang, else a BOOKMARK).
  .end_watches()  end every open watch cleanly (the final chunk), as at the
      server's timeout; events not yet sent stay for the next watch.
  .set_down(down, mode="refuse")  refuse: open connections are shut down and
      new ones refused (the port stays bound, not listening); "503": every
      request answers 503.  Open watches are cut.  set_down(False) serves
      again on the same port.
  .set_hang(hang)  new requests are read and never answered; open watches
      stop sending (events are held, not lost) until set_hang(False).
  .set_error(code)  every request answers `code` with a Status (None: off).
  .set_token(token)  the token from now on (open watches are not checked again).
  .set_watch_gone_mode(mode)  how a watch from too old a resourceVersion is
      refused: "event" (default: 200, one ERROR event with a 410 Status, end,
      as a current API server does) or "status" (HTTP 410 with a Status body).
  .inject_error_event_410()  every open watch gets an ERROR event with code
      410 (reason Expired), then its stream ends.
  .inject_raw_line(data)  every open watch gets `data` (bytes) and a newline.
  .send_bookmark()  every open watch that asked for bookmarks gets one now.
  .requests  list of dicts {method, path, query (dict, first values),
      raw_query, auth (the Authorization header or None), accept, headers
      (dict), time}.
  .watch_count() -> open watches    .wait_watches(n, timeout=10) -> bool
  .wait_request(pred, timeout=10) -> the first request with pred(r) true, or None
  make_test_certs(dirpath) -> {"ca", "cert", "key"} paths (openssl; server
      cert for 127.0.0.1, ::1 and localhost).
  find_kubectl() -> $KUBECTL, else kubectl on PATH, else None.
  KubectlProxy(kube, token=None, kubectl=None)  the real `kubectl proxy` in
      front of the fake (its kubeconfig: the fake's URL, CA, and token, by
      default the fake's): .start() -> "http://127.0.0.1:PORT", .stop(); a
      context manager.  For the `--kube-api=http://127.0.0.1:8001` set-up.

Served (GET only; anything else is 405):
  /version, /api, /api/v1, /apis, /apis/dorgu.io, /apis/dorgu.io/v1 (discovery,
  plain JSON: kubectl falls back to it from aggregated discovery),
  /apis/dorgu.io/v1/clusterpersonas   list: limit, continue (410 Expired when
      expired; 400 with resourceVersion), resourceVersion ("" / "0" / RV: the
      current state; RV newer than now: 504), labelSelector (k=v, k!=v, k),
      fieldSelector (metadata.name=N); items sorted by name; the pages of one
      list are one consistent snapshot.  Watch: watch=1|true, resourceVersion
      (absent / "0": ADDED for every object first), allowWatchBookmarks,
      timeoutSeconds (the stream ends cleanly then); chunked, one JSON event
      per line: {"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": ...}.
  /apis/dorgu.io/v1/clusterpersonas/NAME   one object, or 404 NotFound.
  A request for Table output (Accept: ...;as=Table) gets a minimal
  meta.k8s.io/v1 Table (the CRD's printer columns) when it asks for nothing
  else first.
"""

import base64
import copy
import datetime
import http.server
import json
import os
import socket
import shutil
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid

GROUP = "dorgu.io"
VERSION = "v1"
GV = GROUP + "/" + VERSION
KIND = "ClusterPersona"
PLURAL = "clusterpersonas"
COLLECTION = "/apis/%s/%s/%s" % (GROUP, VERSION, PLURAL)


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_body(code, reason, message, details=None):
    """A meta/v1 Status, as the API server answers errors."""
    st = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        st["details"] = details
    return st


def make_test_certs(dirpath):
    """A test CA and a server certificate for 127.0.0.1/::1/localhost, by openssl."""
    os.makedirs(dirpath, exist_ok=True)
    p = lambda n: os.path.join(dirpath, n)  # noqa: E731
    def run(*args):
        subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=60)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", p("ca.key"),
        "-out", p("ca.crt"), "-days", "2", "-subj", "/CN=personad-test-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", p("server.key"),
        "-out", p("server.csr"), "-subj", "/CN=kube-fake")
    with open(p("server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n"
                "basicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", p("server.csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"),
        "-CAcreateserial", "-out", p("server.crt"), "-days", "2", "-extfile", p("server.ext"))
    return {"ca": p("ca.crt"), "cert": p("server.crt"), "key": p("server.key")}


# --- discovery documents ----------------------------------------------------

def _discovery_api():
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": "127.0.0.1:6443"}]}


def _res(name, singular, namespaced, kind, verbs, short=None):
    r = {"name": name, "singularName": singular, "namespaced": namespaced, "kind": kind,
         "verbs": verbs}
    if short:
        r["shortNames"] = short
    return r


_RW = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

# Other groups are listed (not served) so that `kubectl apply --dry-run=client`
# of contrib/kubernetes/ finds every kind it names.
_GROUPS = {
    "": {"v1": [
        _res("namespaces", "namespace", False, "Namespace", _RW, ["ns"]),
        _res("serviceaccounts", "serviceaccount", True, "ServiceAccount", _RW, ["sa"]),
        _res("services", "service", True, "Service", _RW, ["svc"]),
    ]},
    "apps": {"v1": [_res("deployments", "deployment", True, "Deployment", _RW, ["deploy"])]},
    "policy": {"v1": [_res("poddisruptionbudgets", "poddisruptionbudget", True,
                           "PodDisruptionBudget", _RW, ["pdb"])]},
    "rbac.authorization.k8s.io": {"v1": [
        _res("clusterroles", "clusterrole", False, "ClusterRole", _RW),
        _res("clusterrolebindings", "clusterrolebinding", False, "ClusterRoleBinding", _RW),
    ]},
    "apiextensions.k8s.io": {"v1": [
        _res("customresourcedefinitions", "customresourcedefinition", False,
             "CustomResourceDefinition", _RW, ["crd", "crds"]),
    ]},
    GROUP: {VERSION: [
        dict(_res(PLURAL, "clusterpersona", False, KIND, ["get", "list", "watch"]),
             categories=["all"]),
    ]},
}


def _discovery_apis():
    groups = []
    for g, versions in _GROUPS.items():
        if not g:
            continue
        vs = [{"groupVersion": g + "/" + v, "version": v} for v in versions]
        groups.append({"name": g, "versions": vs, "preferredVersion": vs[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _discovery_group(g):
    vs = [{"groupVersion": g + "/" + v, "version": v} for v in _GROUPS[g]]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": g, "versions": vs,
            "preferredVersion": vs[0]}


def _discovery_resources(g, v):
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": (g + "/" + v) if g else v, "resources": _GROUPS[g][v]}


def _age(ts):
    try:
        t = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return "<unknown>"
    s = int((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds())
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= 2 * n:
            return "%d%s" % (s // n, unit)
    return "%ds" % max(s, 0)


def _table(objs, list_meta):
    """A minimal meta.k8s.io/v1 Table with the CRD's printer columns."""
    cols = [("Name", "string", "name"), ("Environment", "string", ""),
            ("Phase", "string", ""), ("Nodes", "integer", ""), ("Apps", "integer", ""),
            ("Age", "date", "")]
    defs = [{"name": n, "type": t, "format": f, "description": n, "priority": 0}
            for n, t, f in cols]
    rows = []
    for o in objs:
        spec = o.get("spec") if isinstance(o.get("spec"), dict) else {}
        status = o.get("status") if isinstance(o.get("status"), dict) else {}
        summary = status.get("resourceSummary")
        summary = summary if isinstance(summary, dict) else {}
        cell = lambda v: "" if v is None else v  # noqa: E731
        rows.append({"cells": [o["metadata"]["name"], cell(spec.get("environment")),
                               cell(status.get("phase")), cell(summary.get("nodeCount")),
                               cell(status.get("applicationCount")),
                               _age(o["metadata"].get("creationTimestamp"))],
                     "object": {"kind": "PartialObjectMetadata",
                                "apiVersion": "meta.k8s.io/v1",
                                "metadata": o["metadata"]}})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
            "columnDefinitions": defs, "rows": rows}


# --- the server -------------------------------------------------------------

class _Watch:
    """One open watch stream (its handler thread does all the writing)."""

    def __init__(self, bookmarks):
        self.bookmarks = bookmarks
        self.cut = None        # None, "clean" or "mid_line"
        self.extra = []        # injected lines (bytes), in order
        self.end_after_extra = False
        self.want_bookmark = False
        self.reset = False     # cut with a TCP RST instead of a FIN


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, addr, handler, fake):
        self.fake = fake
        if ":" in addr[0]:
            self.address_family = socket.AF_INET6
        super().__init__(addr, handler)

    def get_request(self):
        sock, addr = super().get_request()
        if self.fake._sslctx is not None:
            # The handshake runs in the handler's thread (on first read), so a
            # client that never completes it does not stop the accept loop.
            sock = self.fake._sslctx.wrap_socket(sock, server_side=True,
                                                 do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):
        pass  # a client that went away is not an error of the fake


class FakeKube:
    def __init__(self, token=None, tls=False, certdir=None, port=0, bookmark_interval=None,
                 watch_max_seconds=None, host="127.0.0.1"):
        self._lock = threading.Condition(threading.RLock())
        self._token = token
        self._tls = tls
        self._certdir = certdir
        self._host = host
        self.port = port
        self.bookmark_interval = bookmark_interval
        self.watch_max_seconds = watch_max_seconds
        self._rv = 1000
        self._objs = {}            # name -> object (latest)
        self._log = []             # (rv, type, object) for every change
        self._compacted = 0        # events with rv <= this are gone
        self._snapshots = {}       # id -> (rv, [objects]) for continue tokens
        self._snap_next = 1
        self._watches = set()
        self._conns = set()        # open client connections (sockets)
        self._down = None          # None, "refuse", "503"
        self._hang = False
        self._error = None
        self._gone_mode = "event"
        self._stopping = False
        self._server = None
        self._thread = None
        self._placeholder = None
        self._tmpdir = None
        self.ca_file = None
        self._sslctx = None
        self.url = None
        self.requests = []

    # --- life cycle ---

    def start(self):
        if self._tls:
            if self._certdir is None:
                self._tmpdir = tempfile.TemporaryDirectory(prefix="kube_fake.")
                self._certdir = self._tmpdir.name
            certs = make_test_certs(self._certdir)
            self.ca_file = certs["ca"]
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(certs["cert"], certs["key"])
            self._sslctx = ctx
        self._serve()
        host = "[%s]" % self._host if ":" in self._host else self._host
        self.url = "%s://%s:%d" % ("https" if self._tls else "http", host, self.port)
        return self.url

    def _serve(self):
        srv = _Server((self._host, self.port), _Handler, self)
        self.port = srv.server_address[1]
        self._server = srv
        self._thread = threading.Thread(target=srv.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()

    def _unserve(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None

    def _drop_connections(self):
        """Shut down every open client connection (keep-alive ones too)."""
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self):
        with self._lock:
            self._stopping = True
            self._hang = False
            for w in self._watches:
                w.cut = w.cut or "clean"
            self._lock.notify_all()
        self._unserve()
        self._drop_connections()
        if self._placeholder is not None:
            self._placeholder.close()
            self._placeholder = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    # --- the objects ---

    def _next_rv(self):
        self._rv += 1
        return str(self._rv)

    def _managed(self, manager, fields):
        return [{"manager": manager, "operation": "Update", "apiVersion": GV, "time": _now(),
                 "fieldsType": "FieldsV1", "fieldsV1": fields}]

    def _record(self, typ, obj):
        self._log.append((int(obj["metadata"]["resourceVersion"]), typ, copy.deepcopy(obj)))
        self._lock.notify_all()

    def create(self, name, spec, status=None, labels=None, raw=None):
        with self._lock:
            if name in self._objs:
                raise KeyError("exists: " + name)
            md = {"name": name, "uid": str(uuid.uuid4()), "resourceVersion": self._next_rv(),
                  "generation": 1, "creationTimestamp": _now(),
                  "managedFields": self._managed("kubectl-client-side-apply",
                                                 {"f:spec": {}})}
            if labels:
                md["labels"] = dict(labels)
            obj = {"apiVersion": GV, "kind": KIND, "metadata": md, "spec": copy.deepcopy(spec)}
            if status is not None:
                obj["status"] = copy.deepcopy(status)
            if raw:
                for k, v in raw.items():
                    obj[k] = copy.deepcopy(v)
            self._objs[name] = obj
            self._record("ADDED", obj)
            return copy.deepcopy(obj)

    def modify(self, name, spec=None, status=None, metadata_only=False, labels=None):
        with self._lock:
            obj = self._objs[name]
            md = obj["metadata"]
            md["resourceVersion"] = self._next_rv()
            if spec is not None:
                obj["spec"] = copy.deepcopy(spec)
                md["generation"] += 1
            if status is not None:
                obj["status"] = copy.deepcopy(status)
                md["managedFields"] = md["managedFields"][:1] + self._managed(
                    "dorgu-operator", {"f:status": {}})
            if labels is not None:
                md["labels"] = dict(labels)
            if metadata_only:
                ann = md.setdefault("annotations", {})
                ann["fake.dorgu.io/touched"] = md["resourceVersion"]
                md["managedFields"] = md["managedFields"][:1] + self._managed(
                    "kubectl-annotate", {"f:metadata": {"f:annotations": {}}})
            self._record("MODIFIED", obj)
            return copy.deepcopy(obj)

    def delete(self, name):
        with self._lock:
            obj = self._objs.pop(name)
            obj["metadata"]["resourceVersion"] = self._next_rv()
            self._record("DELETED", obj)
            return copy.deepcopy(obj)

    def objects(self):
        with self._lock:
            return copy.deepcopy(self._objs)

    def resource_version(self):
        with self._lock:
            return str(self._rv)

    # --- faults ---

    def compact(self):
        with self._lock:
            self._compacted = self._rv
            self._log = []
            self._snapshots.clear()

    def expire_continue(self):
        with self._lock:
            self._snapshots.clear()

    def cut_watches(self, mid_line=False, reset=False):
        with self._lock:
            for w in self._watches:
                w.cut = "mid_line" if mid_line else "clean"
                w.reset = reset
            self._lock.notify_all()

    def end_watches(self):
        with self._lock:
            for w in self._watches:
                w.cut = w.cut or "end"
            self._lock.notify_all()

    def set_down(self, down, mode="refuse"):
        if mode not in ("refuse", "503"):
            raise ValueError(mode)
        if down:
            with self._lock:
                self._down = mode
                for w in self._watches:
                    w.cut = w.cut or "clean"
                self._lock.notify_all()
            if mode == "refuse" and self._server is not None:
                self._unserve()
                self._drop_connections()
                # Bound, not listening: a connect() gets ECONNREFUSED and
                # nobody else takes the port meanwhile.
                s = socket.socket(socket.AF_INET6 if ":" in self._host else socket.AF_INET)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((self._host, self.port))
                self._placeholder = s
        else:
            with self._lock:
                self._down = None
            if self._server is None:
                if self._placeholder is not None:
                    self._placeholder.close()
                    self._placeholder = None
                self._serve()

    def set_hang(self, hang):
        with self._lock:
            self._hang = bool(hang)
            self._lock.notify_all()

    def set_error(self, code):
        with self._lock:
            self._error = code

    def set_token(self, token):
        with self._lock:
            self._token = token

    def set_watch_gone_mode(self, mode):
        if mode not in ("event", "status"):
            raise ValueError(mode)
        with self._lock:
            self._gone_mode = mode

    def _inject(self, line, end=False):
        with self._lock:
            for w in self._watches:
                w.extra.append(line)
                w.end_after_extra = w.end_after_extra or end
            self._lock.notify_all()

    def inject_error_event_410(self):
        st = status_body(410, "Expired", "too old resource version: %d (%d)"
                         % (self._compacted, self._rv))
        self._inject(json.dumps({"type": "ERROR", "object": st}).encode(), end=True)

    def inject_raw_line(self, data):
        if isinstance(data, str):
            data = data.encode()
        self._inject(data)

    def send_bookmark(self):
        with self._lock:
            for w in self._watches:
                w.want_bookmark = w.bookmarks
            self._lock.notify_all()

    # --- observation ---

    def watch_count(self):
        with self._lock:
            return len(self._watches)

    def wait_watches(self, n, timeout=10):
        end = time.monotonic() + timeout
        with self._lock:
            while len(self._watches) < n:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
            return True

    def wait_request(self, pred, timeout=10):
        end = time.monotonic() + timeout
        while True:
            with self._lock:
                for r in list(self.requests):
                    if pred(r):
                        return r
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self._lock.wait(min(left, 0.2))


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-fake"
    sys_version = ""

    def log_message(self, fmt, *args):
        if os.environ.get("KUBE_FAKE_VERBOSE"):
            sys.stderr.write("kube_fake: %s\n" % (fmt % args))

    def setup(self):
        super().setup()
        fake = self.server.fake
        with fake._lock:
            fake._conns.add(self.connection)

    def finish(self):
        fake = self.server.fake
        with fake._lock:
            fake._conns.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    # --- responses ---

    def _send_json(self, code, body, ctype="application/json"):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _status(self, code, reason, message):
        self._send_json(code, status_body(code, reason, message))

    def do_POST(self):
        self._method_not_allowed()

    do_PUT = do_PATCH = do_DELETE = do_POST

    def _method_not_allowed(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        self._record()
        self._status(405, "MethodNotAllowed", "the fake serves GET only")

    def _record(self):
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        r = {"method": self.command, "path": u.path,
             "query": {k: v[0] for k, v in q.items()}, "raw_query": u.query,
             "auth": self.headers.get("Authorization"), "accept": self.headers.get("Accept"),
             "headers": dict(self.headers.items()), "time": time.time()}
        fake = self.server.fake
        with fake._lock:
            fake.requests.append(r)
            fake._lock.notify_all()
        return r

    def do_GET(self):
        fake = self.server.fake
        r = self._record()
        with fake._lock:
            while fake._hang and not fake._stopping:
                fake._lock.wait(0.5)
            if fake._stopping:
                self.close_connection = True
                return
            down, err, token = fake._down, fake._error, fake._token
        if down == "503":
            return self._status(503, "ServiceUnavailable", "the fake is down")
        if down == "refuse":
            self.close_connection = True
            return
        if err is not None:
            return self._status(err, {401: "Unauthorized", 403: "Forbidden",
                                      429: "TooManyRequests", 500: "InternalError",
                                      503: "ServiceUnavailable",
                                      504: "Timeout"}.get(err, "InternalError"),
                                "error set by the test")
        if token is not None and r["auth"] != "Bearer " + token:
            return self._status(401, "Unauthorized", "Unauthorized")
        path = r["path"].rstrip("/") or "/"
        q = r["query"]
        if path == "/version":
            return self._send_json(200, {"major": "1", "minor": "30", "gitVersion": "v1.30.0-fake",
                                         "platform": "linux/amd64"})
        if path == "/api":
            return self._send_json(200, _discovery_api())
        if path == "/apis":
            return self._send_json(200, _discovery_apis())
        parts = path.split("/")[1:]
        if parts[0] == "api" and len(parts) == 2 and parts[1] in _GROUPS[""]:
            return self._send_json(200, _discovery_resources("", parts[1]))
        if parts[0] == "apis" and len(parts) == 2 and parts[1] in _GROUPS and parts[1]:
            return self._send_json(200, _discovery_group(parts[1]))
        if (parts[0] == "apis" and len(parts) == 3 and parts[1] in _GROUPS and parts[1]
                and parts[2] in _GROUPS[parts[1]]):
            return self._send_json(200, _discovery_resources(parts[1], parts[2]))
        if path == COLLECTION:
            if q.get("watch") in ("1", "true"):
                return self._watch(q)
            return self._list(q)
        if path.startswith(COLLECTION + "/") and len(parts) == 5:
            name = parts[4]
            with fake._lock:
                obj = copy.deepcopy(fake._objs.get(name))
            if obj is None:
                return self._send_json(404, status_body(
                    404, "NotFound", '%s.%s "%s" not found' % (PLURAL, GROUP, name),
                    {"name": name, "group": GROUP, "kind": PLURAL}))
            if self._wants_table():
                return self._send_json(200, _table([obj], {"resourceVersion":
                                                           obj["metadata"]["resourceVersion"]}),
                                       "application/json;as=Table;v=v1;g=meta.k8s.io")
            return self._send_json(200, obj)
        self._send_json(404, status_body(404, "NotFound",
                                         "the server could not find the requested resource"))

    def _wants_table(self):
        first = (self.headers.get("Accept") or "").split(",")[0]
        return "as=Table" in first and "v=v1;" in first + ";"

    # --- list ---

    @staticmethod
    def _selected(obj, q):
        fs = q.get("fieldSelector", "")
        for term in filter(None, fs.split(",")):
            k, _, v = term.partition("=")
            if k == "metadata.name" and obj["metadata"]["name"] != v.lstrip("="):
                return False
        ls = q.get("labelSelector", "")
        labels = obj["metadata"].get("labels", {})
        for term in filter(None, ls.split(",")):
            if "!=" in term:
                k, v = term.split("!=", 1)
                if labels.get(k) == v:
                    return False
            elif "=" in term:
                k, v = term.split("=", 1)
                if labels.get(k) != v.lstrip("="):
                    return False
            elif labels.get(term) is None:
                return False
        return True

    def _list(self, q):
        fake = self.server.fake
        try:
            limit = int(q.get("limit") or 0)
        except ValueError:
            return self._status(400, "BadRequest", "invalid limit")
        cont = q.get("continue", "")
        rv = q.get("resourceVersion", "")
        with fake._lock:
            if cont:
                if rv:
                    return self._status(400, "BadRequest", "specifying resource version is "
                                        "not allowed when using continue")
                try:
                    tok = json.loads(base64.urlsafe_b64decode(cont.encode()))
                    snap, start = fake._snapshots.get(tok["s"]), int(tok["o"])
                except (ValueError, KeyError, TypeError):
                    return self._status(400, "BadRequest", "continue key is not valid")
                if snap is None:
                    return self._status(410, "Expired", "The provided continue parameter "
                                        "is too old to display a consistent list result. "
                                        "You can start a new list without the continue "
                                        "parameter.")
                sid = tok["s"]
                list_rv, items = snap
            else:
                if rv not in ("", "0"):
                    try:
                        want = int(rv)
                    except ValueError:
                        return self._status(400, "BadRequest", "invalid resourceVersion")
                    if want > fake._rv:
                        return self._status(504, "Timeout", "Too large resource version: "
                                            "%d, current: %d" % (want, fake._rv))
                items = [copy.deepcopy(fake._objs[n]) for n in sorted(fake._objs)
                         if self._selected(fake._objs[n], q)]
                list_rv, start, sid = str(fake._rv), 0, None
            end = len(items) if limit <= 0 else min(len(items), start + limit)
            page = items[start:end]
            md = {"resourceVersion": list_rv}
            if end < len(items):
                if sid is None:
                    sid = fake._snap_next
                    fake._snap_next += 1
                    fake._snapshots[sid] = (list_rv, items)
                md["continue"] = base64.urlsafe_b64encode(
                    json.dumps({"s": sid, "o": end}).encode()).decode()
                md["remainingItemCount"] = len(items) - end
            elif sid is not None:
                fake._snapshots.pop(sid, None)
        if self._wants_table():
            return self._send_json(200, _table(page, md),
                                   "application/json;as=Table;v=v1;g=meta.k8s.io")
        self._send_json(200, {"apiVersion": GV, "kind": KIND + "List", "metadata": md,
                              "items": page})

    # --- watch ---

    def _chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _watch(self, q):
        fake = self.server.fake
        rv = q.get("resourceVersion", "")
        bookmarks = q.get("allowWatchBookmarks") in ("1", "true")
        try:
            timeout = int(q.get("timeoutSeconds") or 0)
        except ValueError:
            return self._status(400, "BadRequest", "invalid timeoutSeconds")
        first = []
        gone = None
        with fake._lock:
            if rv in ("", "0"):
                first = [json.dumps({"type": "ADDED", "object": fake._objs[n]}).encode()
                         for n in sorted(fake._objs) if self._selected(fake._objs[n], q)]
            else:
                try:
                    want = int(rv)
                except ValueError:
                    return self._status(400, "BadRequest", "invalid resourceVersion")
                if want < fake._compacted:
                    gone = status_body(410, "Expired", "too old resource version: %d (%d)"
                                       % (want, fake._compacted))
                else:
                    first = [json.dumps({"type": t, "object": o}).encode()
                             for (erv, t, o) in fake._log
                             if erv > want and self._selected(o, q)]
            cursor = len(fake._log)
            compact_mark = fake._compacted
            mode = fake._gone_mode
            w = _Watch(bookmarks)
            if gone is None or mode == "event":
                fake._watches.add(w)
                fake._lock.notify_all()
        if gone is not None and mode == "status":
            return self._send_json(410, gone)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if fake.watch_max_seconds and (timeout <= 0 or timeout > fake.watch_max_seconds):
            timeout = fake.watch_max_seconds
        deadline = time.monotonic() + timeout if timeout > 0 else None
        next_bm = None
        if bookmarks and fake.bookmark_interval:
            next_bm = time.monotonic() + fake.bookmark_interval
        try:
            if gone is not None:
                self._chunk(json.dumps({"type": "ERROR", "object": gone}).encode() + b"\n")
                return self._end(w, clean=True)
            for line in first:
                self._chunk(line + b"\n")
            while True:
                end_now = False
                with fake._lock:
                    while True:
                        now = time.monotonic()
                        if w.cut:
                            break
                        if not fake._hang:
                            if fake._compacted != compact_mark:
                                cursor, compact_mark = 0, fake._compacted
                            if w.extra or cursor < len(fake._log) or w.want_bookmark:
                                break
                            if next_bm is not None and now >= next_bm:
                                w.want_bookmark = True
                                break
                            if deadline is not None and now >= deadline:
                                break
                        waits = [0.5]
                        if deadline is not None:
                            waits.append(deadline - now)
                        if next_bm is not None:
                            waits.append(next_bm - now)
                        fake._lock.wait(max(0.01, min(waits)))
                    cut = w.cut
                    if cut:
                        pending = None
                        if cut == "mid_line":
                            if w.extra:
                                pending = w.extra[0]
                            elif cursor < len(fake._log):
                                _, t, o = fake._log[cursor]
                                if self._selected(o, q):
                                    pending = json.dumps({"type": t, "object": o}).encode()
                            if pending is None:
                                pending = self._bookmark_line(fake)
                        lines = []
                    elif fake._hang:
                        lines = []
                    else:
                        lines = list(w.extra)
                        w.extra = []
                        end_now = w.end_after_extra
                        for (_, t, o) in fake._log[cursor:]:
                            if self._selected(o, q):
                                lines.append(json.dumps({"type": t, "object": o}).encode())
                        cursor = len(fake._log)
                        if w.want_bookmark:
                            w.want_bookmark = False
                            lines.append(self._bookmark_line(fake))
                            if fake.bookmark_interval:
                                next_bm = time.monotonic() + fake.bookmark_interval
                        if not lines and deadline is not None and time.monotonic() >= deadline:
                            end_now = True
                if cut == "end":
                    return self._end(w, clean=True)
                if cut:
                    if pending is not None:
                        self._chunk(pending[:max(1, len(pending) // 2)])
                    return self._end(w, clean=False)
                for line in lines:
                    self._chunk(line + b"\n")
                if lines and w.end_after_extra and not w.extra:
                    return self._end(w, clean=True)
                if not lines and end_now:
                    return self._end(w, clean=True)
        except (OSError, ssl.SSLError):
            self.close_connection = True
            with fake._lock:
                fake._watches.discard(w)
                fake._lock.notify_all()

    @staticmethod
    def _bookmark_line(fake):
        return json.dumps({"type": "BOOKMARK", "object": {
            "kind": KIND, "apiVersion": GV,
            "metadata": {"resourceVersion": str(fake._rv)}}}).encode()

    def _end(self, w, clean):
        fake = self.server.fake
        with fake._lock:
            fake._watches.discard(w)
            fake._lock.notify_all()
        if clean:
            try:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except OSError:
                self.close_connection = True
        else:
            self.close_connection = True
            try:
                self.wfile.flush()
                if w.reset:
                    # SO_LINGER 0: close() sends a RST
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               struct.pack("ii", 1, 0))
                    self.connection.close()
                else:
                    self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def find_kubectl():
    return os.environ.get("KUBECTL") or shutil.which("kubectl")


class KubectlProxy:
    """`kubectl proxy` on a free loopback port, in front of a FakeKube."""

    def __init__(self, kube, token=None, kubectl=None):
        self.kube = kube
        self.token = token if token is not None else kube._token
        self.kubectl = kubectl or find_kubectl()
        self.proc = None
        self.url = None
        self._dir = None

    def start(self, timeout=30):
        if not self.kubectl:
            raise RuntimeError("no kubectl (set $KUBECTL)")
        self._dir = tempfile.TemporaryDirectory(prefix="kube_fake_proxy.")
        cluster = {"server": self.kube.url}
        if self.kube.ca_file:
            cluster["certificate-authority"] = self.kube.ca_file
        cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "fake",
               "clusters": [{"name": "fake", "cluster": cluster}],
               "users": [{"name": "u", "user": {"token": self.token} if self.token else {}}],
               "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "u"}}]}
        conf = os.path.join(self._dir.name, "config")
        with open(conf, "w") as f:
            json.dump(cfg, f)
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
        env.update(HOME=self._dir.name, KUBECONFIG=conf)
        # --port=0: kubectl picks a port and prints "Starting to serve on 127.0.0.1:P"
        self.proc = subprocess.Popen([self.kubectl, "proxy", "--address=127.0.0.1", "--port=0"],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        seen, ready = [], threading.Event()

        def drain(f):
            # reads everything (so that kubectl never blocks on a full pipe)
            for line in f:
                seen.append(line)
                if "Starting to serve on" in line:
                    self.url = "http://" + line.rsplit(" ", 1)[1].strip()
                    ready.set()
            ready.set()
        threading.Thread(target=drain, args=(self.proc.stdout,), daemon=True).start()
        ready.wait(timeout)
        if self.url is None:
            self.stop()
            raise RuntimeError("kubectl proxy did not start: %r" % "".join(seen))
        return self.url

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


def _load_dir(kube, d):
    for fn in sorted(os.listdir(d)):
        if not fn.endswith(".json"):
            continue
        with open(os.path.join(d, fn)) as f:
            p = json.load(f)
        name = p.get("name") or p.get("metadata", {}).get("name") or fn[:-5]
        kube.create(name, p.get("spec", {}), p.get("status"))


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="fake Kubernetes API serving ClusterPersonas")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token")
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--certdir")
    ap.add_argument("--personas-dir")
    ap.add_argument("--objects", type=int, default=0, help="create N generated objects")
    ap.add_argument("--bookmark-interval", type=float)
    a = ap.parse_args(argv)
    kube = FakeKube(token=a.token, tls=a.tls, certdir=a.certdir, port=a.port,
                    bookmark_interval=a.bookmark_interval)
    url = kube.start()
    if a.personas_dir:
        _load_dir(kube, a.personas_dir)
    for i in range(a.objects):
        kube.create("gen-%05d" % i, {"name": "gen-%05d" % i, "environment": "sandbox"},
                    {"phase": "Ready"})
    print(url, flush=True)
    if kube.ca_file:
        print("ca: " + kube.ca_file, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        kube.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
