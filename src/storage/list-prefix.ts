/**
 * list(prefix) takes a partial key ("challenges/", "records/a"), which
 * assertValidKey would refuse. Checked here so a prefix cannot climb out of
 * the namespace ("..") or smuggle glob and query characters into the store.
 */
import { InvalidKeyError } from './keys.js';

const PREFIX = /^[A-Za-z0-9._/-]*$/;

export function assertValidPrefix(prefix: string): void {
  if (!PREFIX.test(prefix) || prefix.startsWith('/') || prefix.split('/').includes('..')) {
    throw new InvalidKeyError(`invalid storage key prefix ${JSON.stringify(prefix)}`);
  }
}
