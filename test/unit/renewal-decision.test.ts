// decideRenewal is the one place that says when a certificate is renewed;
// getting it wrong means either an outage (too late) or hammering the CA (too
// early, e.g. a 6-day certificate renewed on every run). Table-driven over
// the lifetimes acmed meets: 90-day and 45-day (Let's Encrypt now and soon),
// 6-day (short-lived profile) and 5-year (Pebble).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decideRenewal, type RenewalInput, type RenewalReason } from '../../src/renewal/decision.js';

const DAY = 24 * 60 * 60 * 1000;
const NOT_BEFORE = Date.parse('2025-01-01T00:00:00Z');
const day = (d: number) => new Date(NOT_BEFORE + d * DAY);

interface Case {
  name: string;
  lifetime: number; // days
  now: number; // days after notBefore
  threshold?: number | null;
  ari?: { start: number; end: number; chosen: number } | null;
  renew: boolean;
  at: number; // days after notBefore
  reason: RenewalReason;
}

function input(c: Pick<Case, 'lifetime' | 'now' | 'threshold' | 'ari'>): RenewalInput {
  return {
    notBefore: day(0),
    notAfter: day(c.lifetime),
    now: day(c.now),
    renewThresholdDays: c.threshold ?? null,
    ari: c.ari ? { windowStart: day(c.ari.start), windowEnd: day(c.ari.end), chosenTime: day(c.ari.chosen) } : c.ari,
  };
}

const PEBBLE = 5 * 365;

