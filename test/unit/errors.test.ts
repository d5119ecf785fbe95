// Typed ACME errors: Retry-After parsing, problem descriptions, error kinds.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  AcmeError, AcmeNetworkError, AcmeOrderInvalidError, AcmeProblemError, AcmeTimeoutError,
  describeProblem, errorKind, parseRetryAfter, shortType,
} from '../../src/acme/errors.js';

describe('parseRetryAfter', () => {
  const now = Date.parse('2025-03-01T12:00:00Z');

  test('delta seconds', () => {
    assert.equal(parseRetryAfter('7', now), 7_000);
    assert.equal(parseRetryAfter('0', now), 0);
    assert.equal(parseRetryAfter(' 120 ', now), 120_000);
    assert.equal(parseRetryAfter('86400', now), 86_400_000);
  });

  test('an HTTP date, relative to now', () => {
    assert.equal(parseRetryAfter('Sat, 01 Mar 2025 12:00:30 GMT', now), 30_000);
    assert.equal(parseRetryAfter('Sat, 01 Mar 2025 13:00:00 GMT', now), 3_600_000);
    // the obsolete RFC 850 form is still an HTTP-date
    assert.equal(parseRetryAfter('Saturday, 01-Mar-25 12:00:30 GMT', now), 30_000);
  });

  test('a date in the past means "now", never a negative wait', () => {
    assert.equal(parseRetryAfter('Sat, 01 Mar 2025 11:00:00 GMT', now), 0);
  });

  test('the first of several header values is used', () => {
    assert.equal(parseRetryAfter(['5', '60'], now), 5_000);
  });

  test('missing or junk is undefined', () => {
    assert.equal(parseRetryAfter(undefined, now), undefined);
    assert.equal(parseRetryAfter('', now), undefined);
    assert.equal(parseRetryAfter([], now), undefined);
    assert.equal(parseRetryAfter('soon', now), undefined);
    assert.equal(parseRetryAfter('not a date at all', now), undefined);
    assert.equal(parseRetryAfter('-5', now), undefined);
    assert.equal(parseRetryAfter('1.5', now), undefined);
  });

  test('defaults now to the current time', () => {
    const inAMinute = new Date(Date.now() + 60_000).toUTCString();
    const ms = parseRetryAfter(inAMinute);
    assert.ok(ms !== undefined && ms > 50_000 && ms <= 60_000, String(ms));
  });
});

describe('describeProblem', () => {
  test('short type, status and detail', () => {
    assert.equal(
      describeProblem({ type: 'urn:ietf:params:acme:error:unauthorized', detail: 'key authorization mismatch' }, 403),
      'unauthorized (HTTP 403): key authorization mismatch',
    );
  });

  test('the status in the document is used when no HTTP status is given', () => {
    assert.equal(describeProblem({ type: 'urn:ietf:params:acme:error:malformed', status: 400 }), 'malformed (HTTP 400)');
  });

  test('a non-ACME type is kept whole', () => {
    assert.equal(describeProblem({ type: 'about:blank', detail: 'x' }), 'about:blank: x');
    assert.equal(shortType('https://example.com/probs/x'), 'https://example.com/probs/x');
    assert.equal(shortType('urn:ietf:params:acme:error:badNonce'), 'badNonce');
  });

  test('subproblems are listed after the problem', () => {
    const text = describeProblem({
      type: 'urn:ietf:params:acme:error:rejectedIdentifier',
      detail: 'some identifiers were rejected',
      subproblems: [
        { type: 'urn:ietf:params:acme:error:rejectedIdentifier', detail: 'a.example.com is forbidden', status: 400 },
        { type: 'urn:ietf:params:acme:error:caa', detail: 'CAA forbids b.example.com' },
      ],
    }, 400);
    assert.equal(
      text,
      'rejectedIdentifier (HTTP 400): some identifiers were rejected; '
        + 'rejectedIdentifier (HTTP 400): a.example.com is forbidden; caa: CAA forbids b.example.com',
    );
  });

  test('an empty subproblem list adds nothing', () => {
    assert.equal(describeProblem({ type: 'urn:ietf:params:acme:error:serverInternal', subproblems: [] }, 500), 'serverInternal (HTTP 500)');
  });
});

describe('error classes and errorKind', () => {
  test('AcmeProblemError carries the problem, status, url and Retry-After', () => {
    const err = new AcmeProblemError(
      { type: 'urn:ietf:params:acme:error:rateLimited', detail: 'slow down' }, 429, 'https://ca/new-order', 7_000,
    );
    assert.ok(err instanceof AcmeError);
    assert.ok(err instanceof Error);
    assert.equal(err.problemType, 'rateLimited');
    assert.equal(err.httpStatus, 429);
    assert.equal(err.url, 'https://ca/new-order');
    assert.equal(err.retryAfterMs, 7_000);
    assert.equal(err.code, 'ACME_PROBLEM');
    assert.equal(err.message, 'rateLimited (HTTP 429): slow down');
    assert.equal(errorKind(err), 'rateLimited');
  });

  test('AcmeOrderInvalidError kinds come from its problem, or "invalid"', () => {
    const withProblem = new AcmeOrderInvalidError({ type: 'urn:ietf:params:acme:error:connection', detail: 'timeout' }, 'authorization for a.example.com');
    assert.equal(errorKind(withProblem), 'connection');
    assert.equal(withProblem.message, 'authorization for a.example.com: connection: timeout');
    assert.equal(withProblem.code, 'ACME_ORDER_INVALID');
    const bare = new AcmeOrderInvalidError(undefined, 'order went invalid');
    assert.equal(errorKind(bare), 'invalid');
    assert.equal(bare.message, 'order went invalid');
  });

  test('network, timeout and generic ACME errors map to their code', () => {
    const cause = new Error('connect ECONNREFUSED');
    const network = new AcmeNetworkError('cannot reach the CA', cause);
    assert.equal(network.cause, cause);
    assert.equal(errorKind(network), 'network');
    assert.equal(errorKind(new AcmeTimeoutError('order did not settle')), 'timeout');
    assert.equal(errorKind(new AcmeError('something')), 'error');
  });

  test('anything else is "internal"', () => {
    assert.equal(errorKind(new Error('boom')), 'internal');
    assert.equal(errorKind(new TypeError('x is undefined')), 'internal');
    assert.equal(errorKind('a string'), 'internal');
    assert.equal(errorKind(undefined), 'internal');
  });
});
