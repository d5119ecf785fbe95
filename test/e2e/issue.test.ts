// End to end: a real acmed daemon (bin/acmed run) against a real Pebble, driven
// through the CLI as an operator would. Checks issued chains with openssl
// against Pebble's root, restart reuse, refusals and hostile input.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../harness/ports.js';
import { startPebble, type PebbleHandle } from '../harness/pebble.js';
import { baseConfig, runCli, startAcmed, writeAcmedConfig, ACMED_BIN, type AcmedHandle } from '../harness/acmed.js';

const run = promisify(execFile);

let pebble: PebbleHandle;
let httpPort: number;
let dir: string;
let config: Record<string, unknown>;
let acmed: AcmedHandle;
let rootPath: string;

before(async () => {
  httpPort = await freePort();
  pebble = await startPebble({ httpPort });
  dir = await mkdtemp(join(tmpdir(), 'acmed-e2e-'));
  rootPath = join(dir, 'pebble-root.pem');
  await writeFile(rootPath, await pebble.rootPem());
  config = {
    ...baseConfig({ dir, directoryUrl: pebble.directoryUrl, caBundlePath: pebble.caBundlePath, httpPort }),
    domains: ['*.example.com'],
    // The dry run's probe resolves names as Pebble does and fetches where Pebble validates.
    preflight_resolver: pebble.dnsServer,
    preflight_port: httpPort,
  };
  acmed = await startAcmed(config, dir);
});

