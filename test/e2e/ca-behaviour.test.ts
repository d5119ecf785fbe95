// How acmed behaves against a CA that acts like a real one (validation sleeps,
// nonce rejection) and against one that is not there at all.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../harness/ports.js';
import { startPebble } from '../harness/pebble.js';
import { baseConfig, startAcmed } from '../harness/acmed.js';

test('issues through Pebble with validation sleeps and 30% nonce rejection', { timeout: 120_000 }, async (t) => {
  const httpPort = await freePort();
  const pebble = await startPebble({ httpPort, noSleep: false, nonceReject: 30, env: { PEBBLE_VA_SLEEPTIME: '2' } });
  t.after(() => pebble.stop());
  const dir = await mkdtemp(join(tmpdir(), 'acmed-slow-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const acmed = await startAcmed(baseConfig({ dir, directoryUrl: pebble.directoryUrl, caBundlePath: pebble.caBundlePath, httpPort }), dir);
  t.after(() => acmed.stop());

  const results = await Promise.all(['s1.example.com', 's2.example.com'].map((h) => acmed.cli(['issue', h])));
  for (const r of results) assert.equal(r.code, 0, r.stderr);
  for (const h of ['s1.example.com', 's2.example.com']) {
    assert.ok((await stat(join(acmed.storagePath, 'live', h, 'fullchain.pem'))).size > 0);
  }
});

test('a CA that cannot be reached gives one clear line, and the daemon keeps running', async (t) => {
  const httpPort = await freePort();
  const deadPort = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'acmed-deadca-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const acmed = await startAcmed({
    ...baseConfig({ dir, directoryUrl: `https://127.0.0.1:${deadPort}/dir`, caBundlePath: '/etc/ssl/certs/ca-certificates.crt', httpPort }),
    domains: ['*.example.com'],
  }, dir);
  t.after(() => acmed.stop());

  const result = await acmed.cli(['issue', 'a.example.com']);
  assert.equal(result.code, 1);
  assert.equal(result.stderr.trim().split('\n').length, 1);
  assert.match(result.stderr, new RegExp(`^acmed: ACME order failed: cannot reach the CA at 127\\.0\\.0\\.1:${deadPort}: ECONNREFUSED`));
  const list = await acmed.cli(['list', '--json']);
  assert.equal(list.code, 0, 'the daemon must still answer after a failed order');
  assert.equal(acmed.child.exitCode, null);
});
