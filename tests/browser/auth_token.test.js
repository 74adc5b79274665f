/*
 * auth_token.test.js - the dashboard with personad --auth-token-file in a
 * real browser (Debian's /usr/bin/chromium, headless, DevTools protocol over
 * node-ws).  The page's API calls get 401: it shows its token form (no
 * window.prompt, no rows); a wrong token is refused and asked for again
 * ("That token was refused."); the right one loads the list and opens the
 * live stream (/ws?...&access_token=, Authorization: Bearer on fetches), so a
 * new persona file shows without a reload; the token is in sessionStorage,
 * and reloading the page in the same session works without asking (no 401
 * more on the server: /metrics' code="other" count stays).  Then the token is
 * rotated (new file, SIGHUP) and the workers killed: the page's reconnect is
 * refused, it asks again (the old token "refused"), and the new token makes
 * it live again.
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

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'personad-auth-'));
const dir = path.join(tmp, 'personas');
fs.mkdirSync(dir);
const TOKENS = path.join(tmp, 'tokens');
const TOKEN = 'br0wser-Tok+en/==';
fs.writeFileSync(TOKENS, '# the browser test\n' + TOKEN + '\n');
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
    const p = spawn(PERSONAD, ['-l', '127.0.0.1:' + port, '-d', dir, '-w', '2',
        '--auth-token-file=' + TOKENS],
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


function httpGet(port, p, headers) {
    return new Promise((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port, path: p, headers, timeout: 3000 }, (res) => {
            let b = '';
            res.setEncoding('utf8');
            res.on('data', (c) => (b += c));
            res.on('end', () => resolve({ status: res.statusCode, body: b }));
        });
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', reject);
    });
}

/* HTTP responses personad answered with a code of no row of its own (401 here). */
async function otherResponses(port) {
    const r = await httpGet(port, '/metrics', { Authorization: 'Bearer ' + TOKEN });
    const m = /^personad_http_responses_total\{code="other"\} (\d+)$/m.exec(r.body);
    if (r.status !== 200 || !m)
        throw new Error('/metrics: ' + r.status + ' ' + r.body.slice(0, 200));
    return Number(m[1]);
}

/* personad's workers: the children of the master. */
function workerPids(master) {
    const pids = [];
    for (const d of fs.readdirSync('/proc')) {
        if (!/^\d+$/.test(d))
            continue;
        try {
            const stat = fs.readFileSync('/proc/' + d + '/stat', 'utf8');
            const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
            if (ppid === master)
                pids.push(Number(d));
        } catch (e) { /* gone */ }
    }
    return pids;
}

const persona = (name) => ({
    apiVersion: 'dorgu.io/v1', kind: 'ClusterPersona', metadata: { name },
    spec: { name, environment: 'development', description: 'auth test' },
    status: { phase: 'Ready' },
});
const hasRow = (n) => `!!document.querySelector('#clusters tr[data-name=${JSON.stringify(n)}]')`;
const formShown = `!document.getElementById('auth').hidden`;
const live = `document.getElementById('conn').dataset.state === 'live'`;

async function submitToken(page, t) {
    await page.eval(`document.getElementById('auth-token').value = ${JSON.stringify(t)};
        document.getElementById('auth').requestSubmit(); true`);
}

async function main() {
    writePersona('a.json', persona('auth-a'));
    const port = await freePort();
    step = 'starting personad';
    await startPersonad(port);
    let r = await httpGet(port, '/api/clusters');
    assert(r.status === 401, 'personad wants a token for /api/clusters', r);
    step = 'starting chromium';
    const page = await devtools(await startChromium());
    await page.send('Runtime.enable');
    await page.send('Page.enable');
    await page.eval(`window.prompt = () => { window.__prompted = 1; return null; }; true`);
    const origin = 'http://127.0.0.1:' + port;

    step = 'the page asks for a token';
    await page.send('Page.navigate', { url: origin + '/' });
    await page.waitFor('the token form', `document.readyState === 'complete' && ${formShown}`, 10000);
    assert(await page.eval(`document.getElementById('auth-bad').hidden &&
        !${hasRow('auth-a')} && !window.__prompted`),
        'a 401 shows the token form (no rows yet, nothing "refused", no prompt)');
    assert(await page.eval(`document.getElementById('error').hidden`),
        'no error banner for a 401');

    step = 'a wrong token';
    await submitToken(page, 'wrong-token');
    await page.waitFor('the form again, saying the token was refused',
        `${formShown} && !document.getElementById('auth-bad').hidden`, 5000);
    assert(!(await page.eval(hasRow('auth-a'))), 'a wrong token is refused and asked for again');

    step = 'the right token';
    await submitToken(page, TOKEN);
    await page.waitFor('the list and the live stream', `!${formShown} && ${hasRow('auth-a')} && ${live}`,
        5000);
    assert(true, 'the right token loads the list and opens /ws');
    assert(await page.eval(`sessionStorage.getItem('personad-token')`) === TOKEN,
        'the token is kept in sessionStorage');
    writePersona('b.json', persona('auth-b'));
    await page.waitFor('a persona added while live', hasRow('auth-b'), 3000);
    assert(true, 'a new persona file shows without a reload (the WebSocket carries the token)');
    const title = await page.eval(`document.getElementById('conn').title`);
    assert(/\/ws\?since=/.test(title) && !title.includes('access_token') && !title.includes('br0wser'),
        'the page does not show the token (the status tooltip names /ws without it)', title);

    step = 'reloading in the same session';
    const before = await otherResponses(port);
    await page.send('Page.reload', {});
    await sleep(300);
    await page.waitFor('the reloaded page live', `document.readyState === 'complete' &&
        ${hasRow('auth-a')} && ${hasRow('auth-b')} && ${live}`, 10000);
    assert(!(await page.eval(formShown)), 'the reloaded page did not ask for the token');
    const after = await otherResponses(port);
    assert(after === before, 'and got no 401 from personad (code="other" ' + before + ' -> ' +
        after + ')');

    step = 'rotating the token';
    const NEW_TOKEN = 'r0tated-token';
    fs.writeFileSync(TOKENS + '.tmp', NEW_TOKEN + '\n');
    fs.renameSync(TOKENS + '.tmp', TOKENS);
    process.kill(procs.personad.pid, 'SIGHUP');
    const t0 = Date.now();
    for (;;) {
        r = await httpGet(port, '/api/clusters', { Authorization: 'Bearer ' + NEW_TOKEN });
        if (r.status === 200)
            break;
        if (Date.now() - t0 > 5000)
            throw new Error('the new token was not taken after SIGHUP: ' + r.status);
        await sleep(50);
    }
    assert(await page.eval(live), 'a page connected before the rotation stays live');
    for (const pid of workerPids(procs.personad.pid))
        process.kill(pid, 'SIGKILL');
    await page.waitFor('the form again after the reconnect was refused',
        `${formShown} && !document.getElementById('auth-bad').hidden`, 12000);
    assert(true, 'its reconnect with the old token is refused and it asks again');
    await submitToken(page, NEW_TOKEN);
    writePersona('c.json', persona('auth-c'));
    await page.waitFor('live with the new token', `!${formShown} && ${hasRow('auth-c')} && ${live}`,
        8000);
    assert(await page.eval(`sessionStorage.getItem('personad-token')`) === NEW_TOKEN,
        'the new token works and replaces the old one in sessionStorage');
    console.log('1..' + passed);
}

main().then(() => process.exit(0), (e) => {
    console.log('not ok - ' + step + ': ' + e.message);
    console.log('# personad stderr:\n' + daemonLog.slice(-3000).replace(/^/gm, '#   '));
    process.exit(1);
});
