#!/usr/bin/env node
// Integration: Node's `ws` (Debian node-ws) as the client library.
// Several clients get byte-exact events in order; a client close is
// answered (close event with code 1000, quickly); on SIGTERM the remaining
// clients get 1001 and the daemon exits 0.  List+watch (issue 11): a client
// that lists, misses events while away and opens /ws?since=SEQ&epoch=E gets
// exactly the missed ones (with "seq"), then the live stream; another epoch
// gets a resync first.
'use strict';

const { spawn } = require('child_process');
const fs = require('fs');
const http = require('http');
const net = require('net');
const os = require('os');
const path = require('path');

let WebSocket;
try {
  WebSocket = require('ws');
} catch (e) {
  console.log('SKIP: node ws module not found (NODE_PATH=' + process.env.NODE_PATH + ')');
  process.exit(77);
}

const PERSONAD = process.env.PERSONAD ||
  path.join(process.env.TOP_BUILDDIR || '.', 'src', 'personad');
const N_CLIENTS = 6;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function healthz(port) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/healthz', timeout: 1000 }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', () => resolve(null));
    req.on('timeout', () => { req.destroy(); resolve(null); });
  });
}

function getJSON(port, p) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, timeout: 3000 }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => {
        try { resolve({ status: res.statusCode, json: JSON.parse(body) }); } catch (e) { reject(e); }
      });
    });
    req.on('error', reject);
    req.on('timeout', () => { req.destroy(); reject(new Error('GET ' + p + ' timed out')); });
  });
}

function writePersona(dir, file, obj) {
  const tmp = path.join(dir, '.tmp-' + file);
  fs.writeFileSync(tmp, JSON.stringify(obj));
  fs.renameSync(tmp, path.join(dir, file));
}

function ev(type, name) {
  return JSON.stringify({ type: 'cluster.' + type, data: { name } });
}

function assert(cond, msg) {
  if (!cond) throw new Error('assertion failed: ' + msg);
}

// A client that queues messages and lets the test await them.
function client(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const c = { ws, msgs: [], waiters: [], closed: null };
    ws.on('message', (data, isBinary) => {
      assert(!isBinary, 'server sent a binary frame');
      c.msgs.push(data.toString('utf8'));
      while (c.waiters.length) c.waiters.shift()();
    });
    ws.on('close', (code, reason) => {
      c.closed = { code, reason: reason.toString(), at: Date.now() };
      while (c.waiters.length) c.waiters.shift()();
    });
    ws.on('open', () => resolve(c));
    ws.on('error', (e) => { if (ws.readyState !== WebSocket.OPEN) reject(e); });
  });
}

async function nextMsg(c, ms = 3000) {
  const end = Date.now() + ms;
  while (!c.msgs.length) {
    if (c.closed) throw new Error('closed (' + c.closed.code + ') while waiting for a message');
    const left = end - Date.now();
    if (left <= 0) throw new Error('no message within ' + ms + ' ms');
    await Promise.race([new Promise((r) => c.waiters.push(r)), sleep(left)]);
  }
  return c.msgs.shift();
}

