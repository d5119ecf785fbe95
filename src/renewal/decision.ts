/**
 * When to renew one certificate: a pure function of its validity period, the
 * CA's renewal window (ARI) if any, the operator's threshold and the clock.
 *
 * The answer always carries `at`, the moment renewal is (or was) due, so the
 * scheduler can sleep until it and `renew` is exactly `now >= at`. `reason`
 * names the rule that set `at`.
 *
 * Rules, in order of precedence:
 *  1. with less than 1/20 of the lifetime left, always renew ('nearly-expired',
 *     or 'expired' once past notAfter), whatever ARI or the threshold said;
 *  2. the CA's ARI window when known: renew from the time chosen inside it;
 *  3. renew_threshold_days when set (Kong's meaning: renew once fewer days
 *     than this remain), capped at half the lifetime so a short-lived
 *     certificate is not renewed on every run;
 *  4. otherwise renew with 1/3 of the lifetime left (1/2 under 10 days, where
 *     a third leaves too little room for a failed attempt or two).
 */

const DAY_MS = 24 * 60 * 60 * 1000;
const SHORT_LIFETIME_MS = 10 * DAY_MS;

export type RenewalReason = 'ari' | 'threshold' | 'lifetime-fraction' | 'nearly-expired' | 'expired';

export interface AriChoice {
  windowStart: Date;
  windowEnd: Date;
  /** The time picked inside the window (pickTimeInWindow), kept until the window changes. */
  chosenTime: Date;
}

export interface RenewalInput {
  notBefore: Date;
  notAfter: Date;
  ari?: AriChoice | null;
  renewThresholdDays: number | null;
  now: Date;
}

export interface RenewalDecision {
  renew: boolean;
  /** When renewal is due; may be in the past. `renew === now >= at`. */
  at: Date;
  reason: RenewalReason;
}

function ms(date: Date, field: string): number {
  const value = date instanceof Date ? date.getTime() : NaN;
  if (Number.isNaN(value)) throw new RangeError(`decideRenewal: ${field} is not a valid date`);
  return value;
}

/** The moment the planning rules (2–4) say to renew, before the safety net of rule 1. */
function plannedRenewal(input: RenewalInput, notBefore: number, notAfter: number): { at: number; reason: RenewalReason } {
  const lifetime = notAfter - notBefore;
  if (input.ari) {
    // A chosen time left over from an older window is pulled back inside the
    // current one; a window wholly in the past therefore means "renew now",
    // as RFC 9773 asks.
    const start = ms(input.ari.windowStart, 'ari.windowStart');
    const end = ms(input.ari.windowEnd, 'ari.windowEnd');
    const chosen = ms(input.ari.chosenTime, 'ari.chosenTime');
    return { at: Math.min(Math.max(chosen, start), Math.max(start, end)), reason: 'ari' };
  }
  if (input.renewThresholdDays !== null && input.renewThresholdDays !== undefined) {
    const days = input.renewThresholdDays;
    if (!(days > 0)) throw new RangeError(`decideRenewal: renewThresholdDays must be positive, got ${days}`);
    return { at: notAfter - Math.min(days * DAY_MS, lifetime / 2), reason: 'threshold' };
  }
  const fraction = lifetime < SHORT_LIFETIME_MS ? 1 / 2 : 1 / 3;
  return { at: notAfter - lifetime * fraction, reason: 'lifetime-fraction' };
}

export function decideRenewal(input: RenewalInput): RenewalDecision {
  const notBefore = ms(input.notBefore, 'notBefore');
  const notAfter = ms(input.notAfter, 'notAfter');
  const now = ms(input.now, 'now');
  if (notAfter < notBefore) throw new RangeError('decideRenewal: notAfter is before notBefore');

  const nearlyExpiredAt = notAfter - (notAfter - notBefore) / 20;
  const planned = plannedRenewal(input, notBefore, notAfter);
  const at = Math.min(planned.at, nearlyExpiredAt);
  const renew = now >= at;

  let reason: RenewalReason;
  if (now >= notAfter) reason = 'expired';
  else if (now >= nearlyExpiredAt || planned.at > nearlyExpiredAt) reason = 'nearly-expired';
  else reason = planned.reason;

  return { renew, at: new Date(at), reason };
}