after(async () => {
  await acmed?.stop();
  await pebble?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function verifyChain(liveDir: string): Promise<void> {
  const { stdout } = await run('openssl', ['verify', '-CAfile', rootPath, '-untrusted', join(liveDir, 'chain.pem'), join(liveDir, 'cert.pem')]);
  assert.match(stdout, /: OK/);
  const { stdout: full } = await run('openssl', ['verify', '-CAfile', rootPath, '-untrusted', join(liveDir, 'fullchain.pem'), join(liveDir, 'fullchain.pem')]);
  assert.match(full, /: OK/);
}

async function keyMatchesCert(liveDir: string): Promise<{ keyType: string; curve?: string; bits?: number }> {
  const key = createPrivateKey(await readFile(join(liveDir, 'privkey.pem')));
  const cert = new X509Certificate(await readFile(join(liveDir, 'cert.pem')));
  assert.ok(cert.checkPrivateKey(key), 'privkey.pem must match cert.pem');
  const details = key.asymmetricKeyDetails ?? {};
  return { keyType: key.asymmetricKeyType!, curve: details.namedCurve, bits: details.modulusLength };
}

test('acmed issue <host> gets a single-name ECDSA certificate that verifies with Pebble\'s root', async () => {
  const result = await acmed.cli(['issue', 'a.example.com']);
  assert.equal(result.code, 0, result.stderr);
  const liveDir = join(acmed.storagePath, 'live', 'a.example.com');
  assert.match(result.stdout, /issued a\.example\.com/);
  assert.ok(result.stdout.includes(liveDir), result.stdout);
  assert.match(result.stdout, /expires: \d{4}-\d\d-\d\dT/);
  await verifyChain(liveDir);
  const key = await keyMatchesCert(liveDir);
  assert.equal(key.keyType, 'ec');
  assert.equal(key.curve, 'prime256v1');
  assert.equal((await stat(join(liveDir, 'privkey.pem'))).mode & 0o777, 0o600);
  assert.equal((await stat(join(acmed.storagePath, 'state', 'account', 'key.pem'))).mode & 0o777, 0o600);
  assert.equal((await stat(join(acmed.storagePath, 'archive'))).mode & 0o777, 0o700);
  const cert = new X509Certificate(await readFile(join(liveDir, 'cert.pem')));
  assert.equal(cert.subjectAltName, 'DNS:a.example.com');
});

test('a second issue of a valid certificate makes no new order; --force does', async () => {
  const liveDir = join(acmed.storagePath, 'live', 'a.example.com');
  const before = await readFile(join(liveDir, 'cert.pem'), 'utf8');
  const orders = pebble.ordersAdded();
  const again = await acmed.cli(['issue', 'a.example.com']);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /already valid/);
  assert.equal(pebble.ordersAdded(), orders);
  assert.equal(await readFile(join(liveDir, 'cert.pem'), 'utf8'), before);

  const forced = await acmed.cli(['issue', 'a.example.com', '--force']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.equal(pebble.ordersAdded(), orders + 1);
  assert.notEqual(await readFile(join(liveDir, 'cert.pem'), 'utf8'), before);
  await verifyChain(liveDir);
});

test('hosts outside domains and certificates are refused with one line and no ACME order', async () => {
  const orders = pebble.ordersAdded();
  for (const host of ['evil.test', 'a.b.example.com', 'example.net']) {
    const result = await acmed.cli(['issue', host]);
    assert.equal(result.code, 1, `${host}: ${result.stdout}`);
    assert.match(result.stderr, /^acmed: .*not in "certificates" and matches no "domains" pattern/);
    assert.equal(result.stderr.trim().split('\n').length, 1);
  }
  assert.equal(pebble.ordersAdded(), orders);
});

test('hostile host strings are rejected before they touch storage or the CA', async () => {
  const orders = pebble.ordersAdded();
  const listing = async () => (await readdir(acmed.storagePath, { recursive: true })).sort();
  const filesBefore = await listing();
  const hostile = ['../etc/passwd', '..', 'a/b.example.com', 'bücher.example.com', `${'a'.repeat(64)}.example.com`,
    `${'abcdefgh.'.repeat(30)}example.com`, '%2e%2e.example.com', 'a..example.com', ' a.example.com', 'a.example.com\nb', '-a.example.com'];
  for (const host of hostile) {
    // "--" so a leading "-" reaches acmed as a host, not as an option.
    const result = await runCli(['issue', '--socket', acmed.socketPath, '--', host]);
    assert.equal(result.code, 1, `${JSON.stringify(host)} was accepted: ${result.stdout}`);
    assert.match(result.stderr, /^acmed: invalid host name/, `${JSON.stringify(host)}: ${result.stderr}`);
  }
  const show = await acmed.cli(['show', '../../etc']);
  assert.equal(show.code, 1);
  assert.equal(pebble.ordersAdded(), orders);
  assert.deepEqual(await listing(), filesBefore);
});

test('the admin API takes a form-encoded POST /acme like Kong, and answers JSON errors', async () => {
  const post = (body: string, type: string) => new Promise<{ status: number; body: any }>((resolve, reject) => {
    const req = http.request({ socketPath: acmed.socketPath, method: 'POST', path: '/acme', headers: { 'content-type': type } }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(body);
  });
  const ok = await post('host=form.example.com', 'application/x-www-form-urlencoded');
  assert.equal(ok.status, 201);
  assert.equal(ok.body.data.name, 'form.example.com');
  const missing = await post('{}', 'application/json');
  assert.equal(missing.status, 400);
  assert.equal(missing.body.message, 'host is required');
  const orders = pebble.ordersAdded();
  const dryRun = await post('host=dry.example.com&test_http_challenge_flow=true', 'application/x-www-form-urlencoded');
  assert.equal(dryRun.status, 200, JSON.stringify(dryRun.body));
  assert.equal(dryRun.body.data.reached, 'acmed');
  assert.equal(pebble.ordersAdded(), orders, 'a dry run orders nothing');
  assert.ok(!existsSync(join(acmed.storagePath, 'live', 'dry.example.com')));
  const broken = await post('{not json', 'application/json');
  assert.equal(broken.status, 400);
  assert.match(broken.body.message, /JSON object/);
});

test('list and show report the stored certificates, also as JSON', async () => {
  const list = await acmed.cli(['list', '--json']);
  assert.equal(list.code, 0, list.stderr);
  const rows = JSON.parse(list.stdout) as { host: string; status: string; valid: boolean; not_after: string }[];
  const a = rows.find((r) => r.host === 'a.example.com');
  assert.ok(a);
  assert.equal(a.status, 'valid');
  assert.equal(a.valid, true);
  assert.ok(Date.parse(a.not_after) > Date.now());

  const invalidOnly = await new Promise<{ data: unknown[] }>((resolve, reject) => {
    http.get({ socketPath: acmed.socketPath, path: '/acme/certificates?invalid_only=true' }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve(JSON.parse(text)));
    }).on('error', reject);
  });
  assert.deepEqual(invalidOnly.data, [], 'every stored certificate is valid, so invalid_only lists none');

  const human = await acmed.cli(['list']);
  assert.match(human.stdout, /^HOST\s+STATUS\s+EXPIRES/);
  assert.match(human.stdout, /a\.example\.com\s+valid/);

  const show = await acmed.cli(['show', 'a.example.com', '--json']);
  assert.equal(show.code, 0, show.stderr);
  const cert = new X509Certificate(await readFile(join(acmed.storagePath, 'live', 'a.example.com', 'cert.pem')));
  assert.equal(JSON.parse(show.stdout).serial_number, cert.serialNumber.toLowerCase());

  const missing = await acmed.cli(['show', 'nothing.example.com']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^acmed: no certificate for nothing\.example\.com/);
});

test('restart with a 3-name RSA certificate in the config: account reused, certificate issued at start', async () => {
  const accountKey = await readFile(join(acmed.storagePath, 'state', 'account', 'key.pem'), 'utf8');
  const aCert = await readFile(join(acmed.storagePath, 'live', 'a.example.com', 'cert.pem'), 'utf8');
  assert.equal(await acmed.stop(), 0);
  const accountsBefore = pebble.logs().split('\n').filter((l) => l.includes('POST /sign-me-up')).length;

  config = {
    ...config,
    cert_type: 'rsa',
    rsa_key_size: 2048,
    certificates: [{ names: ['multi.example.org', 'www.multi.example.org', 'api.multi.example.org'] }],
  };
  acmed = await startAcmed(config, dir);
  // The configured certificate is issued by the daemon itself; `issue` for one of its names joins or finds it.
  const result = await acmed.cli(['issue', 'www.multi.example.org']);
  assert.equal(result.code, 0, result.stderr);
  const liveDir = join(acmed.storagePath, 'live', 'multi.example.org');
  await verifyChain(liveDir);
  const key = await keyMatchesCert(liveDir);
  assert.equal(key.keyType, 'rsa');
  assert.equal(key.bits, 2048);
  const cert = new X509Certificate(await readFile(join(liveDir, 'cert.pem')));
  assert.deepEqual(cert.subjectAltName!.split(', ').sort(),
    ['DNS:api.multi.example.org', 'DNS:multi.example.org', 'DNS:www.multi.example.org']);

  assert.equal(await readFile(join(acmed.storagePath, 'state', 'account', 'key.pem'), 'utf8'), accountKey);
  const accountsAfter = pebble.logs().split('\n').filter((l) => l.includes('POST /sign-me-up')).length;
  assert.equal(accountsAfter, accountsBefore, 'a restart must not register or look up the account again');
  assert.doesNotMatch(acmed.logs(), /registered ACME account/);
  // The ECDSA certificate from before the restart is kept, not re-ordered.
  const again = await acmed.cli(['issue', 'a.example.com']);
  assert.match(again.stdout, /already valid/);
  assert.equal(await readFile(join(acmed.storagePath, 'live', 'a.example.com', 'cert.pem'), 'utf8'), aCert);
});

test('the daemon refuses to start when tos_accepted is not true, naming the line', async () => {
  const badDir = await mkdtemp(join(tmpdir(), 'acmed-tos-'));
  try {
    const path = await writeAcmedConfig(badDir, { ...config, tos_accepted: false, admin: { socket: join(badDir, 's.sock') } });
    const result = await runCli(['run', '--config', path]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /acmed\.yaml:\d+:\d+: tos_accepted: tos_accepted must be true/);
  } finally {
    await rm(badDir, { recursive: true, force: true });
  }
});

test('a client command with no daemon running prints one clear line', async () => {
  const result = await runCli(['list', '--socket', join(dir, 'no-such.sock')]);
  assert.equal(result.code, 1);
  assert.equal(result.stderr.trim(), `acmed: acmed is not running (no daemon answers on ${join(dir, 'no-such.sock')}); start it with "acmed run"`);
  assert.ok(ACMED_BIN.endsWith('bin/acmed'));
});

test('GET /metrics and /healthz on the admin socket', async () => {
  const get = (path: string) => new Promise<{ status: number; type: string; body: string }>((resolve, reject) => {
    http.get({ socketPath: acmed.socketPath, path }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode!, type: String(res.headers['content-type']), body }));
    }).on('error', reject);
  });
  const health = await get('/healthz');
  assert.equal(health.status, 200);
  assert.equal(JSON.parse(health.body).status, 'ok');
  const metrics = await get('/metrics');
  assert.equal(metrics.status, 200);
  assert.match(metrics.type, /^text\/plain/);
  const issued = Number(/^acmed_orders_total\{result="issued",kind=""\} (\d+)$/m.exec(metrics.body)?.[1]);
  assert.ok(issued >= 1, metrics.body.slice(0, 2000));
  const notAfter = Number(/^acmed_certificate_expiration_timestamp_seconds\{name="a\.example\.com"\} (\d+)$/m.exec(metrics.body)?.[1]);
  const cert = new X509Certificate(await readFile(join(acmed.storagePath, 'live', 'a.example.com', 'cert.pem')));
  assert.equal(notAfter, Date.parse(cert.validTo) / 1000);
  assert.match(metrics.body, /^acmed_certificate_ready_status\{name="a\.example\.com",condition="True"\} 1$/m);
  assert.ok(Number(/^acmed_acme_client_request_count_total\{action="new_order",method="POST",status="201"\} (\d+)$/m.exec(metrics.body)?.[1]) > 0);
  assert.ok(Number(/^acmed_acme_client_request_count_total\{action="finalize_order",method="POST",status="200"\} (\d+)$/m.exec(metrics.body)?.[1]) > 0);
  assert.ok(Number(/^acmed_acme_client_request_duration_seconds_count\{action="get_certificate"\} (\d+)$/m.exec(metrics.body)?.[1]) > 0);
  assert.ok(Number(/^acmed_http01_requests_total\{result="hit"\} (\d+)$/m.exec(metrics.body)?.[1]) > 0);
  assert.match(metrics.body, /^acmed_storage_up 1$/m);
  assert.match(metrics.body, /^acmed_ca_up 1$/m);
  // The real daemon's exposition through Prometheus's own checker.
  const promtool = await new Promise<{ code: number; output: string }>((resolve) => {
    const child = execFile('promtool', ['check', 'metrics'], (err, stdout, stderr) => resolve({ code: err ? 1 : 0, output: stdout + stderr }));
    child.stdin!.end(metrics.body);
  });
  assert.deepEqual(promtool, { code: 0, output: '' });
});

