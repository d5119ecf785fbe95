// Three acmed instances sharing one Redis and one Pebble, as a cluster runs:
// every instance answers http-01 for orders any of them placed (tokens go
// through Redis), a name requested through all of them at once is ordered
// exactly once (the per-name lock in Redis), and an instance killed while it
// holds a name's lock does not block that name longer than lock_ttl_seconds.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { startBlackhole, type Blackhole } from '../harness/blackhole.js';
import { freePort } from '../harness/ports.js';
import { startPebble, type PebbleHandle } from '../harness/pebble.js';
import { startRedis, type RedisServer } from '../harness/redis.js';
import { startAcmed, type AcmedHandle, adminPost } from '../harness/acmed.js';

const run = promisify(execFile);

const NAMESPACE = 'acmed-test:';
const LOCK_TTL_SECONDS = 5;
/** Instance k answers http-01 on 127.0.0.<2+k>; 127.0.0.5 is a validation black hole. */
const INSTANCE_ADDRESSES = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];
const BLACKHOLE_ADDRESS = '127.0.0.5';
const CERT_FIELDS = ['fullchain', 'privkey', 'cert', 'chain', 'not_after'];

let dir: string;
let httpPort: number;
let pebble: PebbleHandle;
let redisServer: RedisServer;
let redis: Redis;
let instances: AcmedHandle[] = [];
let blackhole: Blackhole | undefined;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'acmed-cluster-'));
  httpPort = await freePort(INSTANCE_ADDRESSES[0]);
  [pebble, redisServer] = await Promise.all([startPebble({ httpPort }), startRedis()]);
  redis = new Redis({ host: redisServer.host, port: redisServer.port, lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  // Started together, as a fleet boots: they also race to create the one account.
  instances = await Promise.all(INSTANCE_ADDRESSES.map(async (address, k) => {
    const sub = join(dir, `acmed-${k}`);
    await mkdir(sub);
    return startAcmed({
      account_email: 'ops@example.com',
      tos_accepted: true,
      api_uri: pebble.directoryUrl,
      ca_bundle: pebble.caBundlePath,
      domains: ['*.example.com'],
      challenge: { listen: [`${address}:${httpPort}`] },
      admin: { socket: join(sub, 'admin.sock') },
      storage: 'redis',
      storage_config: { redis: { host: redisServer.host, port: redisServer.port, namespace: NAMESPACE } },
      lock_ttl_seconds: LOCK_TTL_SECONDS,
      log_level: 'debug',
    }, sub);
  }));
});

after(async () => {
  await Promise.all(instances.map((i) => i.stop('SIGTERM').catch(() => null)));
  blackhole?.close();
  redis?.disconnect();
  await Promise.all([pebble?.stop(), redisServer?.stop()]);
  await rm(dir, { recursive: true, force: true });
});

/** What `acmed issue` does: POST /acme over the admin socket, waiting for the order. */
const issueVia = (instance: AcmedHandle, host: string) => adminPost(instance.socketPath, '/acme', { host });

async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

test('30 names requested through all three instances at once: 90 successes, 30 orders, every certificate valid', async (t) => {
  const names = Array.from({ length: 30 }, (_, i) => `c${i + 1}.example.com`);
  // Each name's validation goes to one instance; the other two request it too,
  // so whichever instance wins the lock, at least one requester is not the validated one,
  // and most orders are answered by an instance that did not place them.
  await Promise.all(names.map((name, i) => pebble.addA(name, [INSTANCE_ADDRESSES[i % 3]])));

  const ordersBefore = pebble.ordersAdded();
  const started = Date.now();
  const requests = names.flatMap((name) => instances.map(async (instance, k) => ({ name, k, answer: await issueVia(instance, name) })));
  const results = await Promise.all(requests);
  const took = Date.now() - started;
  t.diagnostic(`90 requests answered in ${took} ms`);

  const failures = results.filter((r) => r.answer.status !== 200 && r.answer.status !== 201);
  assert.deepEqual(failures.map((f) => `${f.name} via ${f.k}: ${f.answer.status} ${JSON.stringify(f.answer.body)}`), []);
  for (const name of names) {
    const mine = results.filter((r) => r.name === name);
    assert.equal(mine.length, 3);
    // One instance ordered it; the others found it stored under the lock.
    assert.equal(mine.filter((r) => r.answer.body.data.issued === true).length, 1, `${name}: ${JSON.stringify(mine.map((r) => r.answer.body))}`);
    for (const r of mine) assert.equal(r.answer.body.data.name, name);
  }

  // Pebble logs one line per newOrder; let the last lines arrive before counting.
  await waitFor('30 order lines', () => pebble.ordersAdded() - ordersBefore >= 30, 5_000);
  await sleep(300);
  assert.equal(pebble.ordersAdded() - ordersBefore, 30, 'exactly one order per name');

  // Validations really crossed instances: instances answered tokens for orders they did not place.
  const answeredBy = () => instances.map((i) => (i.logs().match(/answered http-01 challenge/g) ?? []).length);
  await waitFor('every instance to have answered validations', () => answeredBy().every((n) => n > 0), 5_000)
    .catch(() => assert.fail(`validations answered per instance: ${answeredBy().join(', ')}`));

  const rootPath = join(dir, 'root.pem');
  await writeFile(rootPath, await pebble.rootPem());
  for (const name of names) {
    const fields = await redis.hgetall(`${NAMESPACE}certs/${name}`);
    assert.deepEqual(Object.keys(fields).sort(), [...CERT_FIELDS].sort(), `${name}: hash fields`);
    for (const f of CERT_FIELDS) assert.ok(fields[f].length > 0, `${name}: ${f} is empty`);
    const leaf = new X509Certificate(fields.cert);
    assert.equal(leaf.subjectAltName, `DNS:${name}`);
    assert.ok(leaf.checkPrivateKey(createPrivateKey(fields.privkey)), `${name}: privkey matches cert`);
    assert.equal(fields.fullchain, fields.cert + fields.chain);
    assert.equal(new Date(fields.not_after).getTime(), new Date(leaf.validTo).getTime());
    const certPath = join(dir, `${name}.pem`);
    const chainPath = join(dir, `${name}.chain.pem`);
    await writeFile(certPath, fields.cert);
    await writeFile(chainPath, fields.chain);
    const { stdout } = await run('openssl', ['verify', '-CAfile', rootPath, '-untrusted', chainPath, certPath]);
    assert.equal(stdout.trim(), `${certPath}: OK`);
  }
  // No lock is left behind by any of the 90 jobs.
  assert.deepEqual(await redis.keys(`${NAMESPACE}state/locks/*`), []);
  assert.ok(took < 90_000, `90 requests took ${took} ms`);
});

