// Thousands of generated hostile requests against the three servers a
// daemon exposes (the admin socket, the admin TCP listener, the port-80
// http-01 server), then 150 slow clients holding connections. acmed must not
// crash, answer no 5xx, stay within its memory, keep answering a real http-01
// token within 50 ms, write nothing outside its storage path and send no
// ACME request for a host it may not order.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { freePort } from '../harness/ports.js';
import { startPebble, type PebbleHandle } from '../harness/pebble.js';
import { baseConfig, startAcmed, type AcmedHandle } from '../harness/acmed.js';
import { rawRequest, slowClient, type RawAnswer, type RawTarget } from '../harness/raw-http.js';
import { parseConfig } from '../../src/config/load.js';
import { createStorage } from '../../src/storage/index.js';
import { keys } from '../../src/storage/keys.js';
import { stringify } from 'yaml';

const TOKEN = 'hostileTestToken_0123456789abcdefXYZ';
const KEY_AUTH = `${TOKEN}.thumbprint-of-the-account-key`;
const ADMIN_TOKEN = '5f1d2c3b4a5968778695a4b3c2d1e0f1';

let pebble: PebbleHandle;
let dir: string;
let acmed: AcmedHandle;
let httpPort: number;
let adminPort: number;

before(async () => {
  httpPort = await freePort();
  adminPort = await freePort();
  pebble = await startPebble({ httpPort });
  dir = await mkdtemp(join(tmpdir(), 'acmed-hostile-'));
  const tokenFile = join(dir, 'admin.token');
  await writeFile(tokenFile, `${ADMIN_TOKEN}\n`, { mode: 0o600 });
  const config = {
    ...baseConfig({ dir, directoryUrl: pebble.directoryUrl, caBundlePath: pebble.caBundlePath, httpPort }),
    log_level: 'warn',
    domains: ['*.example.com'],
    admin: { socket: join(dir, 'admin.sock'), listen: `127.0.0.1:${adminPort}`, token_file: tokenFile },
  };
  // A token an order of the last run left: the daemon restores it before port 80 opens.
  const store = await createStorage(parseConfig(stringify(config)));
  await store.set(keys.challenge(TOKEN), KEY_AUTH, { ttlMs: 15 * 60_000 });
  await store.close();
  acmed = await startAcmed(config, dir);
});

