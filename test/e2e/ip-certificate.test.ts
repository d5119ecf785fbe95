// End to end: IP address certificates (RFC 8738) from a real Pebble, which
// validates an "ip" identifier by http-01 on the address itself (its DNS
// server is not asked), so acmed's challenge server listens on every
// address a test orders for, on Pebble's http port.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../harness/ports.js';
import { startPebble, type PebbleHandle } from '../harness/pebble.js';
import { adminPost, baseConfig, startAcmed, type AcmedHandle } from '../harness/acmed.js';

const run = promisify(execFile);

/** IPv6 loopback is there when the loopback interface has ::1 (containers may have IPv6 switched off). */
function hasIpv6Loopback(): boolean {
  return Object.values(networkInterfaces()).some((addresses) => addresses?.some((a) => a.family === 'IPv6' && a.address === '::1'));
}
const IPV6 = hasIpv6Loopback();

let pebble: PebbleHandle;
let acmed: AcmedHandle;
let dir: string;
let rootPath: string;

before(async () => {
  const httpPort = await freePort();
  pebble = await startPebble({ httpPort });
  dir = await mkdtemp(join(tmpdir(), 'acmed-e2e-ip-'));
  rootPath = join(dir, 'pebble-root.pem');
  await writeFile(rootPath, await pebble.rootPem());
  const base = baseConfig({ dir, directoryUrl: pebble.directoryUrl, caBundlePath: pebble.caBundlePath, httpPort });
  acmed = await startAcmed({
    ...base,
    domains: ['*.example.com', '127.0.0.1', ...(IPV6 ? ['0:0:0:0:0:0:0:1'] : [])],
    // 127.0.0.2 is on the loopback interface too: the address of the certificate that also has a host name.
    certificates: [{ names: ['mixed.example.com', '127.0.0.2'] }],
    challenge: { listen: [`127.0.0.1:${httpPort}`, `127.0.0.2:${httpPort}`, ...(IPV6 ? [`[::1]:${httpPort}`] : [])] },
    // The dry run fetches where Pebble validates: the address itself, on Pebble's http port.
    preflight_port: httpPort,
  }, dir);
});

