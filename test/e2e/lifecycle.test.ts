// The daemon as systemd runs it: SIGHUP reloads (a broken file keeps the old
// config), SIGTERM during an order exits cleanly within 10 s leaving nothing
// partial, readiness goes through systemd-notify, and port 80 can come from
// socket activation (LISTEN_FDS).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { freePort } from '../harness/ports.js';
import { startPebble, type PebbleHandle } from '../harness/pebble.js';
import { ACMED_BIN, baseConfig, startAcmed, writeAcmedConfig } from '../harness/acmed.js';
import { waitFor } from '../harness/wait.js';

let pebble: PebbleHandle;
let httpPort: number;
let dir: string;

before(async () => {
  httpPort = await freePort();
  pebble = await startPebble({ httpPort });
  dir = await mkdtemp(join(tmpdir(), 'acmed-life-'));
});

after(async () => {
  await pebble?.stop();
  await rm(dir, { recursive: true, force: true });
});

function httpGet(host: string, port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((res, rej) => {
    http.get({ host, port, path }, (r) => {
      let body = '';
      r.on('data', (d) => { body += d; });
      r.on('end', () => res({ status: r.statusCode!, body }));
    }).on('error', rej);
  });
}

test('SIGHUP: a broken config keeps the daemon serving; a valid one adds a certificate and rebinds http-01', async (t) => {
  const sub = await mkdtemp(join(dir, 'hup-'));
  const config = baseConfig({ dir: sub, directoryUrl: pebble.directoryUrl, caBundlePath: pebble.caBundlePath, httpPort });
  const acmed = await startAcmed(config, sub);
  t.after(() => acmed.stop());

  await writeFile(acmed.configPath, 'account_email: ops@example.com\ntos_accepted: true\ncert_type: ecd\nbogus: [\n');
  acmed.child.kill('SIGHUP');
  await waitFor('reload rejection in the log', () => /config reload rejected/.test(acmed.logs()));
  assert.match(acmed.logs(), /acmed\.yaml:\d+:\d+: /);
  const list = await acmed.cli(['list']);
  assert.equal(list.code, 0, 'still serving the admin API on the old config');
  assert.equal((await httpGet('127.0.0.1', httpPort, '/.well-known/acme-challenge/xxxxxxxxxxxxxxxxxxxxxxxx')).status, 404);

  const extraPort = await freePort('127.0.0.2');
  await writeAcmedConfig(sub, {
    ...config,
    certificates: [{ names: ['hup.example.com'] }],
    challenge: { listen: [`127.0.0.1:${httpPort}`, `127.0.0.2:${extraPort}`] },
  });
  acmed.child.kill('SIGHUP');
  await waitFor('the new certificate', () => existsSync(join(acmed.storagePath, 'live', 'hup.example.com', 'fullchain.pem')));
  const second = await httpGet('127.0.0.2', extraPort, '/.well-known/acme-challenge/yyyyyyyyyyyyyyyyyyyyyyyy');
  assert.equal(second.status, 404);
  assert.equal(second.body, 'Not found\n');
  assert.equal(acmed.child.exitCode, null);
});

test('SIGTERM during an order: exit 0 within 10 s, no partial certificate, no stale lock', async (t) => {
  // The CA's validation request for this name goes to a server that accepts and never answers,
  // so the order is still running when the signal arrives.
  const blackholePort = httpPort;
  const blackhole = net.createServer(() => {}).listen(blackholePort, '127.0.0.3');
  t.after(() => blackhole.close());
  await pebble.addA('stuck.example.com', ['127.0.0.3']);
  const sub = await mkdtemp(join(dir, 'term-'));
  const acmed = await startAcmed(baseConfig({ dir: sub, directoryUrl: pebble.directoryUrl, caBundlePath: pebble.caBundlePath, httpPort }), sub);
  const issuing = acmed.cli(['issue', 'stuck.example.com']);
  await waitFor('the order to be running', () => /order placed/.test(acmed.logs()));

  const started = Date.now();
  const code = await acmed.stop('SIGTERM');
  const took = Date.now() - started;
  assert.equal(code, 0, acmed.logs().slice(-2000));
  assert.ok(took < 10_000, `took ${took} ms`);
  const result = await issuing;
  assert.notEqual(result.code, 0);
  // The CLI and the log both say what happened to the order, and that it is not lost.
  const abandoned = /acmed is shutting down; the order for stuck\.example\.com was abandoned and will be retried at the next start/;
  assert.match(result.stderr, abandoned);
  assert.match(acmed.logs(), abandoned);
  assert.doesNotMatch(acmed.logs(), /order not attempted/);
  assert.ok(!existsSync(join(acmed.storagePath, 'live', 'stuck.example.com')), 'no certificate directory for the abandoned order');
  const all = await readdir(acmed.storagePath, { recursive: true });
  assert.deepEqual(all.filter((f) => String(f).endsWith('.tmp')), []);
  assert.deepEqual(all.filter((f) => String(f).includes('locks/')), [], 'the lock was released');
  assert.ok(!existsSync(join(sub, 'admin.sock')), 'the admin socket is removed');
});

