// Memory storage: the same verbs as every backend, with an injected clock for TTLs.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createMemoryStorage } from '../../src/storage/memory.js';
import { InvalidKeyError } from '../../src/storage/keys.js';
import { InvalidHostnameError } from '../../src/hostname.js';
import type { CertificateBundle } from '../../src/storage/storage.js';

function clock(start = 1_000_000) {
  const c = { now: start, fn: () => c.now };
  return c;
}

function bundle(name: string, marker: string): CertificateBundle {
  return {
    name, names: [name], cert: `cert ${marker}`, chain: `chain ${marker}`, fullchain: `cert ${marker}chain ${marker}`,
    privkey: `key ${marker}`, notBefore: '2025-01-01T00:00:00.000Z', notAfter: '2025-04-01T00:00:00.000Z',
  };
}

describe('state verbs', () => {
  test('kind and sharing', () => {
    const storage = createMemoryStorage();
    assert.equal(storage.kind, 'memory');
    assert.equal(storage.shared, false);
  });

  test('get/set/delete', async () => {
    const storage = createMemoryStorage();
    assert.equal(await storage.get('account/url'), null);
    await storage.set('account/url', 'u1');
    assert.equal(await storage.get('account/url'), 'u1');
    await storage.set('account/url', 'u2');
    assert.equal(await storage.get('account/url'), 'u2');
    await storage.delete('account/url');
    assert.equal(await storage.get('account/url'), null);
    await storage.delete('account/url'); // deleting twice is fine
  });

  test('stores are independent', async () => {
    const a = createMemoryStorage();
    const b = createMemoryStorage();
    await a.set('k', 'v');
    assert.equal(await b.get('k'), null);
  });

  test('list filters by prefix', async () => {
    const storage = createMemoryStorage();
    await storage.set('locks/a.example.com', '1');
    await storage.set('locks/b.example.com', '2');
    await storage.set('records/a.example.com.json', '{}');
    assert.deepEqual((await storage.list('locks/')).sort(), ['locks/a.example.com', 'locks/b.example.com']);
    assert.deepEqual((await storage.list('records/')), ['records/a.example.com.json']);
    assert.deepEqual(await storage.list('nothing/'), []);
    assert.equal((await storage.list('')).length, 3);
  });

  test('set with a TTL expires on the injected clock, and drops out of list', async () => {
    const c = clock();
    const storage = createMemoryStorage({ now: c.fn });
    await storage.set('challenges/tok', 'ka', { ttlMs: 1_000 });
    await storage.set('challenges/forever', 'ka2');
    c.now += 999;
    assert.equal(await storage.get('challenges/tok'), 'ka');
    assert.deepEqual((await storage.list('challenges/')).sort(), ['challenges/forever', 'challenges/tok']);
    c.now += 1;
    assert.equal(await storage.get('challenges/tok'), null);
    assert.deepEqual(await storage.list('challenges/'), ['challenges/forever']);
    c.now += 10 * 365 * 86_400_000;
    assert.equal(await storage.get('challenges/forever'), 'ka2');
  });

  test('set without a TTL clears an earlier TTL', async () => {
    const c = clock();
    const storage = createMemoryStorage({ now: c.fn });
    await storage.set('k', 'short', { ttlMs: 10 });
    await storage.set('k', 'long');
    c.now += 1_000;
    assert.equal(await storage.get('k'), 'long');
  });
});

