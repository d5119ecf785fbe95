/**
 * Per-name locks on top of Storage.add. The lock value is an owner token, so
 * only the holder releases or extends it; a heartbeat keeps a long order's
 * lock alive, and the TTL frees the lock of a holder that died.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Storage } from './storage.js';

export interface LockOptions {
  ttlMs?: number;
  /** How long to wait for a held lock before giving up. */
  waitMs?: number;
  pollMs?: number;
  /** Gives up waiting for the lock (shutdown). */
  signal?: AbortSignal;
}

export class LockTimeoutError extends Error {
  readonly code = 'LOCK_TIMEOUT';
}

export async function withLock<T>(storage: Storage, key: string, fn: () => Promise<T>, opts: LockOptions = {}): Promise<T> {
  const { ttlMs = 60_000, waitMs = 300_000, pollMs = 250, signal } = opts;
  const token = randomBytes(16).toString('hex');
  const deadline = Date.now() + waitMs;
  while (!(await storage.add(key, token, ttlMs))) {
    if (Date.now() >= deadline) throw new LockTimeoutError(`lock ${key} is still held after ${Math.round(waitMs / 1000)} s`);
    await sleep(pollMs, undefined, { signal });
  }
  const heartbeat = setInterval(() => {
    void storage.compareAndExtend(key, token, ttlMs).catch(() => {});
  }, Math.max(1_000, ttlMs / 3));
  heartbeat.unref();
  try {
    return await fn();
  } finally {
    clearInterval(heartbeat);
    // Only our own lock: if it expired and another holder took it, theirs stays.
    await storage.compareAndDelete(key, token).catch(() => {});
  }
}
