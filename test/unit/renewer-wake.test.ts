// The scheduler over the index: a stored certificate is planned for its
// renewal time from the moment it is loaded (not at the next daily pass), a
// missing one at once, and after a job it is planned again from the outcome:
// the CA's backoff for CA faults, the host's backoff for host failures. The
// clock and timer are fakes the test moves; nothing sleeps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { parseConfig } from '../../src/config/load.js';
import type { ManagedCertificate } from '../../src/config/managed.js';
import { createLogger } from '../../src/log.js';
import { CaBackoffs } from '../../src/renewal/ca-backoffs.js';
import { recordJobEvents } from '../../src/renewal/index-events.js';
import { CertificateIndex } from '../../src/renewal/index.js';
import type { IssueOutcome } from '../../src/renewal/job.js';
import { Renewer } from '../../src/renewal/renewer.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import { makeCertificate } from './storage-contract-cert.js';
import { fakeTimers } from '../harness/manual-clock.js';


const settle = () => new Promise((r) => setImmediate(r));

test('the scheduler wakes for each certificate at its due time and replans after each job', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'acmed-wake-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const bundle = await makeCertificate(dir, ['wake.example.com']); // 30-day lifetime: due with 10 days left
  const storage = createMemoryStorage();
  await storage.putCertificate(bundle);
  const due = Date.parse(bundle.notAfter) - 10 * 24 * 3_600_000;
  const clock = fakeTimers(due - 3_600_000);
  const log = createLogger('silent', new PassThrough());
  const config = parseConfig('account_email: ops@example.com\ntos_accepted: true\ncertificates: [{names: [wake.example.com]}, {names: [new.example.com]}]\nrenewal_schedule: "0 0 1 1 *"\nfail_backoff_minutes: 5\n');
  const index = new CertificateIndex({ storage, log, now: clock.timers.now, policy: () => ({ renewThresholdDays: null }) });
  const ca = new CaBackoffs(() => ['https://ca.test/dir'], { now: clock.timers.now, baseMs: 60_000 });
  const apply = recordJobEvents(index, { policy: () => ({ renewThresholdDays: null }), failBackoffMinutes: () => 5, log, now: clock.timers.now });
  const calls: { name: string; at: number }[] = [];
  const renewer: Renewer = new Renewer({
    config: () => config, index, storage, ca, log, timers: clock.timers,
    engine: () => Promise.reject(new Error('no CA in this test')),
    submit: async (cert: ManagedCertificate) => {
      calls.push({ name: cert.name, at: clock.timers.now() });
      return { issued: false } as IssueOutcome;
    },
  });
  t.after(() => renewer.stop());
  await index.load();
  await index.reconcile(); // the stored certificate has no record yet: reconciling makes it
  await renewer.start();

  // The missing certificate is due at once; the stored one at its renewal time.
  assert.equal(index.get('wake.example.com')?.renewAt, new Date(due).toISOString());
  clock.advance(clock.timers.now());
  await settle();
  assert.deepEqual(calls.map((c) => c.name), ['new.example.com']);
  assert.equal(clock.armed()[0], due, 'one timer, for the stored certificate\'s renewal time');

  // A CA fault: the job comes back when the CA's backoff ends, and no host backoff.
  const caFault = new Error('connect ECONNREFUSED');
  ca.of('https://ca.test/dir').fault(caFault);
  const event = { type: 'failed' as const, name: 'new.example.com', names: ['new.example.com'], error: caFault, kind: 'network', blame: 'ca' as const };
  apply(event);
  renewer.afterJob(event);
  await settle();
  assert.equal(index.get('new.example.com')?.backoff, null);
  const caUntil = Date.parse(ca.state().until!);
  clock.advance(caUntil - 1);
  await settle();
  assert.equal(calls.length, 1);
  clock.advance(caUntil);
  await settle();
  assert.deepEqual(calls.map((c) => c.name), ['new.example.com', 'new.example.com']);

  // A host failure: the job comes back when the host's backoff ends (5 minutes).
  const hostFailure = { type: 'failed' as const, name: 'new.example.com', names: ['new.example.com'], error: new Error('unauthorized'), kind: 'unauthorized', blame: 'host' as const };
  apply(hostFailure);
  await settle();
  renewer.afterJob(hostFailure);
  const failedAt = clock.timers.now();
  clock.advance(failedAt + 5 * 60_000 - 1);
  await settle();
  assert.equal(calls.length, 2);
  clock.advance(failedAt + 5 * 60_000);
  await settle();
  assert.equal(calls.length, 3);

  // The stored certificate is renewed at its due time, not before.
  clock.advance(due - 1);
  await settle();
  assert.equal(calls.filter((c) => c.name === 'wake.example.com').length, 0);
  clock.advance(due);
  await settle();
  const wake = calls.filter((c) => c.name === 'wake.example.com');
  assert.equal(wake.length, 1);
  assert.equal(wake[0].at, due);
});
