/**
 * Storage health, as one decorator around any backend (like encrypted.ts).
 * Every call passes through; one that fails with a store fault (errors.ts)
 * marks the store down, once, and starts a single probe loop that writes,
 * reads and deletes a throw-away key until the store works again. Callers
 * learn of both through 'down' and 'up' instead of each reporting failures
 * on its own.
 *
 * Only a probe brings the store back up: an ordinary read that works says
 * nothing about whether writes do (a read-only or full disk).
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as timerSleep } from 'node:timers/promises';
import type { Logger } from '../log.js';
import { isStoreFault } from './errors.js';
import type { Storage } from './storage.js';

export interface StoreHealth {
  /** The last call / probe succeeded. */
  up: boolean;
  /** The last probe could write. */
  writable: boolean;
  /** File storage only (fs.statfs), else null. */
  freeBytes: number | null;
  /** freeBytes under the threshold. */
  lowSpace: boolean;
  lastError: string | null;
  /** ISO time of the last change of `up`. */
  since: string;
}

export type StoreHealthEvent = 'down' | 'up';

export interface MonitoredStorage extends Storage {
  /** Current state, no I/O. */
  health(): StoreHealth;
  /** Writes, reads and deletes a `health/<random>` key (with TTL), and asks for free space; cached briefly so /healthz cannot hammer the store. */
  probe(): Promise<StoreHealth>;
  /** 'down' once when a call fails with a store fault; 'up' once a probe succeeds again. */
  on(event: StoreHealthEvent, listener: (health: StoreHealth) => void): void;
}

export interface HealthOptions {
  log: Logger;
  now?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Below this many free bytes the store reports lowSpace. */
  minFreeBytes?: number;
}

/** A probe answers from its last result for this long. */
export const PROBE_CACHE_MS = 2_000;
/** The probe loop's first wait; it doubles after each failed probe, up to RETRY_MAX_MS. */
export const RETRY_FIRST_MS = 1_000;
export const RETRY_MAX_MS = 30_000;
/** Certificates and state are kilobytes; this leaves room for many renewals and the logs beside them. */
export const DEFAULT_MIN_FREE_BYTES = 16 * 1024 * 1024;
/** A probe key that could not be deleted goes away on its own. */
const PROBE_TTL_MS = 60_000;
/** Not in keys.ts: nothing but the probe reads or writes it. */
const PROBE_PREFIX = 'health/';

const ASYNC_METHODS = [
  'get', 'set', 'add', 'delete', 'compareAndDelete', 'compareAndExtend', 'list', 'scan',
  'putCertificate', 'getCertificate', 'getCertificatePem', 'deleteCertificate', 'listCertificates', 'freeBytes', 'recover',
] as const;

/** The probe loop alone must not keep a process alive that has nothing else to do. */
const realSleep = (ms: number, signal?: AbortSignal) => timerSleep(ms, undefined, { signal, ref: false });

const describe = (err: unknown) => (err instanceof Error ? err.message : String(err));