after(async () => {
  await acmed?.stop();
  await pebble?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** A small deterministic PRNG (mulberry32), so a failure can be replayed. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const HOSTILE_HOSTS = [
  '../etc/passwd', '..', '.', '', ' ', 'a/b.example.com', 'bücher.example.com', 'ünïcödé', '\u202eevil.example.com', 'a\u0000b.example.com',
  `${'a'.repeat(64)}.example.com`, `${'a.'.repeat(130)}example.com`, 'x'.repeat(10_000), '*.example.com', '*', 'example.com', 'evil.example.net',
  '127.0.0.1', '[::1]', 'localhost', 'a..example.com', '-a.example.com', 'a.example.com:80', 'a.example.com/../../x', '%2e%2e', 'a example.com',
];
const PATHS = [
  '/', '/acme', '/acme/', '/acme/certificates', '/acme/certificates/%', '/acme/certificates/%ZZ', '/acme/certificates/%E0%A4%A',
  '/acme/certificates/..%2F..%2Fetc%2Fpasswd', '/acme/certificates/%2e%2e', '/acme/certificates/%00', '/acme/certificates/a.example.com/x',
  '/.well-known/acme-challenge/', '/.well-known/acme-challenge/../../etc/passwd', '/.well-known/acme-challenge/%2e%2e%2fstate',
  `/.well-known/acme-challenge/${'A'.repeat(300)}`, '/.well-known/acme-challenge/%ZZ', '/healthz', '/metrics?x=%', '//etc/passwd', '/\u00e9', '*',
  '/acme/certificates?limit=-1', '/acme/certificates?limit=99999999999', '/acme/certificates?expiring_within=forever', '/acme/certificates?after=%',
];
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'TRACE', 'CONNECT', 'FOO', 'get', 'G\u00c9T'];

/** One hostile request as raw bytes; `auth` adds the admin bearer token (TCP listener). */
function hostileRequest(next: () => number, auth: boolean): string {
  const pick = <T>(list: T[]) => list[Math.floor(next() * list.length)];
  const authLine = auth ? `Authorization: Bearer ${ADMIN_TOKEN}\r\n` : '';
  const host = pick(HOSTILE_HOSTS);
  switch (Math.floor(next() * 10)) {
    case 0: return pick(['GET\r\n\r\n', 'GARBAGE / HTTP/1.1\r\n\r\n', 'GET / HTTP/9.9\r\n\r\n', '\x00\x01\x02\x03\r\n\r\n', 'GET /\n\n', 'GET / HTTP/1.1\r\nHost\r\n\r\n',
      'GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n', 'POST /acme HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', ' / HTTP/1.1\r\n\r\n', 'GET / HTTP/1.1\r\n: x\r\n\r\n']);
    case 1: return `GET ${pick(PATHS)} HTTP/1.1\r\nHost: x\r\n${authLine}X-Big: ${'a'.repeat(100 * 1024)}\r\n\r\n`;
    case 2: return `POST /acme HTTP/1.1\r\nHost: x\r\n${authLine}Content-Type: application/json\r\nContent-Length: ${1024 * 1024}\r\n\r\n${'{'.repeat(1024 * 1024)}`;
    case 3: return withBody('POST', '/acme', pick(['{host:', '[]', 'null', '"x"', '{"host": 1}', '{"host": {"$ne": null}}', '\u0000', '{"host":"a.example.com"'.repeat(50)]), authLine);
    case 4:
    case 5: return withBody(pick(['POST', 'PATCH']), pick(['/acme', '/acme?wait=true']), JSON.stringify({ host, force: next() < 0.5, test_http_challenge_flow: next() < 0.2 }), authLine);
    case 6: return withBody('POST', '/acme', `host=${encodeURIComponent(host)}`, authLine, 'application/x-www-form-urlencoded');
    default: return `${pick(METHODS)} ${pick(PATHS)} HTTP/1.1\r\nHost: ${host}\r\n${authLine}\r\n`;
  }
}

function withBody(method: string, path: string, body: string, authLine: string, type = 'application/json'): string {
  return `${method} ${path} HTTP/1.1\r\nHost: x\r\n${authLine}Content-Type: ${type}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

async function filesUnder(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries.filter((e) => !e.isDirectory()).map((e) => relative(root, join(e.parentPath, e.name))).sort();
}

function rssMb(pid: number): Promise<number> {
  return readFile(`/proc/${pid}/status`, 'utf8').then((s) => Number(/VmRSS:\s+(\d+)/.exec(s)![1]) / 1024);
}

async function tokenLatencyMs(): Promise<number> {
  const started = performance.now();
  const resp = await fetch(`http://127.0.0.1:${httpPort}/.well-known/acme-challenge/${TOKEN}`);
  assert.equal(resp.status, 200);
  assert.equal(await resp.text(), KEY_AUTH);
  return performance.now() - started;
}

test('3,600 generated hostile requests: no crash, no 5xx, no ACME order, nothing written outside storage, memory bounded', async () => {
  const before = await filesUnder(dir);
  const rssBefore = await rssMb(acmed.child.pid!);
  const next = rng(20261206);
  const targets: [string, RawTarget, boolean][] = [
    ['admin socket', { path: acmed.socketPath }, false],
    ['admin TCP with token', { port: adminPort }, true],
    ['admin TCP without token', { port: adminPort }, false],
    ['port 80', { port: httpPort }, false],
  ];
  const answers = new Map<string, Map<RawAnswer, number>>();
  for (const [name, target, auth] of targets) {
    const counts = new Map<RawAnswer, number>();
    answers.set(name, counts);
    // 900 each, 20 at a time.
    for (let batch = 0; batch < 45; batch++) {
      const results = await Promise.all(Array.from({ length: 20 }, () => rawRequest(target, hostileRequest(next, auth))));
      for (const r of results) counts.set(r, (counts.get(r) ?? 0) + 1);
    }
  }
  const report = [...answers].map(([name, counts]) => `${name}: ${[...counts].map(([k, v]) => `${k}×${v}`).join(' ')}`).join('\n');
  for (const [name, counts] of answers) {
    const fives = [...counts].filter(([k]) => typeof k === 'number' && k >= 500);
    assert.deepEqual(fives, [], `${name} answered 5xx:\n${report}`);
    assert.equal(counts.get('timeout') ?? 0, 0, `${name}: a request got no answer and no close within 15 s:\n${report}`);
  }
  assert.ok((answers.get('admin TCP without token')!.get(401) ?? 0) > 400, `the listener asked for the token:\n${report}`);
  assert.ok((answers.get('admin socket')!.get(413) ?? 0) > 0, `1 MB bodies get 413:\n${report}`);
  assert.ok((answers.get('admin socket')!.get(431) ?? 0) > 0, `100 KB headers get 431:\n${report}`);

  assert.equal(acmed.child.exitCode, null, 'acmed is still running');
  assert.equal((await fetch(`http://127.0.0.1:${adminPort}/healthz`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).status, 200);
  assert.doesNotMatch(pebble.logs(), /Added order/, 'no host in the corpus may be ordered: no ACME order at all');
  const added = (await filesUnder(dir)).filter((f) => !before.includes(f) && !f.startsWith('data/'));
  assert.deepEqual(added, [], 'files written outside the storage path');
  const grown = (await rssMb(acmed.child.pid!)) - rssBefore;
  assert.ok(grown < 150, `RSS grew by ${grown.toFixed(0)} MB`);
});

test('150 slow clients on the three servers are cut off by the timeouts, while a real token is answered within 50 ms', async () => {
  const targets: RawTarget[] = [{ port: httpPort }, { port: adminPort }, { path: acmed.socketPath }];
  await tokenLatencyMs(); // the test's own HTTP client warms up first: its first connection is not acmed's latency
  const slow = targets.flatMap((target) => [
    // Headers a byte every 100 ms (never finished within the timeouts)...
    ...Array.from({ length: 25 }, () => slowClient(target, '', `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ${'a'.repeat(400)}\r\n\r\n`, 100, 40_000)),
    // ...and whole headers, then a body a byte every 100 ms.
    ...Array.from({ length: 25 }, () => slowClient(target,
      `POST /acme HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n`,
      '{'.repeat(1000), 100, 40_000)),
  ]);
  await Promise.all(slow.map((c) => c.connected));
  const latencies: number[] = [];
  for (let i = 0; i < 20; i++) {
    latencies.push(await tokenLatencyMs());
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const results = await Promise.all(slow.map((c) => c.result));
  const worst = Math.max(...latencies);
  assert.ok(worst < 50, `token answers during the slow clients took up to ${worst.toFixed(1)} ms: ${latencies.map((l) => l.toFixed(1)).join(', ')}`);
  const held = results.filter((r) => r.closedAfterMs === null);
  assert.equal(held.length, 0, `${held.length} slow connections were never closed by the server`);
  const longest = Math.max(...results.map((r) => r.closedAfterMs!));
  assert.ok(longest < 20_000, `a slow client was held ${longest} ms`);
  assert.ok(results.every((r) => r.answer === null || r.answer < 500), 'no 5xx for a slow client');
  assert.equal(acmed.child.exitCode, null);
});
