// Redis loses its master in the middle of a run of orders, and a replica
// takes over: through Redis Sentinel (master + replica + sentinel), and on a
// Redis Cluster (3 masters + 3 replicas). Each time acmed, never restarted,
// keeps serving the http-01 token it holds, issues again once the replica is
// promoted, and loses no certificate: every name is stored whole on the new
// master. The test reports how long issuance paused.
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Cluster, Redis } from 'ioredis';
import { createRedisStorage, type RedisStorageOptions } from '../../src/storage/redis.js';
import { freePort } from '../harness/ports.js';
import { startPebble, type PebbleHandle } from '../harness/pebble.js';
import { startRedisCluster } from '../harness/redis-cluster.js';
import { startSentinelSetup } from '../harness/redis-sentinel.js';
import { startAcmed, type AcmedHandle } from '../harness/acmed.js';
import { waitFor } from '../harness/wait.js';

const NAMESPACE = 'acmed-failover:';
const CERT_FIELDS = ['cert', 'chain', 'fullchain', 'not_after', 'privkey'];
/** Names issued one after another; the master dies after KILL_AFTER of them. */
const RUN_LENGTH = 10;
const KILL_AFTER = 4;
/** Pebble's validation of the held order goes here: a server that accepts and never answers. */
const BLACKHOLE_ADDRESS = '127.0.0.5';

let dir: string;
let httpPort: number;
let pebble: PebbleHandle;
let blackhole: net.Server;
const blackholeSockets = new Set<net.Socket>();

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'acmed-failover-'));
  httpPort = await freePort();
  pebble = await startPebble({ httpPort });
  blackhole = net.createServer((socket) => {
    blackholeSockets.add(socket);
    socket.on('close', () => blackholeSockets.delete(socket));
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve, reject) => {
    blackhole.once('error', reject);
    blackhole.listen(httpPort, BLACKHOLE_ADDRESS, resolve);
  });
});

after(async () => {
  for (const s of blackholeSockets) s.destroy();
  blackhole?.close();
  await pebble?.stop();
  await rm(dir, { recursive: true, force: true });
});

function admin(acmed: AcmedHandle, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      socketPath: acmed.socketPath, method, path, agent: false,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { text += d; });
      res.on('end', () => {
        let parsed: unknown = text;
        try { parsed = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode!, body: parsed });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
  });
}

interface FailoverRun {
  /** storage_config.redis for acmed (and for the test's own reader). */
  redis: Partial<RedisStorageOptions>;
  /** A raw client on the topology, for reading certificate hashes as a terminator would. */
  raw(): Redis | Cluster;
  /** Kills the master that matters for the next name; resolves when it is dead. */
  kill(nextName: string): Promise<void>;
  /** Resolves once a replica has been promoted. */
  promoted(): Promise<void>;
  /** True while the killed master has not been replaced yet. */
  stillDown(): Promise<boolean>;
}

/**
 * The run both tests share: acmed on the topology, one order held open so
 * its token is published, then names issued one by one (each retried until
 * it succeeds) while the master is killed after KILL_AFTER of them.
 */
