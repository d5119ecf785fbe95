// How ACME errors are classified for callers: CA faults (back off the CA),
// an account the CA forgot (register again), refused registrations (one
// clear AcmeAccountError that never shows the HMAC key), failed validations
// seen on authorizations, and whether an earlier order can be resumed.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  AcmeAccountError, AcmeError, AcmeNetworkError, AcmeOrderInvalidError, AcmeProblemError, AcmeTimeoutError,
  errorKind, isAccountUnknown, isCaFault,
} from '../../src/acme/errors.js';
import { registrationError } from '../../src/acme/account-registration.js';
import { validationFailure, type Authorization } from '../../src/acme/authorizations.js';
import { orderUnusable, resumeMismatch, type PendingOrder } from '../../src/acme/pending-order.js';

const problem = (type: string, status: number, detail = `${type} detail`) =>
  new AcmeProblemError({ type: `urn:ietf:params:acme:error:${type}`, detail }, status, 'https://ca.test/x');

describe('isCaFault', () => {
  test('network faults, 5xx and serverInternal are the CA\'s', () => {
    assert.equal(isCaFault(new AcmeNetworkError('cannot reach the CA at ca.test: ECONNREFUSED')), true);
    assert.equal(isCaFault(new AcmeNetworkError('cannot reach the CA at ca.test: ETIMEDOUT')), true);
    assert.equal(isCaFault(problem('serverInternal', 500)), true);
    assert.equal(isCaFault(problem('httpError', 502)), true);
    assert.equal(isCaFault(problem('malformed', 503)), true);
    // serverInternal with an odd status is still the CA's fault
    assert.equal(isCaFault(problem('serverInternal', 400)), true);
  });

  test('everything about the request, the account or the host is not', () => {
    for (const [type, status] of [['rateLimited', 429], ['unauthorized', 403], ['rejectedIdentifier', 400], ['badNonce', 400],
      ['accountDoesNotExist', 400], ['orderNotReady', 403], ['malformed', 404]] as const) {
      assert.equal(isCaFault(problem(type, status)), false, type);
    }
    assert.equal(isCaFault(new AcmeOrderInvalidError({ type: 'urn:ietf:params:acme:error:connection', detail: 'refused' }, 'validation of a.example.com failed')), false);
    assert.equal(isCaFault(new AcmeTimeoutError('order did not settle within 120 s')), false);
    assert.equal(isCaFault(new AcmeAccountError('refused')), false);
    assert.equal(isCaFault(new AcmeError('other')), false);
    assert.equal(isCaFault(new Error('ECONNRESET')), false);
    assert.equal(isCaFault(undefined), false);
    assert.equal(isCaFault('ECONNRESET'), false);
  });
});

describe('isAccountUnknown', () => {
  test('accountDoesNotExist, or unauthorized about the account or key ID', () => {
    assert.equal(isAccountUnknown(problem('accountDoesNotExist', 400, 'Account https://ca.test/acct/1 not found.')), true);
    assert.equal(isAccountUnknown(problem('unauthorized', 403, 'No registration exists matching provided key')), true);
    assert.equal(isAccountUnknown(problem('unauthorized', 403, 'the field \'kid\' references a key that is not known')), true);
    assert.equal(isAccountUnknown(problem('unauthorized', 401, 'unknown key ID')), true);
  });

  test('not unauthorized about a challenge, nor other problems', () => {
    assert.equal(isAccountUnknown(problem('unauthorized', 403, 'Invalid response from http://a.example.com/.well-known/acme-challenge/x: 404')), false);
    assert.equal(isAccountUnknown(problem('unauthorized', 403, 'Cannot issue for "a.example.com": policy forbids it')), false);
    assert.equal(isAccountUnknown(problem('malformed', 400, 'account is weird')), false);
    assert.equal(isAccountUnknown(new AcmeNetworkError('account')), false);
  });
});

