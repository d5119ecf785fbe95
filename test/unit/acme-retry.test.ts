// Retry policy for single ACME requests: which faults are retried, how often,
// how long apart, and that an abort ends it at once. No network, no real sleeps.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { AcmeNetworkError, AcmeProblemError, AcmeTimeoutError } from '../../src/acme/errors.js';
import {
  BAD_NONCE_RETRIES, MAX_RETRY_AFTER_IN_ORDER_MS, STALE_CONNECTION_RETRIES, TRANSIENT_RETRY_DELAYS_MS, isTransient, retryDelay, withTransientRetry,
} from '../../src/acme/retry.js';

const problem = (type: string, status: number, retryAfterMs?: number) =>
  new AcmeProblemError({ type: `urn:ietf:params:acme:error:${type}`, detail: `${type} detail` }, status, 'https://ca.test/x', retryAfterMs);
const reset = () => new AcmeNetworkError('cannot reach the CA at ca.test: ECONNRESET');
/** A reset on a kept-alive connection before any answer, as the transport reports it. */
const staleReset = () => new AcmeNetworkError('cannot reach the CA at ca.test: ECONNRESET', undefined, true);

/** A send() that fails with each error in turn, then answers 'ok'; counts calls. */
function flaky(...errors: unknown[]) {
  const calls = { n: 0 };
  const send = async () => {
    const err = errors[calls.n++];
    if (err) throw err;
    return 'ok';
  };
  return { send, calls };
}

/** A sleep that only records what it was asked to wait. */
function recordingSleep() {
  const waits: number[] = [];
  return { waits, sleep: async (ms: number) => { waits.push(ms); } };
}

