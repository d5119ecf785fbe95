// The renewal loop wakes by itself for a certificate due before the next
// scheduled pass (short-lived certificates), instead of waiting for it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { parseConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import { Renewer } from '../../src/renewal/renewer.js';
import type { Issuer } from '../../src/daemon/issuer.js';
import type { ManagedCertificate } from '../../src/config/managed.js';
import { waitFor } from '../harness/wait.js';
import { makeCertificate } from './storage-contract-cert.js';

test('a certificate due before the next scheduled pass wakes the loop at its due time', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'acmed-wake-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const bundle = await makeCertificate(dir, ['wake.example.com']); // 30-day lifetime: due with 10 days left
  const storage = createMemoryStorage();
  await storage.putCertificate(bundle);
  const due = Date.parse(bundle.notAfter) - 10 * 24 * 3_600_000;
  // The clock runs in real time, starting 1.5 s before the certificate is due.
  const offset = due - 1_500 - Date.now();
  const now = () => Date.now() + offset;

  const calls: { cert: ManagedCertificate; at: number }[] = [];
  const issuer = {
    stopping: false,
    async issue(cert: ManagedCertificate) {
      calls.push({ cert, at: now() });
      return { issued: false };
    },
  } as unknown as Issuer;
  const config = parseConfig('account_email: ops@example.com\ntos_accepted: true\ncertificates: [{names: [wake.example.com]}]\nrenewal_schedule: "0 0 1 1 *"\n');
  const renewer = new Renewer({
    config: () => config,
    storage,
    issuer,
    engine: () => Promise.reject(new Error('no CA in this test')),
    log: createLogger('silent', new PassThrough()),
    now,
  });
  renewer.start();
  t.after(() => renewer.stop());

  const first = await renewer.pass();
  assert.equal(first.notDue, 1);
  assert.equal(calls.length, 0);
  assert.equal(renewer.dueAt('wake.example.com')?.getTime(), due);

  await waitFor('the wake-up pass', () => calls.length > 0, { timeoutMs: 10_000 });
  assert.equal(calls[0].cert.name, 'wake.example.com');
  assert.ok(calls[0].at >= due, 'woke no earlier than the due time');
});
