/**
 * Waiting that an order's AbortSignal can cut short. Node's timers reject
 * with a generic AbortError; an aborted order must reject with the reason
 * its caller gave (shutdown, lost lock), so these hand that back instead.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export async function sleepUnlessAborted(ms: number, signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted();
  try {
    await sleep(ms, undefined, { signal });
  } catch (err) {
    if (signal?.aborted) throw signal.reason;
    throw err;
  }
}

/** Waits for a promise that others share too; this caller stops waiting (the promise goes on) when its signal aborts. */
export function abortable<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
