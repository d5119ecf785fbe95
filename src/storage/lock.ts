/**
 * Per-name locks on top of Storage.add. The lock value is an owner token
 * (lock-owner.ts), so only the holder releases or extends it; a heartbeat
 * keeps a long order's lock alive, and the TTL frees the lock of a holder
 * that died.
 *
 * A holder cannot be sure it still holds a lock it cannot extend, so the
 * heartbeat gives up as soon as it knows (another holder took it) or can no
 * longer know (the store did not confirm within the TTL), and says so through
 * HeldLock.signal. assertHeld() is the fence right before a write: a holder
 * paused for longer than the TTL learns there that it lost the lock.
 */
import { AcmedError } from '../errors.js';
import { setTimeout as timerSleep } from 'node:timers/promises';
import { newOwnerToken } from './lock-owner.js';
import type { Storage } from './storage.js';

export { releaseStaleOwnLocks } from './lock-owner.js';

export interface LockOptions {
  ttlMs?: number;
  /** How long to wait for a held lock before giving up. */
  waitMs?: number;
  pollMs?: number;
  /** Gives up waiting for the lock (shutdown). */
  signal?: AbortSignal;
  /** Clock and sleep, injected by tests so they drive the heartbeat without waiting. */
  now?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

export interface HeldLock {
  readonly key: string;
  /** Aborted (reason: LockLostError) when the heartbeat could not extend the lock: another holder took it, or the store did not confirm it before the TTL ran out. */
  readonly signal: AbortSignal;
  /**
   * Fencing check right before a write: throws LockLostError unless the store
   * still holds our token. A store that cannot answer throws its own error (a
   * store fault), since it says nothing about who holds the lock.
   */
  assertHeld(): Promise<void>;
}

/** Someone else holds the certificate's lock: the work is theirs (409 to an admin caller). */
export abstract class LockError extends AcmedError {
  override get status(): number {
    return 409;
  }
  override get kind(): string {
    return 'locked';
  }
}

/** The lock was taken over (it expired while this job held it): nothing more may be written. */
export class LockLostError extends LockError {
  override readonly code = 'LOCK_LOST';
}

/** The lock stayed held by another job for longer than this one would wait. */
export class LockTimeoutError extends LockError {
  override readonly code = 'LOCK_TIMEOUT';
}

type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;

const waitSleep: Sleep = (ms, signal) => timerSleep(ms, undefined, { signal });
/** The heartbeat alone must not keep a process alive that has nothing else to do. */
const beatSleep: Sleep = (ms, signal) => timerSleep(ms, undefined, { signal, ref: false });

/**
 * Runs fn while holding the lock at key. fn's result is returned even if the
 * lock was lost meanwhile: fn learns of that through lock.signal and
 * lock.assertHeld(), and decides what its work is still worth.
 */
export async function withLock<T>(
  storage: Storage, key: string, fn: (lock: HeldLock) => Promise<T>, opts: LockOptions = {},
): Promise<T> {
  const { ttlMs = 60_000, waitMs = 300_000, pollMs = 250, signal, now = Date.now } = opts;
  const token = newOwnerToken();
  const deadline = now() + waitMs;
  let confirmedAt: number;
  for (;;) {
    const sentAt = now();
    if (await storage.add(key, token, ttlMs)) {
      confirmedAt = sentAt; // the store's TTL started no earlier than this
      break;
    }
    if (now() >= deadline) throw new LockTimeoutError(`lock ${key} is still held after ${Math.round(waitMs / 1000)} s`);
    await (opts.sleep ?? waitSleep)(pollMs, signal);
  }

  const lost = new AbortController();
  const stop = new AbortController();
  void keepAlive({ storage, key, token, ttlMs, now, sleep: opts.sleep ?? beatSleep, confirmedAt, lost, stop: stop.signal });
  const lock: HeldLock = {
    key,
    signal: lost.signal,
    async assertHeld() {
      lost.signal.throwIfAborted();
      if ((await storage.get(key)) === token) return;
      const err = new LockLostError(`lock ${key} is no longer ours: another holder has it, or it expired`);
      lost.abort(err);
      throw err;
    },
  };
  try {
    return await fn(lock);
  } finally {
    stop.abort();
    // Only our own lock: if it expired and another holder took it, theirs stays.
    await storage.compareAndDelete(key, token).catch(() => releaseLater(storage, key, token, Date.now() + ttlMs));
  }
}

/**
 * A release the store did not take (it was down) is tried again in the
 * background until the lock would have expired anyway, so the next job for
 * the name does not wait out the whole TTL once the store is back.
 */
function releaseLater(storage: Storage, key: string, token: string, expiresAt: number): void {
  void (async () => {
    for (let delay = 500; Date.now() + delay < expiresAt; delay = Math.min(delay * 2, 5_000)) {
      await beatSleep(delay);
      if (await storage.compareAndDelete(key, token).then(() => true, () => false)) return;
    }
  })();
}

interface Heartbeat {
  storage: Storage;
  key: string;
  token: string;
  ttlMs: number;
  now: () => number;
  sleep: Sleep;
  /** When the last add or extension that the store confirmed was sent. */
  confirmedAt: number;
  lost: AbortController;
  stop: AbortSignal;
}

/** Extends the lock every ttl/3 until stopped; aborts `lost` when it cannot. Never rejects. */
async function keepAlive(h: Heartbeat): Promise<void> {
  const interval = h.ttlMs / 3;
  let confirmedAt = h.confirmedAt;
  let lastError: unknown;
  const expiresIn = () => confirmedAt + h.ttlMs - h.now();
  while (!h.stop.aborted && !h.lost.signal.aborted) {
    if (expiresIn() <= 0) {
      const why = lastError === undefined ? 'the store did not answer' : `the store failed: ${(lastError as Error)?.message ?? String(lastError)}`;
      h.lost.abort(new LockLostError(`lock ${h.key} could not be extended within its ${h.ttlMs} ms TTL: ${why}`, { cause: lastError }));
      return;
    }
    try {
      await h.sleep(Math.min(interval, expiresIn()), h.stop);
    } catch {
      return; // stopped
    }
    if (h.stop.aborted || h.lost.signal.aborted || expiresIn() <= 0) continue;
    const sentAt = h.now();
    const outcome = await settleWithin(h.storage.compareAndExtend(h.key, h.token, h.ttlMs), expiresIn(), h.sleep, h.stop);
    if (h.stop.aborted) return;
    if (outcome.answered === true) {
      confirmedAt = sentAt;
      lastError = undefined;
    } else if (outcome.answered === false) {
      h.lost.abort(new LockLostError(`lock ${h.key} was taken by another holder`));
    } else if ('failed' in outcome) {
      lastError = outcome.failed;
    }
    // A failure or no answer: the next turn tries again, or gives up once the TTL has run out.
  }
}

type Settled<T> = { answered: T } | { answered?: undefined; failed: unknown } | { answered?: undefined; silent: true };

/** The work's outcome, or `silent` if it has not settled within ms (a hung store must not hold the heartbeat). */
async function settleWithin<T>(work: Promise<T>, ms: number, sleep: Sleep, stop: AbortSignal): Promise<Settled<T>> {
  const giveUp = new AbortController();
  const onStop = () => giveUp.abort();
  stop.addEventListener('abort', onStop);
  const silent: Settled<T> = { silent: true };
  try {
    return await Promise.race([
      work.then((answered): Settled<T> => ({ answered }), (failed: unknown): Settled<T> => ({ failed })),
      sleep(ms, giveUp.signal).then(() => silent, () => silent),
    ]);
  } finally {
    giveUp.abort();
    stop.removeEventListener('abort', onStop);
  }
}
