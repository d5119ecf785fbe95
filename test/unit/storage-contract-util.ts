// Small helpers the backend-specific storage tests share.

import { setTimeout as sleep } from 'node:timers/promises';

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