const cases: Case[] = [
  // Default: renew with 1/3 of the lifetime left.
  { name: '90d, fresh', lifetime: 90, now: 10, renew: false, at: 60, reason: 'lifetime-fraction' },
  { name: '90d, before notBefore (clock skew)', lifetime: 90, now: -1, renew: false, at: 60, reason: 'lifetime-fraction' },
  { name: '90d, just before 2/3', lifetime: 90, now: 59.999, renew: false, at: 60, reason: 'lifetime-fraction' },
  { name: '90d, exactly at 2/3', lifetime: 90, now: 60, renew: true, at: 60, reason: 'lifetime-fraction' },
  { name: '90d, past 2/3', lifetime: 90, now: 70, renew: true, at: 60, reason: 'lifetime-fraction' },
  { name: '45d, fresh', lifetime: 45, now: 29, renew: false, at: 30, reason: 'lifetime-fraction' },
  { name: '45d, due', lifetime: 45, now: 30, renew: true, at: 30, reason: 'lifetime-fraction' },
  { name: '10d uses 1/3', lifetime: 10, now: 6, renew: false, at: 10 * 2 / 3, reason: 'lifetime-fraction' },
  { name: '9.9d uses 1/2', lifetime: 9.9, now: 4.95, renew: true, at: 4.95, reason: 'lifetime-fraction' },
  { name: '6d, day 2 (1/2 rule, not 1/3)', lifetime: 6, now: 2, renew: false, at: 3, reason: 'lifetime-fraction' },
  { name: '6d, half way', lifetime: 6, now: 3, renew: true, at: 3, reason: 'lifetime-fraction' },
  { name: 'Pebble 5y, a year in', lifetime: PEBBLE, now: 365, renew: false, at: PEBBLE * 2 / 3, reason: 'lifetime-fraction' },
  { name: 'Pebble 5y, 4 years in', lifetime: PEBBLE, now: 4 * 365, renew: true, at: PEBBLE * 2 / 3, reason: 'lifetime-fraction' },

  // The 1/20 safety net and expiry win over everything.
  { name: '90d, 1/20 left', lifetime: 90, now: 85.5, renew: true, at: 60, reason: 'nearly-expired' },
  { name: '90d, at notAfter', lifetime: 90, now: 90, renew: true, at: 60, reason: 'expired' },
  { name: '90d, long expired', lifetime: 90, now: 400, renew: true, at: 60, reason: 'expired' },
  { name: '6d, expired', lifetime: 6, now: 6.5, renew: true, at: 3, reason: 'expired' },
  { name: 'Pebble 5y, expired', lifetime: PEBBLE, now: PEBBLE + 1, renew: true, at: PEBBLE * 2 / 3, reason: 'expired' },

  // renew_threshold_days: renew once fewer days than this remain, at most half the lifetime.
  { name: '90d, threshold 30, not yet', lifetime: 90, threshold: 30, now: 59, renew: false, at: 60, reason: 'threshold' },
  { name: '90d, threshold 14', lifetime: 90, threshold: 14, now: 70, renew: false, at: 76, reason: 'threshold' },
  { name: '90d, threshold 14, due', lifetime: 90, threshold: 14, now: 77, renew: true, at: 76, reason: 'threshold' },
  { name: '90d, threshold 1 is overruled by 1/20', lifetime: 90, threshold: 1, now: 80, renew: false, at: 85.5, reason: 'nearly-expired' },
  { name: '90d, threshold 1, in the last 1/20', lifetime: 90, threshold: 1, now: 86, renew: true, at: 85.5, reason: 'nearly-expired' },
  { name: '90d, threshold 200 capped at 45', lifetime: 90, threshold: 200, now: 44, renew: false, at: 45, reason: 'threshold' },
  { name: '45d, threshold 30 capped at 22.5', lifetime: 45, threshold: 30, now: 20, renew: false, at: 22.5, reason: 'threshold' },
  { name: '6d, threshold 30: not renewed on every run', lifetime: 6, threshold: 30, now: 1, renew: false, at: 3, reason: 'threshold' },
  { name: '6d, threshold 30, half way', lifetime: 6, threshold: 30, now: 3, renew: true, at: 3, reason: 'threshold' },
  { name: 'Pebble 5y, threshold 120', lifetime: PEBBLE, threshold: 120, now: PEBBLE - 121, renew: false, at: PEBBLE - 120, reason: 'threshold' },
  { name: 'Pebble 5y, threshold 120, due', lifetime: PEBBLE, threshold: 120, now: PEBBLE - 119, renew: true, at: PEBBLE - 120, reason: 'threshold' },
  // 1/20 of five years is 91.25 days, more than a 30-day threshold.
  { name: 'Pebble 5y, threshold 30 is overruled by 1/20', lifetime: PEBBLE, threshold: 30, now: PEBBLE - 92, renew: false, at: PEBBLE - 91.25, reason: 'nearly-expired' },

  // ARI: the time chosen in the CA's window wins over the threshold and the default.
  { name: 'ARI window in the future', lifetime: 90, ari: { start: 58, end: 60, chosen: 59 }, now: 50, renew: false, at: 59, reason: 'ari' },
  { name: 'ARI chosen time reached', lifetime: 90, ari: { start: 58, end: 60, chosen: 59 }, now: 59, renew: true, at: 59, reason: 'ari' },
  { name: 'ARI window in the past', lifetime: 90, ari: { start: 20, end: 22, chosen: 21 }, now: 50, renew: true, at: 21, reason: 'ari' },
  { name: 'ARI early window beats default', lifetime: 90, ari: { start: 5, end: 6, chosen: 5.5 }, now: 5.6, renew: true, at: 5.5, reason: 'ari' },
  { name: 'ARI late window beats default', lifetime: 90, ari: { start: 70, end: 72, chosen: 71 }, now: 65, renew: false, at: 71, reason: 'ari' },
  { name: 'ARI beats threshold', lifetime: 90, threshold: 30, ari: { start: 40, end: 42, chosen: 41 }, now: 41, renew: true, at: 41, reason: 'ari' },
  { name: 'ARI later than threshold', lifetime: 90, threshold: 30, ari: { start: 70, end: 72, chosen: 71 }, now: 65, renew: false, at: 71, reason: 'ari' },
  { name: 'ARI stale choice after window: clamped to end', lifetime: 90, ari: { start: 58, end: 60, chosen: 70 }, now: 60, renew: true, at: 60, reason: 'ari' },
  { name: 'ARI stale choice before window: clamped to start', lifetime: 90, ari: { start: 58, end: 60, chosen: 10 }, now: 30, renew: false, at: 58, reason: 'ari' },
  { name: 'ARI window past the 1/20 point', lifetime: 90, ari: { start: 88, end: 89, chosen: 88.5 }, now: 80, renew: false, at: 85.5, reason: 'nearly-expired' },
  { name: 'ARI past, certificate nearly expired', lifetime: 90, ari: { start: 20, end: 22, chosen: 21 }, now: 86, renew: true, at: 21, reason: 'nearly-expired' },
  { name: 'ARI null falls back to threshold', lifetime: 90, threshold: 14, ari: null, now: 70, renew: false, at: 76, reason: 'threshold' },
  { name: '6d, ARI', lifetime: 6, ari: { start: 3.5, end: 4, chosen: 3.75 }, now: 3.5, renew: false, at: 3.75, reason: 'ari' },
];

