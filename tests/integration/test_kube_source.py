#!/usr/bin/python3
"""Integration: --source=kubernetes against the fake API server (kube_fake.py).

The real daemon lists and watches ClusterPersonas from kube_fake.FakeKube over
loopback (http, and https with a test CA), and python3-websockets clients
check the byte-exact events of the seed's /ws protocol.  Every "emits
nothing" check is proven by a probe: a real change whose event must be the
very next message.

Wrapped, not changed: kube_fake's watches honour timeoutSeconds, which the
daemon jitters in [300, 600) s; a test that needs a server-side watch timeout
caps it with short_watches() (the handler's _watch sees timeoutSeconds=1).
"""

import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.environ.get("TOP_SRCDIR", os.path.dirname(__file__) + "/../.."),
                                "tests", "integration"))
from harness import Daemon, children, expect, expect_silence, recv, run, ws_connect  # noqa: E402
import kube_fake  # noqa: E402
import websockets.exceptions  # noqa: E402
from kube_fake import FakeKube  # noqa: E402


def spec(name, nodes=3):
    return {"name": name, "environment": "test", "nodes": nodes}


class KubeDaemon(Daemon):
    """A Daemon with --source=kubernetes pointed at a fake (or a URL)."""

    def __init__(self, kube, token=None, extra=(), **kw):
        self.kube = kube
        flags = ["--source=kubernetes", "--kube-api=" + (kube if isinstance(kube, str) else kube.url)]
        super().__init__(flags=flags + list(extra), **kw)
        if token is not None:
            self.token_path = os.path.join(self.tmp, "token")
            self.set_token(token)
            self.flags.append("--kube-token-file=" + self.token_path)

    def set_token(self, token):
        tmp = self.token_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(token + "\n")
        os.rename(tmp, self.token_path)

    def client_pid(self):
        """The API client child: the master's child without an epoll
        descriptor (every worker runs an epoll loop; libcurl's easy
        interface polls)."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            kids = [p for p in children(self.pid) if not has_epoll(p)]
            if len(kids) == 1:
                return kids[0]
            time.sleep(0.05)
        raise AssertionError("no single API client child: %r" % (children(self.pid),))

    def workers_only(self):
        return [p for p in children(self.pid) if has_epoll(p)]

    def healthz(self):
        st, body, _ = self.http("GET", "/healthz", timeout=2.0)
        return st, body


def has_epoll(pid):
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == "anon_inode:[eventpoll]":
                    return True
            except OSError:
                pass
    except OSError:
        pass
    return False


@contextlib.contextmanager
def fake(**kw):
    k = FakeKube(**kw)
    k.start()
    try:
        yield k
    finally:
        k.stop()


@contextlib.contextmanager
def short_watches(seconds="1"):
    orig = kube_fake._Handler._watch

    def capped(self, q):
        q = dict(q)
        q["timeoutSeconds"] = seconds
        return orig(self, q)

    kube_fake._Handler._watch = capped
    try:
        yield
    finally:
        kube_fake._Handler._watch = orig


def watches(k):
    return [r for r in k.requests if r["query"].get("watch") in ("1", "true")]


def lists(k):
    return [r for r in k.requests if r["path"].endswith("/clusterpersonas")
            and r["query"].get("watch") not in ("1", "true")]


async def watched(k, n_before, timeout=10.0):
    """Wait until the daemon has opened a watch after the n_before-th."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(watches(k)) > n_before and k.watch_count() > 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("no new watch (had %d)" % n_before)


async def probe(k, ws, counter=[0]):
    counter[0] += 1
    name = "probe-%d" % counter[0]
    k.create(name, spec(name))
    await expect(ws, "added", name, timeout=5, what="the probe must be the next message")
    return name


def seeded(k, n=3):
    for i in range(n):
        k.create("c%d" % i, spec("c%d" % i), {"phase": "Ready"})


def names(d):
    return d.cluster_names()


# --- tests ------------------------------------------------------------------


