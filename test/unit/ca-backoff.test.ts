// The CA's own backoff: faults double the wait, a success clears it, and
// after the wait one order probes while the others wait for its verdict.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CaBackoff, CaUnavailableError } from '../../src/renewal/ca-backoff.js';

test('faults back the CA off, doubling up to the cap; a success clears it', async () => {
  let now = 0;
  const ca = new CaBackoff({ now: () => now, baseMs: 1_000, maxMs: 4_000 });
  const downs: unknown[] = [];
  const ups: unknown[] = [];
  ca.on('down', (s) => downs.push(s));
  ca.on('up', (s) => ups.push(s));
  assert.deepEqual(await ca.admit(), { probe: false });
  const first = ca.fault(new Error('connect ECONNREFUSED'));
  assert.equal(first.until, new Date(1_000).toISOString());
  assert.equal(first.up, false);
  await assert.rejects(ca.admit(), CaUnavailableError);
  now = 1_000;
  assert.deepEqual(await ca.admit(), { probe: true });
  assert.equal(ca.fault(new Error('again')).until, new Date(3_000).toISOString()); // 1 s + 2 s
  now = 3_000;
  await ca.admit();
  assert.equal(ca.fault(new Error('again')).until, new Date(7_000).toISOString()); // 4 s cap
  now = 7_000;
  await ca.admit();
  assert.equal(ca.fault(new Error('again')).until, new Date(11_000).toISOString()); // still 4 s
  assert.equal(downs.length, 1, 'down is reported once per outage');
  ca.success();
  assert.equal(ca.state().up, true);
  assert.equal(ca.state().until, null);
  assert.equal(ups.length, 1);
  assert.equal(ca.backedOff, false);
});

test('after the wait one caller probes and the others wait for its answer', async () => {
  let now = 0;
  const ca = new CaBackoff({ now: () => now, baseMs: 1_000 });
  ca.fault(new Error('down'));
  now = 1_500;
  assert.deepEqual(await ca.admit(), { probe: true });
  let secondAdmitted = false;
  const second = ca.admit().then((r) => { secondAdmitted = true; return r; });
  await new Promise((r) => setImmediate(r));
  assert.equal(secondAdmitted, false, 'waits for the probe');
  ca.success();
  assert.deepEqual(await second, { probe: false });

  // A probe that fails sends the waiting callers into the new backoff.
  ca.fault(new Error('down again'));
  now = 10_000;
  await ca.admit();
  const third = ca.admit();
  ca.fault(new Error('still down'));
  await assert.rejects(third, CaUnavailableError);

  // A probe released without an answer hands the probe on.
  now = 100_000;
  assert.deepEqual(await ca.admit(), { probe: true });
  const fourth = ca.admit();
  ca.release();
  assert.deepEqual(await fourth, { probe: true });
});
