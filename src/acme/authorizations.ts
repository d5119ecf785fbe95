/**
 * Authorizations as the CA reports them, and how to read a failure out of
 * one. A failed validation is final for the order, so the engine looks for
 * it while the order is still pending instead of waiting for the order to
 * turn invalid (some CAs keep a failed challenge pending while they retry,
 * and the order with it).
 */
import type { Authorization } from 'acme-client';
import { AcmeOrderInvalidError, type AcmeProblem } from './errors.js';

// acme-client's own types for what the CA reports (RFC 8555 §7.1.4), with the URL it adds.
export type { Authorization } from 'acme-client';
export type { Challenge } from 'acme-client/types/rfc8555.js';

/** The failure an authorization already shows, or undefined while it may still succeed. */
export function validationFailure(authz: Authorization): AcmeOrderInvalidError | undefined {
  if (authz.status === 'valid') return undefined;
  const failed = authz.challenges.find((c) => c.error);
  // acme-client types a problem as `object`; the CA sends an RFC 7807 document.
  if (failed?.error) return new AcmeOrderInvalidError(failed.error as AcmeProblem, `validation of ${authz.identifier.value} failed`);
  if (authz.status !== 'pending') return new AcmeOrderInvalidError(undefined, `the authorization for ${authz.identifier.value} is ${authz.status}`);
  return undefined;
}