describe('registrationError', () => {
  const hmacKey = 'c2VjcmV0LWhtYWMta2V5LW5ldmVyLXByaW50ZWQ';

  test('a refused binding names the kid and the CA\'s detail, never the key', () => {
    const err = registrationError(problem('unauthorized', 403, 'external account binding JWS verification error'), 'kid-acmed');
    assert.ok(err instanceof AcmeAccountError);
    assert.equal(err.code, 'ACME_ACCOUNT');
    assert.equal(err.message, 'the CA refused the external account binding for eab_kid "kid-acmed": external account binding JWS verification error');
    assert.ok(!err.message.includes(hmacKey));
    assert.equal(errorKind(err), 'account');
  });

  test('without a binding, a CA that needs one says so and what to set', () => {
    const err = registrationError(problem('externalAccountRequired', 403, 'External Account Binding is required'), undefined);
    assert.ok(err instanceof AcmeAccountError);
    assert.match(err.message, /^externalAccountRequired \(HTTP 403\): External Account Binding is required \(.*set eab_kid and eab_hmac_key\)$/);
  });

  test('a bad contact is about the contact even with a binding', () => {
    const err = registrationError(problem('invalidContact', 400, 'bad email'), 'kid-acmed');
    assert.ok(err instanceof AcmeAccountError);
    assert.match(err.message, /^invalidContact \(HTTP 400\): bad email \(the CA refused to register the ACME account\)$/);
  });

  test('CA faults and rate limits keep their types, so the caller backs off the CA or waits', () => {
    const down = new AcmeNetworkError('cannot reach the CA at ca.test: ECONNREFUSED');
    assert.equal(registrationError(down, 'kid'), down);
    const fivexx = problem('serverInternal', 500);
    assert.equal(registrationError(fivexx, 'kid'), fivexx);
    const limited = problem('rateLimited', 429);
    assert.equal(registrationError(limited, 'kid'), limited);
  });

  test('anything else becomes an AcmeAccountError too', () => {
    const err = registrationError(new Error('Unable to locate API resource URL in ACME directory: "newAccount"'), undefined);
    assert.ok(err instanceof AcmeAccountError);
    assert.match(err.message, /^cannot register the ACME account: Unable to locate/);
  });
});

describe('validationFailure', () => {
  const authz = (status: Authorization['status'], challenge: Partial<Authorization['challenges'][number]>): Authorization => ({
    url: 'https://ca.test/authz/1',
    status,
    identifier: { type: 'dns', value: 'a.example.com' },
    challenges: [
      { type: 'dns-01', url: 'https://ca.test/chall/d', token: 'd', status: 'pending' },
      { type: 'http-01', url: 'https://ca.test/chall/h', token: 'h', status: 'pending', ...challenge },
    ],
  });
  const refused = { type: 'urn:ietf:params:acme:error:connection', detail: '127.0.0.9: Connection refused', status: 400 };

  test('a challenge with an error fails, even while still pending', () => {
    const failure = validationFailure(authz('pending', { error: refused }));
    assert.ok(failure instanceof AcmeOrderInvalidError);
    assert.equal(failure.message, 'validation of a.example.com failed: connection (HTTP 400): 127.0.0.9: Connection refused');
    assert.equal(failure.problemType, 'connection');
    assert.equal(failure.problem?.detail, '127.0.0.9: Connection refused');
  });

  test('an invalid authorization fails, with or without a challenge error', () => {
    assert.match(validationFailure(authz('invalid', { status: 'invalid', error: refused }))!.message, /Connection refused/);
    assert.equal(validationFailure(authz('invalid', { status: 'invalid' }))!.message, 'the authorization for a.example.com is invalid');
  });

  test('pending, processing and valid authorizations have not failed', () => {
    assert.equal(validationFailure(authz('pending', {})), undefined);
    assert.equal(validationFailure(authz('pending', { status: 'processing' })), undefined);
    assert.equal(validationFailure(authz('valid', { status: 'valid', error: refused })), undefined);
  });
});

describe('resuming an earlier order', () => {
  const pending: PendingOrder = { url: 'https://ca.test/order/1', names: ['a.example.com', 'b.example.com'], privkey: 'PEM', keyType: 'ecc' };

  test('same names (in any order and case) and key type resume', () => {
    assert.equal(resumeMismatch(pending, { names: ['B.example.com', 'a.example.com'], keyType: 'ecc' }), undefined);
    assert.equal(resumeMismatch(pending, { names: ['a.example.com'], keyType: 'ecc' }), 'the names differ');
    assert.equal(resumeMismatch(pending, { names: pending.names, keyType: 'rsa' }), 'the key type differs');
  });

  test('invalid, expired or foreign orders are not carried on', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    const names = pending.names;
    const identifiers = names.map((value) => ({ type: 'dns', value }));
    for (const status of ['pending', 'ready', 'processing', 'valid']) {
      assert.equal(orderUnusable({ status, expires: '2026-01-02T00:00:00Z', identifiers }, names, now), undefined, status);
    }
    assert.equal(orderUnusable({ status: 'invalid', identifiers }, names, now), 'the order is invalid');
    assert.equal(orderUnusable({ status: 'pending', expires: '2025-12-31T00:00:00Z', identifiers }, names, now), 'the order has expired');
    // a valid order's certificate can still be fetched after the order expired
    assert.equal(orderUnusable({ status: 'valid', expires: '2025-12-31T00:00:00Z', identifiers }, names, now), undefined);
    assert.equal(orderUnusable({ status: 'ready', identifiers: [{ type: 'dns', value: 'c.example.com' }] }, names, now), 'the order is for other names');
  });
});
