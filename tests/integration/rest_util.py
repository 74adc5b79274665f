"""Helpers for the REST API integration tests (tests/integration/test_rest_*.py).

Builds on harness.py (imported, not changed): realistic personas with every
field of platform-context.md, a raw HTTP/1.1 client that shows exactly what
went over the wire (http.client normalises paths and hides framing), an
asyncio keep-alive client for the load test, and a "still serving" check.
"""

import asyncio
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


# --- personas -------------------------------------------------------------


def node(i, role="worker", cpu="8", memory="32Gi"):
    """One status.nodes entry with every field of platform-context.md."""
    return {
        "name": "ip-10-0-%d-%d.eu-west-1.compute.internal" % (i // 250, i % 250),
        "role": role,
        "ready": i % 7 != 3,
        "capacity": {"cpu": cpu, "memory": memory, "pods": "110", "ephemeralStorage": "100Gi"},
        "allocatable": {"cpu": cpu, "memory": memory, "pods": "110",
                        "ephemeralStorage": "95Gi"},
        "taints": ["node-role.kubernetes.io/control-plane:NoSchedule"] if role != "worker" else [],
        "labels": {"kubernetes.io/hostname": "node-%d" % i,
                   "topology.kubernetes.io/zone": "eu-west-1%s" % "abc"[i % 3],
                   "node.kubernetes.io/instance-type": "m6i.2xlarge"},
        "kubeletVersion": "v1.29.4-eks-036c24b",
        "containerRuntime": "containerd://1.7.11",
    }


def realistic(name, nodes=3, app_count=7, phase="Ready", platform="EKS", shape="k8s",
              environment="production", **status_extra):
    """A ClusterPersona like examples/personas/*.json (Kubernetes or API shape)."""
    spec = {
        "name": name,
        "description": "Cluster %s for the payments team" % name,
        "environment": environment,
        "policies": {"requireResourceLimits": True, "allowPrivileged": False,
                     "maxReplicas": 50},
        "conventions": {"namingPattern": "{team}-{app}",
                        "requiredLabels": ["app.kubernetes.io/name", "team"]},
        "defaults": {"namespace": "default", "replicas": 2},
        "resourceQuotas": {"cpu": "256", "memory": "1Ti"},
    }
    ns = [node(i, "control-plane" if i == 0 else "worker") for i in range(nodes)]
    status = {
        "phase": phase,
        "lastDiscovery": "2026-11-25T08:30:00Z",
        "nodes": ns,
        "resourceSummary": {"totalCPU": str(8 * nodes), "totalMemory": "%dGi" % (32 * nodes),
                            "allocatableCPU": str(8 * nodes - 1),
                            "allocatableMemory": "%dGi" % (30 * nodes),
                            "runningPods": 11 * nodes},
        "addons": [
            {"name": "coredns", "namespace": "kube-system", "healthy": True,
             "version": "v1.11.1"},
            {"name": "aws-load-balancer-controller", "namespace": "kube-system",
             "healthy": phase != "Degraded", "version": "v2.7.1"},
        ],
        "namespaces": {"total": 24, "system": 5, "application": 19},
        "kubernetesVersion": "v1.29.4",
        "platform": platform,
        "applicationCount": app_count,
        "conditions": [{"type": "Ready", "status": "True" if phase == "Ready" else "False",
                        "lastTransitionTime": "2026-11-25T08:30:00Z",
                        "reason": "DiscoverySucceeded", "message": "all nodes ready"}],
    }
    status.update(status_extra)
    if shape == "api":
        return {"name": name, "spec": spec, "status": status}
    return {"apiVersion": "dorgu.io/v1", "kind": "ClusterPersona",
            "metadata": {"name": name, "labels": {"team": "payments"}},
            "spec": spec, "status": status}


def rest_object(persona):
    """What GET /api/clusters/{name} must return for a persona file's object."""
    name = persona.get("metadata", {}).get("name", persona.get("name"))
    return {"name": name, "spec": persona.get("spec", {}), "status": persona.get("status", {})}


def canonical(obj):
    """The daemon's canonical spelling (compact, keys sorted).  Python sorts
    str keys by code point, which equals UTF-8 byte order."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def byte_sorted(names):
    return sorted(names, key=lambda n: n.encode("utf-8"))


# --- raw HTTP/1.1 ----------------------------------------------------------


class Response:
    def __init__(self, status, reason, headers, body, raw_head):
        self.status = status
        self.reason = reason
        self.header_list = headers          # [(name, value)] as sent
        self.headers = {}                   # lower-case name -> last value
        for k, v in headers:
            self.headers[k.lower()] = v
        self.body = body
        self.raw_head = raw_head

    def header(self, name):
        return self.headers.get(name.lower())

    def count(self, name):
        return sum(1 for k, _ in self.header_list if k.lower() == name.lower())

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<%d %s %r %r>" % (self.status, self.reason, self.headers, self.body[:200])


class RawHTTP:
    """One TCP connection; requests are written byte for byte as given."""

    def __init__(self, port, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.local_port = self.sock.getsockname()[1]
        self.buf = b""
        self.port = port

    def send(self, data):
        self.sock.sendall(data.encode("latin-1") if isinstance(data, str) else data)

    def request(self, method, target, headers=None, body=b""):
        """Send one request; target is put on the request line verbatim
        (str targets are encoded as UTF-8, so raw non-ASCII bytes go out)."""
        if isinstance(target, str):
            target = target.encode("utf-8")
        h = {"Host": "127.0.0.1:%d" % self.port}
        h.update(headers or {})
        if body:
            h["Content-Length"] = str(len(body))
        out = method.encode() + b" " + target + b" HTTP/1.1\r\n"
        for k, v in h.items():
            out += ("%s: %s\r\n" % (k, v)).encode("latin-1")
        self.send(out + b"\r\n" + body)

    def _fill(self):
        d = self.sock.recv(1 << 20)
        if not d:
            raise EOFError("connection closed; have %r" % self.buf[:200])
        self.buf += d

    def read_response(self, head_only=False):
        """Read one response.  The body is read by Content-Length unless
        head_only (HEAD and 304 responses carry none)."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        proto, status, reason = (lines[0].split(" ", 2) + [""])[:3]
        assert proto.startswith("HTTP/1."), "bad status line %r" % lines[0]
        hdrs = []
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            hdrs.append((k.strip(), v.strip()))
        r = Response(int(status), reason, hdrs, b"", head)
        if head_only or r.status == 304 or r.status < 200:
            return r
        cl = r.header("content-length")
        assert cl is not None, "response without Content-Length: %r" % head
        n = int(cl)
        while len(self.buf) < n:
            self._fill()
        r.body, self.buf = self.buf[:n], self.buf[n:]
        return r

    def roundtrip(self, method, target, headers=None, body=b""):
        self.request(method, target, headers, body)
        return self.read_response(head_only=(method == "HEAD"))

    def read_rest(self, timeout=1.0):
        """Whatever arrives until EOF or timeout (bytes a response must not have)."""
        self.sock.settimeout(timeout)
        out = self.buf
        self.buf = b""
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    return out, True
                out += d
        except socket.timeout:
            return out, False
        except ConnectionResetError:
            return out, True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def get(port, target, method="GET", headers=None, body=b""):
    """One request on a fresh connection."""
    with RawHTTP(port) as c:
        return c.roundtrip(method, target, headers, body)


def get_ok_json(port, target):
    r = get(port, target)
    assert r.status == 200, "GET %s -> %r" % (target, r)
    return r.json()


def assert_json_error(r, status, what):
    """r is a clean JSON error answer {"error": "..."} with the given status."""
    assert r.status == status, "%s: want %d, got %r" % (what, status, r)
    assert r.header("content-type") == "application/json", "%s: content type %r" % (
        what, r.header("content-type"))
    assert int(r.header("content-length")) == len(r.body), what
    obj = json.loads(r.body)
    assert isinstance(obj, dict) and list(obj) == ["error"] and isinstance(obj["error"], str) \
        and obj["error"], "%s: body %r" % (what, r.body)
    return obj["error"]


# --- asyncio keep-alive client --------------------------------------------


class AsyncHTTP:
    """A keep-alive HTTP/1.1 client for one connection (GET only)."""

    def __init__(self, port):
        self.port = port
        self.reader = self.writer = None
        self.local_port = None

    async def connect(self):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.local_port = self.writer.get_extra_info("sockname")[1]
        return self

    async def get(self, target, timeout=10.0):
        req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (target, self.port)).encode()
        self.writer.write(req)
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            if k:
                hdrs[k.strip().lower()] = v.strip()
        n = int(hdrs.get("content-length", "0"))
        body = await asyncio.wait_for(self.reader.readexactly(n), timeout) if n else b""
        return status, hdrs, body

    def close(self):
        if self.writer is not None:
            self.writer.close()


# --- daemon health --------------------------------------------------------


def serving_state(d):
    """(master alive, worker pids) as a baseline for assert_still_serving."""
    return d.wait_workers(d.workers)


def assert_still_serving(d, workers_before, what=""):
    """The daemon answers /healthz and no worker was replaced (none crashed)."""
    assert d.proc.poll() is None, "%s: master exited with %s" % (what, d.proc.returncode)
    r = get(d.port, "/healthz")
    assert r.status == 200 and r.json() == {"status": "ok"}, "%s: /healthz -> %r" % (what, r)
    now = d.worker_pids()
    assert now == workers_before, "%s: workers changed %r -> %r (a worker died)\n%s" % (
        what, workers_before, now, d.log_text()[-2000:])


def wait_until(pred, timeout=5.0, step=0.02):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            return v
        time.sleep(step)
