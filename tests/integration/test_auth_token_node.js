#!/usr/bin/env node
// Integration: --auth-token-file with Node's `ws` (Debian node-ws).  No token,
// a wrong one by header and by query: the handshake gets 401 with
// WWW-Authenticate: Bearer realm="personad" (ws's 'unexpected-response', no
// upgrade); the right one by header (the `headers` option) and by query
// (access_token, percent-encoded) opens, and events arrive.
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
const TOKEN = 'n0de-Tok+en/==';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

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

function writePersona(dir, name) {
  const tmp = path.join(dir, '.tmp-' + name);
  fs.writeFileSync(tmp, JSON.stringify({
    apiVersion: 'dorgu.io/v1', kind: 'ClusterPersona', metadata: { name },
    spec: { name }, status: { phase: 'Ready' },
  }));
  fs.renameSync(tmp, path.join(dir, name + '.json'));
}

// Resolves with {status, challenge} for a refused handshake, or the open socket.
function attempt(url, opts) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, opts || {});
    const timer = setTimeout(() => reject(new Error('no answer for ' + url)), 5000);
    ws.on('unexpected-response', (req, res) => {
      clearTimeout(timer);
      res.resume();
      resolve({ status: res.statusCode, challenge: res.headers['www-authenticate'] });
      req.destroy();
    });
    ws.on('open', () => { clearTimeout(timer); resolve(ws); });
    ws.on('error', () => {}); // after unexpected-response: the request is destroyed
  });
}

function nextMessage(ws) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no message')), 5000);
    ws.once('message', (data) => { clearTimeout(timer); resolve(String(data)); });
  });
}

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'personad-auth-node-'));
  const dir = path.join(tmp, 'personas');
  fs.mkdirSync(dir);
  const tokens = path.join(tmp, 'tokens');
  fs.writeFileSync(tokens, '# node test\n' + TOKEN + '\n');
  const port = await freePort();
  const log = fs.openSync(path.join(tmp, 'stderr.log'), 'a');
  const d = spawn(PERSONAD, ['-l', '127.0.0.1:' + port, '-d', dir, '-w', '2',
    '--auth-token-file=' + tokens], { stdio: ['ignore', 'ignore', log] });
  let failed = false;
  try {
    const t0 = Date.now();
    while ((await healthz(port)) !== 200) {
      if (Date.now() - t0 > 10000) throw new Error('personad not ready');
      await sleep(50);
    }
    const base = 'ws://127.0.0.1:' + port + '/ws';
    const refused = [
      [base, undefined],
      [base, { headers: { Authorization: 'Bearer wrong' } }],
      [base + '?access_token=wrong', undefined],
      [base + '?access_token=' + TOKEN, undefined], // raw '+' is a space: not the token
    ];
    for (const [url, opts] of refused) {
      const r = await attempt(url, opts);
      if (r instanceof WebSocket) {
        r.terminate();
        throw new Error('upgraded without a valid token: ' + url + ' ' + JSON.stringify(opts));
      }
      if (r.status !== 401 || r.challenge !== 'Bearer realm="personad"')
        throw new Error(url + ': ' + JSON.stringify(r));
    }
    const byHeader = await attempt(base, { headers: { Authorization: 'Bearer ' + TOKEN } });
    const byQuery = await attempt(base + '?access_token=' + encodeURIComponent(TOKEN));
    for (const ws of [byHeader, byQuery])
      if (!(ws instanceof WebSocket)) throw new Error('right token refused: ' + JSON.stringify(ws));
    await sleep(200);
    const msgs = Promise.all([nextMessage(byHeader), nextMessage(byQuery)]);
    writePersona(dir, 'n1');
    for (const m of await msgs) {
      const o = JSON.parse(m);
      if (o.type !== 'cluster.added' || o.data.name !== 'n1') throw new Error('got ' + m);
    }
    byHeader.close();
    byQuery.close();
    console.log('PASS node ws: no/wrong token refused (401), right token by header and query');
  } catch (e) {
    failed = true;
    console.log('FAIL ' + e.stack);
    console.log(fs.readFileSync(path.join(tmp, 'stderr.log'), 'utf8').slice(-2000));
  } finally {
    d.kill('SIGTERM');
    await new Promise((r) => { if (d.exitCode !== null) r(); else d.once('exit', r); });
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  process.exit(failed ? 1 : 0);
}

main();
