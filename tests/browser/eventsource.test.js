/*
 * eventsource.test.js - GET /api/events in a real browser: Chromium's own
 * EventSource receives the events (unnamed, id EPOCH:SEQ, the JSON with its
 * seq), and after personad is restarted (a new run: another epoch) it
 * reconnects by itself after the stream's "retry: 5000", sends its
 * Last-Event-ID, gets the resync of the new run, and then the live stream.
 *
 * Starts $PERSONAD on a free loopback port with an empty personas directory
 * and Debian's /usr/bin/chromium (headless, DevTools protocol over node-ws).
 * Exit 0 pass, 77 skip (no /usr/bin/chromium), 1 fail.  Runs in about 10 s.
 */
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const net = require('net');
const http = require('http');
const { spawn } = require('child_process');

const CHROMIUM = process.env.PERSONAD_TEST_CHROMIUM || '/usr/bin/chromium';
const DEADLINE_MS = 45000;

if (!fs.existsSync(CHROMIUM)) {
    console.log('SKIP: ' + CHROMIUM + ' not found (Debian: apt-get install chromium)');
    process.exit(77);
}
let WebSocket;
try {
    WebSocket = require('ws');
} catch (e) {
    console.log('not ok - require(\'ws\') failed (Debian: node-ws; NODE_PATH=' +
        process.env.NODE_PATH + '): ' + e.message);
    process.exit(1);
}
const PERSONAD = process.env.PERSONAD;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'personad-es-'));
const dir = path.join(tmp, 'personas');
fs.mkdirSync(dir);
const procs = { personad: null, chromium: null };
let daemonLog = '';
let step = 'start';
let passed = 0;