async def test_baseline_silent_and_rest():
    with fake() as k:
        seeded(k)
        with KubeDaemon(k, workers=2) as d:
            assert names(d) == ["c0", "c1", "c2"], names(d)
            st, obj = d.get_json("/api/clusters/c1")
            assert st == 200 and obj == {"name": "c1", "spec": spec("c1"),
                                         "status": {"phase": "Ready"}}, obj
            assert d.healthz()[0] == 200
            ws = await ws_connect(d)
            try:
                await expect_silence(ws, 0.5)
                await probe(k, ws)
            finally:
                await ws.close()
            # libcurl (and the TLS client) is mapped by the API client only.
            maps = lambda pid: open("/proc/%d/maps" % pid).read()  # noqa: E731
            assert "libcurl" in maps(d.client_pid())
            for pid in [d.pid] + d.workers_only():
                assert "libcurl" not in maps(pid), pid
            ls = lists(k)
            assert ls and ls[0]["query"].get("limit") == "500", ls[:1]
            w = watches(k)[0]["query"]
            assert w.get("allowWatchBookmarks") == "true" and w.get("resourceVersion"), w
            assert 300 <= int(w["timeoutSeconds"]) < 600, w


async def test_create_modify_delete_exact():
    with fake() as k:
        seeded(k, 1)
        with KubeDaemon(k) as d:
            ws = await ws_connect(d)
            try:
                k.create("x", spec("x"))
                assert await recv(ws, 5) == '{"type":"cluster.added","data":{"name":"x"}}'
                k.modify("x", spec=spec("x", nodes=9))
                assert await recv(ws, 5) == '{"type":"cluster.updated","data":{"name":"x"}}'
                st, obj = d.get_json("/api/clusters/x")
                assert st == 200 and obj["spec"]["nodes"] == 9, obj
                k.delete("x")
                assert await recv(ws, 5) == '{"type":"cluster.deleted","data":{"name":"x"}}'
                st, _ = d.get_json("/api/clusters/x")
                assert st == 404, st
                await probe(k, ws)
            finally:
                await ws.close()


async def test_back_to_back_changes_each_an_event():
    """Changes the API streams back to back (likely read in one chunk) are
    still one event each: the store diffs at a commit, so the source commits
    after every watch event (an ADDED then DELETED in one commit would be no
    event at all)."""
    with fake() as k:
        seeded(k, 1)
        with KubeDaemon(k) as d:
            ws = await ws_connect(d)
            try:
                for _ in range(3):
                    k.create("y", spec("y"))
                    k.modify("y", spec=spec("y", nodes=9))
                    k.delete("y")
                    for kind in ("added", "updated", "deleted"):
                        assert await recv(ws, 5) == \
                            '{"type":"cluster.%s","data":{"name":"y"}}' % kind, kind
                k.create("z1", spec("z1"))
                k.delete("z1")
                k.create("z2", spec("z2"))
                for kind, name in (("added", "z1"), ("deleted", "z1"), ("added", "z2")):
                    assert await recv(ws, 5) == \
                        '{"type":"cluster.%s","data":{"name":"%s"}}' % (kind, name), (kind, name)
                await probe(k, ws)
            finally:
                await ws.close()


async def test_status_only_and_metadata_only():
    with fake() as k:
        seeded(k, 2)
        with KubeDaemon(k) as d:
            ws = await ws_connect(d)
            try:
                k.modify("c0", status={"phase": "Degraded"})
                await expect(ws, "updated", "c0", timeout=5)
                assert d.get_json("/api/clusters/c0")[1]["status"] == {"phase": "Degraded"}
                k.modify("c1", metadata_only=True)
                k.modify("c1", labels={"team": "x"})
                await probe(k, ws)  # metadata-only MODIFIEDs emitted nothing
            finally:
                await ws.close()


async def test_bookmark_advances_rv_only():
    with fake() as k:
        seeded(k, 1)
        with KubeDaemon(k) as d:
            ws = await ws_connect(d)
            try:
                n = len(watches(k))
                k.modify("c0", metadata_only=True)  # a new RV the daemon does not publish
                k.send_bookmark()
                await probe(k, ws)
                k.cut_watches()
                await watched(k, n)
                rv = watches(k)[-1]["query"]["resourceVersion"]
                await probe(k, ws)
                assert int(rv) >= int(k.objects()["c0"]["metadata"]["resourceVersion"]), rv
            finally:
                await ws.close()


