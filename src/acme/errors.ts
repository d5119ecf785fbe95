/**
 * Typed ACME errors. Callers branch on these (rate limit → back off until
 * Retry-After; unauthorized → the challenge failed; network → the CA is
 * unreachable) instead of parsing messages. acme-client 5.4 flattens the
 * problem document into a message string, so the transport builds these
 * itself from each response.
 */

import { AcmedError } from '../errors.js';

const PROBLEM_PREFIX = 'urn:ietf:params:acme:error:';

export class AcmeError extends AcmedError {
  override readonly code: string = 'ACME_ERROR';
  /** How long the CA asked us to wait before trying again, if it said. */
  retryAfterMs?: number;

  /** To an admin caller: the CA's rate limit is 429, any other CA failure 502 (a bad gateway, from the caller's side). */
  override get status(): number {
    return this.kind === 'rateLimited' ? 429 : 502;
  }

  override get kind(): string {
    return errorKind(this);
  }

  override apiBody(): Record<string, unknown> {
    const problem = (this as { problem?: AcmeProblem }).problem;
    return {
      message: `ACME order failed: ${this.message}`,
      kind: this.kind,
      ...(problem ? { problem } : {}),
      ...(this.retryAfterMs !== undefined ? { retry_after: Math.ceil(this.retryAfterMs / 1000) } : {}),
    };
  }

  override headers(): Record<string, string> {
    return this.retryAfterMs !== undefined ? { 'retry-after': String(Math.ceil(this.retryAfterMs / 1000)) } : {};
  }
}

export interface AcmeProblem {
  type: string;
  detail?: string;
  status?: number;
  subproblems?: AcmeProblem[];
}

/** The CA answered with an RFC 7807 problem document (or at least an error status). */
export class AcmeProblemError extends AcmeError {
  override readonly code = 'ACME_PROBLEM';
  constructor(
    readonly problem: AcmeProblem,
    readonly httpStatus: number,
    readonly url: string,
    retryAfterMs?: number,
  ) {
    super(describeProblem(problem, httpStatus));
    this.retryAfterMs = retryAfterMs;
  }

  /** The short problem type: "rateLimited", "unauthorized", "badNonce", … */
  get problemType(): string {
    return shortType(this.problem.type);
  }
}

/** An order or authorization went invalid; carries the challenge's problem when the CA gave one. */
export class AcmeOrderInvalidError extends AcmeError {
  override readonly code = 'ACME_ORDER_INVALID';
  constructor(readonly problem: AcmeProblem | undefined, what: string) {
    super(problem ? `${what}: ${describeProblem(problem)}` : what);
  }

  get problemType(): string {
    return this.problem ? shortType(this.problem.type) : 'invalid';
  }
}

/** The CA could not be reached, or did not answer in time. */
export type LostConnection = 'kept-alive' | 'handshake';

export class AcmeNetworkError extends AcmeError {
  override readonly code = 'ACME_NETWORK';
  constructor(
    message: string,
    readonly cause?: unknown,
    /**
     * Where the connection was lost before any answer, when that says
     * nothing about the CA: a kept-alive connection the server (or a proxy)
     * closed while it sat idle, or a new one cut during its TLS handshake,
     * before the request was sent.
     */
    readonly lostConnection?: LostConnection,
  ) {
    super(message);
  }
}

/** Polling ran past its deadline. */
export class AcmeTimeoutError extends AcmeError {
  override readonly code = 'ACME_TIMEOUT';
}

/**
 * The CA refused to register the ACME account (or to register it again):
 * a refused external account binding, a bad contact, a deactivated key.
 * Not for CA faults: an unreachable CA or a 5xx stays AcmeNetworkError or
 * AcmeProblemError, so the caller backs off the CA rather than the account.
 */
export class AcmeAccountError extends AcmeError {
  override readonly code = 'ACME_ACCOUNT';
  constructor(message: string, readonly problem?: AcmeProblem, readonly cause?: unknown) {
    super(message);
  }
}

