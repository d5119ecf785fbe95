// Several CAs: which failures go on to the next CA and which fail at once,
// the per-CA backoff (a down CA is skipped, the others are not held back),
// and where each CA's account lives in storage.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { AcmeAccountError, AcmeNetworkError, AcmeOrderInvalidError, AcmeProblemError, ProfileNotOfferedError } from '../../src/acme/errors.js';
import { accountKeysOf, saveAccountUrl } from '../../src/acme/account.js';
import { fallsBack, orderWithFallback, type CaFallback } from '../../src/daemon/ca-fallback.js';
import { AccountUnavailableError } from '../../src/acme/errors.js';
import { CaUnavailableError } from '../../src/renewal/ca-backoff.js';
import { CaBackoffs } from '../../src/renewal/ca-backoffs.js';
import { accountKeysFor, caStorageId, keys } from '../../src/storage/keys.js';
import { createMemoryStorage } from '../../src/storage/memory.js';

const A = 'https://a.test/dir';
const B = 'https://b.test/dir';
const C = 'https://c.test/dir';
const problem = (type: string, status: number) => new AcmeProblemError({ type: `urn:ietf:params:acme:error:${type}`, detail: type }, status, `${A}/x`);

describe('which failures fall back to the next CA', () => {
  test('the CA\'s own troubles fall back', () => {
    assert.ok(fallsBack(new AcmeNetworkError('connect ECONNREFUSED')));
    assert.ok(fallsBack(problem('serverInternal', 500)));
    assert.ok(fallsBack(problem('malformed', 503)), 'any 5xx');
    assert.ok(fallsBack(problem('rateLimited', 429)));
    assert.ok(fallsBack(new AcmeAccountError('the CA refused the external account binding')));
    assert.ok(fallsBack(new AccountUnavailableError(new Error('refused'))));
    assert.ok(fallsBack(new ProfileNotOfferedError('shortlived', B, [])));
  });

  test('the requester\'s faults fail at once', () => {
    assert.ok(!fallsBack(problem('rejectedIdentifier', 400)));
    assert.ok(!fallsBack(problem('unauthorized', 403)));
    assert.ok(!fallsBack(problem('badCSR', 400)));
    assert.ok(!fallsBack(problem('malformed', 400)));
    assert.ok(!fallsBack(new AcmeOrderInvalidError({ type: 'urn:ietf:params:acme:error:connection', detail: 'refused' }, 'authorization invalid')));
    assert.ok(!fallsBack(new Error('a plain bug')));
  });
});

describe('ordering with fallback', () => {
  const steps = () => {
    const seen: CaFallback[] = [];
    return { seen, on: (s: CaFallback) => seen.push(s) };
  };

  test('the first CA that answers issues; each move is reported once', async () => {
    const { seen, on } = steps();
    const asked: string[] = [];
    const result = await orderWithFallback([A, B, C], async (ca) => {
      asked.push(ca);
      if (ca === A) throw new AcmeNetworkError('down');
      return `cert from ${ca}`;
    }, on, () => new Error('unused'));
    assert.deepEqual(result, { value: `cert from ${B}`, ca: B });
    assert.deepEqual(asked, [A, B]);
    assert.deepEqual(seen.map((s) => [s.from, s.to, s.skipped]), [[A, B, false]]);
  });

  test('a requester fault at the first CA asks no other', async () => {
    const { seen, on } = steps();
    const asked: string[] = [];
    await assert.rejects(orderWithFallback([A, B], async (ca) => {
      asked.push(ca);
      throw problem('rejectedIdentifier', 400);
    }, on, () => new Error('unused')), /rejectedIdentifier/);
    assert.deepEqual(asked, [A]);
    assert.equal(seen.length, 0);
  });

  test('all CAs failing: the first real answer is thrown, as with one CA', async () => {
    const { on } = steps();
    const backoffs = new CaBackoffs(() => [A, B], { now: () => 0 });
    await assert.rejects(orderWithFallback([A, B], async (ca) => {
      if (ca === A) throw new CaUnavailableError(backoffs.of(A).state());
      throw problem('serverInternal', 500);
    }, on, () => backoffs.unavailable()), (err: Error) => err instanceof AcmeProblemError && err.httpStatus === 500);
  });
});

describe('a backoff per CA', () => {
  test('a down CA is skipped without a request, the next is asked; all down: the earliest retry', async () => {
    let now = 1_000_000;
    const backoffs = new CaBackoffs(() => [A, B], { now: () => now, baseMs: 10_000 });
    backoffs.of(A).fault(new AcmeNetworkError('down'));
    assert.equal(backoffs.backedOff, false, 'B still answers');
    assert.equal(backoffs.state().up, true);

    const requests: string[] = [];
    const order = (ca: string) => orderWithFallback([A, B], async (url) => {
      await backoffs.of(url).admit();
      requests.push(url);
      if (url !== ca) throw new AcmeNetworkError('down');
      backoffs.of(url).success();
      return url;
    }, (s) => assert.equal(s.skipped, true), () => backoffs.unavailable());
    assert.deepEqual(await order(B), { value: B, ca: B });
    assert.deepEqual(requests, [B], 'A in backoff got no request');

    now += 1_000;
    backoffs.of(B).fault(new AcmeNetworkError('down too'));
    assert.equal(backoffs.backedOff, true);
    const err = await order(B).catch((e: Error) => e);
    assert.ok(err instanceof CaUnavailableError);
    assert.equal(err.state.until, new Date(1_000_000 + 10_000).toISOString(), 'A\'s backoff ends first');

    now += 10_000; // A's wait is over: orders go back to it
    assert.deepEqual(await order(A), { value: A, ca: A });
    assert.equal(backoffs.of(A).state().up, true);
  });

  test('states lists every CA in fallback order', () => {
    const backoffs = new CaBackoffs(() => [A, B], { now: () => 0 });
    backoffs.of(B).fault(new AcmeNetworkError('down'));
    assert.deepEqual(backoffs.states().map((s) => [s.url, s.up]), [[A, true], [B, false]]);
  });
});

describe('each CA its own account in storage', () => {
  test('the legacy keys for their CA, prefixed keys for the others', () => {
    assert.deepEqual(accountKeysFor(A, A), { key: keys.accountKey, keyNext: keys.accountKeyNext, url: keys.accountUrl, lock: keys.accountLock });
    const id = caStorageId(B);
    assert.match(id, /^[0-9a-f]{16}$/);
    assert.deepEqual(accountKeysFor(B, A), { key: `account/ca/${id}/key.pem`, keyNext: `account/ca/${id}/key.next.pem`, url: `account/ca/${id}/url`, lock: `locks/account-${id}` });
    assert.notEqual(caStorageId(C), id);
  });

  test('the legacy keys stay with the CA they were registered with when the list is reordered', async () => {
    const storage = createMemoryStorage();
    // Nothing registered yet: the first CA takes the legacy keys.
    assert.equal((await accountKeysOf(storage, A, A)).key, keys.accountKey);
    assert.notEqual((await accountKeysOf(storage, B, A)).key, keys.accountKey);
    await saveAccountUrl(storage, A, 'https://a.test/acct/1');
    // B moved first: A keeps account/…, B has its own.
    assert.equal((await accountKeysOf(storage, A, B)).key, keys.accountKey);
    assert.equal((await accountKeysOf(storage, B, B)).key, `account/ca/${caStorageId(B)}/key.pem`);
  });
});
