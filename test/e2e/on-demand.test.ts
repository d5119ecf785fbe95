// On-demand issuance end to end: a real acmed (bin/acmed) and Pebble. A plain
// HTTP request on acmed's port-80 server for an allowed host without a
// certificate gets its answer at once (301 to https) and a certificate
// shortly after, through the same work queue as everything else; hosts that
// are not allowed, or that ask_url refuses, never reach the CA.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { baseConfig, startAcmed, type AcmedHandle } from '../harness/acmed.js';
import { startPebble, type PebbleHandle } from '../harness/pebble.js';
import { freePort } from '../harness/ports.js';
import { waitFor } from '../harness/wait.js';

let pebble: PebbleHandle;
let httpPort: number;
let dir: string;
let acmed: AcmedHandle | undefined;

before(async () => {
  httpPort = await freePort();
  pebble = await startPebble({ httpPort });
  dir = await mkdtemp(join(tmpdir(), 'acmed-on-demand-'));
});

after(async () => {
  await acmed?.stop();
  await pebble?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function config(onDemand: Record<string, unknown>): Record<string, unknown> {
  return {
    ...baseConfig({ dir, directoryUrl: pebble.directoryUrl, caBundlePath: pebble.caBundlePath, httpPort }),
    domains: ['*.example.com'],
    challenge: { listen: [`127.0.0.1:${httpPort}`], redirect_https: true },
    on_demand: { enabled: true, ...onDemand },
  };
}

/** A plain request to acmed's port-80 server with the Host header given. */
function visit(host: string, path = '/'): Promise<{ status: number; location?: string }> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: httpPort, path, headers: { host }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, location: res.headers.location }));
    }).on('error', reject);
  });
}

function adminGet(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get({ socketPath: acmed!.socketPath, path }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

async function onDemandCount(result: string): Promise<number> {
  const metrics = await adminGet('/metrics');
  return Number(new RegExp(`^acmed_on_demand_requests_total\\{result="${result}"\\} (\\d+)$`, 'm').exec(metrics)?.[1] ?? 0);
}

const live = (name: string) => join(acmed!.storagePath, 'live', name, 'fullchain.pem');

test('a visit to an allowed host without a certificate is redirected at once and issued in the background, once', async () => {
  acmed = await startAcmed(config({}), dir);
  const orders = pebble.ordersAdded();
  assert.deepEqual(await visit('shop.example.com', '/cart?x=1'), { status: 301, location: 'https://shop.example.com/cart?x=1' });
  await waitFor('the on-demand certificate', () => existsSync(live('shop.example.com')), { timeoutMs: 60_000, context: () => acmed!.logs() });
  assert.equal(pebble.ordersAdded(), orders + 1);
  const show = await acmed.cli(['show', 'shop.example.com', '--json']);
  assert.equal((JSON.parse(show.stdout) as { status: string }).status, 'valid');
  // It has a certificate now: further visits start nothing.
  await visit('shop.example.com');
  await waitFor('the second visit counted', async () => (await onDemandCount('has_certificate')) === 1);
  assert.equal(pebble.ordersAdded(), orders + 1);
  assert.equal(await onDemandCount('started'), 1);
});

test('hosts outside domains and hostile Host headers never reach the CA or the store', async () => {
  const orders = pebble.ordersAdded();
  const before = (await readdir(acmed!.storagePath, { recursive: true })).sort();
  const hosts = ['evil.test', 'a.b.example.com', 'example.com', '127.0.0.1', '..', 'a..example.com', '%2e%2e.example.com',
    `${'a'.repeat(64)}.example.com`, '-x.example.com', 'x.example.com.evil.test'];
  for (const host of hosts) {
    const answer = await visit(host);
    assert.ok([301, 400, 404].includes(answer.status), `${host}: ${answer.status}`);
    if (answer.status === 301) assert.equal(answer.location, `https://${host}/`);
  }
  await waitFor('every visit counted', async () => (await onDemandCount('not_allowed')) >= hosts.length - 1);
  assert.equal(pebble.ordersAdded(), orders);
  assert.deepEqual((await readdir(acmed!.storagePath, { recursive: true })).sort(), before);
});

test('with ask_url: issued only when the endpoint answers 2xx, asked with ?domain=<host>', async () => {
  await acmed!.stop();
  const asked: string[] = [];
  const ask = http.createServer((req, res) => {
    const domain = new URL(req.url!, 'http://ask').searchParams.get('domain')!;
    asked.push(domain);
    res.writeHead(domain === 'allowed.example.com' ? 200 : 404).end();
  });
  await new Promise<void>((resolve) => ask.listen(0, '127.0.0.1', resolve));
  try {
    acmed = await startAcmed(config({ ask_url: `http://127.0.0.1:${(ask.address() as { port: number }).port}/check` }), dir);
    const orders = pebble.ordersAdded();
    assert.equal((await visit('denied.example.com')).status, 301);
    await waitFor('ask_url\'s refusal counted', async () => (await onDemandCount('refused_by_ask_url')) === 1);
    assert.deepEqual(asked, ['denied.example.com']);
    assert.equal(pebble.ordersAdded(), orders, 'a refused host is never ordered');
    assert.ok(!existsSync(live('denied.example.com')));

    assert.equal((await visit('allowed.example.com')).status, 301);
    await waitFor('the allowed host\'s certificate', () => existsSync(live('allowed.example.com')), { timeoutMs: 60_000, context: () => acmed!.logs() });
    assert.deepEqual(asked, ['denied.example.com', 'allowed.example.com']);
    assert.equal(pebble.ordersAdded(), orders + 1);
  } finally {
    ask.close();
  }
});

test('max_per_hour: beyond it, new hosts wait and nothing is ordered for them', async () => {
  await acmed!.stop();
  acmed = await startAcmed(config({ max_per_hour: 1 }), dir);
  const orders = pebble.ordersAdded();
  await visit('first.example.com');
  await visit('second.example.com');
  await waitFor('the first host\'s certificate', () => existsSync(live('first.example.com')), { timeoutMs: 60_000, context: () => acmed!.logs() });
  assert.equal(await onDemandCount('rate_limited'), 1);
  assert.equal(pebble.ordersAdded(), orders + 1);
  assert.ok(!existsSync(live('second.example.com')));
  assert.match(acmed!.logs(), /too many new hosts this hour/);
});
