/*
 * dashboard.test.js - the dashboard at / in a real headless browser.
 *
 * Starts $PERSONAD on a free loopback port with a temporary personas directory
 * (the examples plus tests/browser/fixtures/), starts Debian's /usr/bin/chromium
 * and drives it over the DevTools protocol with a small client on node-ws.
 * Checks: static responses (Content-Type, ETag, 304), the list, live add / edit /
 * delete without reload (each within 1 s, changed rows highlighted), the detail
 * view (nodes, addons, back button, "deleted" state), resuming after its worker
 * is killed (list+watch: the missed events replayed, only the clusters they name
 * refetched, the header's seq), reconnecting after personad is killed and
 * restarted (a new epoch: resync and a full refetch), and a hostile name and
 * description rendered literally with no dialog.  Screenshots go to
 * $TOP_BUILDDIR/tests/browser/artifacts/.
 *
 * Exit 0 pass, 77 skip (no /usr/bin/chromium), 1 fail.  Runs in about 20 s.
 */
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const net = require('net');
const http = require('http');
const { spawn } = require('child_process');

/* Debian's chromium; PERSONAD_TEST_CHROMIUM only exists to exercise the skip path. */
const CHROMIUM = process.env.PERSONAD_TEST_CHROMIUM || '/usr/bin/chromium';
const DEADLINE_MS = 55000;
const LIVE_MS = 1000; /* a file change must show within this */
const HOSTILE = '<img src=x onerror=alert(1)>';
const HOSTILE_DESC = '<img src=x onerror=alert(2)><script>alert(3)</script> & "quotes"';

if (!fs.existsSync(CHROMIUM)) {
    console.log('SKIP: ' + CHROMIUM + ' not found (Debian: apt-get install chromium)');
    process.exit(77);
}
let WebSocket;
try {
    WebSocket = require('ws');
} catch (e) {
    /* Not a skip: the harness sets NODE_PATH to Debian's node-ws. */
    console.log('not ok - require(\'ws\') failed (Debian: node-ws; NODE_PATH=' +
        process.env.NODE_PATH + '): ' + e.message);
    process.exit(1);
}

const PERSONAD = process.env.PERSONAD;
const TOP_SRCDIR = process.env.TOP_SRCDIR || path.resolve(__dirname, '../..');
const TOP_BUILDDIR = process.env.TOP_BUILDDIR || process.cwd();
const ARTIFACTS = path.join(TOP_BUILDDIR, 'tests', 'browser', 'artifacts');
const FIXTURES = path.join(TOP_SRCDIR, 'tests', 'browser', 'fixtures');
const EXAMPLES = path.join(TOP_SRCDIR, 'examples', 'personas');

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'personad-browser-'));
const dir = path.join(tmp, 'personas');
const procs = { personad: null, chromium: null };
let daemonLog = '';
let step = 'start';
let passed = 0;
let thePage = null; /* for a screenshot on failure */

/* --- clean-up, always --------------------------------------------------- */

/* Both run in their own process group, so this also gets chromium's helpers
 * and personad's workers. */
function killGroup(p) {
    try {
        process.kill(-p.pid, 'SIGKILL');
    } catch (e) { /* already gone */ }
}

function killAll() {
    for (const k of Object.keys(procs)) {
        if (procs[k])
            killGroup(procs[k]);
        procs[k] = null;
    }
    try {
        /* Retries: a killed chromium may still be finishing writes to its profile. */
        fs.rmSync(tmp, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    } catch (e) { /* best effort */ }
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
        console.log('# interrupted by ' + sig);
        process.exit(1);
    });
}
setTimeout(() => {
    console.log('not ok - overall deadline of ' + DEADLINE_MS + ' ms passed during: ' + step);
    dumpDaemonLog();
    process.exit(1);
}, DEADLINE_MS);

function dumpDaemonLog() {
    if (daemonLog)
        console.log('# personad stderr (last 3000 bytes):\n' +
            daemonLog.slice(-3000).replace(/^/gm, '#   '));
}

function ok(desc) {
    passed++;
    console.log('ok ' + passed + ' - ' + desc);
}