test('an instance killed while holding a name\'s lock: another takes the lock over after lock_ttl_seconds and finishes its order (resumed, not placed again)', async (t) => {
  const [a, b] = instances;
  const name = 'takeover.example.com';
  const lockKey = `${NAMESPACE}state/locks/${name}`;

  // The CA's validation for the name hangs on a server that accepts and never answers,
  // so A's order is still running (and A still holds the lock) when it is killed.
  blackhole = await startBlackhole(BLACKHOLE_ADDRESS, httpPort);
  await pebble.addA(name, [BLACKHOLE_ADDRESS]);

  const logStart = a.logs().length;
  const viaA = issueVia(a, name).catch((err: Error) => ({ status: 0, body: err.message }));
  await waitFor('A\'s order to have answered its challenges', () => {
    const fresh = a.logs().slice(logStart);
    return fresh.split('\n').some((line) => line.includes('challenges answered') && line.includes(name));
  });
  assert.ok(await redis.exists(lockKey), 'A holds the lock');

  a.child.kill('SIGKILL');
  await waitFor('A to exit', () => a.child.exitCode !== null || a.child.signalCode !== null, 5_000);
  const killedAt = Date.now();
  const remainingMs = await redis.pttl(lockKey);
  assert.ok(remainingMs > 0, `the dead instance's lock is still there (pttl ${remainingMs})`);
  const answerA = await viaA;
  assert.notEqual(answerA.status, 201, 'the killed instance did not answer success');

  // Validation now goes to B, and B is asked for the same name.
  await pebble.clearA(name);
  await pebble.addA(name, [INSTANCE_ADDRESSES[1]]);
  const ordersBefore = pebble.ordersAdded();
  const answer = await issueVia(b, name);
  const took = Date.now() - killedAt;

  t.diagnostic(`dead lock had ${remainingMs} ms left; B answered ${took} ms after the kill`);
  assert.equal(answer.status, 201, JSON.stringify(answer.body));
  assert.equal(answer.body.data.issued, true);
  assert.equal(answer.body.data.name, name);
  // B could not have had the lock before A's lock ran out.
  assert.ok(took >= remainingMs - 100, `B issued after ${took} ms; the dead lock had ${remainingMs} ms left`);
  assert.ok(took >= (LOCK_TTL_SECONDS * 1000 * 2) / 3 - 200, `B waited about the lock TTL: ${took} ms`);
  assert.ok(took < LOCK_TTL_SECONDS * 1000 + 20_000, `B took ${took} ms`);
  // A kept its order in the shared index as soon as the CA answered newOrder: B resumes it instead of paying for another.
  assert.equal(answer.body.data.resumed, true, JSON.stringify(answer.body.data));
  assert.equal(pebble.ordersAdded() - ordersBefore, 0, 'no new order');

  assert.equal(await redis.exists(lockKey), 0, 'the lock is gone afterwards');
  const fields = await redis.hgetall(`${NAMESPACE}certs/${name}`);
  assert.deepEqual(Object.keys(fields).sort(), [...CERT_FIELDS].sort());
  assert.ok(new X509Certificate(fields.cert).checkPrivateKey(createPrivateKey(fields.privkey)));
  // The survivors still serve.
  assert.equal(b.child.exitCode, null);
  assert.equal(instances[2].child.exitCode, null);
});
