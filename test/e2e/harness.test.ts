// Checks the test harness itself: Pebble starts, the counting proxy relays and
// counts, and a real peer (lego) can get a certificate through it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../harness/ports.js';
import { startPebble } from '../harness/pebble.js';
import { startCountingProxy } from '../harness/counting-proxy.js';
import { runLego } from '../../bench/peers.js';

test('pebble + counting proxy + lego issue one certificate', { timeout: 60_000 }, async (t) => {
  const httpPort = await freePort();
  const pebble = await startPebble({ httpPort });
  t.after(() => pebble.stop());
  const proxy = await startCountingProxy({
    target: pebble.acmeUrl,
    targetCa: pebble.ca.certPem,
    tls: await pebble.issueServerCert('proxy'),
  });
  t.after(() => proxy.close());
  const workDir = await mkdtemp(join(tmpdir(), 'acmed-harness-test-'));
  t.after(() => rm(workDir, { recursive: true, force: true }));

  const result = await runLego({
    directoryUrl: `${proxy.url}/dir`,
    caBundlePath: pebble.caBundlePath,
    names: ['lego-1.example.com'],
    httpPort,
    counts: proxy.counts,
    workDir,
  });

  const certPath = result.certPaths[0];
  assert.ok(certPath);
  assert.match(await readFile(certPath, 'utf8'), /-----BEGIN CERTIFICATE-----/);
  const requests = result.requestsPerCert[0] ?? 0;
  assert.ok(requests >= 5 && requests <= 30, `requests per cert: ${requests}`);
  assert.match(await pebble.rootPem(), /^-----BEGIN CERTIFICATE-----/);
});