async def test_watch_timeout_and_cut_rewatch():
    with short_watches(), fake() as k:
        seeded(k, 2)
        with KubeDaemon(k) as d:
            ws = await ws_connect(d)
            try:
                n_lists = len(lists(k))
                n = len(watches(k))
                await watched(k, n + 1)  # the server's timeout ended a watch: watched again
                k.create("after-timeout", spec("t"))
                await expect(ws, "added", "after-timeout", timeout=5)
                # A cut in the middle of a line: the pending event's first half, then EOF.
                k.set_hang(True)
                k.modify("c0", status={"phase": "Cut"})
                n = len(watches(k))
                k.cut_watches(mid_line=True)
                k.set_hang(False)
                await expect(ws, "updated", "c0", timeout=5)
                await probe(k, ws)   # nothing lost, nothing repeated
                assert len(lists(k)) == n_lists, "a watch end must not relist"
                assert all(w["query"].get("resourceVersion") for w in watches(k))
            finally:
                await ws.close()


async def test_410_relists_with_exact_diff():
    for mode in ("event", "status"):
        with fake() as k:
            seeded(k, 4)
            with KubeDaemon(k) as d:
                ws = await ws_connect(d)
                try:
                    k.set_watch_gone_mode(mode)
                    k.set_down(True)
                    k.create("new", spec("new"))
                    k.modify("c0", status={"phase": "Changed"})
                    k.modify("c1", metadata_only=True)
                    k.delete("c2")
                    k.compact()
                    n_lists = len(lists(k))
                    k.set_down(False)
                    got = [await recv(ws, 10) for _ in range(3)]
                    assert got == ['{"type":"cluster.deleted","data":{"name":"c2"}}',
                                   '{"type":"cluster.added","data":{"name":"new"}}',
                                   '{"type":"cluster.updated","data":{"name":"c0"}}'], (mode, got)
                    await probe(k, ws)
                    assert len(lists(k)) > n_lists, mode
                    assert names(d) == ["c0", "c1", "c3", "new", "probe-%d" % probe.__defaults__[0][0]]
                    # An ERROR 410 inside a live stream relists too, with no change: silent.
                    n_lists = len(lists(k))
                    k.inject_error_event_410()
                    deadline = time.monotonic() + 10
                    while len(lists(k)) == n_lists and time.monotonic() < deadline:
                        await asyncio.sleep(0.05)
                    assert len(lists(k)) > n_lists, "ERROR 410 did not relist"
                    await probe(k, ws)
                finally:
                    await ws.close()


async def test_continue_expired_restarts_list():
    with fake() as k:
        for i in range(1200):
            k.create("o%04d" % i, spec("o"))
        orig = kube_fake._Handler.do_GET
        fired = []

        def expire_once(self):
            # The first continued page finds its token expired (410).
            if "continue=" in self.path and not fired:
                fired.append(1)
                self.server.fake.expire_continue()
            return orig(self)

        kube_fake._Handler.do_GET = expire_once
        try:
            with KubeDaemon(k, ready=False) as d:
                d.wait_ready(20)
                assert fired and d.wait_log(lambda ln: "continue token expired" in ln, 5)
                assert len(names(d)) == 1200
                firsts = [r for r in lists(k) if not r["query"].get("continue")]
                assert len(firsts) == 2, len(firsts)  # listed again from the start
                st, obj = d.get_json("/api/clusters")
                assert obj["seq"] == 0, obj["seq"]
        finally:
            kube_fake._Handler.do_GET = orig