function killGroup(p) {
    try {
        process.kill(-p.pid, 'SIGKILL');
    } catch (e) { /* already gone */ }
}
process.on('exit', () => {
    for (const k of Object.keys(procs))
        if (procs[k])
            killGroup(procs[k]);
    try {
        fs.rmSync(tmp, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    } catch (e) { /* best effort */ }
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'])
    process.on(sig, () => process.exit(1));
setTimeout(() => {
    console.log('not ok - overall deadline of ' + DEADLINE_MS + ' ms passed during: ' + step);
    console.log('# personad stderr:\n' + daemonLog.slice(-3000).replace(/^/gm, '#   '));
    process.exit(1);
}, DEADLINE_MS);

function assert(cond, desc, detail) {
    if (!cond)
        throw new Error(desc + (detail !== undefined ? ': ' + JSON.stringify(detail) : ''));
    passed++;
    console.log('ok ' + passed + ' - ' + desc);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function writePersona(file, obj) {
    const t = path.join(dir, '.tmp-' + file);
    fs.writeFileSync(t, JSON.stringify(obj));
    fs.renameSync(t, path.join(dir, file));
}

function freePort() {
    return new Promise((resolve, reject) => {
        const s = net.createServer();
        s.on('error', reject);
        s.listen(0, '127.0.0.1', () => {
            const p = s.address().port;
            s.close(() => resolve(p));
        });
    });
}

function healthy(port) {
    return new Promise((resolve) => {
        const req = http.get({ host: '127.0.0.1', port, path: '/healthz', timeout: 1000 },
            (res) => {
                res.resume();
                resolve(res.statusCode === 200);
            });
        req.on('timeout', () => req.destroy());
        req.on('error', () => resolve(false));
    });
}

async function startPersonad(port) {
    const p = spawn(PERSONAD, ['-l', '127.0.0.1:' + port, '-d', dir, '-w', '2'],
        { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    procs.personad = p;
    p.stderr.setEncoding('utf8');
    p.stderr.on('data', (d) => (daemonLog += d));
    const t0 = Date.now();
    while (Date.now() - t0 < 10000) {
        if (p.exitCode !== null || p.signalCode !== null)
            throw new Error('personad exited early');
        if (await healthy(port))
            return;
        await sleep(50);
    }
    throw new Error('personad not healthy after 10 s');
}

async function stopPersonad() {
    const p = procs.personad;
    procs.personad = null;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    if (!(await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]))) {
        killGroup(p);
        throw new Error('personad did not exit within 5 s of SIGTERM');
    }
}

function startChromium() {
    const p = spawn(CHROMIUM, [
        '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        '--remote-debugging-port=0', '--user-data-dir=' + path.join(tmp, 'profile'), 'about:blank',
    ], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    procs.chromium = p;
    return new Promise((resolve, reject) => {
        let err = '';
        const timer = setTimeout(() => reject(new Error('no DevTools URL in 20 s')), 20000);
        p.stderr.setEncoding('utf8');
        p.stderr.on('data', (d) => {
            err += d;
            const m = /DevTools listening on (ws:\/\/\S+)/.exec(err);
            if (m) {
                clearTimeout(timer);
                resolve(m[1]);
            }
        });
        p.on('exit', (code) => reject(new Error('chromium exited (' + code + ')')));
    });
}

/* The smallest DevTools client: commands on one flat session. */
async function devtools(url) {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    await new Promise((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
    });
    let next = 1;
    const pending = new Map();
    ws.on('message', (data) => {
        const msg = JSON.parse(data.toString());
        const p = msg.id !== undefined && pending.get(msg.id);
        if (!p)
            return;
        pending.delete(msg.id);
        if (msg.error)
            p.reject(new Error(msg.error.message));
        else
            p.resolve(msg.result);
    });
    const send = (method, params, sessionId) => new Promise((resolve, reject) => {
        const id = next++;
        pending.set(id, { resolve, reject });
        ws.send(JSON.stringify({ id, method, params: params || {}, sessionId }));
    });
    const { targetId } = await send('Target.createTarget', { url: 'about:blank' });
    const { sessionId } = await send('Target.attachToTarget', { targetId, flatten: true });
    const page = {
        send: (m, p) => send(m, p, sessionId),
        async eval(expr) {
            const r = await page.send('Runtime.evaluate',
                { expression: expr, returnByValue: true, awaitPromise: true });
            if (r.exceptionDetails)
                throw new Error('page error: ' + r.exceptionDetails.text);
            return r.result.value;
        },
        async waitFor(desc, expr, ms) {
            const t0 = Date.now();
            for (;;) {
                let v = null;
                try {
                    v = await page.eval(expr);
                } catch (e) { /* navigating */ }
                if (v)
                    return Date.now() - t0;
                if (Date.now() - t0 > ms)
                    throw new Error('timed out after ' + ms + ' ms waiting for ' + desc +
                        '; messages: ' + JSON.stringify(await page.eval('window.__m')));
                await sleep(20);
            }
        },
    };
    return page;
}

const EPOCH_ID = /^([A-Za-z0-9_-]{1,32}):(\d+)$/;
const J = JSON.stringify;

async function main() {
    const port = await freePort();
    step = 'starting personad';
    await startPersonad(port);
    step = 'starting chromium';
    const page = await devtools(await startChromium());
    await page.send('Runtime.enable');
    /* A page of the same origin, so EventSource('/api/events') needs no CORS. */
    await page.send('Page.navigate', { url: 'http://127.0.0.1:' + port + '/healthz' });
    await page.waitFor('the page', `location.pathname === '/healthz' &&
        document.readyState === 'complete'`, 10000);

    step = 'opening the EventSource';
    await page.eval(`window.__m = []; window.__opens = 0;
        window.__es = new EventSource('/api/events');
        __es.onopen = () => __opens++;
        __es.onmessage = (e) => __m.push({ id: e.lastEventId, data: e.data, type: e.type });
        true`);
    await page.waitFor('the stream open', '__es.readyState === 1', 5000);
    assert(true, 'EventSource opens /api/events');

    step = 'the first event';
    writePersona('a.json', { name: 'es-alpha', spec: {}, status: {} });
    await page.waitFor('the first event', '__m.length >= 1', 5000);
    const first = (await page.eval('__m'))[0];
    const m1 = EPOCH_ID.exec(first.id);
    assert(m1 && m1[2] === '1', 'the event\'s lastEventId is EPOCH:1', first);
    assert(first.type === 'message', 'an unnamed event (onmessage)', first);
    assert(first.data === '{"type":"cluster.added","data":{"name":"es-alpha"},"seq":1}',
        'its data is the WebSocket message with its seq', first);
    const epoch1 = m1[1];

    step = 'restarting personad';
    await stopPersonad();
    await page.waitFor('the browser noticing the end', '__es.readyState === 0', 5000);
    await startPersonad(port);
    const t0 = Date.now();
    step = 'waiting for the reconnect (retry: 5000)';
    await page.waitFor('the resync after the reconnect', '__m.length >= 2', 15000);
    const waited = Date.now() - t0;
    const resync = (await page.eval('__m'))[1];
    const r = JSON.parse(resync.data);
    assert(r.type === 'resync' && r.data.epoch !== epoch1 && EPOCH_ID.test(r.data.epoch + ':0'),
        'the reconnect (Last-Event-ID of the old run) gets a resync of the new run', resync);
    assert(resync.id === r.data.epoch + ':' + r.data.seq, 'the resync\'s id is the new position',
        resync);
    assert(await page.eval('__opens') === 2, 'the EventSource reopened once by itself',
        await page.eval('__opens'));
    console.log('# reconnected and resynced ' + waited + ' ms after the restart');

    step = 'live after the resync';
    writePersona('b.json', { name: 'es-beta', spec: {}, status: {} });
    await page.waitFor('the event after the resync', '__m.length >= 3', 5000);
    const live = (await page.eval('__m'))[2];
    const seq = r.data.seq + 1;
    assert(live.id === r.data.epoch + ':' + seq &&
        live.data === J({ type: 'cluster.added', data: { name: 'es-beta' }, seq }),
        'then the live stream from the resync\'s seq + 1', live);
    await page.eval('__es.close(); true');
    console.log('1..' + passed);
}

main().then(() => process.exit(0), (e) => {
    console.log('not ok - ' + step + ': ' + e.message);
    console.log('# personad stderr:\n' + daemonLog.slice(-3000).replace(/^/gm, '#   '));
    process.exit(1);
});
