/**
 * The CA's ARI answer per certificate, kept in storage at `ari/<name>.json`:
 * the window, the time picked inside it (kept while the window stays, so the
 * renewal time does not jump on every fetch), and when to ask again
 * (Retry-After, clamped to 1 minute .. 1 day).
 */
import type { AcmeEngine } from '../acme/client.js';
import { keys } from '../storage/keys.js';
import type { Logger } from '../log.js';
import type { CertificateBundle, Storage } from '../storage/storage.js';
import { ariCertId, clampRetryAfter, pickTimeInWindow } from './ari.js';
import type { AriChoice } from './decision.js';

interface CachedAri {
  certId: string;
  windowStart: string;
  windowEnd: string;
  chosenTime: string;
  fetchAfter: string;
}

export interface AriLookup {
  certId: string;
  choice: AriChoice | null;
}


export async function lookupAri(
  bundle: CertificateBundle,
  deps: { storage: Storage; engine: AcmeEngine; log: Logger; now: Date; random?: () => number },
): Promise<AriLookup | null> {
  const { storage, engine, log, now } = deps;
  let certId: string;
  try {
    certId = ariCertId(bundle.cert);
  } catch {
    return null; // no AKI: ARI cannot name this certificate
  }
  const cached = await readCached(storage, bundle.name);
  if (cached && cached.certId === certId && Date.parse(cached.fetchAfter) > now.getTime()) {
    return { certId, choice: toChoice(cached) };
  }
  try {
    const answer = await engine.renewalInfo(bundle.cert);
    if (!answer) return null; // the CA offers no ARI
    const keepChoice = cached && cached.certId === certId
      && Date.parse(cached.chosenTime) >= answer.window.start.getTime()
      && Date.parse(cached.chosenTime) < answer.window.end.getTime();
    const chosen = keepChoice ? new Date(cached.chosenTime) : pickTimeInWindow(answer.window, deps.random ?? Math.random);
    const record: CachedAri = {
      certId,
      windowStart: answer.window.start.toISOString(),
      windowEnd: answer.window.end.toISOString(),
      chosenTime: chosen.toISOString(),
      fetchAfter: new Date(now.getTime() + clampRetryAfter(answer.retryAfterMs)).toISOString(),
    };
    await storage.set(keys.ari(bundle.name), JSON.stringify(record));
    return { certId, choice: toChoice(record) };
  } catch (err) {
    // An ARI outage must not stop renewal: fall back to the last answer, or to the lifetime rules.
    log.warn({ cert: bundle.name, err: (err as Error).message }, 'renewal info (ARI) fetch failed');
    return { certId, choice: cached && cached.certId === certId ? toChoice(cached) : null };
  }
}

async function readCached(storage: Storage, name: string): Promise<CachedAri | null> {
  const raw = await storage.get(keys.ari(name));
  if (!raw) return null;
  try {
    return JSON.parse(raw) as CachedAri;
  } catch {
    return null;
  }
}

function toChoice(record: CachedAri): AriChoice {
  return {
    windowStart: new Date(record.windowStart),
    windowEnd: new Date(record.windowEnd),
    chosenTime: new Date(record.chosenTime),
  };
}
