// Small helpers the backend-specific storage tests share.

import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Storage } from '../../src/storage/storage.js';

/** Retries check until it passes or ms have gone by (a store coming back, a reconnect). */
export async function eventually(check: () => Promise<void>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(100);
    }
  }
}

/** Collects unhandled rejections and uncaught exceptions until stop() is called. */
export function watchUnhandled(): { stop(): unknown[] } {
  const seen: unknown[] = [];
  const record = (err: unknown) => seen.push(err);
  process.on('unhandledRejection', record);
  process.on('uncaughtException', record);
  return {
    stop() {
      process.off('unhandledRejection', record);
      process.off('uncaughtException', record);
      return seen;
    },
  };
}

/** Asserts a promise settles as a rejection within ms, and returns the error. */
export async function rejectsWithin(promise: Promise<unknown>, ms: number): Promise<Error & { code?: string }> {
  const started = Date.now();
  try {
    await promise;
  } catch (err) {
    const took = Date.now() - started;
    if (took > ms) throw new Error(`rejected only after ${took} ms (limit ${ms} ms): ${(err as Error).message}`);
    return err as Error & { code?: string };
  }
  throw new Error('expected a rejection');
}

/**
 * A store that stalls: a get fails with STORAGE_TIMEOUT within the timeout
 * (plus a margin), and works again once the store answers. Returns the error.
 */
export async function assertTimesOutAndRecovers(
  storage: Storage,
  store: { stall(): void; resume(): void },
  timeoutMs: number,
): Promise<Error & { code?: string }> {
  await storage.set('records/slow.json', 'v');
  store.stall();
  let err: Error & { code?: string };
  try {
    err = await rejectsWithin(storage.get('records/slow.json'), timeoutMs + 500);
    assert.equal(err.code, 'STORAGE_TIMEOUT');
  } finally {
    store.resume();
  }
  await eventually(async () => assert.equal(await storage.get('records/slow.json'), 'v'));
  return err;
}
