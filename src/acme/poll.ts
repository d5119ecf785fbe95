/**
 * Polling for order and authorization status. The first look comes soon
 * (a local or fast CA is usually done within a few hundred milliseconds),
 * later ones back off, a Retry-After from the CA wins, and the whole wait is
 * bounded so a stuck order cannot hold a host's lock forever. A caller that
 * can see the CA at work (the http-01 server sees its validation requests)
 * passes `backoffWait`, which ends a backoff sleep at that sign, so the next
 * look follows what the CA did rather than a timer that load stretches.
 */
import { sleepUnlessAborted } from './abort.js';
import { AcmeTimeoutError } from './errors.js';

export interface PollOptions {
  firstDelayMs?: number;
  factor?: number;
  maxDelayMs?: number;
  timeoutMs?: number;
  what?: string;
  /** Replaces the first sleep, e.g. "until the CA has fetched the tokens". */
  initialWait?: () => Promise<void>;
  /** Stops waiting (shutdown); the poll rejects with the signal's reason. */
  signal?: AbortSignal;
  /**
   * Replaces the backoff sleeps (not the first wait, not a Retry-After's):
   * may return early when the CA shows progress. Default: sleep ms.
   */
  backoffWait?: (ms: number) => Promise<void>;
}

export interface PollResult<T> {
  value: T;
  retryAfterMs?: number;
}

/** The longest Retry-After we sit out inside one poll; longer ones end in a timeout and a retry later. */
const MAX_RETRY_AFTER_MS = 60_000;

export async function pollUntil<T>(
  fetchOnce: () => Promise<PollResult<T>>,
  isDone: (value: T) => boolean,
  opts: PollOptions = {},
): Promise<T> {
  const { firstDelayMs = 100, factor = 1.6, maxDelayMs = 5_000, timeoutMs = 120_000, what = 'ACME object' } = opts;
  const deadline = Date.now() + timeoutMs;
  const { signal } = opts;
  const initialWait = opts.initialWait ?? (() => sleepUnlessAborted(firstDelayMs, signal));
  let delay = firstDelayMs;
  let askedByCa = false;
  for (let attempt = 0; ; attempt++) {
    if (attempt === 0) {
      await initialWait();
    } else {
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new AcmeTimeoutError(`${what} did not settle within ${Math.round(timeoutMs / 1000)} s`);
      const ms = Math.min(delay, remaining);
      // The CA's own Retry-After is sat out in full; only our backoff may be cut short.
      if (askedByCa || !opts.backoffWait) await sleepUnlessAborted(ms, signal);
      else await opts.backoffWait(ms);
    }
    signal?.throwIfAborted();
    const { value, retryAfterMs } = await fetchOnce();
    if (isDone(value)) return value;
    askedByCa = retryAfterMs !== undefined;
    delay = retryAfterMs !== undefined
      ? Math.min(Math.max(retryAfterMs, firstDelayMs), MAX_RETRY_AFTER_MS)
      : Math.min(attempt === 0 ? firstDelayMs : delay * factor, maxDelayMs);
  }
}
