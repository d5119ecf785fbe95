/**
 * Per-host failure backoff (Kong's fail_backoff_minutes): after a failed
 * order, leave the host alone for a while so a broken DNS record or a
 * firewalled port 80 does not burn the CA's failed-validation rate limit.
 * The wait starts at fail_backoff_minutes and doubles with each further
 * failure, up to a day; a rate-limit answer is waited out for at least as
 * long as the CA asked. A success clears the record (backoff-store.ts).
 *
 * Pure: the record is plain JSON so any storage backend can hold it.
 */

const MINUTE_MS = 60_000;
/** The longest ordinary wait between attempts. */
export const MAX_BACKOFF_MS = 24 * 60 * MINUTE_MS;
/**
 * The longest a CA's Retry-After is honoured for. Let's Encrypt's longest
 * rate-limit window is a week; anything beyond is treated as a mistake.
 */
export const MAX_RETRY_AFTER_MS = 7 * 24 * 60 * MINUTE_MS;
/** Error messages are kept for `acmed show`; a CA's problem detail can be long. */
const MAX_MESSAGE_LENGTH = 1000;

export interface BackoffRecord {
  /** Consecutive failures so far. */
  failures: number;
  /** ISO time before which no new attempt is made. */
  until: string;
  lastError: string;
  /** errorKind() of the last failure: "rateLimited", "unauthorized", "network", … */
  lastKind: string;
  lastFailureAt: string;
}

export interface Failure {
  at: Date;
  kind: string;
  message: string;
  /** The CA's Retry-After, when it sent one. */
  retryAfterMs?: number;
}

/** The record after one more failure. `prev` is the current record, or null after a success. */
export function nextBackoff(prev: BackoffRecord | null, failure: Failure, baseMinutes: number): BackoffRecord {
  if (!(baseMinutes > 0) || !Number.isFinite(baseMinutes)) {
    throw new RangeError(`nextBackoff: baseMinutes must be a positive number, got ${baseMinutes}`);
  }
  const at = failure.at.getTime();
  if (Number.isNaN(at)) throw new RangeError('nextBackoff: failure.at is not a valid date');

  const failures = Math.max(0, Math.floor(prev?.failures ?? 0)) + 1;
  // Capping the exponent keeps 2 ** n finite for absurd failure counts.
  let waitMs = Math.min(baseMinutes * MINUTE_MS * 2 ** Math.min(failures - 1, 40), MAX_BACKOFF_MS);
  if (failure.kind === 'rateLimited' && failure.retryAfterMs !== undefined && failure.retryAfterMs > 0) {
    waitMs = Math.max(waitMs, Math.min(failure.retryAfterMs, MAX_RETRY_AFTER_MS));
  }

  return {
    failures,
    until: new Date(at + waitMs).toISOString(),
    lastError: failure.message.length > MAX_MESSAGE_LENGTH ? `${failure.message.slice(0, MAX_MESSAGE_LENGTH - 3)}...` : failure.message,
    lastKind: failure.kind,
    lastFailureAt: new Date(at).toISOString(),
  };
}

/** True while the host should not be tried again. A missing or unreadable `until` never blocks. */
export function isBackedOff(record: BackoffRecord | null | undefined, now: Date): boolean {
  if (!record) return false;
  const until = Date.parse(record.until);
  return !Number.isNaN(until) && now.getTime() < until;
}

/** A stored value parsed back into a record, or null when it is not one (so a corrupt record never blocks renewal). */
export function parseBackoffRecord(value: unknown): BackoffRecord | null {
  if (typeof value !== 'object' || value === null) return null;
  const r = value as Record<string, unknown>;
  if (
    typeof r.failures !== 'number' || !Number.isInteger(r.failures) || r.failures < 1 ||
    typeof r.until !== 'string' || Number.isNaN(Date.parse(r.until)) ||
    typeof r.lastError !== 'string' || typeof r.lastKind !== 'string' ||
    typeof r.lastFailureAt !== 'string'
  ) {
    return null;
  }
  return { failures: r.failures, until: r.until, lastError: r.lastError, lastKind: r.lastKind, lastFailureAt: r.lastFailureAt };
}
