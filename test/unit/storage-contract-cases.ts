// The storage contract: the same tests for every backend (see
// storage-contract.test.ts, which runs them once per fixture).

import assert from 'node:assert/strict';
import { createPublicKey, X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger } from '../../src/log.js';
import { withHealth } from '../../src/storage/health.js';
import { type HeldLock, LockLostError, releaseStaleOwnLocks, withLock } from '../../src/storage/lock.js';
import { keys } from '../../src/storage/keys.js';
import type { CertificateBundle } from '../../src/storage/storage.js';
import { makeCertificate } from './storage-contract-cert.js';
import type { BackendFixture } from './storage-contract-fixtures.js';

const sorted = (keys: string[]) => [...keys].sort();

/** A certificate made once per process: openssl is the slow part. */
let certs: Promise<{ first: CertificateBundle; renewed: CertificateBundle; dual: CertificateBundle }> | undefined;
function testCertificates() {
  certs ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'acmed-contract-cert-'));
    try {
      const first = await makeCertificate(dir, ['shop.example.com', 'www.shop.example.com'], 'first');
      const renewed = await makeCertificate(dir, ['shop.example.com', 'www.shop.example.com'], 'renewed');
      // cert_type: [ecc, rsa]: an ECDSA certificate with an RSA one beside it.
      const ecc = await makeCertificate(dir, ['shop.example.com', 'www.shop.example.com'], 'dual-ecc');
      const { name: _name, names: _names, ...rsa } = await makeCertificate(dir, ['shop.example.com', 'www.shop.example.com'], 'dual-rsa', 'rsa');
      return { first, renewed, dual: { ...ecc, rsa } };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  })();
  return certs;
}

function assertKeyMatchesCertificate(bundle: CertificateBundle): void {
  const fromKey = createPublicKey(bundle.privkey).export({ type: 'spki', format: 'der' });
  const fromCert = new X509Certificate(bundle.cert).publicKey.export({ type: 'spki', format: 'der' });
  assert.deepEqual(fromKey, fromCert, 'privkey does not belong to cert');
  assert.ok(bundle.fullchain.startsWith(bundle.cert), 'fullchain does not start with cert');
}