describe('decideRenewal', () => {
  for (const c of cases) {
    test(c.name, () => {
      const decision = decideRenewal(input(c));
      assert.deepEqual(
        { renew: decision.renew, at: decision.at.getTime(), reason: decision.reason },
        { renew: c.renew, at: day(c.at).getTime(), reason: c.reason },
      );
      assert.equal(decision.renew, day(c.now).getTime() >= decision.at.getTime(), 'renew must equal now >= at');
    });
  }

  test('sweeping the clock: renew === now >= at, at never moves, and once due it stays due', () => {
    const configs: Pick<Case, 'lifetime' | 'threshold' | 'ari'>[] = [
      { lifetime: 90 }, { lifetime: 45 }, { lifetime: 6 }, { lifetime: PEBBLE },
      { lifetime: 90, threshold: 30 }, { lifetime: 6, threshold: 30 }, { lifetime: 90, threshold: 0.5 },
      { lifetime: 90, ari: { start: 58, end: 60, chosen: 59 } }, { lifetime: 6, ari: { start: 5.9, end: 6, chosen: 5.95 } },
    ];
    for (const config of configs) {
      let dueSeen = false;
      let firstAt: number | undefined;
      for (let step = -5; step <= 110; step++) {
        const now = (config.lifetime * step) / 100;
        const decision = decideRenewal(input({ ...config, now }));
        const label = `${JSON.stringify(config)} at day ${now}`;
        assert.equal(decision.renew, day(now).getTime() >= decision.at.getTime(), label);
        firstAt ??= decision.at.getTime();
        assert.equal(decision.at.getTime(), firstAt, `${label}: at must not depend on now`);
        assert.ok(decision.at.getTime() <= day(config.lifetime * 0.95).getTime(), `${label}: at must be no later than the 1/20 point`);
        if (dueSeen) assert.equal(decision.renew, true, `${label}: once due, stays due`);
        dueSeen ||= decision.renew;
      }
      assert.ok(dueSeen, `${JSON.stringify(config)} never became due`);
    }
  });

  test('refuses nonsense input', () => {
    const ok = input({ lifetime: 90, now: 1 });
    assert.throws(() => decideRenewal({ ...ok, notAfter: day(-1) }), /notAfter is before notBefore/);
    assert.throws(() => decideRenewal({ ...ok, now: new Date(Number.NaN) }), /now is not a valid date/);
    assert.throws(() => decideRenewal({ ...ok, renewThresholdDays: 0 }), /renewThresholdDays must be positive/);
    assert.throws(() => decideRenewal({ ...ok, renewThresholdDays: -3 }), /renewThresholdDays must be positive/);
    assert.throws(
      () => decideRenewal({ ...ok, ari: { windowStart: day(1), windowEnd: new Date('junk'), chosenTime: day(1) } }),
      /ari.windowEnd is not a valid date/,
    );
  });
});
