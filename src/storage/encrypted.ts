/**
 * Secrets at rest: wraps any backend so acmed's own records (account key and
 * URL, backoff and ARI records) are sealed with the keyring before they reach
 * the store. Locks and challenge tokens stay plain: locks are compared by
 * value in the store, and a key authorization is public by design. The
 * terminator-facing certificates pass through untouched, so the terminator
 * reads them as before. Values written before encryption was turned on are
 * still read (and sealed on their next write).
 */
import { Keyring } from './keyring.js';
import { keys } from './keys.js';
import type { Storage } from './storage.js';

const PLAIN_PREFIXES = [keys.lockPrefix, keys.challengePrefix];

export function withEncryption(inner: Storage, keyring: Keyring): Storage {
  const sealed = (key: string) => !PLAIN_PREFIXES.some((prefix) => key.startsWith(prefix));
  const open = (key: string, value: string) => (sealed(key) && Keyring.isSealed(value) ? keyring.open(value, key) : value);
  return {
    ...bindAll(inner),
    kind: inner.kind,
    shared: inner.shared,
    async get(key) {
      const value = await inner.get(key);
      return value === null ? null : open(key, value);
    },
    scan: inner.scan && ((prefix, onBatch) => inner.scan!(prefix, (batch) => onBatch(batch.map(([key, value]) => [key, open(key, value)])))),
    async set(key, value, opts) {
      await inner.set(key, sealed(key) ? keyring.seal(value, key) : value, opts);
    },
    async add(key, value, ttlMs) {
      return inner.add(key, sealed(key) ? keyring.seal(value, key) : value, ttlMs);
    },
  };
}

/** The backend's methods bound to it, so the wrapper can spread them. */
function bindAll(storage: Storage): Storage {
  const bound = {} as Record<string, unknown>;
  for (const name of ['get', 'set', 'add', 'delete', 'compareAndDelete', 'compareAndExtend', 'list',
    'scan', 'putCertificate', 'getCertificate', 'getCertificatePem', 'deleteCertificate', 'location', 'listCertificates', 'freeBytes', 'recover', 'close'] as const) {
    const fn = storage[name];
    if (typeof fn === 'function') bound[name] = (fn as (...args: unknown[]) => unknown).bind(storage);
  }
  return bound as unknown as Storage;
}