describe('add', () => {
  test('is exclusive: 20 concurrent adds, one winner', async () => {
    const storage = createMemoryStorage();
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => storage.add('locks/x.example.com', `o${i}`, 60_000)));
    assert.equal(results.filter(Boolean).length, 1);
    assert.equal(await storage.get('locks/x.example.com'), `o${results.indexOf(true)}`);
  });

  test('refuses a live entry, takes over an expired one', async () => {
    const c = clock();
    const storage = createMemoryStorage({ now: c.fn });
    assert.equal(await storage.add('locks/x.example.com', 'first', 500), true);
    c.now += 499;
    assert.equal(await storage.add('locks/x.example.com', 'second', 500), false);
    assert.equal(await storage.get('locks/x.example.com'), 'first');
    c.now += 1;
    assert.equal(await storage.add('locks/x.example.com', 'second', 500), true);
    assert.equal(await storage.get('locks/x.example.com'), 'second');
    // and the new entry has its own TTL, counted from now
    c.now += 499;
    assert.equal(await storage.get('locks/x.example.com'), 'second');
    c.now += 1;
    assert.equal(await storage.get('locks/x.example.com'), null);
  });

  test('refuses a key that was set without a TTL', async () => {
    const storage = createMemoryStorage();
    await storage.set('locks/x.example.com', 'held');
    assert.equal(await storage.add('locks/x.example.com', 'other', 1), false);
  });

  test('after delete the key can be added again', async () => {
    const storage = createMemoryStorage();
    assert.equal(await storage.add('locks/x.example.com', 'a', 60_000), true);
    await storage.delete('locks/x.example.com');
    assert.equal(await storage.add('locks/x.example.com', 'b', 60_000), true);
  });
});

describe('hostile keys and names', () => {
  test('every verb refuses hostile keys', async () => {
    const storage = createMemoryStorage();
    for (const key of ['../x', 'a/../../b', '', 'a//b', '.hidden', 'ключ', 'a b', 'x.tmp']) {
      await assert.rejects(storage.get(key), InvalidKeyError, `get ${JSON.stringify(key)}`);
      await assert.rejects(storage.set(key, 'v'), InvalidKeyError, `set ${JSON.stringify(key)}`);
      await assert.rejects(storage.add(key, 'v', 1_000), InvalidKeyError, `add ${JSON.stringify(key)}`);
      await assert.rejects(storage.delete(key), InvalidKeyError, `delete ${JSON.stringify(key)}`);
    }
    assert.deepEqual(await storage.list(''), []);
  });

  test('every base64url challenge token is a valid key segment, "-" and "_" first included', async () => {
    const storage = createMemoryStorage();
    for (const token of ['-abcdefghijklmnopqrstu', '_abcdefghijklmnopqrstu', 'Zz09-_x-_y']) {
      await storage.set(`challenges/${token}`, 'keyauth');
      assert.equal(await storage.get(`challenges/${token}`), 'keyauth');
    }
  });

  test('certificate verbs refuse hostile names', async () => {
    const storage = createMemoryStorage();
    for (const name of ['../x', 'a/b.example.com', 'bücher.example']) {
      await assert.rejects(storage.putCertificate(bundle(name, 'x')), InvalidHostnameError);
      await assert.rejects(storage.getCertificate(name), InvalidHostnameError);
      assert.throws(() => storage.location(name), InvalidHostnameError);
    }
    assert.deepEqual(await storage.listCertificates(), []);
  });
});

describe('certificates', () => {
  test('missing is null; put then get by any spelling of the name', async () => {
    const storage = createMemoryStorage();
    assert.equal(await storage.getCertificate('a.example.com'), null);
    await storage.putCertificate(bundle('A.Example.com', 'v1'));
    const got = await storage.getCertificate('a.example.com.');
    assert.equal(got?.privkey, 'key v1');
    assert.equal(got?.fullchain, 'cert v1chain v1');
    assert.deepEqual(await storage.listCertificates(), ['a.example.com']);
    assert.equal(storage.location('A.example.com'), 'memory:a.example.com');
  });

  test('a later put replaces the earlier one', async () => {
    const storage = createMemoryStorage();
    await storage.putCertificate(bundle('a.example.com', 'v1'));
    await storage.putCertificate(bundle('a.example.com', 'v2'));
    const got = await storage.getCertificate('a.example.com');
    assert.equal(got?.cert, 'cert v2');
    assert.equal(got?.privkey, 'key v2');
    assert.deepEqual(await storage.listCertificates(), ['a.example.com']);
  });

  test('callers get copies: mutating what was put or got does not change the store', async () => {
    const storage = createMemoryStorage();
    const original = bundle('a.example.com', 'v1');
    await storage.putCertificate(original);
    original.privkey = 'tampered after put';
    const got = await storage.getCertificate('a.example.com');
    assert.ok(got);
    got.privkey = 'tampered after get';
    assert.equal((await storage.getCertificate('a.example.com'))?.privkey, 'key v1');
  });
});
