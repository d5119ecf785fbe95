// pollUntil: stops when done, sits out Retry-After, gives up at its deadline,
// and lets a caller end backoff sleeps early on a sign of progress.
// Timing checks are lower bounds (a timer never fires early) or generous
// upper bounds, so a busy machine does not make them flaky.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pollUntil, type PollResult } from '../../src/acme/poll.js';
import { AcmeTimeoutError } from '../../src/acme/errors.js';

/** A fetchOnce that replays `script` (the last entry repeats) and records when it was called. */
function scripted<T>(script: PollResult<T>[]) {
  const calls: number[] = [];
  const fetchOnce = async (): Promise<PollResult<T>> => {
    calls.push(performance.now());
    return script[Math.min(calls.length - 1, script.length - 1)];
  };
  return { fetchOnce, calls };
}

test('returns the first value that is done, and stops fetching', async () => {
  const { fetchOnce, calls } = scripted([{ value: 'pending' }, { value: 'processing' }, { value: 'valid' }, { value: 'never' }]);
  const seen: string[] = [];
  const result = await pollUntil(fetchOnce, (v) => {
    seen.push(v);
    return v === 'valid';
  }, { firstDelayMs: 1, maxDelayMs: 5 });
  assert.equal(result, 'valid');
  assert.equal(calls.length, 3);
  assert.deepEqual(seen, ['pending', 'processing', 'valid']);
});

test('a value that is done at once costs one fetch', async () => {
  const { fetchOnce, calls } = scripted([{ value: { status: 'valid' } }]);
  const result = await pollUntil(fetchOnce, (v) => v.status === 'valid', { firstDelayMs: 1 });
  assert.deepEqual(result, { status: 'valid' });
  assert.equal(calls.length, 1);
});

test('honours retryAfterMs from a fetch before the next one', async () => {
  const { fetchOnce, calls } = scripted([
    { value: 'pending', retryAfterMs: 400 },
    { value: 'pending' },
    { value: 'valid' },
  ]);
  const result = await pollUntil(fetchOnce, (v) => v === 'valid', { firstDelayMs: 1, maxDelayMs: 5, timeoutMs: 30_000 });
  assert.equal(result, 'valid');
  assert.equal(calls.length, 3);
  const afterRetryAfter = calls[1] - calls[0];
  const afterBackoff = calls[2] - calls[1];
  assert.ok(afterRetryAfter >= 390, `waited only ${afterRetryAfter.toFixed(0)} ms after Retry-After: 400 ms`);
  assert.ok(afterRetryAfter < 10_000, `waited ${afterRetryAfter.toFixed(0)} ms`);
  // without a Retry-After the next wait goes back to the (tiny) backoff
  assert.ok(afterBackoff < afterRetryAfter, `${afterBackoff.toFixed(0)} ms vs ${afterRetryAfter.toFixed(0)} ms`);
});

test('throws AcmeTimeoutError after timeoutMs', async () => {
  const { fetchOnce, calls } = scripted([{ value: 'pending' }]);
  const started = performance.now();
  await assert.rejects(
    pollUntil(fetchOnce, (v) => v === 'valid', { firstDelayMs: 10, maxDelayMs: 20, timeoutMs: 250, what: 'order 42' }),
    (err: unknown) => {
      assert.ok(err instanceof AcmeTimeoutError);
      assert.equal(err.code, 'ACME_TIMEOUT');
      assert.match(err.message, /order 42 did not settle/);
      return true;
    },
  );
  const elapsed = performance.now() - started;
  assert.ok(elapsed >= 240, `gave up after ${elapsed.toFixed(0)} ms, before timeoutMs`);
  assert.ok(elapsed < 10_000, `gave up only after ${elapsed.toFixed(0)} ms`);
  assert.ok(calls.length >= 2, `fetched ${calls.length} times`);
});

