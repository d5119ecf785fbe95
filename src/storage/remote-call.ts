/**
 * One call to a remote store, bounded by a deadline. Client libraries have
 * their own timeouts, but not for every phase (DNS, TLS, an offline queue), so
 * this is the one guarantee a caller can rely on: the promise settles within
 * timeoutMs, with an error that names the store and the operation.
 */
import { StorageError, StorageTimeoutError } from './errors.js';

export async function remoteCall<T>(where: string, op: string, timeoutMs: number, work: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StorageTimeoutError(`${where}: ${op} timed out after ${timeoutMs} ms`)), timeoutMs);
  });
  const call = work();
  call.catch(() => {}); // a late failure after the deadline must not become an unhandled rejection
  try {
    return await Promise.race([call, deadline]);
  } catch (err) {
    if (err instanceof StorageError) throw err;
    throw new StorageError(`${where}: ${op} failed: ${(err as Error)?.message ?? String(err)}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}
