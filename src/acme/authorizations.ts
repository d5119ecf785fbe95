/**
 * Authorizations as the CA reports them, and how to read a failure out of
 * one. A failed validation is final for the order, so the engine looks for
 * it while the order is still pending instead of waiting for the order to
 * turn invalid (some CAs keep a failed challenge pending while they retry,
 * and the order with it).
 */
import { AcmeOrderInvalidError, type AcmeProblem } from './errors.js';

export interface Challenge {
  type: string;
  url: string;
  token: string;
  status: string;
  error?: AcmeProblem;
}

export interface Authorization {
  url: string;
  status: string;
  identifier: { type: string; value: string };
  /** Set for a "*.name" identifier (RFC 8555 §7.1.4); identifier.value is then the name without "*.". */
  wildcard?: boolean;
  challenges: Challenge[];
}

/** The failure an authorization already shows, or undefined while it may still succeed. */
export function validationFailure(authz: Authorization): AcmeOrderInvalidError | undefined {
  if (authz.status === 'valid') return undefined;
  const failed = authz.challenges.find((c) => c.error);
  if (failed?.error) return new AcmeOrderInvalidError(failed.error, `validation of ${authz.identifier.value} failed`);
  if (authz.status !== 'pending') return new AcmeOrderInvalidError(undefined, `the authorization for ${authz.identifier.value} is ${authz.status}`);
  return undefined;
}
