// Redis Sentinel and Redis Cluster tests beyond the contract, against their
// own real servers: errors name the topology, and a certificate counts as
// stored only once a replica has it (Redis replicates asynchronously, so a
// master that dies right after acknowledging would otherwise take it along).

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, it } from 'node:test';
import { createRedisStorage, type RedisStorageOptions } from '../../src/storage/redis.js';
import type { CertificateBundle, Storage } from '../../src/storage/storage.js';
import { freePort } from '../harness/ports.js';
import { type SentinelSetup, startSentinelSetup } from '../harness/redis-sentinel.js';
import { makeCertificate } from './storage-contract-cert.js';
import { TIMEOUT_MS } from './storage-contract-fixtures.js';
import { eventually, rejectsWithin } from './storage-contract-util.js';

const BASE = { host: '127.0.0.1', port: 6379, database: 0, ssl: false, ssl_verify: false, ssl_server_name: null, namespace: 'replicated:', timeout: TIMEOUT_MS };

export function replicatedRedisTests(): void {
  let sentinel: SentinelSetup;
  let bundle: CertificateBundle;
  let opened: Storage[] = [];
  const open = (overrides: Partial<RedisStorageOptions>) => {
    const storage = createRedisStorage({ ...BASE, auth: null, ...overrides });
    opened.push(storage);
    return storage;
  };
  const viaSentinel = () => open({
    auth: sentinel.password, sentinels: sentinel.sentinels, sentinel_master: sentinel.masterName, sentinel_password: sentinel.sentinelPassword,
  });

  before(async () => {
    sentinel = await startSentinelSetup();
    const dir = await mkdtemp(join(tmpdir(), 'acmed-redis-replicated-'));
    bundle = await makeCertificate(dir, ['shop.example.com']);
    await rm(dir, { recursive: true, force: true });
  });
  afterEach(async () => {
    await Promise.all(opened.map((s) => s.close()));
    opened = [];
  });
  after(() => sentinel.stop());

  it('errors name the sentinels and the master, or the cluster nodes, and never a password', async () => {
    const port = await freePort();
    const noSentinel = open({ auth: 'data-secret', sentinels: [{ host: '127.0.0.1', port }], sentinel_master: 'mymaster', sentinel_password: 'sentinel-secret' });
    const err = await rejectsWithin(noSentinel.get('records/x.json'), TIMEOUT_MS + 500);
    assert.match(err.code ?? '', /^STORAGE_(ERROR|TIMEOUT)$/);
    assert.match(err.message, new RegExp(`^redis sentinel master "mymaster" via 127\\.0\\.0\\.1:${port}: get `));
    const noCluster = open({ auth: 'data-secret', cluster_nodes: [{ host: '127.0.0.1', port }] });
    const clusterErr = await rejectsWithin(noCluster.get('records/x.json'), TIMEOUT_MS + 500);
    assert.match(clusterErr.message, new RegExp(`^redis cluster 127\\.0\\.0\\.1:${port}: get `));
    for (const message of [err.message, clusterErr.message]) assert.doesNotMatch(message, /secret/);
  });

  it('Sentinel: a wrong sentinel_password is refused clearly', async () => {
    const storage = open({ auth: sentinel.password, sentinels: sentinel.sentinels, sentinel_master: sentinel.masterName, sentinel_password: 'wrong' });
    const err = await rejectsWithin(storage.get('records/x.json'), TIMEOUT_MS + 500);
    assert.match(err.code ?? '', /^STORAGE_(ERROR|TIMEOUT)$/);
    assert.doesNotMatch(err.message, /wrong/);
  });

  // Last: they stop the replica, then kill it.
  it('Sentinel: a certificate write that the connected replica does not confirm fails, so the issuer keeps it and tries again', async () => {
    const storage = viaSentinel();
    await storage.putCertificate(bundle); // the replica is there: confirmed
    assert.equal((await storage.getCertificate('shop.example.com'))?.fullchain, bundle.fullchain);
    await sentinel.pauseReplicas(); // connected, but acknowledging nothing
    try {
      const err = await rejectsWithin(storage.putCertificate(bundle), TIMEOUT_MS + 500);
      assert.equal(err.code, 'STORAGE_ERROR');
      assert.match(err.message, /no replica confirmed the write within \d+ ms/);
      // State (locks, tokens) is not held back: only certificates wait for a replica.
      await storage.set('records/after.json', 'v');
      assert.equal(await storage.get('records/after.json'), 'v');
    } finally {
      await sentinel.resumeReplicas();
    }
  });

  it('Sentinel: with no replica connected (the last node left), a certificate write is taken at once', async () => {
    const storage = viaSentinel();
    await sentinel.killReplicas();
    await eventually(async () => {
      const started = Date.now();
      await storage.putCertificate(bundle);
      assert.ok(Date.now() - started < 200, `took ${Date.now() - started} ms: it waited for a replica`);
    });
    assert.equal((await storage.getCertificate('shop.example.com'))?.privkey, bundle.privkey);
  });
}