export function contractCases(fx: () => BackendFixture): void {
  const two = async () => {
    const space = await fx().space();
    return [space.open(), space.open()] as const;
  };

  it('get/set/delete round trip', async () => {
    const [a, b] = await two();
    const key = 'records/a.example.com.json';
    assert.equal(await a.get(key), null);
    await a.set(key, '{"failures":1}');
    assert.equal(await b.get(key), '{"failures":1}');
    await a.set(key, 'replaced');
    assert.equal(await a.get(key), 'replaced');
    const pem = '-----BEGIN PRIVATE KEY-----\nMIGH…\n-----END PRIVATE KEY-----\n';
    await a.set('account/key.pem', pem);
    assert.equal(await b.get('account/key.pem'), pem);
    await a.set('account/url', '');
    assert.equal(await a.get('account/url'), '');
    await a.delete(key);
    assert.equal(await b.get(key), null);
    await a.delete(key); // deleting what is not there is not an error
  });

  it('set with ttlMs expires; a later set without ttlMs keeps the value', async () => {
    const [a, b] = await two();
    await a.set('challenges/token-1', 'proof-1', { ttlMs: 400 });
    await a.set('challenges/token-2', 'proof-2', { ttlMs: 400 });
    await a.set('challenges/token-2', 'proof-2b');
    assert.equal(await b.get('challenges/token-1'), 'proof-1');
    await sleep(700);
    assert.equal(await b.get('challenges/token-1'), null);
    assert.equal(await b.get('challenges/token-2'), 'proof-2b');
  });

  it('add is exclusive: of 20 concurrent callers on two instances exactly one wins', async () => {
    const [a, b] = await two();
    const key = 'locks/race.example.com';
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).add(key, `owner-${i}`, 10_000)));
    assert.equal(results.filter(Boolean).length, 1, `winners: ${results}`);
    assert.equal(await a.get(key), `owner-${results.indexOf(true)}`);
    assert.equal(await b.add(key, 'late', 10_000), false);
  });

  it('add succeeds once the holder\'s TTL has passed', async () => {
    const [a, b] = await two();
    const key = 'locks/ttl.example.com';
    assert.equal(await a.add(key, 'first', 400), true);
    assert.equal(await b.add(key, 'second', 400), false);
    await sleep(700);
    assert.equal(await b.add(key, 'second', 10_000), true);
    assert.equal(await a.get(key), 'second');
  });

  it('list(prefix) returns exactly the matching keys', async () => {
    const [a] = await two();
    const all = ['records/a.example.com.json', 'records/b.example.com.json', 'records/sub/c.json', 'recordsx/d', 'challenges/e'];
    for (const key of all) await a.set(key, 'v');
    assert.deepEqual(sorted(await a.list('records/')), ['records/a.example.com.json', 'records/b.example.com.json', 'records/sub/c.json']);
    assert.deepEqual(sorted(await a.list('records')), sorted([...all.slice(0, 4)]));
    assert.deepEqual(sorted(await a.list('records/a')), ['records/a.example.com.json']);
    assert.deepEqual(await a.list('nothing/'), []);
    assert.deepEqual(sorted(await a.list('')), sorted(all));
    await a.delete('records/b.example.com.json');
    assert.deepEqual(sorted(await a.list('records/')), ['records/a.example.com.json', 'records/sub/c.json']);
  });

  it('scan(prefix), where offered, hands over the same keys as list with their values, expired ones left out', async () => {
    const [a] = await two();
    if (!a.scan) return; // optional: the index falls back to list and get (checked in certificate-index tests)
    const all = ['records/a.example.com.json', 'records/b.example.com.json', 'records/sub/c.json', 'recordsx/d', 'challenges/e'];
    for (const key of all) await a.set(key, `value of ${key}`);
    await a.set('records/short-lived', 'gone soon', { ttlMs: 50 });
    await sleep(120);
    const scanned = async (prefix: string) => {
      const found: [string, string][] = [];
      await a.scan!(prefix, (batch) => found.push(...batch));
      return found.sort(([x], [y]) => x.localeCompare(y));
    };
    assert.deepEqual(await scanned('records/'), all.slice(0, 3).map((k) => [k, `value of ${k}`]));
    assert.deepEqual((await scanned('records')).map(([k]) => k), sorted(all.slice(0, 4)));
    assert.deepEqual(await scanned('nothing/'), []);
  });

  it('getCertificatePem, where offered, reads the stored leaf alone', async () => {
    const [a, b] = await two();
    if (!a.getCertificatePem) return; // optional: reconciliation reads getCertificate instead
    const { first, renewed } = await testCertificates();
    assert.equal(await a.getCertificatePem('shop.example.com'), null);
    await a.putCertificate(first);
    assert.equal(await b.getCertificatePem!('shop.example.com'), first.cert);
    await a.putCertificate(renewed);
    assert.equal(await b.getCertificatePem!('SHOP.example.com'), renewed.cert);
    await a.deleteCertificate('shop.example.com');
    assert.equal(await b.getCertificatePem!('shop.example.com'), null);
  });

  it('two spaces (namespaces, kv paths, directories) do not see each other', async () => {
    const [a] = await two();
    const [b] = await two();
    await a.set('records/x.example.com.json', 'a');
    assert.ok(await a.add('locks/x.example.com', 'a', 10_000));
    await a.putCertificate((await testCertificates()).first);
    assert.equal(await b.get('records/x.example.com.json'), null);
    assert.deepEqual(await b.list(''), []);
    assert.equal(await b.add('locks/x.example.com', 'b', 10_000), true);
    assert.deepEqual(await b.listCertificates(), []);
    assert.equal(await b.getCertificate('shop.example.com'), null);
  });

  it('rejects invalid keys before any I/O', async () => {
    const [a] = await two();
    await a.get('records/warm-up.json'); // connects, so connection set-up is not counted below
    const before = await fx().ioCount?.();
    const badKeys = ['', '../etc/passwd', 'a/../b', '/abs', 'a//b', 'trailing/', 'sp ace', 'x.tmp', '.hidden', 'new\nline', 'glob*', 'ké'];
    const invalid = { code: 'INVALID_STORAGE_KEY' };
    for (const key of badKeys) {
      await assert.rejects(a.get(key), invalid, `get ${JSON.stringify(key)}`);
      await assert.rejects(a.set(key, 'v'), invalid);
      await assert.rejects(a.add(key, 'v', 1000), invalid);
      await assert.rejects(a.delete(key), invalid);
      if (a.compareAndDelete) await assert.rejects(a.compareAndDelete(key, 'v'), invalid);
      if (a.compareAndExtend) await assert.rejects(a.compareAndExtend(key, 'v', 1000), invalid);
    }
    const { first } = await testCertificates();
    await assert.rejects(a.putCertificate({ ...first, name: '../evil' }), { code: 'INVALID_HOSTNAME' });
    await assert.rejects(a.getCertificate('a/b.example.com'), { code: 'INVALID_HOSTNAME' });
    const after = await fx().ioCount?.();
    assert.equal(after, before, 'the store was contacted');
    // A prefix is a partial key: a bad one is refused (remote stores) or matches nothing.
    for (const prefix of ['../', 'a/../', '/x', 'glob*', 'a?b', '[ab]']) {
      const result = await a.list(prefix).catch((err: { code?: string }) => err.code);
      assert.ok(result === 'INVALID_STORAGE_KEY' || (Array.isArray(result) && result.length === 0), `list ${prefix}: ${result}`);
      if (a.scan) {
        const scanned: unknown[] = [];
        const code = await a.scan(prefix, (batch) => scanned.push(...batch)).then(() => 'none', (err: { code?: string }) => err.code);
        assert.ok(code === 'INVALID_STORAGE_KEY' || (code === 'none' && scanned.length === 0), `scan ${prefix}: ${code}`);
      }
    }
    assert.equal(await fx().ioCount?.(), before, 'list contacted the store with a bad prefix');
  });

  it('putCertificate / getCertificate / listCertificates / location round trip', async () => {
    const [a, b] = await two();
    const { first, renewed } = await testCertificates();
    assert.equal(await a.getCertificate('shop.example.com'), null);
    assert.deepEqual(await a.listCertificates(), []);
    await a.putCertificate(first);
    assert.deepEqual(await b.getCertificate('shop.example.com'), first);
    assert.deepEqual(await b.getCertificate('SHOP.Example.com.'), first);
    assert.deepEqual(await b.listCertificates(), ['shop.example.com']);
    assert.match(a.location('shop.example.com'), /shop\.example\.com/);
    await a.putCertificate(renewed);
    const got = await b.getCertificate('shop.example.com');
    assert.deepEqual(got, renewed);
    assertKeyMatchesCertificate(got!);
    assert.deepEqual(await b.listCertificates(), ['shop.example.com']);
    await a.deleteCertificate('shop.example.com');
    assert.equal(await b.getCertificate('shop.example.com'), null);
    assert.deepEqual(await b.listCertificates(), []);
    await a.deleteCertificate('shop.example.com'); // deleting what is gone is not an error
    await a.putCertificate(first); // and the name can be written again
    assert.deepEqual(await b.getCertificate('shop.example.com'), first);
  });

  it('a certificate with an RSA variant comes back with both; a later one without leaves no RSA copy', async () => {
    const [a, b] = await two();
    const { first, dual } = await testCertificates();
    await a.putCertificate(dual);
    const got = await b.getCertificate('shop.example.com');
    assert.deepEqual(got, dual);
    assertKeyMatchesCertificate(got!);
    assertKeyMatchesCertificate({ ...got!, ...got!.rsa! });
    assert.equal(createPublicKey(got!.privkey).asymmetricKeyType, 'ec');
    assert.equal(createPublicKey(got!.rsa!.privkey).asymmetricKeyType, 'rsa');
    if (b.getCertificatePem) assert.equal(await b.getCertificatePem('shop.example.com'), dual.cert, 'the plain leaf is the primary one');
    await a.putCertificate(first);
    const after = await b.getCertificate('shop.example.com');
    assert.deepEqual(after, first);
    assert.equal(after!.rsa, undefined);
    await a.putCertificate(dual);
    assert.deepEqual(await b.getCertificate('shop.example.com'), dual);
  });

  it('IP address certificates: an IPv6 name is kept under its segment (":" as "_") and listed back as the address', async () => {
    const [a, b] = await two();
    const dir = await mkdtemp(join(tmpdir(), 'acmed-contract-ip-'));
    let v4: CertificateBundle;
    let v6: CertificateBundle;
    try {
      v4 = await makeCertificate(dir, ['192.0.2.1'], 'v4');
      v6 = await makeCertificate(dir, ['2001:db8::1', 'a.example.com'], 'v6');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    assert.deepEqual(v6.names, ['2001:db8::1', 'a.example.com']);
    await a.putCertificate(v4);
    await a.putCertificate(v6);
    assert.deepEqual(sorted(await b.listCertificates()), ['192.0.2.1', '2001:db8::1']);
    assert.deepEqual(await b.getCertificate('2001:DB8:0::1'), v6);
    assert.deepEqual(await b.getCertificate('192.0.2.1'), v4);
    assert.equal(await b.getCertificate('::1'), null);
    assert.ok(!a.location('2001:db8::1').includes('2001:db8::1'), a.location('2001:db8::1'));
    // acmed's per-name state keys for an address are valid keys in every backend.
    await a.set(keys.index('2001:db8::1'), 'record');
    assert.deepEqual(await b.list('index/'), ['index/2001_db8__1']);
    assert.equal(await b.add(keys.lock('2001:db8::1'), 'owner', 10_000), true);
    await a.deleteCertificate('2001:db8::1');
    assert.deepEqual(await b.listCertificates(), ['192.0.2.1']);
  });

  it('withLock: mutual exclusion across two instances on one store', async () => {
    const [a, b] = await two();
    let inside = 0;
    let most = 0;
    let runs = 0;
    const work = async () => {
      inside++;
      most = Math.max(most, inside);
      await sleep(30);
      inside--;
      runs++;
    };
    const lockOpts = { ttlMs: 10_000, waitMs: 20_000, pollMs: 10 };
    await Promise.all([a, b, a, b, a, b].map((s) => withLock(s, 'locks/shared.example.com', work, lockOpts)));
    assert.equal(most, 1);
    assert.equal(runs, 6);
    assert.equal(await a.get('locks/shared.example.com'), null, 'the last holder released the lock');
  });

  it('withLock takes over a lock whose holder died (no heartbeat, short TTL)', async () => {
    const [dead, alive] = await two();
    // The dead holder took the lock as withLock does, then stopped: no heartbeat, no release.
    assert.equal(await dead.add('locks/dead.example.com', 'dead-holder-token', 500), true);
    const started = Date.now();
    const result = await withLock(alive, 'locks/dead.example.com', async () => 'ran', { ttlMs: 10_000, waitMs: 10_000, pollMs: 25 });
    assert.equal(result, 'ran');
    assert.ok(Date.now() - started >= 300, 'took the lock before its TTL ran out');
    assert.equal(await alive.get('locks/dead.example.com'), null);
  });

  it('withLock: a lock taken over aborts the holder\'s signal, fails its assertHeld, and survives its release', async () => {
    const [a, b] = await two();
    const key = 'locks/fenced.example.com';
    let held: HeldLock | undefined;
    const result = await withLock(a, key, async (lock) => {
      held = lock;
      await lock.assertHeld();
      assert.match((await b.get(key)) ?? '', /^[^/]+\/\d+\/[0-9a-f]+$/, 'the value is an owner token');
      // Another instance removes our lock and takes it.
      await b.delete(key);
      assert.equal(await b.add(key, 'other-holder', 10_000), true);
      await assert.rejects(lock.assertHeld(), LockLostError);
      return 'fn finished';
    }, { ttlMs: 10_000 });
    assert.equal(result, 'fn finished');
    assert.ok(held?.signal.aborted);
    assert.equal(await a.get(key), 'other-holder', 'release deleted only our own token');
  });

  it('withLock: the heartbeat notices a takeover within one beat', async () => {
    const [a, b] = await two();
    const key = 'locks/beat.example.com';
    await withLock(a, key, async (lock) => {
      await sleep(900); // past two beats of a 1.2 s TTL: the heartbeat keeps it
      assert.equal(lock.signal.aborted, false);
      await lock.assertHeld();
      await b.delete(key);
      assert.equal(await b.add(key, 'other-holder', 10_000), true);
      const deadline = Date.now() + 3_000;
      while (!lock.signal.aborted && Date.now() < deadline) await sleep(20);
      assert.ok(lock.signal.reason instanceof LockLostError, 'the signal was aborted with LockLostError');
    }, { ttlMs: 1_200 });
    assert.equal(await b.get(key), 'other-holder');
  });

  it('releaseStaleOwnLocks: a dead predecessor\'s locks on this host go, other hosts\' and live ones stay', async () => {
    const [a, b] = await two();
    const here = hostname();
    await a.add('locks/dead.example.com', `${here}/4000001/0123abcd`, 60_000);
    await a.add('locks/alive.example.com', `${here}/4000002/0123abcd`, 60_000);
    await a.add('locks/elsewhere.example.com', `another-host/4000001/0123abcd`, 60_000);
    const released = await releaseStaleOwnLocks(b, { isAlive: (pid) => pid === 4000002 });
    assert.deepEqual(released, ['locks/dead.example.com']);
    assert.equal(await a.get('locks/dead.example.com'), null);
    assert.equal(await a.add('locks/dead.example.com', 'next', 60_000), true, 'free to take at once');
    assert.equal(await a.get('locks/alive.example.com'), `${here}/4000002/0123abcd`);
    assert.equal(await a.get('locks/elsewhere.example.com'), 'another-host/4000001/0123abcd');
  });

  it('withHealth: a probe writes, reads and deletes a health key, and leaves nothing behind', async () => {
    const [a] = await two();
    const monitored = withHealth(a, { log: createLogger('silent') });
    const health = await monitored.probe();
    assert.equal(health.up, true, health.lastError ?? '');
    assert.equal(health.writable, true);
    assert.equal(health.freeBytes === null, a.kind !== 'file', `freeBytes ${health.freeBytes} for ${a.kind}`);
    assert.deepEqual(await a.list('health/'), []);
  });

  it('compareAndDelete / compareAndExtend act only for the lock owner', async (t) => {
    const [a, b] = await two();
    if (!a.compareAndDelete || !a.compareAndExtend || !b.compareAndDelete || !b.compareAndExtend) {
      t.skip('optional methods not implemented');
      return;
    }
    const key = 'locks/owner.example.com';
    assert.equal(await a.add(key, 'mine', 400), true);
    assert.equal(await b.compareAndDelete(key, 'theirs'), false);
    assert.equal(await b.compareAndExtend(key, 'theirs', 5000), false);
    assert.equal(await b.compareAndExtend(key, 'mine', 5000), true);
    await sleep(700);
    assert.equal(await a.get(key), 'mine', 'the extension outlived the first TTL');
    assert.equal(await a.compareAndDelete(key, 'mine'), true);
    assert.equal(await a.get(key), null);
    assert.equal(await b.add(key, 'next', 5000), true);
    assert.equal(await a.compareAndDelete(key, 'mine'), false);
    assert.equal(await a.compareAndExtend(key, 'mine', 5000), false);
    assert.equal(await a.get(key), 'next');
  });
}
