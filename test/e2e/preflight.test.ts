// The http-01 preflight end to end: a real acmed (bin/acmed) with
// preflight_check on, Pebble, and pebble-challtestsrv resolving names (every
// name is 127.0.0.1, where acmed listens, unless a test sends it elsewhere).
// `acmed issue --check-only` and POST /acme test_http_challenge_flow order
// nothing; a failed preflight before an order costs no ACME order.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { baseConfig, startAcmed, type AcmedHandle } from '../harness/acmed.js';
import { startPebble, type PebbleHandle } from '../harness/pebble.js';
import { freePort } from '../harness/ports.js';

let pebble: PebbleHandle;
let acmed: AcmedHandle;
let dir: string;
let httpPort: number;
let foreign: http.Server;

before(async () => {
  httpPort = await freePort();
  pebble = await startPebble({ httpPort });
  dir = await mkdtemp(join(tmpdir(), 'acmed-preflight-'));
  acmed = await startAcmed({
    ...baseConfig({ dir, directoryUrl: pebble.directoryUrl, caBundlePath: pebble.caBundlePath, httpPort }),
    preflight_check: true,
    preflight_resolver: pebble.dnsServer,
    preflight_port: httpPort,
  }, dir);
  // Another web server on the same port of another loopback address.
  foreign = http.createServer((_req, res) => {
    res.writeHead(200, { server: 'nginx/1.22.1', 'content-type': 'text/html' });
    res.end('<h1>Welcome to nginx!</h1>');
  });
  await new Promise<void>((resolve) => foreign.listen(httpPort, '127.0.0.3', resolve));
  await pebble.addA('foreign.example.com', ['127.0.0.3']);
  await pebble.addA('nobody.example.com', ['127.0.0.2']);
});

after(async () => {
  foreign?.close();
  await acmed?.stop();
  await pebble?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** POST /acme on the admin socket with a JSON body. */
function postAcme(body: Record<string, unknown>): Promise<{ status: number; body: { message: string; kind?: string; data?: { reached: string } } }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: acmed.socketPath, method: 'POST', path: '/acme', headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

test('acmed issue --check-only reaches acmed and orders nothing', async () => {
  const orders = pebble.ordersAdded();
  const result = await acmed.cli(['issue', 'check.example.com', '--check-only']);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^ok: http:\/\/check\.example\.com:\d+\/\.well-known\/acme-challenge\/[\w-]+ answered with the probe's key authorization: acmed \(this instance or one sharing its store\) answers http-01 for check\.example\.com\n$/);
  const json = await acmed.cli(['issue', 'check.example.com', '--check-only', '--json']);
  const data = JSON.parse(json.stdout) as { ok: boolean; reached: string; address: string };
  assert.deepEqual([data.ok, data.reached, data.address], [true, 'acmed', '127.0.0.1']);
  assert.equal(pebble.ordersAdded(), orders);
  assert.ok(!existsSync(join(acmed.storagePath, 'live', 'check.example.com')));
});

test('--check-only says what was reached instead: another server, nothing listening', async () => {
  const orders = pebble.ordersAdded();
  const foreignResult = await acmed.cli(['issue', 'foreign.example.com', '--check-only']);
  assert.equal(foreignResult.code, 1);
  assert.equal(foreignResult.stderr.trim().split('\n').length, 1);
  assert.match(foreignResult.stderr, /^acmed: http-01 preflight for foreign\.example\.com failed: a server calling itself "nginx\/1\.22\.1" at 127\.0\.0\.3:\d+ answered HTTP 200 "<h1>Welcome to nginx!<\/h1>" instead of the probe's key authorization; no ACME order was placed$/m);
  const nobody = await acmed.cli(['issue', 'nobody.example.com', '--check-only']);
  assert.equal(nobody.code, 1);
  assert.match(nobody.stderr, /cannot connect to 127\.0\.0\.2:\d+ \(ECONNREFUSED\)/);
  // Kong's status codes: 200 for a passing sanity check, 400 for a failing one.
  const passing = await postAcme({ host: 'check.example.com', test_http_challenge_flow: true });
  assert.equal(passing.status, 200);
  const failing = await postAcme({ host: 'foreign.example.com', test_http_challenge_flow: 'true' });
  assert.equal(failing.status, 400);
  assert.equal(failing.body.kind, 'preflight_failed');
  assert.equal(failing.body.data?.reached, 'other_server');
  assert.equal(pebble.ordersAdded(), orders);
});

test('hosts acmed would not order for are refused before any probe', async () => {
  const refused = await acmed.cli(['issue', 'evil.test', '--check-only']);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /not in "certificates" and matches no "domains" pattern/);
  const invalid = await acmed.cli(['issue', '--check-only', '--', '../etc/passwd']);
  assert.equal(invalid.code, 1);
  assert.doesNotMatch(invalid.stderr, /preflight/);
});

test('preflight_check: a failed probe fails the order before it is placed; a passing one lets it through', async () => {
  const orders = pebble.ordersAdded();
  const failed = await acmed.cli(['issue', 'foreign.example.com']);
  assert.equal(failed.code, 1);
  const refusedAgain = await postAcme({ host: 'foreign.example.com', force: true });
  assert.equal(refusedAgain.status, 422, JSON.stringify(refusedAgain.body));
  assert.equal(refusedAgain.body.kind, 'preflight_failed');
  // In failure backoff now: refused with 409, which is neither an order nor an issuance failure.
  const backedOff = await postAcme({ host: 'foreign.example.com' });
  assert.equal(backedOff.status, 409);
  assert.equal(backedOff.body.kind, 'backoff');
  assert.match(failed.stderr, /^acmed: http-01 preflight for foreign\.example\.com failed: .*nginx.*; no ACME order was placed$/m);
  assert.equal(pebble.ordersAdded(), orders, 'no order at the CA');
  const show = await acmed.cli(['show', 'foreign.example.com', '--json']);
  const row = JSON.parse(show.stdout) as { status: string; last_error: string };
  assert.equal(row.status, 'failed');
  assert.match(row.last_error, /preflight/);

  const issued = await acmed.cli(['issue', 'good.example.com']);
  assert.equal(issued.code, 0, issued.stderr);
  assert.equal(pebble.ordersAdded(), orders + 1);
  assert.ok(existsSync(join(acmed.storagePath, 'live', 'good.example.com', 'fullchain.pem')));

  const metrics = await new Promise<string>((resolve, reject) => {
    http.get({ socketPath: acmed.socketPath, path: '/metrics' }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
  assert.match(metrics, /^acmed_issuance_failures_total\{name="foreign\.example\.com",reason="preflight"\} 2$/m);
  assert.doesNotMatch(metrics, /^acmed_orders_total\{result="failed"/m, 'a failed preflight is not an order');
});
