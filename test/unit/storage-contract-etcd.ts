// etcd-only storage tests, against their own real etcd (they stop, pause and
// restart it, and one turns authentication on): the layout a reader sees,
// locks on leases, a store that is down or hangs, and username/password.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { createEtcdStorage, type EtcdStorageOptions } from '../../src/storage/etcd.js';
import type { CertificateBundle, Storage } from '../../src/storage/storage.js';
import { type EtcdServer, startEtcd } from '../harness/etcd.js';
import { createTestCa, issueServerCert } from '../harness/pebble.js';
import { freePort } from '../harness/ports.js';
import { makeCertificate } from './storage-contract-cert.js';
import { TIMEOUT_MS } from './storage-contract-fixtures.js';
import { assertTimesOutAndRecovers, eventually, rejectsWithin, watchUnhandled } from './storage-contract-util.js';

export function etcdSpecificTests(): void {
  let server: EtcdServer;
  let raw: Etcd3;
  let bundle: CertificateBundle;
  let opened: Storage[] = [];
  let spaces = 0;
  const prefix = () => `specific/t${spaces}/`;
  const open = (overrides: Partial<EtcdStorageOptions> = {}) => {
    const storage = createEtcdStorage({
      endpoints: [server.endpoint], prefix: prefix(), username: null, password: null,
      tls: { ca: null, cert: null, key: null }, timeout: TIMEOUT_MS, ...overrides,
    });
    opened.push(storage);
    return storage;
  };

  before(async () => {
    server = await startEtcd();
    raw = new Etcd3({ hosts: server.endpoint });
    const dir = await mkdtemp(join(tmpdir(), 'acmed-etcd-specific-'));
    bundle = await makeCertificate(dir, ['shop.example.com']);
    await rm(dir, { recursive: true, force: true });
  });
  afterEach(async () => {
    await Promise.all(opened.map((s) => s.close()));
    opened = [];
    spaces++;
  });
  after(async () => {
    raw.close();
    await server.stop();
  });

  it('writes <prefix>certs/<name>/{fullchain,privkey,cert,chain}.pem in one transaction', async () => {
    const storage = open({ prefix: 'acme' }); // a missing trailing "/" is added
    await storage.putCertificate(bundle);
    const res = await raw.getAll().prefix('acme/certs/shop.example.com/').exec();
    assert.deepEqual(res.kvs.map((kv) => kv.key.toString()).sort(),
      ['cert', 'chain', 'fullchain', 'privkey'].map((f) => `acme/certs/shop.example.com/${f}.pem`));
    // One transaction is one revision: the files can only change together.
    assert.equal(new Set(res.kvs.map((kv) => kv.mod_revision)).size, 1);
    assert.equal(await raw.get('acme/certs/shop.example.com/fullchain.pem').string(), bundle.fullchain);
    assert.equal(await raw.get('acme/certs/shop.example.com/privkey.pem').string(), bundle.privkey);
    assert.match(storage.location('shop.example.com'), /acme\/certs\/shop\.example\.com\//);
  });

  it('a lock is on a lease: the heartbeat moves it to a fresh one, and etcd deletes it once nobody extends it', async () => {
    const storage = open();
    const key = `${prefix()}state/locks/a.example.com`;
    assert.equal(await storage.add('locks/a.example.com', 'holder', 1_000), true);
    const first = (await raw.get(key).exec()).kvs[0];
    assert.notEqual(first.lease, '0', 'the lock has a lease');
    assert.equal(await storage.compareAndExtend('locks/a.example.com', 'holder', 1_000), true);
    const second = (await raw.get(key).exec()).kvs[0];
    assert.notEqual(second.lease, '0');
    assert.notEqual(second.lease, first.lease, 'extended onto a fresh lease');
    // The holder "dies": no more extensions. etcd itself removes the key when the lease runs out.
    await eventually(async () => assert.equal(await raw.get(key).exists(), false), 10_000);
    const plain = open();
    await plain.set('records/x.json', 'kept');
    assert.equal((await raw.get(`${prefix()}state/records/x.json`).exec()).kvs[0].lease, '0', 'no lease without a TTL');
  });

  it('an etcd that hangs or is down: calls fail within the timeout, nothing is unhandled, and it recovers', async () => {
    const watch = watchUnhandled();
    try {
      const err = await assertTimesOutAndRecovers(open(), { stall: () => server.pause(), resume: () => server.resume() }, TIMEOUT_MS);
      assert.match(err.message, /^etcd http:\/\/127\.0\.0\.1:\d+: get timed out/);

      const storage = open();
      await storage.set('records/up.json', 'v');
      await server.kill();
      const down = await rejectsWithin(storage.get('records/up.json'), TIMEOUT_MS + 500);
      assert.match(down.code ?? '', /^STORAGE_(ERROR|TIMEOUT)$/, down.message);
      await assert.rejects(storage.add('locks/down.example.com', 't', 1000), { code: /^STORAGE_/ });
      await server.restart();
      await eventually(async () => assert.equal(await storage.get('records/up.json'), 'v'), 15_000);

      const nowhere = open({ endpoints: [`http://127.0.0.1:${await freePort()}`] });
      const refused = await rejectsWithin(nowhere.get('records/x.json'), TIMEOUT_MS + 500);
      assert.match(refused.code ?? '', /^STORAGE_(ERROR|TIMEOUT)$/, refused.message);
    } finally {
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(watch.stop(), []);
    }
  });

  it('TLS: tls.ca trusts the members\' certificate; tls.cert and tls.key are the client certificate etcd asks for', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'acmed-etcd-tls-'));
    const ca = await createTestCa(dir);
    const serverCert = await issueServerCert(ca, dir, 'etcd');
    const clientCert = await issueServerCert(ca, dir, 'acmed-client', 'clientAuth');
    const secured = await startEtcd({ tls: { certPath: serverCert.certPath, keyPath: serverCert.keyPath, caPath: ca.certPath, clientCertAuth: true } });
    try {
      assert.match(secured.endpoint, /^https:/);
      const base = { endpoints: [secured.endpoint], username: null, password: null, timeout: TIMEOUT_MS, prefix: 'tls/' };
      const good = open({ ...base, tls: { ca: ca.certPath, cert: clientCert.certPath, key: clientCert.keyPath } });
      await good.set('records/a.json', 'over tls');
      assert.equal(await good.get('records/a.json'), 'over tls');
      const noClientCert = open({ ...base, tls: { ca: ca.certPath, cert: null, key: null } });
      const noCertErr = await rejectsWithin(noClientCert.get('records/a.json'), TIMEOUT_MS + 500);
      assert.equal(noCertErr.code, 'STORAGE_ERROR');
      assert.match(noCertErr.message, /bad certificate/, 'etcd refused the handshake without a client certificate');
      const untrusted = open({ ...base, tls: { ca: null, cert: clientCert.certPath, key: clientCert.keyPath } });
      const untrustedErr = await rejectsWithin(untrusted.get('records/a.json'), TIMEOUT_MS + 500);
      assert.equal(untrustedErr.code, 'STORAGE_ERROR');
      assert.match(untrustedErr.message, /unable to verify/, 'without tls.ca the test CA is not trusted');
    } finally {
      await secured.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('username and password: works with the right ones; a wrong password is refused clearly and never repeated', async () => {
    const secured = await startEtcd();
    const admin = new Etcd3({ hosts: secured.endpoint });
    try {
      await admin.role('root').create();
      await admin.user('root').create('root-pw');
      await admin.user('root').addRole('root');
      await admin.auth.authEnable();
      const base = { endpoints: [secured.endpoint], tls: { ca: null, cert: null, key: null }, timeout: TIMEOUT_MS, prefix: 'auth/' };
      const good = open({ ...base, username: 'root', password: 'root-pw' });
      await good.set('records/a.json', 'secret');
      assert.equal(await good.get('records/a.json'), 'secret');
      const wrong = open({ ...base, username: 'root', password: 'not-the-password' });
      const err = await rejectsWithin(wrong.get('records/a.json'), TIMEOUT_MS + 500);
      assert.equal(err.code, 'STORAGE_ERROR');
      assert.match(err.message, /^etcd http:\/\/127\.0\.0\.1:\d+: get failed: .*auth/i);
      assert.doesNotMatch(err.message, /not-the-password/);
      const anonymous = open({ ...base });
      await assert.rejects(anonymous.get('records/a.json'), { code: 'STORAGE_ERROR' });
    } finally {
      admin.close();
      await secured.stop();
    }
  });
}