function assert(cond, desc, detail) {
    if (!cond)
        throw new Error(desc + (detail !== undefined ? ': ' + JSON.stringify(detail) : ''));
    ok(desc);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* --- personas directory ------------------------------------------------- */

function personaName(obj) {
    return (obj.metadata && obj.metadata.name) || obj.name;
}

/* Atomic: write a dot-file, then rename into place. */
function writePersona(file, obj) {
    const t = path.join(dir, '.tmp-' + file);
    fs.writeFileSync(t, JSON.stringify(obj, null, 2));
    fs.renameSync(t, path.join(dir, file));
}

function persona(name, env, phase, desc, nodes, addons) {
    return {
        apiVersion: 'dorgu.io/v1',
        kind: 'ClusterPersona',
        metadata: { name },
        spec: { name, environment: env, description: desc },
        status: { phase, kubernetesVersion: 'v1.31.0', platform: 'kind', nodes, addons },
    };
}

function node(name, ready) {
    return {
        name, role: 'worker', ready, kubeletVersion: 'v1.31.0',
        containerRuntime: 'containerd://1.7.0', capacity: { cpu: '2', memory: '4Gi', pods: '110' },
    };
}

/* Seed: the fixtures, plus every example whose cluster name does not clash. */
function seed() {
    fs.mkdirSync(dir);
    const fixtures = {};
    const names = new Set();
    for (const f of fs.readdirSync(FIXTURES).filter((f) => f.endsWith('.json')).sort()) {
        const obj = JSON.parse(fs.readFileSync(path.join(FIXTURES, f), 'utf8'));
        fixtures[personaName(obj)] = obj;
        names.add(personaName(obj));
        fs.copyFileSync(path.join(FIXTURES, f), path.join(dir, 'fixture-' + f));
    }
    let examples = [];
    let nexamples = 0;
    try {
        examples = fs.readdirSync(EXAMPLES).filter((f) => f.endsWith('.json') && !f.startsWith('.'));
    } catch (e) { /* none yet */ }
    for (const f of examples.sort()) {
        let obj;
        try {
            obj = JSON.parse(fs.readFileSync(path.join(EXAMPLES, f), 'utf8'));
        } catch (e) {
            continue;
        }
        const n = obj && typeof obj === 'object' ? personaName(obj) : null;
        if (typeof n !== 'string' || names.has(n))
            continue;
        names.add(n);
        nexamples++;
        fs.copyFileSync(path.join(EXAMPLES, f), path.join(dir, 'example-' + f));
    }
    console.log('# seeded ' + Object.keys(fixtures).length + ' fixtures and ' + nexamples +
        ' examples from ' + EXAMPLES);
    return { fixtures, names: [...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)) };
}

/* --- processes ------------------------------------------------------------ */

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

async function httpGetJSON(port, urlPath) {
    const r = await httpGet(port, urlPath);
    if (r.status !== 200)
        throw new Error('HTTP ' + r.status + ' for ' + urlPath);
    return JSON.parse(r.body);
}

function httpGet(port, urlPath, headers) {
    return new Promise((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port, path: urlPath, headers: headers || {},
            timeout: 2000 }, (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (d) => (body += d));
            res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
        });
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', reject);
    });
}

async function startPersonad(port) {
    if (!PERSONAD)
        throw new Error('PERSONAD is not set');
    const p = spawn(PERSONAD, ['-l', '127.0.0.1:' + port, '-d', dir, '-w', '2'],
        { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    procs.personad = p;
    p.stderr.setEncoding('utf8');
    p.stderr.on('data', (d) => (daemonLog += d));
    const t0 = Date.now();
    while (Date.now() - t0 < 10000) {
        if (p.exitCode !== null || p.signalCode !== null)
            throw new Error('personad exited early (' + (p.exitCode ?? p.signalCode) + ')');
        try {
            const r = await httpGet(port, '/healthz');
            if (r.status === 200)
                return p;
        } catch (e) { /* not listening yet */ }
        await sleep(50);
    }
    throw new Error('personad not healthy after 10 s');
}

async function stopPersonad() {
    const p = procs.personad;
    procs.personad = null;
    if (!p || p.exitCode !== null || p.signalCode !== null)
        return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    if (await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]))
        return;
    killGroup(p);
    await exited;
    throw new Error('personad did not exit within 5 s of SIGTERM');
}