describe('withTransientRetry', () => {
  test('a dropped connection and a 5xx are retried on the default schedule, then it succeeds', async () => {
    const { send, calls } = flaky(reset(), problem('serverInternal', 500), new AcmeNetworkError('request timed out'));
    const { waits, sleep } = recordingSleep();
    const retries: number[] = [];
    assert.equal(await withTransientRetry(send, { sleep, onRetry: (r) => retries.push(r.attempt) }), 'ok');
    assert.equal(calls.n, 4);
    assert.deepEqual(waits, [250, 1_000, 3_000]);
    assert.deepEqual([...TRANSIENT_RETRY_DELAYS_MS], [250, 1_000, 3_000]);
    assert.deepEqual(retries, [1, 2, 3]);
  });

  test('gives up after three retries with the last error', async () => {
    const last = problem('serverInternal', 503);
    const { send, calls } = flaky(reset(), reset(), reset(), last, reset());
    const { waits, sleep } = recordingSleep();
    await assert.rejects(withTransientRetry(send, { sleep }), (err) => err === last);
    assert.equal(calls.n, 4);
    assert.equal(waits.length, 3);
  });

  test('4xx problems are final at once, badNonce excepted', async () => {
    for (const [type, status] of [['unauthorized', 403], ['rateLimited', 429], ['rejectedIdentifier', 400], ['malformed', 404], ['accountDoesNotExist', 400]] as const) {
      const err = problem(type, status);
      const { send, calls } = flaky(err);
      const { waits, sleep } = recordingSleep();
      await assert.rejects(withTransientRetry(send, { sleep }), (e) => e === err);
      assert.equal(calls.n, 1, type);
      assert.deepEqual(waits, [], type);
    }
    const { send, calls } = flaky(problem('badNonce', 400));
    assert.equal(await withTransientRetry(send, { sleep: recordingSleep().sleep }), 'ok');
    assert.equal(calls.n, 2);
  });

  test('badNonce has a budget of its own, resent at once: it neither uses up nor is cut short by the fault retries', async () => {
    const nonce = () => problem('badNonce', 400);
    // Three dropped connections use the whole fault schedule; the badNonce after them is still resent.
    const after = flaky(reset(), reset(), reset(), nonce(), nonce());
    const { waits, sleep } = recordingSleep();
    assert.equal(await withTransientRetry(after.send, { sleep }), 'ok');
    assert.equal(after.calls.n, 6);
    assert.deepEqual(waits, [250, 1_000, 3_000], 'no wait before a badNonce resend');
    // And a run of refused nonces leaves the fault schedule whole.
    const before = flaky(nonce(), nonce(), reset(), nonce(), reset(), reset());
    assert.equal(await withTransientRetry(before.send, { sleep: recordingSleep().sleep }), 'ok');
    assert.equal(before.calls.n, 7);
    // Bounded all the same.
    const endless = flaky(...Array.from({ length: 20 }, nonce));
    await assert.rejects(withTransientRetry(endless.send, { sleep: recordingSleep().sleep }), /badNonce/);
    assert.equal(endless.calls.n, 1 + BAD_NONCE_RETRIES);
  });

  test('a reset on a kept-alive connection is resent at once on a budget of its own; past it, it is a fault like any other', async () => {
    // Stale pooled connections first, then the whole fault schedule: still answered.
    const mixed = flaky(staleReset(), staleReset(), reset(), staleReset(), reset(), reset());
    const { waits, sleep } = recordingSleep();
    assert.equal(await withTransientRetry(mixed.send, { sleep }), 'ok');
    assert.equal(mixed.calls.n, 7);
    assert.deepEqual(waits, [250, 1_000, 3_000], 'no wait before resending on another connection');
    // Bounded: once the budget is spent, stale resets take the fault schedule and then give up.
    const endless = flaky(...Array.from({ length: 20 }, staleReset));
    const bounded = recordingSleep();
    await assert.rejects(withTransientRetry(endless.send, { sleep: bounded.sleep }), /ECONNRESET/);
    assert.equal(endless.calls.n, 1 + STALE_CONNECTION_RETRIES + TRANSIENT_RETRY_DELAYS_MS.length);
    assert.deepEqual(bounded.waits, [250, 1_000, 3_000]);
    // delaysMs [] still means one send.
    const once = flaky(staleReset());
    await assert.rejects(withTransientRetry(once.send, { delaysMs: [] }), /ECONNRESET/);
    assert.equal(once.calls.n, 1);
  });

  test('errors that are not ACME errors are not retried', async () => {
    const { send, calls } = flaky(new TypeError('bug'));
    await assert.rejects(withTransientRetry(send, { sleep: recordingSleep().sleep }), TypeError);
    assert.equal(calls.n, 1);
  });

  test('delaysMs [] sends once', async () => {
    const { send, calls } = flaky(reset());
    await assert.rejects(withTransientRetry(send, { delaysMs: [] }), AcmeNetworkError);
    assert.equal(calls.n, 1);
  });

  test('a short Retry-After on a 5xx stretches the wait; a long one ends the retries', async () => {
    const short = flaky(problem('serverInternal', 503, 2_000));
    const shortSleep = recordingSleep();
    assert.equal(await withTransientRetry(short.send, { sleep: shortSleep.sleep }), 'ok');
    assert.deepEqual(shortSleep.waits, [2_000]);

    const long = problem('serverInternal', 503, MAX_RETRY_AFTER_IN_ORDER_MS + 1);
    const longer = flaky(long);
    await assert.rejects(withTransientRetry(longer.send, { sleep: recordingSleep().sleep }), (e) => e === long);
    assert.equal(longer.calls.n, 1);
  });

  test('an abort during the wait rejects with the signal\'s reason and sends nothing more', async () => {
    const controller = new AbortController();
    const reason = new Error('shutting down');
    const { send, calls } = flaky(reset(), reset());
    const sleep = async (_ms: number, signal?: AbortSignal) => {
      controller.abort(reason);
      signal?.throwIfAborted();
    };
    await assert.rejects(withTransientRetry(send, { sleep, signal: controller.signal }), (e) => e === reason);
    assert.equal(calls.n, 1);
  });

  test('the default sleep is abortable too', async () => {
    const controller = new AbortController();
    const reason = new Error('lost the lock');
    const { send, calls } = flaky(reset(), reset());
    const started = Date.now();
    setTimeout(() => controller.abort(reason), 20);
    await assert.rejects(withTransientRetry(send, { signal: controller.signal, delaysMs: [60_000] }), (e) => e === reason);
    assert.ok(Date.now() - started < 5_000);
    assert.equal(calls.n, 1);
  });

  test('an already aborted signal sends nothing', async () => {
    const reason = new Error('gone');
    const { send, calls } = flaky();
    await assert.rejects(withTransientRetry(send, { signal: AbortSignal.abort(reason) }), (e) => e === reason);
    assert.equal(calls.n, 0);
  });

  test('a failure caused by the abort itself is not retried', async () => {
    const controller = new AbortController();
    const reason = new Error('stop');
    const calls = { n: 0 };
    const send = async () => {
      calls.n++;
      controller.abort(reason);
      throw reset();
    };
    await assert.rejects(withTransientRetry(send, { signal: controller.signal, sleep: recordingSleep().sleep }), (e) => e === reason);
    assert.equal(calls.n, 1);
  });
});

describe('retryDelay / isTransient', () => {
  test('the schedule slot decides, and undefined past its end', () => {
    assert.equal(retryDelay(reset(), 250), 250);
    assert.equal(retryDelay(reset(), undefined), undefined);
    assert.equal(retryDelay(problem('unauthorized', 403), 250), undefined);
  });

  test('timeouts of polling are not transient; network faults, 5xx and badNonce are', () => {
    assert.equal(isTransient(new AcmeTimeoutError('order did not settle')), false);
    assert.equal(isTransient(reset()), true);
    assert.equal(isTransient(problem('badNonce', 400)), true);
    assert.equal(isTransient(problem('whatever', 502)), true);
  });
});