async def test_api_down_at_start():
    with fake() as k:
        seeded(k, 2)
        k.set_down(True)
        with KubeDaemon(k, ready=False) as d:
            deadline = time.monotonic() + 10
            st = body = None
            while time.monotonic() < deadline:
                try:
                    st, body = d.healthz()
                    break
                except OSError:
                    await asyncio.sleep(0.05)
            assert st == 503 and b"not listed" in body, (st, body)
            await asyncio.sleep(2.5)  # a few attempts, with back-off
            assert d.healthz()[0] == 503
            # Nothing to serve yet: the list and the streams say so (a stream
            # opened now would never get the baseline, which has no events).
            st, body, r = d.http("GET", "/api/clusters")
            assert st == 503 and b"not listed yet" in body and r.getheader("Retry-After") == "1", (
                st, body)
            assert d.http("GET", "/api/events")[0] == 503
            try:
                ws = await ws_connect(d)
                await ws.close()
                raise AssertionError("/ws upgraded before the first list")
            except websockets.exceptions.InvalidStatusCode as e:
                assert e.status_code == 503, e
            assert d.proc.poll() is None
            problems = [ln for ln in d.log_text().splitlines() if "retrying with back-off" in ln]
            assert len(problems) == 1, problems  # one line per change of state
            k.set_down(False)
            d.wait_ready(40)
            assert names(d) == ["c0", "c1"]
            assert d.wait_log(lambda ln: "answers again" in ln, 5)
            ws = await ws_connect(d)
            try:
                k.create("late", spec("late"))
                assert await recv(ws, 5) == '{"type":"cluster.added","data":{"name":"late"}}'
            finally:
                await ws.close()


async def test_api_down_during_operation():
    with fake() as k:
        seeded(k, 3)
        with KubeDaemon(k) as d:
            ws = await ws_connect(d)
            ws2 = await ws_connect(d)
            try:
                k.set_down(True)
                k.create("during", spec("during"))
                k.delete("c1")
                await asyncio.sleep(2.0)
                assert d.healthz()[0] == 200   # the last state is served
                assert names(d) == ["c0", "c1", "c2"]
                await expect_silence(ws, 0.2)
                k.set_down(False)
                for w in (ws, ws2):
                    got = {await recv(w, 40), await recv(w, 5)}
                    assert got == {'{"type":"cluster.deleted","data":{"name":"c1"}}',
                                   '{"type":"cluster.added","data":{"name":"during"}}'}, got
                    await probe(k, w) if w is ws else None
                await expect(ws2, "added", "probe-%d" % probe.__defaults__[0][0])
                assert names(d) == ["c0", "c2", "during", "probe-%d" % probe.__defaults__[0][0]]
            finally:
                await ws.close()
                await ws2.close()


async def test_403_then_500_one_line_per_state():
    with fake() as k:
        seeded(k, 1)
        k.set_error(403)
        with KubeDaemon(k, ready=False) as d:
            line = d.wait_log(lambda ln: "HTTP 403" in ln, 10)
            assert line and "list and watch" in line, line
            k.set_error(500)
            assert d.wait_log(lambda ln: "HTTP 500" in ln, 15)
            k.set_error(None)
            d.wait_ready(40)
            assert names(d) == ["c0"]
            log = d.log_text()
            assert log.count("HTTP 403") == 1 and log.count("HTTP 500") == 1, log
            assert log.count("answers again") == 1, log


async def test_hanging_api_and_sigterm():
    with fake() as k:
        seeded(k, 1)
        with KubeDaemon(k) as d:
            k.set_hang(True)
            k.cut_watches()
            await asyncio.sleep(0.5)
            assert d.healthz()[0] == 200 and names(d) == ["c0"]
            t0 = time.monotonic()
            rc = d.stop()
            assert rc == 0 and time.monotonic() - t0 < 3.0, (rc, time.monotonic() - t0)
            k.set_hang(False)