function startChromium() {
    const profile = path.join(tmp, 'profile');
    const p = spawn(CHROMIUM, [
        '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        '--remote-debugging-port=0', '--user-data-dir=' + profile, 'about:blank',
    ], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    procs.chromium = p;
    return new Promise((resolve, reject) => {
        let err = '';
        const timer = setTimeout(() => reject(new Error('chromium gave no DevTools URL in 20 s: ' +
            err.slice(-500))), 20000);
        p.stderr.setEncoding('utf8');
        p.stderr.on('data', (d) => {
            err += d;
            const m = /DevTools listening on (ws:\/\/\S+)/.exec(err);
            if (m) {
                clearTimeout(timer);
                resolve(m[1]);
            }
        });
        p.on('exit', (code) => reject(new Error('chromium exited (' + code + '): ' + err.slice(-500))));
    });
}

/* --- a small DevTools protocol client -------------------------------------- */

class CDP {
    constructor(url) {
        this.ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 256 * 1024 * 1024 });
        this.next = 1;
        this.pending = new Map();
        this.listeners = [];
        this.ws.on('message', (data) => this.onMessage(JSON.parse(data.toString())));
        this.ws.on('close', () => {
            for (const { reject } of this.pending.values())
                reject(new Error('DevTools connection closed'));
            this.pending.clear();
        });
    }

    open() {
        return new Promise((resolve, reject) => {
            this.ws.once('open', resolve);
            this.ws.once('error', reject);
        });
    }

    onMessage(msg) {
        if (msg.id !== undefined) {
            const p = this.pending.get(msg.id);
            if (!p)
                return;
            this.pending.delete(msg.id);
            if (msg.error)
                p.reject(new Error(p.method + ': ' + msg.error.message));
            else
                p.resolve(msg.result);
            return;
        }
        for (const l of this.listeners)
            l(msg);
    }

    send(method, params, sessionId) {
        const id = this.next++;
        const msg = { id, method, params: params || {} };
        if (sessionId)
            msg.sessionId = sessionId;
        return new Promise((resolve, reject) => {
            this.pending.set(id, { resolve, reject, method });
            this.ws.send(JSON.stringify(msg));
        });
    }

    close() {
        try {
            this.ws.terminate();
        } catch (e) { /* gone */ }
    }
}

/* One page (tab) with its flat session. */
class Page {
    constructor(cdp, sessionId) {
        this.cdp = cdp;
        this.sid = sessionId;
        this.dialogs = [];
        this.errors = [];
        cdp.listeners.push((m) => {
            if (m.sessionId !== sessionId)
                return;
            if (m.method === 'Page.javascriptDialogOpening') {
                this.dialogs.push(m.params.type + ': ' + m.params.message);
                this.send('Page.handleJavaScriptDialog', { accept: true }).catch(() => {});
            } else if (m.method === 'Runtime.exceptionThrown') {
                const d = m.params.exceptionDetails;
                this.errors.push((d.exception && d.exception.description) || d.text);
            }
        });
    }

    send(method, params) {
        return this.cdp.send(method, params, this.sid);
    }

    async eval(expr) {
        const r = await this.send('Runtime.evaluate',
            { expression: expr, returnByValue: true, awaitPromise: true });
        if (r.exceptionDetails)
            throw new Error('page error in ' + expr.slice(0, 80) + ': ' +
                ((r.exceptionDetails.exception && r.exceptionDetails.exception.description) ||
                 r.exceptionDetails.text));
        return r.result.value;
    }

    /* Poll expr until truthy; returns the elapsed ms. */
    async waitFor(desc, expr, timeoutMs) {
        const t0 = Date.now();
        for (;;) {
            let v = null;
            try {
                v = await this.eval(expr);
            } catch (e) { /* page navigating */ }
            if (v)
                return Date.now() - t0;
            if (Date.now() - t0 > timeoutMs)
                throw new Error('timed out after ' + timeoutMs + ' ms waiting for ' + desc +
                    '; page shows: ' + JSON.stringify(await this.snapshot().catch((e) => e.message)));
            await sleep(20);
        }
    }