test('a Retry-After longer than the deadline ends in a timeout at the deadline, not after the Retry-After', async () => {
  const { fetchOnce, calls } = scripted([{ value: 'pending', retryAfterMs: 10 * 60_000 }]);
  const started = performance.now();
  await assert.rejects(
    pollUntil(fetchOnce, (v) => v === 'valid', { firstDelayMs: 1, timeoutMs: 200 }),
    AcmeTimeoutError,
  );
  const elapsed = performance.now() - started;
  assert.ok(elapsed < 10_000, `waited ${elapsed.toFixed(0)} ms`);
  // at most one last look at the deadline
  assert.ok(calls.length >= 1 && calls.length <= 2, `fetched ${calls.length} times`);
});

test('initialWait replaces the first sleep', async () => {
  const { fetchOnce, calls } = scripted([{ value: 'valid' }]);
  let release!: () => void;
  const gate = new Promise<void>((resolve) => { release = resolve; });
  let waited = 0;
  const polling = pollUntil(fetchOnce, (v) => v === 'valid', {
    firstDelayMs: 60_000, // would dominate if it were still slept before the first fetch
    initialWait: () => {
      waited++;
      return gate;
    },
  });
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(waited, 1);
  assert.equal(calls.length, 0, 'no fetch before initialWait settles');
  release();
  const outcome = await Promise.race([
    polling,
    new Promise((r) => setTimeout(r, 10_000).unref()).then(() => 'stuck'),
  ]);
  assert.equal(outcome, 'valid');
  assert.equal(calls.length, 1);
  assert.equal(waited, 1, 'initialWait is used once, only before the first fetch');
});

test('initialWait is used only once; later waits are the backoff', async () => {
  const { fetchOnce, calls } = scripted([{ value: 'pending' }, { value: 'pending' }, { value: 'valid' }]);
  let waited = 0;
  const result = await pollUntil(fetchOnce, (v) => v === 'valid', {
    firstDelayMs: 1,
    initialWait: async () => { waited++; },
  });
  assert.equal(result, 'valid');
  assert.equal(waited, 1);
  assert.equal(calls.length, 3);
});

test('an error from a fetch propagates and stops polling', async () => {
  let calls = 0;
  const boom = new Error('CA unreachable');
  await assert.rejects(pollUntil(async () => {
    calls++;
    throw boom;
  }, () => true, { firstDelayMs: 1 }), (err) => err === boom);
  assert.equal(calls, 1);
});

test('backoffWait replaces the backoff sleeps and may end them early (the CA was seen at work)', async () => {
  const { fetchOnce, calls } = scripted([{ value: 'pending' }, { value: 'pending' }, { value: 'valid' }]);
  const asked: number[] = [];
  const started = performance.now();
  const result = await pollUntil(fetchOnce, (v) => v === 'valid', {
    firstDelayMs: 60_000, // a backoff that would be slept in full
    maxDelayMs: 60_000,
    initialWait: async () => {},
    backoffWait: async (ms) => { asked.push(ms); }, // the sign came at once
  });
  assert.equal(result, 'valid');
  assert.equal(calls.length, 3);
  assert.equal(asked.length, 2, 'one backoffWait per wait after the first fetch');
  assert.ok(asked.every((ms) => ms >= 60_000), `asked ${asked.join(', ')}`);
  assert.ok(performance.now() - started < 10_000);
});

test('a Retry-After is sat out in full, not handed to backoffWait', async () => {
  const { fetchOnce, calls } = scripted([{ value: 'pending', retryAfterMs: 300 }, { value: 'valid' }]);
  let cutShort = 0;
  const result = await pollUntil(fetchOnce, (v) => v === 'valid', {
    firstDelayMs: 1,
    initialWait: async () => {},
    backoffWait: async () => { cutShort++; },
  });
  assert.equal(result, 'valid');
  assert.equal(cutShort, 0);
  const waited = calls[1] - calls[0];
  assert.ok(waited >= 290, `waited only ${waited.toFixed(0)} ms after Retry-After: 300 ms`);
});