export function withHealth(inner: Storage, opts: HealthOptions): MonitoredStorage {
  const { log, now = Date.now, sleep = realSleep, minFreeBytes = DEFAULT_MIN_FREE_BYTES } = opts;
  const iso = () => new Date(now()).toISOString();
  let state: StoreHealth = { up: true, writable: true, freeBytes: null, lowSpace: false, lastError: null, since: iso() };
  const listeners: Record<StoreHealthEvent, Array<(health: StoreHealth) => void>> = { down: [], up: [] };
  let probing: Promise<StoreHealth> | null = null;
  let lastProbeAt: number | null = null;
  let retrying = false;
  const closing = new AbortController();

  const snapshot = (): StoreHealth => ({ ...state });

  const emit = (event: StoreHealthEvent) => {
    const health = snapshot();
    for (const listener of listeners[event]) {
      try {
        listener(health);
      } catch (err) {
        log.error({ err: describe(err), event }, 'a storage health listener failed');
      }
    }
  };

  const markDown = (err: unknown) => {
    state.lastError = describe(err);
    if (!state.up) return;
    state = { ...state, up: false, since: iso() };
    log.error({ err: state.lastError }, 'storage is failing; retrying until it works again');
    emit('down');
    void retryUntilUp();
  };

  const markUp = () => {
    state.lastError = null;
    if (state.up) return;
    state = { ...state, up: true, since: iso() };
    log.info('storage works again');
    emit('up');
  };

  const noteSpace = (freeBytes: number | null) => {
    const lowSpace = freeBytes !== null && freeBytes < minFreeBytes;
    if (lowSpace && !state.lowSpace) log.warn({ freeBytes, minFreeBytes }, 'storage is low on space');
    if (!lowSpace && state.lowSpace) log.info({ freeBytes }, 'storage has space again');
    state.freeBytes = freeBytes;
    state.lowSpace = lowSpace;
  };

  const noteWritable = (writable: boolean, err?: unknown) => {
    if (!writable && state.writable) log.warn({ err: describe(err) }, 'storage cannot be written');
    state.writable = writable;
  };

  /** One probe; never rejects, its outcome is in the state it returns. */
  const runProbe = async (): Promise<StoreHealth> => {
    // Unknown free space is not a fault: some file systems cannot say.
    noteSpace(inner.freeBytes ? await inner.freeBytes().catch(() => null) : null);
    const key = `${PROBE_PREFIX}${randomBytes(8).toString('hex')}`;
    const value = `probe ${iso()}`;
    let wrote = false;
    try {
      await inner.set(key, value, { ttlMs: PROBE_TTL_MS });
      wrote = true;
      noteWritable(true);
      const readBack = await inner.get(key);
      if (readBack !== value) throw new Error(`storage probe read back ${readBack === null ? 'nothing' : 'another value'} for ${key}`);
      await inner.delete(key);
      markUp();
    } catch (err) {
      if (!wrote) noteWritable(false, err);
      markDown(err);
    } finally {
      lastProbeAt = now();
    }
    return snapshot();
  };

  const probeNow = () => {
    probing ??= runProbe().finally(() => {
      probing = null;
    });
    return probing;
  };

  /** The one background loop: probes with a doubling wait until the store is up, or the storage is closed. */
  const retryUntilUp = async () => {
    if (retrying) return;
    retrying = true;
    try {
      for (let waitMs = RETRY_FIRST_MS; !state.up && !closing.signal.aborted; waitMs = Math.min(waitMs * 2, RETRY_MAX_MS)) {
        try {
          await sleep(waitMs, closing.signal);
        } catch {
          return; // closed
        }
        if (state.up || closing.signal.aborted) return; // a probe from elsewhere found it up meanwhile
        await probeNow();
      }
    } finally {
      retrying = false;
    }
  };

  const watched = {} as Record<string, unknown>;
  for (const name of ASYNC_METHODS) {
    const method = inner[name] as ((...args: unknown[]) => Promise<unknown>) | undefined;
    if (typeof method !== 'function') continue;
    watched[name] = async (...args: unknown[]) => {
      try {
        return await method.apply(inner, args);
      } catch (err) {
        if (isStoreFault(err)) markDown(err);
        throw err;
      }
    };
  }

  return {
    ...(watched as unknown as Omit<Storage, 'kind' | 'shared' | 'location' | 'close'>),
    kind: inner.kind,
    shared: inner.shared,
    location: (name) => inner.location(name),
    health: snapshot,
    probe() {
      if (probing) return probing;
      if (lastProbeAt !== null && now() - lastProbeAt < PROBE_CACHE_MS) return Promise.resolve(snapshot());
      return probeNow();
    },
    on(event, listener) {
      listeners[event].push(listener);
    },
    async close() {
      closing.abort();
      await inner.close();
    },
  };
}