    snapshot() {
        return this.eval(`({hash: location.hash,
            conn: document.getElementById('conn').textContent,
            rows: [...document.querySelectorAll('#clusters tbody tr')].map((r) => r.innerText),
            detail: document.getElementById('detail-view').hidden ? null :
                document.getElementById('detail-view').innerText.slice(0, 300),
            error: document.getElementById('error').textContent})`);
    }

    async screenshot(name) {
        const r = await this.send('Page.captureScreenshot', { format: 'png' });
        fs.mkdirSync(ARTIFACTS, { recursive: true });
        fs.writeFileSync(path.join(ARTIFACTS, name), Buffer.from(r.data, 'base64'));
        console.log('# screenshot ' + path.join(ARTIFACTS, name));
    }

    viewport(width, height, mobile) {
        return this.send('Emulation.setDeviceMetricsOverride',
            { width, height, deviceScaleFactor: 1, mobile: !!mobile });
    }

    scheme(dark) {
        return this.send('Emulation.setEmulatedMedia',
            { features: [{ name: 'prefers-color-scheme', value: dark ? 'dark' : 'light' }] });
    }
}

/* --- page queries (kept here so the checks read as sentences) -------------- */

const J = JSON.stringify;
const ROWS = `[...document.querySelectorAll('#clusters tbody tr')]`;
const rowNames = `${ROWS}.map((r) => r.cells[0].textContent)`;
const row = (name) => `${ROWS}.find((r) => r.cells[0].textContent === ${J(name)})`;
const hasRow = (name) => `!!${row(name)}`;
const cellsOf = (name) => `(${row(name)} ? [...${row(name)}.cells].map((c) => c.textContent) : null)`;
const listVisible = `!document.getElementById('list-view').hidden &&
    document.getElementById('detail-view').hidden`;
const detailOf = (name) => `!document.getElementById('detail-view').hidden &&
    !document.getElementById('detail').hidden &&
    document.getElementById('d-name').textContent === ${J(name)}`;
const tableCol = (id, i) =>
    `[...document.querySelectorAll('#${id} tbody tr')].map((r) => r.cells[${i}] && r.cells[${i}].textContent)`;
const connState = `document.getElementById('conn').dataset.state + ' ' +
    document.getElementById('conn').textContent`;

/* Fetches of the page for exactly this path (the resource timing entries). */
const fetchCount = (p) => `performance.getEntriesByType('resource')
    .filter((e) => new URL(e.name).pathname === ${J(p)}).length`;

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

/* --- the test ------------------------------------------------------------- */

async function checkStatic(port) {
    const page = await httpGet(port, '/');
    assert(page.status === 200 && /^text\/html/.test(page.headers['content-type'] || ''),
        'GET / is 200 text/html', [page.status, page.headers['content-type']]);
    const etag = page.headers.etag;
    assert(/^"[^"]+"$/.test(etag || ''), 'GET / has a strong ETag', etag);
    const again = await httpGet(port, '/', { 'If-None-Match': etag });
    assert(again.status === 304, 'If-None-Match with the ETag gives 304', again.status);
    for (const [p, type] of [['/app.js', /javascript/], ['/app.css', /^text\/css/]]) {
        const r = await httpGet(port, p);
        assert(r.status === 200 && type.test(r.headers['content-type'] || '') && r.headers.etag,
            'GET ' + p + ' is 200 with Content-Type and ETag', [r.status, r.headers['content-type']]);
    }
}