async function waitClosed(c, ms = 3000) {
  const end = Date.now() + ms;
  while (!c.closed) {
    const left = end - Date.now();
    if (left <= 0) throw new Error('not closed within ' + ms + ' ms');
    await Promise.race([new Promise((r) => c.waiters.push(r)), sleep(left)]);
  }
  return c.closed;
}

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'personad-node-'));
  const dir = path.join(tmp, 'personas');
  fs.mkdirSync(dir);
  writePersona(dir, 'seed.json', { name: 'seed', spec: { nodes: 1 }, status: { phase: 'Running' } });
  const port = await freePort();
  const errPath = path.join(tmp, 'stderr.log');
  const errFd = fs.openSync(errPath, 'a');
  const child = spawn(PERSONAD, ['-l', '127.0.0.1:' + port, '-d', dir, '-w', '2'],
    { stdio: ['ignore', 'ignore', errFd], detached: true }); // own process group
  let exited = null;
  const exitPromise = new Promise((r) => child.on('exit', (code, sig) => {
    exited = { code, sig };
    r(exited);
  }));
  const clients = [];
  let failed = false;
  try {
    let ready = false;
    for (const end = Date.now() + 10000; Date.now() < end && !exited;) {
      const h = await healthz(port);
      if (h && h.status === 200) {
        assert(JSON.parse(h.body).status === 'ok', 'healthz body ' + h.body);
        ready = true;
        break;
      }
      await sleep(50);
    }
    assert(ready, 'personad not ready; exited=' + JSON.stringify(exited));

    const url = 'ws://127.0.0.1:' + port + '/ws';
    for (let i = 0; i < N_CLIENTS; i++) clients.push(await client(url));

    const k8s = (name, nodes) => ({
      apiVersion: 'platform.example.com/v1alpha1', kind: 'ClusterPersona',
      metadata: { name }, spec: { nodes }, status: { phase: 'Running' },
    });
    writePersona(dir, 'n1.json', k8s('node-one', 1));
    let want = [ev('added', 'node-one')];
    for (const c of clients) assert(await nextMsg(c) === want[0], 'added: ' + c.msgs);
    writePersona(dir, 'n1.json', k8s('node-one', 2));
    writePersona(dir, 'n2.json', k8s('with "quote"', 1));
    fs.unlinkSync(path.join(dir, 'seed.json'));
    want = [ev('updated', 'node-one'), ev('added', 'with "quote"'), ev('deleted', 'seed')];
    assert(want[1] === '{"type":"cluster.added","data":{"name":"with \\"quote\\""}}', want[1]);
    // each client gets exactly these three, and all clients in one order
    let order = null;
    for (const [i, c] of clients.entries()) {
      const got = [];
      for (let k = 0; k < want.length; k++) got.push(await nextMsg(c));
      assert(JSON.stringify([...got].sort()) === JSON.stringify([...want].sort()),
        'client ' + i + ' got ' + JSON.stringify(got));
      if (order === null) order = JSON.stringify(got);
      assert(JSON.stringify(got) === order, 'client ' + i + ' order ' + JSON.stringify(got));
    }

    // clean client close: the server answers, the close event carries 1000
    const t0 = Date.now();
    clients[0].ws.close(1000, 'bye');
    const cl = await waitClosed(clients[0], 3000);
    assert(cl.code === 1000, 'client close answered with ' + cl.code);
    assert(cl.at - t0 < 2000, 'close handshake took ' + (cl.at - t0) + ' ms');
    assert(!clients[0].ws._socket || clients[0].ws._socket.destroyed,
      'socket not shut after close');

    // the others still receive
    writePersona(dir, 'n3.json', k8s('after-close', 1));
    for (const c of clients.slice(1)) {
      assert(await nextMsg(c) === ev('added', 'after-close'), 'after close');
    }

    // list+watch: the list's position, events while no client is connected,
    // then /ws?since=&epoch= replays exactly those (with "seq"), then live.
    const list = await getJSON(port, '/api/clusters');
    assert(list.status === 200, 'list status ' + list.status);
    const { seq, epoch } = list.json;
    assert(Number.isInteger(seq) && /^[A-Za-z0-9_-]{1,32}$/.test(epoch),
      'list position ' + JSON.stringify({ seq, epoch }));
    // Each change is published before the next is written: two writes in quick
    // succession may be read by the master as one (it reads the file's state, not
    // each write), and this test wants two events.
    const published = async (n) => {
      for (let end = Date.now() + 5000; (await getJSON(port, '/api/clusters')).json.seq < n;) {
        assert(Date.now() < end, 'change ' + n + ' was not published');
        await sleep(20);
      }
    };
    writePersona(dir, 'n4.json', k8s('missed-one', 1));
    await published(seq + 1);
    writePersona(dir, 'n4.json', k8s('missed-one', 2));
    await published(seq + 2);
    const withSeq = (e, n) => e.slice(0, -1) + ',"seq":' + n + '}';
    const resumed = await client(url + '?since=' + seq + '&epoch=' + epoch);
    clients.push(resumed);
    assert(await nextMsg(resumed) === withSeq(ev('added', 'missed-one'), seq + 1), 'replay 1');
    assert(await nextMsg(resumed) === withSeq(ev('updated', 'missed-one'), seq + 2), 'replay 2');
    writePersona(dir, 'n5.json', k8s('live-after', 1));
    assert(await nextMsg(resumed) === withSeq(ev('added', 'live-after'), seq + 3), 'live join');
    for (const c of clients.slice(1, -1)) {
      for (const want1 of [ev('added', 'missed-one'), ev('updated', 'missed-one'),
        ev('added', 'live-after')]) {
        assert(await nextMsg(c) === want1, 'plain /ws client got a seq or missed one');
      }
    }
    // a position of another run: resync first (the current head and epoch)
    const other = await client(url + '?since=' + seq + '&epoch=' + epoch + 'x');
    clients.push(other);
    assert(await nextMsg(other) ===
      JSON.stringify({ type: 'resync', data: { seq: seq + 3, epoch } }), 'resync');

    // SIGTERM: every remaining client gets 1001, the daemon exits 0 within 2 s
    const t1 = Date.now();
    process.kill(child.pid, 'SIGTERM');
    for (const c of clients.slice(1)) {
      const x = await waitClosed(c, 3000);
      assert(x.code === 1001, 'SIGTERM close code ' + x.code);
    }
    const r = await Promise.race([exitPromise, sleep(2500).then(() => null)]);
    assert(r !== null, 'daemon still running 2.5 s after SIGTERM');
    assert(r.code === 0, 'exit status ' + JSON.stringify(r));
    console.log('node ws: ' + N_CLIENTS + ' clients and list+watch OK; SIGTERM exit after ' +
      (Date.now() - t1) + ' ms');
  } catch (e) {
    failed = true;
    console.log('FAIL: ' + (e && e.stack || e));
    try { console.log('--- personad stderr ---\n' + fs.readFileSync(errPath, 'utf8').slice(-3000)); } catch (_) { /* none */ }
  } finally {
    for (const c of clients) { try { c.ws.terminate(); } catch (_) { /* gone */ } }
    if (!exited) {
      try { process.kill(-child.pid, 'SIGTERM'); } catch (_) { /* gone */ }
      await Promise.race([exitPromise, sleep(5000)]);
    }
    try { process.kill(-child.pid, 'SIGKILL'); } catch (_) { /* group gone */ }
    fs.closeSync(errFd);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  process.exit(failed ? 1 : 0);
}

main().catch((e) => { console.log('FAIL: ' + e); process.exit(1); });
