/**
 * Several CAs (api_uri as a list): an order that fails at one CA for a
 * reason that is not the requester's goes on to the next. The CA's own
 * troubles fall back (unreachable, 5xx, rate limited, in backoff, an account
 * it refuses, a profile it does not offer); what is about the names asked
 * for (a refused identifier, a failed validation, a bad CSR) fails at once,
 * since another CA would say the same.
 */
import { AcmeAccountError, AccountUnavailableError, errorKind, isCaFault, ProfileNotOfferedError } from '../acme/errors.js';
import { CaUnavailableError } from '../renewal/ca-backoff.js';

/** One move from a CA to the next, for the log and metrics. */
export interface CaFallback {
  from: string;
  to: string;
  error: Error;
  /** The CA was in backoff and not asked at all. */
  skipped: boolean;
}

/** True when an order that failed with err should be tried at the next CA. */
export function fallsBack(err: unknown): boolean {
  if (err instanceof CaUnavailableError || isCaFault(err)) return true;
  if (err instanceof AcmeAccountError || err instanceof AccountUnavailableError || err instanceof ProfileNotOfferedError) return true;
  return errorKind(err) === 'rateLimited';
}

/**
 * Runs attempt at each CA in order until one gives a result. When every CA
 * failed, the first real answer is thrown, as with a single CA; when every
 * one was skipped for its backoff, unavailable() (the earliest retry).
 */
export async function orderWithFallback<T>(
  cas: string[], attempt: (ca: string) => Promise<T>, onFallback: (step: CaFallback) => void, unavailable: () => Error,
): Promise<{ value: T; ca: string }> {
  const errors: Error[] = [];
  for (const [i, ca] of cas.entries()) {
    try {
      return { value: await attempt(ca), ca };
    } catch (err) {
      if (!fallsBack(err)) throw err;
      errors.push(err as Error);
      const to = cas[i + 1];
      if (to !== undefined) onFallback({ from: ca, to, error: err as Error, skipped: err instanceof CaUnavailableError });
    }
  }
  throw errors.find((e) => !(e instanceof CaUnavailableError)) ?? unavailable();
}