test('acmed renew: nothing due renews nothing; one host with --force renews it; PATCH /acme answers 202', async () => {
  const all = await acmed.cli(['renew', '--json']);
  assert.equal(all.code, 0, all.stderr);
  const pass = JSON.parse(all.stdout) as { checked: number; renewed: string[]; not_due: number; failed: unknown[] };
  assert.ok(pass.checked >= 2, all.stdout);
  assert.deepEqual(pass.renewed, []);
  assert.equal(pass.not_due, pass.checked);

  const certPath = join(acmed.storagePath, 'live', 'a.example.com', 'cert.pem');
  const before = new X509Certificate(await readFile(certPath)).serialNumber;
  const forced = await acmed.cli(['renew', 'a.example.com', '--force']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.match(forced.stdout, /^checked 1: 1 renewed/);
  assert.match(forced.stdout, /renewed\s+a\.example\.com/);
  assert.notEqual(new X509Certificate(await readFile(certPath)).serialNumber, before);
  await verifyChain(join(acmed.storagePath, 'live', 'a.example.com'));

  const refused = await acmed.cli(['renew', 'evil.test']);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /^acmed: evil\.test is not in "certificates"/);

  const patched = await new Promise<{ status: number; body: { message: string } }>((resolve, reject) => {
    const req = http.request({ socketPath: acmed.socketPath, method: 'PATCH', path: '/acme' }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(patched.status, 202);
  assert.match(patched.body.message, /renewal of certificates started/);
});

test('acmed revoke revokes at the CA and removes the certificate; a second revoke finds nothing', async () => {
  const liveDir = join(acmed.storagePath, 'live', 'a.example.com');
  const serial = new X509Certificate(await readFile(join(liveDir, 'cert.pem'))).serialNumber;
  const result = await acmed.cli(['revoke', 'a.example.com', '--reason', '4']);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /certificate a\.example\.com revoked and removed from storage/);
  const status = await pebble.certStatusBySerial(serial);
  assert.equal(status.Status, 'Revoked', JSON.stringify(status));
  await assert.rejects(stat(liveDir), /ENOENT/);
  const show = await acmed.cli(['show', 'a.example.com']);
  assert.equal(show.code, 1);
  const again = await acmed.cli(['revoke', 'a.example.com']);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /^acmed: no certificate for a\.example\.com/);
  const badReason = await acmed.cli(['revoke', 'multi.example.org', '--reason', '9']);
  assert.equal(badReason.code, 1);
  assert.match(badReason.stderr, /reason must be/);
});
