/**
 * Retrying one ACME request after a transient fault. A dropped connection, a
 * timeout or a 5xx says nothing about the order, so the request is sent again
 * a few times inside the order instead of failing the order (and putting the
 * CA into backoff) for one lost packet. Anything else is final at once.
 */
import { sleepUnlessAborted } from './abort.js';
import { AcmeNetworkError, AcmeProblemError, isCaFault } from './errors.js';

/** Waits before the 1st, 2nd and 3rd retry: long enough for a CA restart or a load balancer to swap a node. */
export const TRANSIENT_RETRY_DELAYS_MS: readonly number[] = [250, 1_000, 3_000];

/**
 * A Retry-After on a 5xx longer than this ends the order instead: holding a
 * certificate's lock for minutes helps nobody, and the caller's CA backoff
 * honours the Retry-After.
 */
export const MAX_RETRY_AFTER_IN_ORDER_MS = 10_000;

/**
 * badNonce retries have a budget of their own: a refused nonce costs nothing
 * but a new one (RFC 8555 §6.5), so it is resent at once, and a CA that
 * refuses many nonces (Pebble's 50 % in the fault suite) must not use up the
 * retries a dropped connection needs, or the reverse.
 */
export const BAD_NONCE_RETRIES = 5;

/**
 * A request that failed on a kept-alive connection before any answer is
 * resent at once, on a budget of its own: the server or a proxy most often
 * closed that connection while it sat idle (the keep-alive race), so the
 * failure says nothing about the CA. Waiting would only let the next pooled
 * connection go stale too. A few, since several pooled connections may have
 * been closed together; a fresh connection that fails is a fault as before.
 */
export const STALE_CONNECTION_RETRIES = 3;

export interface RetryAttempt {
  /** 1 for the first retry. */
  attempt: number;
  delayMs: number;
  error: unknown;
}

export interface RetryOptions {
  /** One entry per retry; [] sends once. */
  delaysMs?: readonly number[];
  signal?: AbortSignal;
  /** Injected in tests; must reject with the signal's reason when it aborts. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  onRetry?: (retry: RetryAttempt) => void;
}

/**
 * CA faults, plus badNonce: acme-client already resends a badNonce request
 * itself, so one reaching here means several nonces in a row were refused,
 * which a little later usually cures.
 */
export function isTransient(err: unknown): boolean {
  return isCaFault(err) || (err instanceof AcmeProblemError && err.problemType === 'badNonce');
}

/** How long to wait before retrying after err, or undefined to give up. */
export function retryDelay(err: unknown, scheduledMs: number | undefined): number | undefined {
  if (scheduledMs === undefined || !isTransient(err)) return undefined;
  const asked = err instanceof AcmeProblemError ? err.retryAfterMs : undefined;
  if (asked === undefined) return scheduledMs;
  return asked > MAX_RETRY_AFTER_IN_ORDER_MS ? undefined : Math.max(scheduledMs, asked);
}

/** Calls send until it succeeds, fails for good, or the retries run out; an abort ends it with the signal's reason. */
export async function withTransientRetry<T>(send: () => Promise<T>, opts: RetryOptions = {}): Promise<T> {
  const { delaysMs = TRANSIENT_RETRY_DELAYS_MS, signal, sleep = sleepUnlessAborted } = opts;
  let faults = 0;
  let badNonces = 0;
  let staleConnections = 0;
  for (let attempt = 1; ; attempt++) {
    signal?.throwIfAborted();
    try {
      return await send();
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      // delaysMs [] means no retry at all, badNonce included.
      let delayMs: number | undefined;
      if (delaysMs.length > 0 && isBadNonce(err)) delayMs = badNonces++ < BAD_NONCE_RETRIES ? 0 : undefined;
      else if (delaysMs.length > 0 && isStaleConnection(err) && staleConnections++ < STALE_CONNECTION_RETRIES) delayMs = 0;
      else delayMs = retryDelay(err, delaysMs[faults++]);
      if (delayMs === undefined) throw err;
      opts.onRetry?.({ attempt, delayMs, error: err });
      if (delayMs > 0) await sleep(delayMs, signal);
    }
  }
}

function isStaleConnection(err: unknown): boolean {
  return err instanceof AcmeNetworkError && err.staleConnection;
}

function isBadNonce(err: unknown): boolean {
  return err instanceof AcmeProblemError && err.problemType === 'badNonce';
}