after(async () => {
  await acmed?.stop();
  await pebble?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function certificateIn(liveDir: string): Promise<X509Certificate> {
  const { stdout } = await run('openssl', ['verify', '-CAfile', rootPath, '-untrusted', join(liveDir, 'chain.pem'), join(liveDir, 'cert.pem')]);
  assert.match(stdout, /: OK/);
  return new X509Certificate(await readFile(join(liveDir, 'cert.pem')));
}

test('acmed issue 127.0.0.1 gets a certificate whose only SAN is IP:127.0.0.1, in live/127.0.0.1/', async () => {
  const result = await acmed.cli(['issue', '127.0.0.1']);
  assert.equal(result.code, 0, `${result.stderr}\n${acmed.logs().slice(-3000)}`);
  const liveDir = join(acmed.storagePath, 'live', '127.0.0.1');
  assert.ok(result.stdout.includes(liveDir), result.stdout);
  const cert = await certificateIn(liveDir);
  assert.equal(cert.subjectAltName, 'IP Address:127.0.0.1');
  assert.equal(cert.checkIP('127.0.0.1'), '127.0.0.1');
  // Pebble's VA was given an "ip" identifier, not a "dns" one.
  assert.match(pebble.logs(), /Identifier\{Type:"ip", Value:"127\.0\.0\.1"\}/);
});

test('acmed show 127.0.0.1 and acmed list report it', async () => {
  const show = await acmed.cli(['show', '127.0.0.1', '--json']);
  assert.equal(show.code, 0, show.stderr);
  const shown = JSON.parse(show.stdout) as { names?: string[]; serial_number: string };
  const cert = new X509Certificate(await readFile(join(acmed.storagePath, 'live', '127.0.0.1', 'cert.pem')));
  assert.equal(shown.serial_number, cert.serialNumber.toLowerCase());
  const list = await acmed.cli(['list', '--json']);
  const row = (JSON.parse(list.stdout) as { host: string; status: string }[]).find((r) => r.host === '127.0.0.1');
  assert.equal(row?.status, 'valid', list.stdout);
  // Issued and valid: a second issue orders nothing.
  const orders = pebble.ordersAdded();
  const again = await acmed.cli(['issue', '127.0.0.1']);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /already valid/);
  assert.equal(pebble.ordersAdded(), orders);
});

test('the http-01 dry run (test_http_challenge_flow) reaches acmed at the address itself', async () => {
  const orders = pebble.ordersAdded();
  for (const host of ['127.0.0.1', ...(IPV6 ? ['::1'] : [])]) {
    const dryRun = await adminPost(acmed.socketPath, '/acme', { host, test_http_challenge_flow: true });
    assert.equal(dryRun.status, 200, JSON.stringify(dryRun.body));
    assert.equal(dryRun.body.data.reached, 'acmed');
    assert.equal(dryRun.body.data.address, host);
  }
  assert.equal(pebble.ordersAdded(), orders, 'a dry run orders nothing');
});

test('an address not listed exactly in domains is refused before any order', async () => {
  const orders = pebble.ordersAdded();
  for (const host of ['127.0.0.3', '10.0.0.1']) {
    const result = await acmed.cli(['issue', host]);
    assert.equal(result.code, 1, result.stdout);
    assert.match(result.stderr, /not in "certificates" and matches no "domains" pattern/);
  }
  for (const host of ['010.0.0.1', 'fe80::1%lo', '127.1']) {
    const result = await acmed.cli(['issue', host]);
    assert.equal(result.code, 1, result.stdout);
    assert.match(result.stderr, /^acmed: invalid host name/);
  }
  assert.equal(pebble.ordersAdded(), orders);
});

test('a configured certificate with a host name and an address has a DNS and an IP SAN, stored under the host name', async () => {
  const result = await acmed.cli(['issue', '127.0.0.2']);
  assert.equal(result.code, 0, `${result.stderr}\n${acmed.logs().slice(-3000)}`);
  const cert = await certificateIn(join(acmed.storagePath, 'live', 'mixed.example.com'));
  assert.equal(cert.subjectAltName, 'DNS:mixed.example.com, IP Address:127.0.0.2');
  assert.match(cert.subject, /CN=mixed\.example\.com/);
  const show = await acmed.cli(['show', 'mixed.example.com', '--json']);
  assert.equal(show.code, 0, show.stderr);
});

test('acmed issue ::1 (any spelling) gets IP:::1, stored in live/__1/', { skip: IPV6 ? false : 'no IPv6 loopback on this machine' }, async () => {
  const result = await acmed.cli(['issue', '0:0::1']);
  assert.equal(result.code, 0, `${result.stderr}\n${acmed.logs().slice(-3000)}`);
  const liveDir = join(acmed.storagePath, 'live', '__1');
  assert.ok(result.stdout.includes(liveDir), result.stdout);
  const cert = await certificateIn(liveDir);
  assert.equal(cert.subjectAltName, 'IP Address:0:0:0:0:0:0:0:1');
  assert.equal(cert.checkIP('::1'), '::1');
  // The order asked for the canonical spelling, whatever the command line said.
  assert.match(pebble.logs(), /Identifier\{Type:"ip", Value:"::1"\}/);
  const show = await acmed.cli(['show', '::1', '--json']);
  assert.equal(show.code, 0, show.stderr);
  const list = await acmed.cli(['list', '--json']);
  assert.ok((JSON.parse(list.stdout) as { host: string }[]).some((r) => r.host === '::1'), list.stdout);
  // Every per-name key uses the same segment: nothing with a ":" was written.
  const files = await readdir(acmed.storagePath, { recursive: true });
  assert.deepEqual(files.filter((f) => f.includes(':')), []);
  assert.ok(files.some((f) => f === join('state', 'index', '__1')), files.join('\n'));
});

test('after a restart the index is rebuilt from storage with the address names', async () => {
  assert.equal(await acmed.stop(), 0);
  acmed = await startAcmed(JSON.parse(JSON.stringify(await readConfig())), dir);
  const list = await acmed.cli(['list', '--json']);
  assert.equal(list.code, 0, list.stderr);
  const hosts = (JSON.parse(list.stdout) as { host: string; status: string }[]).filter((r) => r.status === 'valid').map((r) => r.host).sort();
  assert.deepEqual(hosts, [...(IPV6 ? ['::1'] : []), '127.0.0.1', 'mixed.example.com'].sort());
});

async function readConfig(): Promise<Record<string, unknown>> {
  const { parse } = await import('yaml');
  return parse(await readFile(acmed.configPath, 'utf8')) as Record<string, unknown>;
}
