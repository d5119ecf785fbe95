/**
 * Asking the CA for a certificate's renewal window (ARI, RFC 9773) and
 * keeping the answer in the certificate's index record: the window, the time
 * picked inside it (kept while the window stays, so the renewal time does not
 * jump on every fetch), and when to ask again (Retry-After, clamped to
 * 1 minute .. 1 day).
 */
import type { AcmeEngine } from '../acme/client.js';
import type { Logger } from '../log.js';
import { ariCertId, clampRetryAfter, pickTimeInWindow } from './ari.js';
import type { AriRecord } from './index-record.js';

export interface AriFetchDeps {
  engine: AcmeEngine;
  log: Logger;
  now: Date;
  random?: () => number;
}

/** True when the record's ARI answer is missing, about another certificate, or due to be asked again. */
export function ariNeedsFetch(ari: AriRecord | null, certPem: string, now: Date): boolean {
  if (!ari) return true;
  let certId: string;
  try {
    certId = ariCertId(certPem);
  } catch {
    return false;
  }
  return ari.certId !== certId || Date.parse(ari.fetchAfter) <= now.getTime();
}

/**
 * The CA's current answer for certPem, or null when the CA offers no ARI or
 * the certificate has no AKI. An ARI outage must not stop renewal: on a
 * failed fetch the previous answer (for the same certificate) is kept, or
 * the lifetime rules apply.
 */
export async function fetchAri(certPem: string, previous: AriRecord | null, deps: AriFetchDeps): Promise<AriRecord | null> {
  const { engine, log, now } = deps;
  let certId: string;
  try {
    certId = ariCertId(certPem);
  } catch {
    return null; // no AKI: ARI cannot name this certificate
  }
  const cached = previous?.certId === certId ? previous : null;
  try {
    const answer = await engine.renewalInfo(certPem);
    if (!answer) return null;
    const keepChoice = cached
      && Date.parse(cached.chosenTime) >= answer.window.start.getTime()
      && Date.parse(cached.chosenTime) < answer.window.end.getTime();
    const chosen = keepChoice ? new Date(cached.chosenTime) : pickTimeInWindow(answer.window, deps.random ?? Math.random);
    return {
      certId,
      windowStart: answer.window.start.toISOString(),
      windowEnd: answer.window.end.toISOString(),
      chosenTime: chosen.toISOString(),
      fetchAfter: new Date(now.getTime() + clampRetryAfter(answer.retryAfterMs)).toISOString(),
    };
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'renewal info (ARI) fetch failed');
    return cached;
  }
}
