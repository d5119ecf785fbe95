/**
 * Backoff records kept in storage at `backoff/<name>`, so every acmed
 * instance sharing a store (Redis, Consul, Vault) respects one host's
 * backoff, and a restart does not forget it.
 */
import { keys } from '../storage/keys.js';
import type { Storage } from '../storage/storage.js';
import { nextBackoff, parseBackoffRecord, type BackoffRecord, type Failure } from './backoff.js';

/**
 * How long a record outlives its wait. Long enough that the next failure
 * still finds it (so waits keep doubling), short enough that records of hosts
 * no longer managed eventually disappear from the store.
 */
export const BACKOFF_RETENTION_MS = 7 * 24 * 60 * 60 * 1000;

/** The storage key for a host's record; throws InvalidHostnameError for a bad name. */
export function backoffKey(name: string): string {
  return keys.backoff(name);
}

/** The host's record, or null when there is none or it cannot be read. */
export async function loadBackoff(storage: Storage, name: string): Promise<BackoffRecord | null> {
  const raw = await storage.get(backoffKey(name));
  if (raw === null) return null;
  try {
    return parseBackoffRecord(JSON.parse(raw));
  } catch {
    return null;
  }
}

/** Counts one more failure for the host and stores the new record, which it returns. */
export async function recordFailure(storage: Storage, name: string, failure: Failure, baseMinutes: number): Promise<BackoffRecord> {
  const key = backoffKey(name);
  const record = nextBackoff(await loadBackoff(storage, name), failure, baseMinutes);
  const waitMs = Date.parse(record.until) - failure.at.getTime();
  await storage.set(key, JSON.stringify(record), { ttlMs: waitMs + BACKOFF_RETENTION_MS });
  return record;
}

/** Forgets the host's failures (after a success, or an operator's forced renewal). */
export async function clearBackoff(storage: Storage, name: string): Promise<void> {
  await storage.delete(backoffKey(name));
}
