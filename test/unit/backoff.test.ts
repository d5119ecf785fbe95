// Per-host failure backoff: a host that keeps failing must be tried less and
// less often (doubling from fail_backoff_minutes, at most a day), a rate
// limit must be waited out, and a success must reset it. The record lives in
// the certificate's index record (certificate-index.test.ts).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { isBackedOff, nextBackoff, parseBackoffRecord, type BackoffRecord } from '../../src/renewal/backoff.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const T0 = new Date('2025-03-01T12:00:00Z');
const failure = (at: Date, extra: { kind?: string; retryAfterMs?: number; message?: string } = {}) => ({
  at,
  kind: extra.kind ?? 'unauthorized',
  message: extra.message ?? 'http-01 challenge failed',
  retryAfterMs: extra.retryAfterMs,
});
const waitOf = (r: BackoffRecord) => Date.parse(r.until) - Date.parse(r.lastFailureAt);

describe('nextBackoff', () => {
  test('first failure waits baseMinutes and records what happened', () => {
    const r = nextBackoff(null, failure(T0, { kind: 'dns', message: 'no A record' }), 5);
    assert.deepEqual(r, {
      failures: 1,
      until: '2025-03-01T12:05:00.000Z',
      lastError: 'no A record',
      lastKind: 'dns',
      lastFailureAt: '2025-03-01T12:00:00.000Z',
    });
  });

  test('each further failure doubles the wait, capped at 24 hours', () => {
    const expectedMinutes = [5, 10, 20, 40, 80, 160, 320, 640, 1280, 1440, 1440, 1440];
    let record: BackoffRecord | null = null;
    let at = T0;
    for (const [i, minutes] of expectedMinutes.entries()) {
      record = nextBackoff(record, failure(at), 5);
      assert.equal(record.failures, i + 1);
      assert.equal(waitOf(record), minutes * MIN, `failure ${i + 1}`);
      at = new Date(record.until);
    }
  });

  test('absurd failure counts stay at the cap', () => {
    const prev = { ...nextBackoff(null, failure(T0), 5), failures: 5000 };
    assert.equal(waitOf(nextBackoff(prev, failure(T0), 5)), 24 * HOUR);
  });

  test('rateLimited waits at least Retry-After, beyond the 24 h cap', () => {
    assert.equal(waitOf(nextBackoff(null, failure(T0, { kind: 'rateLimited', retryAfterMs: 3 * HOUR }), 5)), 3 * HOUR);
    assert.equal(waitOf(nextBackoff(null, failure(T0, { kind: 'rateLimited', retryAfterMs: 30 * HOUR }), 5)), 30 * HOUR);
    // A short Retry-After does not shorten the doubling wait.
    assert.equal(waitOf(nextBackoff(null, failure(T0, { kind: 'rateLimited', retryAfterMs: MIN }), 5)), 5 * MIN);
    // Nor is a wildly long one believed for more than a week.
    assert.equal(waitOf(nextBackoff(null, failure(T0, { kind: 'rateLimited', retryAfterMs: 90 * 24 * HOUR }), 5)), 7 * 24 * HOUR);
  });

  test('Retry-After on other kinds of failure does not change the wait', () => {
    assert.equal(waitOf(nextBackoff(null, failure(T0, { kind: 'unauthorized', retryAfterMs: 3 * HOUR }), 5)), 5 * MIN);
  });

  test('long messages are shortened', () => {
    const r = nextBackoff(null, failure(T0, { message: 'x'.repeat(5000) }), 5);
    assert.equal(r.lastError.length, 1000);
    assert.ok(r.lastError.endsWith('...'));
  });

  test('refuses a non-positive base or an invalid time', () => {
    assert.throws(() => nextBackoff(null, failure(T0), 0), RangeError);
    assert.throws(() => nextBackoff(null, failure(T0), Number.NaN), RangeError);
    assert.throws(() => nextBackoff(null, failure(new Date('junk')), 5), RangeError);
  });
});

describe('isBackedOff', () => {
  const record = nextBackoff(null, failure(T0), 5);
  test('true until `until`, false from then on', () => {
    assert.equal(isBackedOff(record, T0), true);
    assert.equal(isBackedOff(record, new Date(T0.getTime() + 5 * MIN - 1)), true);
    assert.equal(isBackedOff(record, new Date(T0.getTime() + 5 * MIN)), false);
  });
  test('no record, or an unreadable one, never blocks', () => {
    assert.equal(isBackedOff(null, T0), false);
    assert.equal(isBackedOff({ ...record, until: 'soon' }, T0), false);
  });
});

describe('parseBackoffRecord', () => {
  test('accepts a record and refuses other shapes', () => {
    const record = nextBackoff(null, failure(T0), 5);
    assert.deepEqual(parseBackoffRecord(JSON.parse(JSON.stringify(record))), record);
    assert.equal(parseBackoffRecord(null), null);
    assert.equal(parseBackoffRecord({ ...record, failures: 0 }), null);
    assert.equal(parseBackoffRecord({ ...record, failures: '2' }), null);
    assert.equal(parseBackoffRecord({ ...record, until: 'tomorrow' }), null);
    assert.equal(parseBackoffRecord({ ...record, lastKind: undefined }), null);
  });
});
