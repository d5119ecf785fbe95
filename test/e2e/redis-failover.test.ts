// Redis loses its master in the middle of a run of orders, and a replica
// takes over: through Redis Sentinel (master + replica + sentinel), and on a
// Redis Cluster (3 masters + 3 replicas). Each time acmed, never restarted,
// keeps serving the http-01 token it holds, issues again once the replica is
// promoted, and loses no certificate: every name is stored whole on the new
// master (test/harness/failover-run.ts). The test reports how long issuance paused.
import { test, before, after } from 'node:test';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, Redis } from 'ioredis';
import { createRedisStorage, type RedisStorageOptions } from '../../src/storage/redis.js';
import { failoverRun, type StoredPems } from '../harness/failover-run.js';
import { freePort } from '../harness/ports.js';
import { startPebble, type PebbleHandle } from '../harness/pebble.js';
import { startRedisCluster } from '../harness/redis-cluster.js';
import { startSentinelSetup } from '../harness/redis-sentinel.js';
import { startBlackhole, type Blackhole } from '../harness/blackhole.js';

const NAMESPACE = 'acmed-failover:';
const CERT_FIELDS = ['cert', 'chain', 'fullchain', 'not_after', 'privkey'];
const BLACKHOLE_ADDRESS = '127.0.0.5';

let dir: string;
let httpPort: number;
let pebble: PebbleHandle;
let blackhole: Blackhole | undefined;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'acmed-failover-'));
  httpPort = await freePort();
  pebble = await startPebble({ httpPort });
  blackhole = await startBlackhole(BLACKHOLE_ADDRESS, httpPort);
});

after(async () => {
  blackhole?.close();
  await pebble?.stop();
  await rm(dir, { recursive: true, force: true });
});

const BASE = { host: '127.0.0.1', port: 6379, auth: null, database: 0, ssl: false, ssl_verify: false, ssl_server_name: null, timeout: 2000, namespace: NAMESPACE };

/** The certificate's hash, read as a terminator reads it; null when absent, and an error when half there. */
async function readHash(raw: Redis | Cluster, name: string): Promise<StoredPems | null> {
  const fields = await raw.hgetall(`${NAMESPACE}certs/${name}`);
  const present = Object.keys(fields).sort();
  if (present.length === 0) return null;
  if (present.join() !== CERT_FIELDS.join()) throw new Error(`${name} is half-written: ${present.join(', ')}`);
  return { cert: fields.cert, chain: fields.chain, fullchain: fields.fullchain, privkey: fields.privkey };
}

test('Redis Sentinel: the master is killed during a run of orders; acmed follows the promoted replica without a restart', async (t) => {
  const sentinel = await startSentinelSetup();
  t.after(() => sentinel.stop());
  const redis: Partial<RedisStorageOptions> = {
    auth: sentinel.password, sentinels: sentinel.sentinels, sentinel_master: sentinel.masterName, sentinel_password: sentinel.sentinelPassword,
  };
  const reader = createRedisStorage({ ...BASE, ...redis });
  const raw = new Redis({ sentinels: sentinel.sentinels, name: sentinel.masterName, sentinelPassword: sentinel.sentinelPassword, password: sentinel.password });
  raw.on('error', () => {});
  t.after(async () => {
    await reader.close();
    raw.disconnect();
  });
  let old = await sentinel.master();
  await failoverRun(t, {
    label: 'sentinel', dir, pebble, httpPort, blackholeAddress: BLACKHOLE_ADDRESS, reader,
    storage: { storage: 'redis', storage_config: { redis: { ...redis, namespace: NAMESPACE } } },
    readCertificate: (name) => readHash(raw, name),
    async kill() {
      old = await sentinel.killMaster();
    },
    async promoted() {
      await sentinel.waitForNewMaster(old);
    },
    async stillDown() {
      return (await sentinel.master()).port === old.port;
    },
  });
});

test('Redis Cluster: the master of the next name\'s slot is killed during a run of orders; acmed goes on once its replica is promoted', async (t) => {
  const cluster = await startRedisCluster();
  t.after(() => cluster.stop());
  const redis: Partial<RedisStorageOptions> = { auth: cluster.password, cluster_nodes: cluster.nodes.slice(0, 3) };
  const reader = createRedisStorage({ ...BASE, ...redis });
  const raw = new Cluster(cluster.nodes, { redisOptions: { password: cluster.password } });
  raw.on('error', () => {});
  t.after(async () => {
    await reader.close();
    raw.disconnect();
  });
  let old = { host: '', port: 0 };
  let key = '';
  await failoverRun(t, {
    label: 'cluster', dir, pebble, httpPort, blackholeAddress: BLACKHOLE_ADDRESS, reader,
    storage: { storage: 'redis', storage_config: { redis: { ...redis, namespace: NAMESPACE } } },
    readCertificate: (name) => readHash(raw, name),
    async kill(nextName) {
      key = `${NAMESPACE}certs/${nextName}`;
      old = await cluster.killMasterOf(key);
    },
    async promoted() {
      await cluster.waitForPromotion(key, old);
    },
    async stillDown() {
      return (await cluster.masters()).some((m) => m.port === old.port);
    },
  });
});