/**
 * True when the fault lies with the CA, not with the certificate or the
 * account: it could not be reached, timed out, dropped the connection, or
 * answered 5xx / serverInternal. The daemon backs off the CA for these, not
 * the host; everything else (rate limits, refused names, failed validation,
 * a poll that ran out of time) is about the request.
 */
export function isCaFault(err: unknown): boolean {
  if (err instanceof AcmeNetworkError) return true;
  if (err instanceof AcmeProblemError) return err.httpStatus >= 500 || err.problemType === 'serverInternal';
  return false;
}

/** Words in an `unauthorized` detail that point at the account (its URL, key ID) rather than a challenge. */
const ACCOUNT_DETAIL = /\baccount\b|\bregistration\b|\bkey ?id\b|\bkid\b/i;

/**
 * True when the CA no longer knows the account that signed the request: what
 * a CA whose database was reset (or a restarted Pebble) answers. Some CAs say
 * `unauthorized` instead of `accountDoesNotExist`; then the detail decides.
 */
export function isAccountUnknown(err: unknown): boolean {
  if (!(err instanceof AcmeProblemError)) return false;
  if (err.problemType === 'accountDoesNotExist') return true;
  return err.problemType === 'unauthorized' && ACCOUNT_DETAIL.test(err.problem.detail ?? '');
}

export function shortType(type: string): string {
  return type.startsWith(PROBLEM_PREFIX) ? type.slice(PROBLEM_PREFIX.length) : type;
}

export function describeProblem(problem: AcmeProblem, httpStatus?: number): string {
  const status = httpStatus ?? problem.status;
  const head = `${shortType(problem.type)}${status ? ` (HTTP ${status})` : ''}`;
  const sub = problem.subproblems?.length
    ? `; ${problem.subproblems.map((p) => describeProblem(p)).join('; ')}`
    : '';
  return `${head}${problem.detail ? `: ${problem.detail}` : ''}${sub}`;
}

/** The problem type of any error, for logs, metrics and backoff decisions. */
export function errorKind(err: unknown): string {
  if (err instanceof AcmeProblemError || err instanceof AcmeOrderInvalidError) return err.problemType;
  if (err instanceof AcmeError) return err.code.toLowerCase().replace('acme_', '');
  // Errors of acmed's own that name their kind (a failed http-01 preflight: 'preflight').
  const kind = (err as { kind?: unknown } | null)?.kind;
  return typeof kind === 'string' ? kind : 'internal';
}

/** Parses Retry-After (delta seconds or HTTP date) into milliseconds from now. */
export function parseRetryAfter(header: string | string[] | undefined, now = Date.now()): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  // Every HTTP-date form starts with the day name; without this check V8's
  // lenient Date.parse reads junk such as "-5" or "1.5" as dates in 2001.
  if (!/^(Mon|Tue|Wed|Thu|Fri|Sat|Sun)/i.test(value.trim())) return undefined;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** The config asks for an ACME profile the CA's directory does not list: refused before any order. */
export class ProfileNotOfferedError extends AcmedError {
  override readonly code = 'PROFILE_NOT_OFFERED';
  constructor(readonly profile: string, readonly directoryUrl: string, readonly offered: string[]) {
    super(`the CA at ${directoryUrl} offers no profile ${JSON.stringify(profile)} (it lists: ${offered.length > 0 ? offered.join(', ') : 'none'}); fix "profile" in the config`);
  }

  override get status(): number {
    return 422;
  }

  override get kind(): string {
    return 'profile';
  }
}

/** The ACME account could not be loaded or registered: nothing about any one host. */
export class AccountUnavailableError extends AcmedError {
  override readonly code = 'ACCOUNT_UNAVAILABLE';
  constructor(readonly cause: Error) {
    super(cause.message);
  }

  override get status(): number {
    return this.kind === 'rateLimited' ? 429 : 502;
  }

  override get kind(): string {
    return errorKind(this.cause);
  }

  override apiBody(): Record<string, unknown> {
    return { message: `ACME order failed: ${this.message}`, kind: this.kind, ...(this.cause instanceof AcmeProblemError ? { problem: this.cause.problem } : {}) };
  }
}
