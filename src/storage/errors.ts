/**
 * Errors from a remote store (Redis, Consul, Vault). Callers branch on `code`,
 * not on messages: STORAGE_TIMEOUT means the store did not answer in time,
 * STORAGE_ERROR that it answered with a failure or could not be reached.
 */
export class StorageError extends Error {
  readonly code: 'STORAGE_ERROR' | 'STORAGE_TIMEOUT' = 'STORAGE_ERROR';
}

export class StorageTimeoutError extends StorageError {
  override readonly code = 'STORAGE_TIMEOUT';
}
