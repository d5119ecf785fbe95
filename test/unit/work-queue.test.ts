// The one bounded work queue: never more than its width at once, jobs for
// the same name joined, a resize takes effect at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkQueue } from '../../src/renewal/work-queue.js';

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej; });
  return { promise, resolve, reject };
}

test('runs at most width jobs at once and starts the next as one ends', async () => {
  const q = new WorkQueue<string>(2);
  const gates = new Map<string, ReturnType<typeof deferred<string>>>();
  let running = 0;
  let peak = 0;
  const job = (name: string) => q.submit(name, async () => {
    running++;
    peak = Math.max(peak, running);
    const gate = deferred<string>();
    gates.set(name, gate);
    try {
      return await gate.promise;
    } finally {
      running--;
    }
  });
  const results = ['a', 'b', 'c', 'd', 'e'].map(job);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(q.running.sort(), ['a', 'b']);
  assert.deepEqual(q.pending.sort(), ['a', 'b', 'c', 'd', 'e']);
  gates.get('a')!.resolve('A');
  assert.equal(await results[0], 'A');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(q.running.sort(), ['b', 'c']);
  for (const name of ['b', 'c', 'd', 'e']) {
    await new Promise((r) => setImmediate(r));
    gates.get(name)!.resolve(name.toUpperCase());
    await results[['a', 'b', 'c', 'd', 'e'].indexOf(name)];
  }
  assert.equal(peak, 2);
  assert.deepEqual(q.pending, []);
});

test('a job for a name already queued or running is joined, not repeated', async () => {
  const q = new WorkQueue<number>(1);
  let calls = 0;
  const gate = deferred<number>();
  const first = q.submit('a', () => { calls++; return gate.promise; });
  const second = q.submit('a', () => { calls++; return Promise.resolve(-1); });
  assert.equal(first, second);
  gate.resolve(7);
  assert.equal(await second, 7);
  assert.equal(calls, 1);
  // Once settled, the name can be queued again.
  assert.equal(await q.submit('a', async () => { calls++; return 8; }), 8);
  assert.equal(calls, 2);
});

test('failures reject only their own caller; resize and cancelWaiting', async () => {
  const q = new WorkQueue<string>(1);
  const gate = deferred<string>();
  const blocked = q.submit('slow', () => gate.promise);
  const failing = q.submit('bad', async () => { throw new Error('boom'); });
  const waiting = q.submit('later', async () => 'ran');
  q.resize(3); // frees slots at once
  await assert.rejects(failing, /boom/);
  assert.equal(await waiting, 'ran');
  const never = q.submit('x', async () => 'no');
  const q2 = new WorkQueue<string>(0);
  const stuck = q2.submit('y', async () => 'no');
  q2.cancelWaiting((name) => new Error(`cancelled ${name}`));
  await assert.rejects(stuck, /cancelled y/);
  gate.resolve('done');
  assert.equal(await blocked, 'done');
  assert.equal(await never, 'no');
});
