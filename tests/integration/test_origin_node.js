#!/usr/bin/env node
// Integration: the Origin policy of /ws (--allowed-origins) with Node's `ws`
// (Debian node-ws) as the client: by default no Origin and the same origin
// open and stream, a foreign Origin gets 403 {"error":"origin not allowed"}
// (ws's 'unexpected-response') and never opens; with "*" the foreign one
// opens; with an exact list the listed one opens and another is refused.
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

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function assert(cond, msg) {
  if (!cond) throw new Error('assertion failed: ' + msg);
}

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

function healthz(port) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/healthz', timeout: 1000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', () => resolve(null));
    req.on('timeout', () => { req.destroy(); resolve(null); });
  });
}

function writePersona(dir, file, obj) {
  const tmp = path.join(dir, '.tmp-' + file);
  fs.writeFileSync(tmp, JSON.stringify(obj));
  fs.renameSync(tmp, path.join(dir, file));
}

// One daemon with flags; returns { port, dir, stop(), log() }.
async function daemon(tmp, name, flags) {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir);
  const port = await freePort();
  const errPath = path.join(tmp, name + '.log');
  const errFd = fs.openSync(errPath, 'a');
  const child = spawn(PERSONAD, ['-l', '127.0.0.1:' + port, '-d', dir, '-w', '1'].concat(flags),
    { stdio: ['ignore', 'ignore', errFd], detached: true }); // own process group
  let exited = null;
  const exitPromise = new Promise((r) => child.on('exit', (code, sig) => {
    exited = { code, sig };
    r(exited);
  }));
  const d = {
    port,
    dir,
    log: () => fs.readFileSync(errPath, 'utf8'),
    async stop() {
      if (!exited) {
        try { process.kill(child.pid, 'SIGTERM'); } catch (_) { /* gone */ }
        await Promise.race([exitPromise, sleep(5000)]);
      }
      try { process.kill(-child.pid, 'SIGKILL'); } catch (_) { /* group gone */ }
      fs.closeSync(errFd);
      return exited;
    },
  };
  const end = Date.now() + 10000;
  while ((await healthz(port)) !== 200) {
    if (exited || Date.now() > end) {
      await d.stop();
      throw new Error(name + ': not ready: ' + d.log().slice(-2000));
    }
    await sleep(50);
  }
  return d;
}

// Open /ws with this Origin (null: none): 'open' plus the event of a persona
// written afterwards, or { status, body } of the refusal.
function attempt(d, origin, persona) {
  return new Promise((resolve, reject) => {
    const opts = origin === null ? {} : { origin };
    const ws = new WebSocket('ws://127.0.0.1:' + d.port + '/ws', opts);
    const timer = setTimeout(() => { ws.terminate(); reject(new Error('no answer in 5 s')); }, 5000);
    ws.on('unexpected-response', (req, res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode, body });
      });
    });
    ws.on('open', () => {
      setTimeout(() => writePersona(d.dir, persona + '.json',
        { name: persona, spec: { nodes: 1 }, status: { phase: 'Running' } }), 100);
    });
    ws.on('message', (data) => {
      clearTimeout(timer);
      ws.close();
      resolve({ status: 101, message: data.toString('utf8') });
    });
    ws.on('error', () => { /* after a refusal: 'unexpected-response' answered */ });
  });
}

async function opens(d, origin, persona) {
  const r = await attempt(d, origin, persona);
  assert(r.status === 101, 'Origin ' + origin + ': ' + JSON.stringify(r));
  assert(r.message === JSON.stringify({ type: 'cluster.added', data: { name: persona } }),
    'Origin ' + origin + ': first message ' + r.message);
}

async function refused(d, origin) {
  const r = await attempt(d, origin, 'never');
  assert(r.status === 403, 'Origin ' + origin + ': ' + JSON.stringify(r));
  assert(r.body === '{"error":"origin not allowed"}', 'Origin ' + origin + ': body ' + r.body);
}

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'personad-node-origin-'));
  const daemons = [];
  let failed = false;
  try {
    const def = await daemon(tmp, 'default', []);
    daemons.push(def);
    await opens(def, null, 'n1');
    await opens(def, 'http://127.0.0.1:' + def.port, 'n2');
    await refused(def, 'http://evil.example');
    await refused(def, 'http://localhost:' + def.port);
    await refused(def, 'null');

    const any = await daemon(tmp, 'any', ['--allowed-origins=*']);
    daemons.push(any);
    await opens(any, 'http://evil.example', 'n3');
    await opens(any, null, 'n4');

    const list = await daemon(tmp, 'list', ['--allowed-origins=https://ui.example,http://10.0.0.5:8080']);
    daemons.push(list);
    await opens(list, 'https://ui.example', 'n5');
    await opens(list, 'http://10.0.0.5:8080', 'n6');
    await opens(list, 'http://127.0.0.1:' + list.port, 'n7');
    await refused(list, 'http://evil.example');
    await refused(list, 'http://ui.example');
    for (const d of daemons) {
      const x = await d.stop();
      assert(x && x.code === 0, 'exit status ' + JSON.stringify(x));
    }
    daemons.length = 0;
    console.log('node ws: Origin policy OK (default, *, exact list)');
  } catch (e) {
    failed = true;
    console.log('FAIL: ' + (e && e.stack || e));
    for (const d of daemons) {
      try { console.log('--- personad stderr ---\n' + d.log().slice(-2000)); } catch (_) { /* none */ }
    }
  } finally {
    for (const d of daemons) await d.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  process.exit(failed ? 1 : 0);
}

main().catch((e) => { console.log('FAIL: ' + e); process.exit(1); });