async def test_wrong_token_then_rotation():
    with fake(token="right") as k:
        seeded(k, 2)
        with KubeDaemon(k, token="wrong", ready=False) as d:
            line = d.wait_log(lambda ln: "HTTP 401" in ln, 10)
            assert line and "token" in line, line
            await asyncio.sleep(3.5)
            assert d.proc.poll() is None
            assert d.healthz()[0] == 503
            n401 = [ln for ln in d.log_text().splitlines() if "HTTP 401" in ln]
            assert len(n401) == 1, n401
            attempts = [r for r in k.requests if r["auth"] == "Bearer wrong"]
            assert 2 <= len(attempts) <= 5, len(attempts)  # backing off, not spinning
            d.set_token("right")
            d.wait_ready(40)
            assert names(d) == ["c0", "c1"]
            # Rotation while running: the file is read again for the next request.
            ws = await ws_connect(d)
            try:
                k.set_token("rotated")
                d.set_token("rotated")
                n = len(watches(k))
                k.cut_watches()
                await watched(k, n)
                await probe(k, ws)
                assert watches(k)[-1]["auth"] == "Bearer rotated"
            finally:
                await ws.close()


async def test_ten_thousand_objects_in_pages():
    with fake() as k:
        for i in range(10000):
            k.create("p%05d" % i, spec("p%05d" % i, nodes=i % 7))
        with KubeDaemon(k, ready=False, workers=1) as d:
            d.wait_ready(60)
            st, obj = d.get_json("/api/clusters")
            assert st == 200 and len(obj["clusters"]) == 10000, len(obj["clusters"])
            assert obj["seq"] == 0, obj["seq"]   # the baseline: no events
            pages = lists(k)
            assert len(pages) == 20, len(pages)
            assert sum(1 for p in pages if p["query"].get("continue")) == 19
            ws = await ws_connect(d)
            try:
                await probe(k, ws)
            finally:
                await ws.close()


async def test_malformed_object_skipped():
    with fake() as k:
        seeded(k, 2)
        k.create("bad", spec("bad"), raw={"spec": 42})
        with KubeDaemon(k) as d:
            assert names(d) == ["c0", "c1"], names(d)
            assert d.wait_log(lambda ln: "bad" in ln and "warn" in ln, 5)
            ws = await ws_connect(d)
            try:
                k.inject_raw_line(b'{"type":"ADDED","object":')
                k.inject_raw_line(b'not json at all')
                k.create("bad2", spec("bad2"), raw={"spec": "text"})
                await probe(k, ws)
                assert "bad2" not in names(d)
                assert d.wait_log(lambda ln: "not JSON" in ln, 5)
            finally:
                await ws.close()


async def test_object_over_max_relists():
    with fake() as k:
        seeded(k, 2)
        with KubeDaemon(k, extra=["--kube-max-object=4096"]) as d:
            ws = await ws_connect(d)
            try:
                n_lists = len(lists(k))
                k.create("huge", {"name": "huge", "blob": "x" * 6000})
                assert d.wait_log(lambda ln: "longer than --kube-max-object" in ln, 5)
                await probe(k, ws)
                assert len(lists(k)) > n_lists
                assert "huge" not in names(d)
                assert d.wait_log(lambda ln: "huge" in ln and "larger than" in ln, 5)
            finally:
                await ws.close()


async def test_client_sigkill_respawn_no_duplicates():
    with fake() as k:
        seeded(k, 3)
        with KubeDaemon(k, expect_worker_deaths=True) as d:
            ws = await ws_connect(d)
            try:
                pid = d.client_pid()
                n_lists = len(lists(k))
                k.set_hang(True)     # the dead client's replacement lists after the change
                os.kill(pid, signal.SIGKILL)
                assert d.wait_log(lambda ln: "killed by signal 9" in ln, 5)
                k.modify("c0", status={"phase": "AfterKill"})
                k.set_hang(False)
                await expect(ws, "updated", "c0", timeout=10)
                await probe(k, ws)  # the relist emitted nothing else
                assert len(lists(k)) > n_lists
                assert d.client_pid() != pid
                assert d.healthz()[0] == 200
                assert len(d.workers_only()) == 2
            finally:
                await ws.close()


