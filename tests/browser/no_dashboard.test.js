/*
 * no_dashboard.test.js - a --disable-dashboard build serves no page: / and the
 * assets are 404, while the REST API still works.  Registered only when
 * configure ran with --disable-dashboard (tests/browser/tests.am).
 */
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const net = require('net');
const http = require('http');
const { spawn } = require('child_process');

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'personad-nodash-'));
let daemon = null;

process.on('exit', () => {
    if (daemon && daemon.exitCode === null && daemon.signalCode === null) {
        try {
            process.kill(-daemon.pid, 'SIGKILL');
        } catch (e) { /* gone */ }
    }
    fs.rmSync(tmp, { recursive: true, force: true });
});
setTimeout(() => {
    console.log('not ok - deadline of 20 s passed');
    process.exit(1);
}, 20000);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

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

function get(port, p) {
    return new Promise((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port, path: p, timeout: 2000 }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode));
        });
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', reject);
    });
}

async function main() {
    const dir = path.join(tmp, 'personas');
    fs.mkdirSync(dir);
    const port = await freePort();
    daemon = spawn(process.env.PERSONAD, ['-l', '127.0.0.1:' + port, '-d', dir, '-w', '1'],
        { stdio: ['ignore', 'ignore', 'inherit'], detached: true });
    const t0 = Date.now();
    for (;;) {
        if (daemon.exitCode !== null)
            throw new Error('personad exited (' + daemon.exitCode + ')');
        if (await get(port, '/healthz').catch(() => 0) === 200)
            break;
        if (Date.now() - t0 > 10000)
            throw new Error('personad not healthy after 10 s');
        await sleep(50);
    }
    const got = {};
    for (const p of ['/', '/app.js', '/app.css', '/api/clusters'])
        got[p] = await get(port, p);
    const want = { '/': 404, '/app.js': 404, '/app.css': 404, '/api/clusters': 200 };
    if (JSON.stringify(got) !== JSON.stringify(want))
        throw new Error('status codes ' + JSON.stringify(got) + ', want ' + JSON.stringify(want));
    console.log('ok 1 - without the dashboard, / and its assets are 404 and /api/clusters is 200');
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon.once('exit', r));
}

main().then(() => process.exit(0), (e) => {
    console.log('not ok - ' + e.message);
    process.exit(1);
});
