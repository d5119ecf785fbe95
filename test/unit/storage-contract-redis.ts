// Redis-only storage tests, against their own redis-server (they stop, pause
// and restart it): the layout a terminator reads, auth and database, TLS,
// and a store that is down or hangs.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, it } from 'node:test';
import { Redis } from 'ioredis';
import { createRedisStorage, type RedisStorageOptions } from '../../src/storage/redis.js';
import type { Storage } from '../../src/storage/storage.js';
import { createTestCa, issueServerCert } from '../harness/pebble.js';
import { type RedisServer, startRedis } from '../harness/redis.js';
import { makeCertificate } from './storage-contract-cert.js';
import { TIMEOUT_MS } from './storage-contract-fixtures.js';
import { eventually, rejectsWithin, watchUnhandled, assertTimesOutAndRecovers } from './storage-contract-util.js';

export function redisSpecificTests(): void {
  const password = 'redis-specific-pw';
  let server: RedisServer;
  let dir: string;
  let opened: Storage[] = [];
  const open = (overrides: Partial<RedisStorageOptions> = {}) => {
    const storage = createRedisStorage({
      host: server.host, port: server.port, auth: password, database: 1, ssl: false, ssl_verify: false,
      ssl_server_name: null, namespace: 'specific:', timeout: TIMEOUT_MS, ...overrides,
    });
    opened.push(storage);
    return storage;
  };
  const raw = () => new Redis({ host: server.host, port: server.port, password, db: 1, lazyConnect: true });

  before(async () => {
    server = await startRedis({ password });
    dir = await mkdtemp(join(tmpdir(), 'acmed-redis-specific-'));
  });
  afterEach(async () => {
    await Promise.all(opened.map((s) => s.close()));
    opened = [];
  });
  after(async () => {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps each certificate in one hash a terminator reads with HMGET', async () => {
    const storage = open({ namespace: 'acmed:' });
    const bundle = await makeCertificate(dir, ['shop.example.com']);
    await storage.putCertificate(bundle);
    await storage.set('records/shop.example.com.json', '{}');
    assert.ok(await storage.add('locks/shop.example.com', 'token', 30_000));
    const client = raw();
    try {
      assert.deepEqual((await client.keys('acmed:certs/*')), ['acmed:certs/shop.example.com']);
      assert.equal(await client.type('acmed:certs/shop.example.com'), 'hash');
      const fields = await client.hgetall('acmed:certs/shop.example.com');
      assert.deepEqual(Object.keys(fields).sort(), ['cert', 'chain', 'fullchain', 'not_after', 'privkey']);
      assert.equal(fields.fullchain, bundle.fullchain);
      assert.equal(fields.privkey, bundle.privkey);
      assert.equal(fields.not_after, bundle.notAfter);
      assert.equal(await client.get('acmed:state/records/shop.example.com.json'), '{}');
      const ttl = await client.pttl('acmed:state/locks/shop.example.com');
      assert.ok(ttl > 0 && ttl <= 30_000, `lock TTL ${ttl}`);
    } finally {
      client.disconnect();
    }
  });

  it('auth and database: a wrong password is refused clearly; databases are separate', async () => {
    const err = await rejectsWithin(open({ auth: 'wrong' }).get('records/x.json'), TIMEOUT_MS + 500);
    assert.equal(err.code, 'STORAGE_ERROR');
    assert.match(err.message, /redis 127\.0\.0\.1:\d+: get failed: .*(WRONGPASS|invalid password)/);
    const db1 = open({ database: 1 });
    const db3 = open({ database: 3 });
    await db1.set('records/x.json', 'one');
    assert.equal(await db3.get('records/x.json'), null);
    assert.equal(await db1.get('records/x.json'), 'one');
  });

  it('a server that is down: calls fail within the timeout, nothing is unhandled, and it recovers after a restart', async () => {
    const watch = watchUnhandled();
    try {
      const storage = open();
      await storage.set('records/up.json', 'v');
      await server.kill();
      for (const attempt of [1, 2, 3]) {
        const err = await rejectsWithin(storage.get('records/up.json'), TIMEOUT_MS + 500);
        assert.match(err.code ?? '', /^STORAGE_(ERROR|TIMEOUT)$/, `attempt ${attempt}: ${err.message}`);
        assert.match(err.message, /^redis 127\.0\.0\.1:\d+: get /);
      }
      await assert.rejects(storage.add('locks/down.example.com', 't', 1000), { code: /^STORAGE_/ });
      await server.restart();
      await eventually(async () => {
        await storage.set('records/up.json', 'back');
        assert.equal(await storage.get('records/up.json'), 'back');
      });
    } finally {
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(watch.stop(), []);
    }
  });

  it('a server that hangs: calls time out, and work again once it answers', async () => {
    const err = await assertTimesOutAndRecovers(open(), { stall: () => server.pause(), resume: () => server.resume() }, TIMEOUT_MS);
    assert.match(err.message, /get timed out after \d+ ms/);
  });

  it('TLS: ssl, ssl_verify and ssl_server_name', async () => {
    const ca = await createTestCa(dir);
    const cert = await issueServerCert(ca, dir, 'redis'); // DNS:localhost, IP:127.0.0.1
    const tlsServer = await startRedis({ tls: { certPath: cert.certPath, keyPath: cert.keyPath, caPath: ca.certPath } });
    try {
      const base = { host: '127.0.0.1', port: tlsServer.port, auth: null, ssl: true };
      const unchecked = open({ ...base, ssl_verify: false, ssl_server_name: 'anything.example.com' });
      await unchecked.set('records/tls.json', 'encrypted');
      assert.equal(await unchecked.get('records/tls.json'), 'encrypted');

      const checked = open({ ...base, ssl_verify: true, ssl_server_name: 'localhost', ca: ca.certPem });
      assert.equal(await checked.get('records/tls.json'), 'encrypted');

      const wrongName = open({ ...base, ssl_verify: true, ssl_server_name: 'wrong.example.com', ca: ca.certPem });
      const nameErr = await rejectsWithin(wrongName.get('records/tls.json'), TIMEOUT_MS + 500);
      assert.match(nameErr.message, /wrong\.example\.com/);

      const untrusted = open({ ...base, ssl_verify: true, ssl_server_name: 'localhost' });
      const trustErr = await rejectsWithin(untrusted.get('records/tls.json'), TIMEOUT_MS + 500);
      assert.match(trustErr.message, /certificate|self.signed|issuer/i);
    } finally {
      await Promise.all(opened.map((s) => s.close()));
      opened = [];
      await tlsServer.stop();
    }
  });
}
