/**
 * Memory storage: volatile, one process only (Kong's "shm"). Useful for tests
 * and throwaway runs; everything is gone on restart, the account included.
 */
import { nameSegment, namesOfSegments } from './name-segment.js';
import { assertValidKey } from './keys.js';
import type { CertificateBundle, Storage } from './storage.js';

export function createMemoryStorage(opts: { now?: () => number } = {}): Storage {
  const now = opts.now ?? Date.now;
  const values = new Map<string, { value: string; expiresAt: number }>();
  const certificates = new Map<string, CertificateBundle>();

  const live = (key: string) => {
    assertValidKey(key);
    const entry = values.get(key);
    if (entry && entry.expiresAt <= now()) {
      values.delete(key);
      return undefined;
    }
    return entry;
  };

  return {
    kind: 'memory',
    shared: false,
    async get(key) {
      return live(key)?.value ?? null;
    },
    async set(key, value, setOpts) {
      assertValidKey(key);
      values.set(key, { value, expiresAt: setOpts?.ttlMs ? now() + setOpts.ttlMs : Infinity });
    },
    async add(key, value, ttlMs) {
      if (live(key)) return false;
      values.set(key, { value, expiresAt: now() + ttlMs });
      return true;
    },
    async delete(key) {
      assertValidKey(key);
      values.delete(key);
    },
    async compareAndDelete(key, value) {
      if (live(key)?.value !== value) return false;
      values.delete(key);
      return true;
    },
    async compareAndExtend(key, value, ttlMs) {
      const entry = live(key);
      if (entry?.value !== value) return false;
      entry.expiresAt = now() + ttlMs;
      return true;
    },
    async list(prefix) {
      return [...values.keys()].filter((key) => key.startsWith(prefix) && live(key));
    },
    async scan(prefix, onBatch) {
      onBatch([...values.keys()].filter((key) => key.startsWith(prefix) && live(key)).map((key) => [key, values.get(key)!.value]));
    },
    async putCertificate(bundle) {
      certificates.set(nameSegment(bundle.name), structuredClone(bundle));
    },
    async deleteCertificate(name) {
      certificates.delete(nameSegment(name));
    },
    async getCertificate(name) {
      const bundle = certificates.get(nameSegment(name));
      return bundle ? structuredClone(bundle) : null;
    },
    location(name) {
      return `memory:${nameSegment(name)}`;
    },
    async listCertificates() {
      return namesOfSegments(certificates.keys());
    },
    async close() {},
  };
}