async function failoverRun(t: TestContext, label: string, setup: FailoverRun): Promise<void> {
  const sub = join(dir, label);
  await mkdir(sub);
  const acmed = await startAcmed({
    account_email: 'ops@example.com',
    tos_accepted: true,
    api_uri: pebble.directoryUrl,
    ca_bundle: pebble.caBundlePath,
    domains: ['*.example.com'],
    challenge: { listen: [`127.0.0.1:${httpPort}`] },
    admin: { socket: join(sub, 'admin.sock') },
    storage: 'redis',
    storage_config: { redis: { ...setup.redis, namespace: NAMESPACE } },
    spool_dir: join(sub, 'spool'),
    lock_ttl_seconds: 10,
    log_level: 'debug',
  }, sub);
  let exited: string | undefined;
  acmed.child.once('exit', (code, signal) => { exited ??= `exited (${code ?? signal})`; });
  t.after(() => acmed.stop());
  const alive = () => assert.equal(exited, undefined, `acmed ${exited}:\n${acmed.logs().slice(-3000)}`);
  const reader = createRedisStorage({ host: '127.0.0.1', port: 6379, auth: null, database: 0, ssl: false, ssl_verify: false, ssl_server_name: null, timeout: 2000, ...setup.redis, namespace: NAMESPACE } as RedisStorageOptions);
  t.after(() => reader.close());
  const raw = setup.raw();
  raw.on('error', () => {});
  t.after(() => raw.disconnect());

  // An order whose validation hangs keeps its token published across the failover.
  const hangName = `hang-${label}.example.com`;
  await pebble.addA(hangName, [BLACKHOLE_ADDRESS]);
  const logStart = acmed.logs().length;
  const hanging = admin(acmed, 'POST', '/acme', { host: hangName }).catch((err: Error) => ({ status: 0, body: err.message }));
  await waitFor('the held order to publish its token', () => acmed.logs().slice(logStart).split('\n')
    .some((line) => line.includes('challenges answered') && line.includes(hangName)), { context: () => acmed.logs().slice(-3000) });
  const tokenKeys = await reader.list('challenges/');
  assert.equal(tokenKeys.length, 1, `one published token: ${tokenKeys.join(', ')}`);
  const token = tokenKeys[0].slice('challenges/'.length);
  const keyAuthorization = await reader.get(tokenKeys[0]);
  assert.ok(keyAuthorization?.startsWith(`${token}.`));

  const names = Array.from({ length: RUN_LENGTH }, (_, i) => `${label}-${i + 1}.example.com`);
  const done: { name: string; at: number; attempts: number }[] = [];
  let killedAt = 0;
  let promotedAt = 0;
  let promotion: Promise<void> | undefined;
  for (const [i, name] of names.entries()) {
    if (i === KILL_AFTER) {
      await setup.kill(name);
      killedAt = Date.now();
      // The token it holds is still served while no master is there.
      const served = await httpGet(httpPort, `/.well-known/acme-challenge/${token}`);
      assert.ok(await setup.stillDown(), 'the token check ran before a replica was promoted');
      assert.equal(served.status, 200, 'the held token is served during the failover');
      assert.equal(served.body, keyAuthorization);
      promotion = setup.promoted().then(() => { promotedAt = Date.now(); });
    }
    let attempts = 0;
    for (const deadline = Date.now() + 90_000; ;) {
      attempts++;
      const answer = await admin(acmed, 'POST', '/acme', { host: name });
      if (answer.status === 201 || answer.status === 200) {
        assert.equal(answer.body.data.name, name);
        break;
      }
      alive();
      if (Date.now() > deadline) assert.fail(`${name} was not issued within 90 s: ${answer.status} ${JSON.stringify(answer.body)}\n${acmed.logs().slice(-4000)}`);
      await sleep(200);
    }
    done.push({ name, at: Date.now(), attempts });
  }
  await promotion;
  alive();

  const firstAfter = done[KILL_AFTER];
  const pauseMs = firstAfter.at - killedAt;
  const gaps = done.slice(1).map((d, i) => d.at - done[i].at);
  t.diagnostic(`${label}: master killed after ${KILL_AFTER} names; replica promoted ${promotedAt - killedAt} ms later; ` +
    `first issuance after the kill ${pauseMs} ms after it (${firstAfter.attempts} attempts); longest gap between issuances ${Math.max(...gaps)} ms, ` +
    `median ${[...gaps].sort((a, b) => a - b)[Math.floor(gaps.length / 2)]} ms`);
  // Issuance went on after the promotion, in the same process.
  assert.ok(done.slice(KILL_AFTER).some((d) => d.at >= promotedAt), 'names were issued after the promotion');
  assert.ok(pauseMs < 60_000, `issuance paused ${pauseMs} ms`);

  // No certificate lost: every name, before and after the kill, is whole on the new master.
  for (const name of names) {
    const fields = await raw.hgetall(`${NAMESPACE}certs/${name}`);
    assert.deepEqual(Object.keys(fields).sort(), CERT_FIELDS, `${name}: ${Object.keys(fields).join(', ') || 'missing'}`);
    const leaf = new X509Certificate(fields.cert);
    assert.equal(leaf.subjectAltName, `DNS:${name}`);
    assert.ok(leaf.checkPrivateKey(createPrivateKey(fields.privkey)), `${name}: privkey matches cert`);
    assert.equal(fields.fullchain, fields.cert + fields.chain);
  }
  const list = await admin(acmed, 'GET', '/acme/certificates');
  const valid = new Set((list.body.data as { host: string; valid: boolean }[]).filter((c) => c.valid).map((c) => c.host));
  assert.deepEqual(names.filter((n) => !valid.has(n)), [], 'acmed lists every certificate as valid');
  await waitFor('/healthz to say 200', async () => (await admin(acmed, 'GET', '/healthz')).status === 200, { timeoutMs: 30_000 });

  const hung = await hanging;
  assert.notEqual(hung.status, 201, 'the held order never validated');
  alive();
  assert.equal(await acmed.stop('SIGTERM'), 0, 'a clean exit after it all');
}

test('Redis Sentinel: the master is killed during a run of orders; acmed follows the promoted replica without a restart', async (t) => {
  const sentinel = await startSentinelSetup();
  t.after(() => sentinel.stop());
  let old = await sentinel.master();
  await failoverRun(t, 'sentinel', {
    redis: { auth: sentinel.password, sentinels: sentinel.sentinels, sentinel_master: sentinel.masterName, sentinel_password: sentinel.sentinelPassword },
    raw: () => new Redis({ sentinels: sentinel.sentinels, name: sentinel.masterName, sentinelPassword: sentinel.sentinelPassword, password: sentinel.password }),
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
  let old = { host: '', port: 0 };
  let key = '';
  await failoverRun(t, 'cluster', {
    redis: { auth: cluster.password, cluster_nodes: cluster.nodes.slice(0, 3) },
    raw: () => new Cluster(cluster.nodes, { redisOptions: { password: cluster.password } }),
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