async def test_sighup_relists_silently():
    with fake() as k:
        seeded(k, 3)
        with KubeDaemon(k) as d:
            ws = await ws_connect(d)
            try:
                pid = d.client_pid()
                n_lists = len(lists(k))
                d.send_signal(signal.SIGHUP)
                deadline = time.monotonic() + 10
                while len(lists(k)) == n_lists and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                assert len(lists(k)) > n_lists, "SIGHUP did not list again"
                await probe(k, ws)   # an unchanged list emits nothing
                assert d.client_pid() != pid
                assert d.healthz()[0] == 200
            finally:
                await ws.close()


async def test_https_with_test_ca_and_in_cluster_env():
    with fake(tls=True, token="sa-token") as k:
        seeded(k, 1)
        assert k.url.startswith("https://")
        # --kube-ca-file
        with KubeDaemon(k, token="sa-token", extra=["--kube-ca-file=" + k.ca_file]) as d:
            assert names(d) == ["c0"]
        # Without the CA: a TLS error, logged, 503, no crash.
        with KubeDaemon(k, token="sa-token", ready=False) as d:
            assert d.wait_log(lambda ln: "retrying with back-off" in ln, 10)
            assert d.healthz()[0] == 503 and d.proc.poll() is None
        # In-cluster: the environment and the service account's directory.
        sa = tempfile.mkdtemp(prefix="personad-sa-")
        with open(os.path.join(sa, "token"), "w") as f:
            f.write("sa-token\n")
        with open(k.ca_file) as src, open(os.path.join(sa, "ca.crt"), "w") as dst:
            dst.write(src.read())
        env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(k.port),
               "PERSONAD_KUBE_SA_DIR": sa}
        saved = {n: os.environ.get(n) for n in env}
        os.environ.update(env)
        try:
            d = Daemon(flags=["--source=kubernetes"])
            with d:
                assert names(d) == ["c0"]
                assert k.requests[-1]["auth"] == "Bearer sa-token"
        finally:
            for n, v in saved.items():
                if v is None:
                    os.environ.pop(n, None)
                else:
                    os.environ[n] = v
            import shutil
            shutil.rmtree(sa, ignore_errors=True)


def test_options_and_refusals():
    import subprocess
    exe = Daemon.__init__.__globals__["personad_path"]()
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=10).stdout
    assert "--source=dir|kubernetes" in out and "built in: dir, kubernetes" in out, out
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_SERVICE")}
    r = subprocess.run([exe, "--source=kubernetes", "-l", "127.0.0.1:1"], capture_output=True,
                       text=True, timeout=10, env=env)
    assert r.returncode == 1 and "not in a pod" in r.stderr, (r.returncode, r.stderr)
    r = subprocess.run([exe, "--source=kubernetes", "--kube-api=ftp://x", "-l", "127.0.0.1:1"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 1 and "not an http:// or https:// URL" in r.stderr, r.stderr
    # The personas directory is not needed (and not looked at) with kubernetes.
    with fake() as k:
        d = KubeDaemon(k)
        d.flags += ["-d", "/nonexistent/personas"]
        with d:
            assert names(d) == []


def configured_out():
    """Only a build that says so skips (a daemon without the option fails)."""
    import subprocess
    exe = Daemon.__init__.__globals__["personad_path"]()
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=10).stdout
    return "kubernetes was configured out" in out


if __name__ == "__main__":
    if configured_out():
        print("SKIP: configured with --disable-kubernetes")
        sys.exit(77)
    run([test_baseline_silent_and_rest, test_create_modify_delete_exact,
         test_back_to_back_changes_each_an_event,
         test_status_only_and_metadata_only, test_bookmark_advances_rv_only,
         test_watch_timeout_and_cut_rewatch, test_410_relists_with_exact_diff,
         test_continue_expired_restarts_list, test_api_down_at_start,
         test_api_down_during_operation, test_403_then_500_one_line_per_state,
         test_hanging_api_and_sigterm,
         test_wrong_token_then_rotation, test_ten_thousand_objects_in_pages,
         test_malformed_object_skipped, test_object_over_max_relists,
         test_client_sigkill_respawn_no_duplicates, test_sighup_relists_silently,
         test_https_with_test_ca_and_in_cluster_env, test_options_and_refusals],
        timeout=120.0)
