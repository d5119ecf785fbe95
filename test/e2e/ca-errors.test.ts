// A CA that rate-limits or fails: a stand-in in front of Pebble answers
// newOrder with 429 (Retry-After) or 500. acmed reports one clear line, keeps
// the problem type, backs the host off for at least the Retry-After, and
// writes nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../harness/ports.js';
import { startPebble, type PebbleHandle } from '../harness/pebble.js';
import { startCountingProxy, type CountingProxy, type ProxyReply } from '../harness/counting-proxy.js';
import { baseConfig, startAcmed, type AcmedHandle } from '../harness/acmed.js';
import { waitFor } from '../harness/wait.js';

let pebble: PebbleHandle;
let proxy: CountingProxy;
let acmed: AcmedHandle;
let dir: string;
/** What newOrder answers next: null relays to Pebble. */
let failure: { status: number; type: string; retryAfter?: string } | null = null;

before(async () => {
  const httpPort = await freePort();
  pebble = await startPebble({ httpPort, nonceReject: 0 });
  proxy = await startCountingProxy({
    target: pebble.acmeUrl,
    targetCa: pebble.ca.certPem,
    tls: await pebble.issueServerCert('ca-errors'),
    async handle(req, forward): Promise<ProxyReply> {
      if (!(failure && req.method === 'POST' && req.path === '/order-plz')) return forward();
      const nonce = await forward({ method: 'HEAD', path: '/nonce-plz', body: Buffer.alloc(0) });
      const problem = { type: `urn:ietf:params:acme:error:${failure.type}`, detail: `stand-in says ${failure.type}`, status: failure.status };
      return {
        status: failure.status,
        headers: {
          'content-type': 'application/problem+json',
          'replay-nonce': String(nonce.headers['replay-nonce']),
          ...(failure.retryAfter ? { 'retry-after': failure.retryAfter } : {}),
        },
        body: JSON.stringify(problem),
      };
    },
  });
  dir = await mkdtemp(join(tmpdir(), 'acmed-caerr-'));
  acmed = await startAcmed(baseConfig({ dir, directoryUrl: `${proxy.url}/dir`, caBundlePath: pebble.caBundlePath, httpPort }), dir);
});

after(async () => {
  await acmed?.stop();
  await proxy?.close();
  await pebble?.stop();
  await rm(dir, { recursive: true, force: true });
});

function postAcme(host: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: any }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: acmed.socketPath, method: 'POST', path: '/acme', headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(JSON.stringify({ host }));
  });
}

test('rate limited: one clear line, 429 with Retry-After, backoff at least that long, nothing written', async () => {
  failure = { status: 429, type: 'rateLimited', retryAfter: '7200' };
  const started = Date.now();
  const cli = await acmed.cli(['issue', 'limited.example.com']);
  assert.equal(cli.code, 1);
  assert.equal(cli.stderr.trim().split('\n').length, 1);
  assert.match(cli.stderr, /^acmed: ACME order failed: rateLimited \(HTTP 429\): stand-in says rateLimited/);
  assert.ok(!existsSync(join(acmed.storagePath, 'live', 'limited.example.com')));

  // The failing name shows up in list/show although it has no certificate yet.
  const show = await acmed.cli(['show', 'limited.example.com', '--json']);
  assert.equal(show.code, 0, show.stderr);
  const row = JSON.parse(show.stdout);
  assert.equal(row.status, 'failed');
  assert.equal(row.valid, false);
  assert.equal(row.failures, 1);
  assert.match(row.last_error, /rateLimited/);
  assert.ok(Date.parse(row.backoff_until) >= started + 7200_000 - 5_000);
  // The host waits out the CA's Retry-After (2 h), longer than fail_backoff_minutes (5).
  failure = null;
  const again = await postAcme('limited.example.com');
  assert.equal(again.status, 409);
  assert.equal(again.body.kind, 'backoff');
  assert.ok(Date.parse(again.body.backoff_until) >= started + 7200_000 - 5_000, again.body.backoff_until);
  assert.ok(Number(again.headers['retry-after']) > 7000);
});

test('a CA answering 500: reported as serverInternal, the CA (not the host) backs off, and the host is issued by itself once the CA answers', async () => {
  failure = { status: 500, type: 'serverInternal' };
  const api = await postAcme('broken.example.com');
  // One request answered 500 is retried inside the order; only a CA that keeps failing fails it.
  assert.equal(api.status, 502);
  assert.equal(api.body.kind, 'serverInternal');
  assert.equal(api.body.problem.detail, 'stand-in says serverInternal');
  assert.match(api.body.message, /^ACME order failed: serverInternal \(HTTP 500\)/);

  // While the CA is in backoff, orders are refused at once with when it will be tried again.
  const refused = await postAcme('fine.example.com');
  assert.equal(refused.status, 503);
  assert.equal(refused.body.kind, 'ca_unavailable');
  assert.ok(Number(refused.headers['retry-after']) >= 1);
  const listed = await acmed.cli(['list', '--json']);
  assert.match(listed.stderr, /CA unreachable/);
  const broken = (JSON.parse(listed.stdout) as { host: string; failures: number }[]).find((r) => r.host === 'broken.example.com');
  assert.equal(broken?.failures ?? 0, 0, 'a CA fault is no failure of the host');

  failure = null;
  // Nobody asks again: both names come once the CA's backoff (2 s) is over.
  await waitFor('both certificates after the CA recovers', () =>
    existsSync(join(acmed.storagePath, 'live', 'fine.example.com', 'fullchain.pem'))
    && existsSync(join(acmed.storagePath, 'live', 'broken.example.com', 'fullchain.pem')), { timeoutMs: 30_000 });
  const ok = await acmed.cli(['issue', 'fine.example.com']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(acmed.child.exitCode, null);
});
