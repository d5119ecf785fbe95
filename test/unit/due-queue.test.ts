// The scheduler's queue: one timer for the earliest due certificate, moved
// by rescheduling, never a scan. A fake timer stands in for setTimeout so the
// test moves time instead of sleeping.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DueQueue } from '../../src/renewal/due-queue.js';
import { fakeTimers } from '../harness/manual-clock.js';


test('fires names in due order, each once, with a single armed timer', () => {
  const clock = fakeTimers();
  const fired: string[] = [];
  const q = new DueQueue((name) => fired.push(name), clock.timers);
  const t0 = clock.timers.now();
  q.schedule('c', new Date(t0 + 3_000));
  q.schedule('a', new Date(t0 + 1_000));
  q.schedule('b', new Date(t0 + 2_000));
  assert.deepEqual(clock.armed(), [t0 + 1_000], 'one timer, for the earliest');
  clock.advance(t0 + 1_500);
  assert.deepEqual(fired, ['a']);
  assert.deepEqual(clock.armed(), [t0 + 2_000]);
  clock.advance(t0 + 10_000);
  assert.deepEqual(fired, ['a', 'b', 'c']);
  assert.equal(q.size, 0);
  assert.deepEqual(clock.armed(), []);
});

test('rescheduling moves a name; removing drops it; an earlier entry re-arms the timer', () => {
  const clock = fakeTimers();
  const fired: string[] = [];
  const q = new DueQueue((name) => fired.push(name), clock.timers);
  const t0 = clock.timers.now();
  q.schedule('a', new Date(t0 + 5_000));
  q.schedule('b', new Date(t0 + 6_000));
  q.schedule('a', new Date(t0 + 60_000)); // renewed: due much later
  q.schedule('c', new Date(t0 + 1_000)); // earlier than the armed timer
  assert.deepEqual(clock.armed(), [t0 + 1_000]);
  q.remove('b');
  clock.advance(t0 + 30_000);
  assert.deepEqual(fired, ['c'], 'b was removed, a moved later');
  assert.equal(q.dueAt('a')?.getTime(), t0 + 60_000);
  assert.equal(q.next()?.name, 'a');
  clock.advance(t0 + 60_000);
  assert.deepEqual(fired, ['c', 'a']);
});

test('a time in the past fires at once; 100,000 entries stay ordered', () => {
  const clock = fakeTimers();
  const fired: string[] = [];
  const q = new DueQueue((name) => fired.push(name), clock.timers);
  const t0 = clock.timers.now();
  q.schedule('late', new Date(t0 - 60_000));
  assert.deepEqual(clock.armed(), [t0]);
  clock.advance(t0);
  assert.deepEqual(fired, ['late']);

  fired.length = 0;
  const n = 100_000;
  // A fixed permutation so the order of insertion is not the order of due times.
  for (let i = 0; i < n; i++) q.schedule(`n${(i * 7919) % n}`, new Date(t0 + 1 + ((i * 7919) % n)));
  assert.equal(clock.armed().length, 1);
  clock.advance(t0 + n + 1);
  assert.equal(fired.length, n);
  for (let i = 0; i < n; i++) assert.equal(fired[i], `n${i}`);
});

test('delays longer than setTimeout allows are capped and re-armed on the way', () => {
  const clock = fakeTimers();
  const fired: string[] = [];
  const q = new DueQueue((name) => fired.push(name), clock.timers);
  const t0 = clock.timers.now();
  const farAway = t0 + 60 * 24 * 3_600_000; // 60 days: beyond 2^31-1 ms
  q.schedule('far', new Date(farAway));
  assert.ok(clock.armed()[0] < farAway);
  clock.advance(farAway - 1);
  assert.deepEqual(fired, []);
  clock.advance(farAway);
  assert.deepEqual(fired, ['far']);
});