test('systemd: READY, RELOADING and STOPPING go through systemd-notify; nothing without NOTIFY_SOCKET', async (t) => {
  const sub = await mkdtemp(join(dir, 'notify-'));
  const binDir = join(sub, 'bin');
  const notes = join(sub, 'notify.log');
  await rm(binDir, { recursive: true, force: true });
  await import('node:fs/promises').then((fs) => fs.mkdir(binDir));
  await writeFile(join(binDir, 'systemd-notify'), `#!/bin/sh\necho "$NOTIFY_SOCKET $*" >> ${notes}\n`);
  await chmod(join(binDir, 'systemd-notify'), 0o755);
  const config = baseConfig({ dir: sub, directoryUrl: pebble.directoryUrl, caBundlePath: pebble.caBundlePath, httpPort: await freePort() });
  const configPath = await writeAcmedConfig(sub, config);
  const env = { ...process.env, PATH: `${binDir}:${process.env.PATH}`, NOTIFY_SOCKET: '/run/fake-notify' };
  const child = spawn(process.execPath, [ACMED_BIN, 'run', '--config', configPath], { env, stdio: 'ignore' });
  t.after(() => child.kill('SIGKILL'));
  const lines = async () => (await readFile(notes, 'utf8').catch(() => '')).trim().split('\n').filter(Boolean);
  await waitFor('READY', async () => (await lines()).some((l) => l.includes('--ready')));
  child.kill('SIGHUP');
  await waitFor('RELOADING then READY', async () => {
    const l = await lines();
    const reloading = l.findIndex((x) => x.includes('RELOADING=1'));
    return reloading >= 0 && l.slice(reloading).some((x) => x.includes('READY=1'));
  });
  const exited = new Promise((res) => child.once('exit', res));
  child.kill('SIGTERM');
  assert.equal(await exited, 0);
  const all = await lines();
  assert.ok(all.some((l) => l.includes('STOPPING=1')));
  assert.ok(all.every((l) => l.startsWith('/run/fake-notify ') && l.includes(`--pid=${child.pid}`)), all.join('\n'));

  // Without NOTIFY_SOCKET nothing is sent.
  const before = (await lines()).length;
  const { NOTIFY_SOCKET: _drop, ...plainEnv } = env;
  const plain = spawn(process.execPath, [ACMED_BIN, 'run', '--config', configPath], { env: plainEnv, stdio: 'ignore' });
  await waitFor('admin socket', () => existsSync(join(sub, 'admin.sock')));
  const plainExit = new Promise((res) => plain.once('exit', res));
  plain.kill('SIGTERM');
  assert.equal(await plainExit, 0);
  assert.equal((await lines()).length, before);
});

test('socket activation: with LISTEN_FDS the http-01 server uses the passed socket, not challenge.listen', async (t) => {
  const sub = await mkdtemp(join(dir, 'fds-'));
  const activated = net.createServer();
  await new Promise<void>((res) => activated.listen(0, '127.0.0.1', res));
  const port = (activated.address() as net.AddressInfo).port;
  const unusedPort = await freePort();
  const config = baseConfig({ dir: sub, directoryUrl: pebble.directoryUrl, caBundlePath: pebble.caBundlePath, httpPort: unusedPort });
  const configPath = await writeAcmedConfig(sub, config);
  const fd = (activated as unknown as { _handle: { fd: number } })._handle.fd;
  // sh's $$ is the pid that exec hands to node, as systemd sets LISTEN_PID.
  const child = spawn('/bin/sh', ['-c', `LISTEN_PID=$$ LISTEN_FDS=1 exec "${process.execPath}" "${ACMED_BIN}" run --config "${configPath}"`], {
    stdio: ['ignore', 'ignore', 'ignore', fd],
  });
  t.after(() => child.kill('SIGKILL'));
  activated.close(); // the child holds its own copy of the descriptor
  await waitFor('admin socket', () => existsSync(join(sub, 'admin.sock')));
  const answer = await httpGet('127.0.0.1', port, '/.well-known/acme-challenge/zzzzzzzzzzzzzzzzzzzzzzzz');
  assert.equal(answer.status, 404);
  assert.equal(answer.body, 'Not found\n');
  await assert.rejects(httpGet('127.0.0.1', unusedPort, '/'), /ECONNREFUSED/);
  const exited = new Promise((res) => child.once('exit', res));
  child.kill('SIGTERM');
  assert.equal(await exited, 0);
});

test('the systemd units pass systemd-analyze verify', { skip: !existsSync('/usr/bin/systemd-analyze') && 'systemd-analyze is not installed' }, async () => {
  const units = ['acmed.service', 'acmed.socket'].map((u) => resolve(import.meta.dirname, '../../config', u));
  const { stdout, stderr } = await promisify(execFile)('systemd-analyze', ['verify', ...units]).catch((err) => err);
  assert.equal(`${stdout ?? ''}${stderr ?? ''}`.trim(), '');
  const service = await readFile(units[0], 'utf8');
  for (const line of ['Type=notify', 'NotifyAccess=all', 'ExecReload=/bin/kill -HUP $MAINPID', 'StateDirectory=acmed',
    'RuntimeDirectory=acmed', 'AmbientCapabilities=CAP_NET_BIND_SERVICE', 'NoNewPrivileges=yes', 'ProtectSystem=strict']) {
    assert.ok(service.includes(line), line);
  }
});
