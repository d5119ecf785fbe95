/**
 * Errors from a remote store (Redis, Consul, Vault). Callers branch on `code`,
 * not on messages: STORAGE_TIMEOUT means the store did not answer in time,
 * STORAGE_ERROR that it answered with a failure or could not be reached.
 */
import { AcmedError } from '../errors.js';

export class StorageError extends AcmedError {
  override readonly code: 'STORAGE_ERROR' | 'STORAGE_TIMEOUT' = 'STORAGE_ERROR';
  override get status(): number {
    return 503;
  }
  override get kind(): string {
    return 'store';
  }

  override apiBody(): Record<string, unknown> {
    return { ...super.apiBody(), message: `storage failed: ${this.message}` };
  }
}

export class StorageTimeoutError extends StorageError {
  override readonly code = 'STORAGE_TIMEOUT';
}

/**
 * Local file-system errors that describe the disk or this process, never the
 * certificate being written: full, read-only, over quota, failing, out of file
 * descriptors, or not ours to write.
 */
const STORE_FAULT_ERRNO = new Set(['ENOSPC', 'EROFS', 'EDQUOT', 'EIO', 'EMFILE', 'ENFILE', 'EACCES', 'EPERM']);

/**
 * True when err is the store's fault (a remote store down or slow, a local
 * disk full or read-only) rather than anything about a host, so a caller puts
 * no host into failure backoff for it.
 */
export function isStoreFault(err: unknown): boolean {
  if (err instanceof StorageError) return true;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && STORE_FAULT_ERRNO.has(code);
}