async function main() {
    const { fixtures, names } = seed();
    const port = await freePort();
    const base = 'http://127.0.0.1:' + port + '/';

    step = 'starting personad';
    await startPersonad(port);
    await checkStatic(port);

    step = 'starting chromium';
    const cdp = new CDP(await startChromium());
    await cdp.open();
    const { targetId } = await cdp.send('Target.createTarget', { url: 'about:blank' });
    const { sessionId } = await cdp.send('Target.attachToTarget', { targetId, flatten: true });
    const page = new Page(cdp, sessionId);
    thePage = page;
    await page.send('Page.enable');
    await page.send('Runtime.enable');
    await page.viewport(1200, 800);
    await page.scheme(false);

    /* The list. */
    step = 'loading the list';
    await page.send('Page.navigate', { url: base });
    await page.waitFor('every seeded cluster in the list',
        `${J(names)}.every((n) => ${rowNames}.includes(n))`, 10000);
    assert(J(await page.eval(rowNames)) === J(names), 'the list shows the seeded clusters, sorted',
        await page.eval(rowNames));
    const prod = await page.eval(cellsOf('prod-eu'));
    assert(J(prod) === J(['prod-eu', 'production', 'Ready', '2/3', 'v1.29.4',
        'Customer-facing workloads, eu-west-1']), 'a row has name, environment, phase, nodes, version, description', prod);
    const badges = await page.eval(`${J(['prod-eu', 'staging', 'laptop-k3s'])}.map((n) =>
        ${ROWS}.find((r) => r.cells[0].textContent === n).querySelector('.badge').className)`);
    assert(J(badges) === J(['badge phase-ready', 'badge phase-degraded', 'badge phase-discovering']),
        'phase badges are coloured by phase', badges);
    await page.waitFor('the "live" connection state', `${connState}.startsWith('live')`, 5000);
    ok('the page says it is live');
    await page.screenshot('dashboard-list.png');
    await page.scheme(true);
    await page.screenshot('dashboard-list-dark.png');
    await page.scheme(false);

    /* Live changes, no reload. */
    step = 'live add / edit / delete';
    await page.eval(`window.__noReload = 1; window.__flashed = [];
        new MutationObserver((ms) => { for (const m of ms) {
            for (const n of m.type === 'attributes' ? [m.target] : m.addedNodes)
                if (n.nodeType === 1 && n.matches('tr.flash')) window.__flashed.push(n.cells[0].textContent);
        } }).observe(document.querySelector('#clusters tbody'),
            { subtree: true, childList: true, attributes: true, attributeFilter: ['class'] }); 1`);
    let t = Date.now();
    writePersona('live.json', persona('live-test', 'sandbox', 'Discovering', 'added by the browser test',
        [node('n1', true)], []));
    await page.waitFor('the added row', hasRow('live-test'), 3000);
    let ms = Date.now() - t;
    assert(ms <= LIVE_MS, 'an added persona file appears within 1 s (' + ms + ' ms)', ms);
    assert(J(await page.eval(cellsOf('live-test'))) ===
        J(['live-test', 'sandbox', 'Discovering', '1/1', 'v1.31.0', 'added by the browser test']),
    'the added row shows the file\'s data', await page.eval(cellsOf('live-test')));
    assert(J(await page.eval(rowNames)) === J([...names, 'live-test'].sort()),
        'the added row is in name order', await page.eval(rowNames));
    assert((await page.eval('window.__flashed')).includes('live-test'), 'the added row is highlighted');

    await page.eval('window.__flashed = []; 1');
    t = Date.now();
    writePersona('live.json', persona('live-test', 'sandbox', 'Degraded', 'edited by the browser test',
        [node('n1', true), node('n2', false)], []));
    await page.waitFor('the edited row',
        `(${cellsOf('live-test')} || [])[5] === 'edited by the browser test'`, 3000);
    ms = Date.now() - t;
    assert(ms <= LIVE_MS, 'an edited persona file updates its row within 1 s (' + ms + ' ms)', ms);
    assert(J(await page.eval(cellsOf('live-test'))) ===
        J(['live-test', 'sandbox', 'Degraded', '1/2', 'v1.31.0', 'edited by the browser test']),
    'the edited row shows the new phase and node count', await page.eval(cellsOf('live-test')));
    const flashed = await page.eval('window.__flashed');
    assert(flashed.includes('live-test') && !flashed.includes('prod-eu'),
        'only the changed row is highlighted', flashed);

    t = Date.now();
    fs.unlinkSync(path.join(dir, 'live.json'));
    await page.waitFor('the deleted row to go', `!${hasRow('live-test')}`, 3000);
    ms = Date.now() - t;
    assert(ms <= LIVE_MS, 'a deleted persona file removes its row within 1 s (' + ms + ' ms)', ms);
    assert(await page.eval('window.__noReload === 1'), 'the page was never reloaded');

    /* Hostile strings. */
    step = 'hostile name';
    writePersona('hostile.json', persona(HOSTILE, 'staging', 'Ready', HOSTILE_DESC, [], []));
    await page.waitFor('the hostile row', hasRow(HOSTILE), 3000);
    const hostileCells = await page.eval(cellsOf(HOSTILE));
    assert(hostileCells[0] === HOSTILE && hostileCells[5] === HOSTILE_DESC,
        'a hostile name and description render as literal text', hostileCells);
    assert(await page.eval(`document.querySelectorAll('img').length === 0 &&
        document.scripts.length === 1`), 'no element was injected by the hostile strings');
    await page.eval(`${row(HOSTILE)}.cells[0].querySelector('a').click(); 1`);
    await page.waitFor('the hostile cluster\'s detail view', detailOf(HOSTILE), 3000);
    assert(await page.eval(`location.hash === ${J('#/cluster/' + encodeURIComponent(HOSTILE))}`),
        'the detail link percent-encodes the name', await page.eval('location.hash'));
    assert(await page.eval(`document.getElementById('d-desc').textContent === ${J(HOSTILE_DESC)} &&
        document.querySelectorAll('img').length === 0`), 'the detail view renders them literally too');
    await page.eval('history.back(); 1');
    await page.waitFor('the list after Back', listVisible, 3000);
    ok('the back button returns to the list');

    /* Detail view. */
    step = 'detail view';
    await page.eval(`location.hash = ${J('#/cluster/prod-eu')}; 1`);
    await page.waitFor('prod-eu\'s detail view', detailOf('prod-eu'), 3000);
    const f = fixtures['prod-eu'].status;
    const nodeNames = await page.eval(tableCol('d-nodes', 0));
    assert(J(nodeNames) === J(f.nodes.map((n) => n.name)), 'the nodes table lists every node', nodeNames);
    const nodeRow = await page.eval(`[...document.querySelector('#d-nodes tbody tr:last-child').cells]
        .map((c) => c.textContent)`);
    assert(J(nodeRow) === J(['ip-10-0-3-37', 'worker', 'NotReady', 'v1.29.4-eks-1',
        'containerd://1.7.11', '8', '32Gi', '110']), 'a node row has name, role, ready, kubelet, runtime, cpu, memory, pods', nodeRow);
    const addons = await page.eval(`[...document.querySelectorAll('#d-addons tbody tr')].map((r) =>
        [...r.cells].map((c) => c.textContent).join('|'))`);
    assert(J(addons) === J(f.addons.map((a) => [a.name, a.namespace, a.healthy ? 'Healthy' : 'Unhealthy',
        a.version].join('|'))), 'the addons table lists every addon', addons);
    const factsText = await page.eval(`document.getElementById('d-facts').innerText + ' ' +
        document.getElementById('d-res').innerText + ' ' + document.getElementById('d-desc').textContent`);
    for (const want of ['production', 'Ready', 'v1.29.4', 'EKS', '42', '96Gi', '22800m', '187',
        'Customer-facing workloads, eu-west-1'])
        assert(factsText.includes(want), 'the detail view shows ' + want);
    assert(!/Last discovery\s*—/.test(factsText), 'the detail view shows the last discovery time');
    await page.screenshot('dashboard-detail.png');
    await page.scheme(true);
    await page.screenshot('dashboard-detail-dark.png');
    await page.scheme(false);

    /* Deleted while open; a link to a cluster that does not exist. */
    step = 'deleted while open';
    await page.eval(`location.hash = ${J('#/cluster/' + encodeURIComponent(HOSTILE))}; 1`);
    await page.waitFor('the hostile detail again', detailOf(HOSTILE), 3000);
    t = Date.now();
    fs.unlinkSync(path.join(dir, 'hostile.json'));
    await page.waitFor('the "deleted" notice', `!document.getElementById('gone').hidden &&
        /deleted/.test(document.getElementById('gone').textContent)`, 3000);
    ms = Date.now() - t;
    assert(ms <= LIVE_MS, 'a cluster deleted while its detail is open says so within 1 s (' + ms + ' ms)', ms);
    assert(await page.eval(`document.getElementById('gone').textContent.includes(${J(HOSTILE)}) &&
        document.querySelectorAll('img').length === 0`), 'the notice names the cluster as text');
    await page.eval(`location.hash = '#/cluster/no-such-cluster'; 1`);
    await page.waitFor('the not-found notice', `!document.getElementById('gone').hidden &&
        /No cluster named/.test(document.getElementById('gone').textContent) &&
        document.getElementById('detail').hidden`, 3000);
    ok('a link to an unknown cluster says there is none');
    await page.eval(`location.hash = '#/'; 1`);
    await page.waitFor('the list', `${listVisible} && !${hasRow(HOSTILE)}`, 3000);
    ok('the deleted cluster is gone from the list');

    /* Its worker killed: the page resumes from the last seq it saw; the events
     * missed meanwhile are replayed, and only the clusters they name are
     * refetched, never the whole list. */
    step = 'resume after a worker is killed';
    await page.waitFor('the header\'s seq', `document.getElementById('pos').dataset.seq ===
        String(${(await httpGetJSON(port, '/api/clusters')).seq})`, 3000);
    ok('the header shows the last event\'s seq');
    assert(/event #\d+ · /.test(await page.eval(`document.getElementById('pos').textContent`)),
        'the header shows the last event\'s time', await page.eval(`document.getElementById('pos').textContent`));
    /* Count from here, in a buffer that cannot fill up (250 entries by default). */
    await page.eval('performance.setResourceTimingBufferSize(100000); performance.clearResourceTimings(); 1');
    const lists0 = await page.eval(fetchCount('/api/clusters'));
    assert(lists0 === 0, 'the fetch count starts at 0', lists0);
    for (const pid of workerPids(procs.personad.pid))
        process.kill(pid, 'SIGKILL');
    await page.waitFor('"reconnecting" after the workers died', `${connState}.startsWith('reconnecting')`, 3000);
    writePersona('resume-a.json', persona('resume-a', 'development', 'Ready', 'added while resuming',
        [node('a', true)], []));
    writePersona('resume-b.json', persona('resume-b', 'development', 'Ready', 'short-lived', [], []));
    await sleep(300);
    fs.unlinkSync(path.join(dir, 'resume-b.json'));
    let finalSeq = null;
    for (let i = 0; i < 100 && finalSeq === null; i++) { /* until personad has all three events */
        try {
            const l = await httpGetJSON(port, '/api/clusters');
            const n = l.clusters.map((c) => c.name);
            if (n.includes('resume-a') && !n.includes('resume-b'))
                finalSeq = l.seq;
        } catch (e) { /* the workers are coming back */ }
        await sleep(50);
    }
    assert(finalSeq !== null, 'personad has the changes made while the page was disconnected');
    await page.waitFor('live again with the replayed changes', `${connState}.startsWith('live') &&
        ${hasRow('resume-a')} && !${hasRow('resume-b')} &&
        document.getElementById('pos').dataset.seq === ${J(String(finalSeq))}`, 9000);
    ok('after its worker died the page resumed with every change made meanwhile');
    /* The page's fetch queue may still be on resume-b (a row that is absent
     * either way) when the condition above holds: wait for its entry. */
    await page.waitFor('it refetched the clusters the replayed events name',
        `${fetchCount('/api/clusters/resume-a')} >= 1 && ${fetchCount('/api/clusters/resume-b')} >= 1`, 3000);
    assert(await page.eval(fetchCount('/api/clusters')) === lists0,
        'the resumed page did not refetch the list', await page.eval(fetchCount('/api/clusters')));

    /* Kill personad: "reconnecting"; restart: live again, with what was missed. */
    step = 'reconnect';
    /* Time the connection states in the page itself, so slow polling cannot skew them. */
    await page.eval(`window.__conn = [];
        new MutationObserver(() => window.__conn.push([document.getElementById('conn').dataset.state,
            performance.now()])).observe(document.getElementById('conn'),
            { attributes: true, attributeFilter: ['data-state'] }); 1`);
    await stopPersonad();
    await page.waitFor('the "reconnecting" state', `${connState}.startsWith('reconnecting') &&
        /reconnecting/i.test(document.getElementById('conn').textContent)`, 3000);
    ok('the page shows "reconnecting" when personad goes away');
    await page.screenshot('dashboard-reconnecting.png');
    writePersona('offline.json', persona('while-offline', 'development', 'Ready', 'added while down',
        [node('a', true)], []));
    fs.unlinkSync(path.join(dir, 'fixture-staging.json'));
    t = Date.now();
    await startPersonad(port);
    await page.waitFor('live again with the changes made while down', `${connState}.startsWith('live') &&
        ${hasRow('while-offline')} && !${hasRow('staging')}`, 9000);
    const states = await page.eval('window.__conn');
    const down = states.find((x) => x[0] === 'reconnecting');
    const up = states.find((x) => x[0] === 'live');
    ms = down && up ? Math.round(up[1] - down[1]) : -1;
    assert(ms >= 4900, 'the page waits 5 s before reconnecting (' + ms + ' ms)', states);
    assert(await page.eval(fetchCount('/api/clusters')) > lists0,
        'a restarted personad (new epoch) made the page refetch the list');
    ok('after restart the page is live and refetched everything (' + (Date.now() - t) + ' ms)');
    t = Date.now();
    writePersona('after.json', persona('after-restart', 'production', 'Unknown', 'added after reconnect',
        [], []));
    await page.waitFor('a row added after reconnecting', hasRow('after-restart'), 3000);
    ms = Date.now() - t;
    assert(ms <= LIVE_MS, 'live updates work again after reconnecting (' + ms + ' ms)', ms);
    assert(await page.eval('window.__noReload === 1'), 'still no reload');

    /* A phone-sized screen. */
    step = 'narrow screen';
    await page.viewport(390, 844, true);
    await sleep(100);
    const overflow = await page.eval('document.documentElement.scrollWidth - window.innerWidth');
    assert(overflow <= 0, 'the list fits a 390 px wide screen without scrolling sideways', overflow);
    await page.screenshot('dashboard-list-phone.png');

    /* A shared link opens the detail view straight away. */
    step = 'deep link';
    await page.send('Page.navigate', { url: 'about:blank' });
    await page.waitFor('about:blank', `location.href === 'about:blank'`, 5000);
    await page.send('Page.navigate', { url: base + '#/cluster/' + encodeURIComponent('prod-eu') });
    await page.waitFor('prod-eu\'s detail view from a fresh load', detailOf('prod-eu') +
        ` && document.querySelectorAll('#d-nodes tbody tr').length === 3`, 10000);
    ok('a #/cluster/NAME link opens the detail view on a fresh load');
    await page.screenshot('dashboard-detail-phone.png');

    assert(page.dialogs.length === 0, 'no JavaScript dialog opened', page.dialogs);
    assert(page.errors.length === 0, 'no uncaught JavaScript errors', page.errors);

    step = 'closing';
    await cdp.send('Browser.close').catch(() => {});
    cdp.close();
    await stopChromium();
    await stopPersonad();
    console.log('1..' + passed);
}

/* Wait for chromium (and its helpers) to be gone, so its profile can be removed. */
async function stopChromium() {
    const p = procs.chromium;
    if (!p)
        return;
    if (p.exitCode === null && p.signalCode === null) {
        const gone = new Promise((r) => p.once('exit', r));
        if (!(await Promise.race([gone.then(() => true), sleep(3000).then(() => false)])))
            killGroup(p);
        await Promise.race([gone, sleep(2000)]);
    }
    killGroup(p); /* helpers that outlived the browser process */
    procs.chromium = null;
    await sleep(100);
}

main().then(() => process.exit(0), async (e) => {
    console.log('not ok - ' + step + ': ' + e.message);
    dumpDaemonLog();
    if (thePage)
        await Promise.race([thePage.screenshot('dashboard-failure.png').catch(() => {}), sleep(3000)]);
    if (procs.chromium)
        killGroup(procs.chromium);
    await stopChromium().catch(() => {});
    process.exit(1);
});
