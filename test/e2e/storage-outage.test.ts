// Redis goes away for 20 s under a running acmed and comes back with its
// data: the daemon stays up, reports the outage on /healthz, keeps answering
// an http-01 token it already holds, and finishes the work asked of it during
// the outage (a certificate added by SIGHUP) once Redis answers again, with
// no one asking twice. No certificate is ever seen half-written.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { freePort } from '../harness/ports.js';
import { startPebble, type PebbleHandle } from '../harness/pebble.js';
import { startRedis, type RedisServer } from '../harness/redis.js';
import { startAcmed, writeAcmedConfig, type AcmedHandle } from '../harness/acmed.js';
import { startBlackhole, type Blackhole } from '../harness/blackhole.js';

const NAMESPACE = 'acmed-test:';
const OUTAGE_MS = 20_000;
const CERT_FIELDS = ['cert', 'chain', 'fullchain', 'not_after', 'privkey'];
/** Pebble's validation of this name goes to a server that accepts and never answers. */
const BLACKHOLE_ADDRESS = '127.0.0.5';

let dir: string;
let httpPort: number;
let pebble: PebbleHandle;
let redisServer: RedisServer;
let blackhole: Blackhole | undefined;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'acmed-outage-'));
  httpPort = await freePort();
  [pebble, redisServer] = await Promise.all([startPebble({ httpPort }), startRedis({ persist: true })]);
  blackhole = await startBlackhole(BLACKHOLE_ADDRESS, httpPort);
});

after(async () => {
  blackhole?.close();
  await Promise.all([pebble?.stop(), redisServer?.stop()]);
  await rm(dir, { recursive: true, force: true });
});

function connectRedis(): Redis {
  const client = new Redis({ host: redisServer.host, port: redisServer.port, maxRetriesPerRequest: 1 });
  client.on('error', () => {}); // reported by the failing call
  return client;
}

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

function httpGet(host: string, port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path, agent: false, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
  });
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** A certificate hash is all there or not there at all; returns whether it is there. */
async function wholeOrAbsent(redis: Redis, name: string): Promise<boolean> {
  const fields = await redis.hgetall(`${NAMESPACE}certs/${name}`);
  const present = Object.keys(fields).sort();
  if (present.length === 0) return false;
  assert.deepEqual(present, CERT_FIELDS, `${name} is half-written: ${present.join(', ')}`);
  for (const f of CERT_FIELDS) assert.ok(fields[f].length > 0, `${name}: ${f} is empty`);
  return true;
}

test('Redis down for 20 s: acmed stays up, /healthz says 503 then 200, a held token is still served, work asked for meanwhile completes', async (t) => {
  const sub = join(dir, 'acmed');
  const config = {
    account_email: 'ops@example.com',
    tos_accepted: true,
    api_uri: pebble.directoryUrl,
    ca_bundle: pebble.caBundlePath,
    domains: ['*.example.com'],
    certificates: [{ names: ['before.example.com'] }],
    challenge: { listen: [`127.0.0.1:${httpPort}`] },
    admin: { socket: join(sub, 'admin.sock') },
    storage: 'redis',
    storage_config: { redis: { host: redisServer.host, port: redisServer.port, namespace: NAMESPACE } },
    log_level: 'debug',
  };
  await mkdir(sub);
  const acmed = await startAcmed(config, sub);
  let exitedEarly: string | undefined;
  acmed.child.once('exit', (code, signal) => { exitedEarly ??= `exited (${code ?? signal})`; });
  t.after(() => acmed.stop());
  const alive = () => assert.equal(exitedEarly, undefined, `acmed ${exitedEarly}:\n${acmed.logs().slice(-3000)}`);

  let redis = connectRedis();
  // The configured certificate is issued at start, so the account and one certificate are stored.
  await waitFor('before.example.com in Redis', () => wholeOrAbsent(redis, 'before.example.com'));
  assert.ok(await redis.get(`${NAMESPACE}state/account/key.pem`), 'the account key is in Redis');
  assert.equal((await admin(acmed, 'GET', '/healthz')).status, 200);

  // An order whose validation hangs keeps its token published while Redis goes away.
  await pebble.addA('hang.example.com', [BLACKHOLE_ADDRESS]);
  const logStart = acmed.logs().length;
  const hanging = admin(acmed, 'POST', '/acme', { host: 'hang.example.com' }).catch((err: Error) => ({ status: 0, body: err.message }));
  await waitFor('the hanging order to answer its challenge', () => acmed.logs().slice(logStart).split('\n')
    .some((line) => line.includes('challenges answered') && line.includes('hang.example.com')));
  const tokenKeys = await redis.keys(`${NAMESPACE}state/challenges/*`);
  assert.equal(tokenKeys.length, 1, `one published token: ${tokenKeys.join(', ')}`);
  const token = tokenKeys[0].slice(`${NAMESPACE}state/challenges/`.length);
  const keyAuthorization = await redis.get(tokenKeys[0]);
  assert.ok(keyAuthorization?.startsWith(`${token}.`));
  redis.disconnect();

  // ---- Redis goes down (SIGKILL: no goodbye to its clients).
  await redisServer.kill();
  const downAt = Date.now();

  const served = await httpGet('127.0.0.1', httpPort, `/.well-known/acme-challenge/${token}`);
  assert.equal(served.status, 200, 'the token held in memory is served without Redis');
  assert.equal(served.body, keyAuthorization);
  // A token this instance does not hold needs Redis: not found, and no crash.
  assert.equal((await httpGet('127.0.0.1', httpPort, '/.well-known/acme-challenge/unknownunknownunknown')).status, 404);

  const unhealthy = await waitFor('/healthz to say 503', async () => {
    const answer = await admin(acmed, 'GET', '/healthz');
    return answer.status === 503 && answer;
  }, 10_000);
  assert.equal(unhealthy.body.status, 'unhealthy');
  assert.notEqual(unhealthy.body.checks.storage, 'ok');

  // Work asked for during the outage: a new configured certificate, applied by SIGHUP.
  await writeAcmedConfig(sub, { ...config, certificates: [{ names: ['before.example.com'] }, { names: ['during.example.com'] }] });
  const reloadStart = acmed.logs().length;
  acmed.child.kill('SIGHUP');
  await waitFor('the reload', () => acmed.logs().slice(reloadStart).includes('config reloaded'), 10_000);
  await waitFor('the daemon to notice the store is down', () => acmed.logs().includes('storage is failing'), 10_000);

  // Stays up and keeps saying 503 for the whole outage. A /healthz answer
  // takes up to the Redis timeout (2 s), so the last one starts in time.
  let healthChecks = 0;
  const left = () => OUTAGE_MS - (Date.now() - downAt);
  while (left() > 2_500) {
    alive();
    const health = await admin(acmed, 'GET', '/healthz');
    assert.equal(health.status, 503, `healthz during the outage: ${JSON.stringify(health.body)}`);
    healthChecks++;
    await sleep(Math.min(1_000, Math.max(0, left() - 2_500)));
  }
  assert.ok(healthChecks >= 4, `${healthChecks} health checks`);
  await sleep(Math.max(0, left()));
  alive();

  // ---- Redis comes back on the same port, with its data.
  await redisServer.restart();
  const upAt = Date.now();
  t.diagnostic(`Redis was down for ${upAt - downAt} ms`);
  redis = connectRedis();
  t.after(() => redis.disconnect());
  assert.ok(await redis.get(`${NAMESPACE}state/account/key.pem`), 'the account key survived the restart');
  assert.ok(await wholeOrAbsent(redis, 'before.example.com'), 'the certificate survived the restart');

  // Nobody asks again: the recovery loop notices Redis and issues what is missing.
  // Every look at the hash on the way finds it whole or absent.
  await waitFor('during.example.com in Redis', () => wholeOrAbsent(redis, 'during.example.com'), 30_000, 50)
    .catch((err: Error) => assert.fail(`${err.message}\n${acmed.logs().slice(-4000)}`));
  const issuedAfter = Date.now() - upAt;
  t.diagnostic(`during.example.com stored ${issuedAfter} ms after Redis came back`);
  assert.ok(issuedAfter < 30_000);
  // It was the recovery that did it: the job the reload queued failed on the
  // store, and the certificate came after acmed saw Redis again.
  const issuedLine = /"cert":"during\.example\.com"[^\n]*"msg":"certificate issued"/;
  // The log line follows the write by a moment.
  await waitFor('the "certificate issued" line', () => issuedLine.test(acmed.logs()), 5_000);
  const logs = acmed.logs();
  const tail = `\n${logs.slice(-4000)}`;
  assert.match(logs, /"err":"redis [^"]*: \w+ (failed|timed out)[^"]*","msg":"storage is failing; retrying until it works again"/, tail);
  // The order itself started only once Redis was back: nothing was ordered into a store that could not keep it.
  const ordered = /"time":"([^"]+)"[^\n]*"step":"challenges answered"[^\n]*"names":\["during\.example\.com"\]/.exec(logs);
  assert.ok(ordered && Date.parse(ordered[1]) >= upAt - 1_000, `the order for during.example.com started after Redis was back${tail}`);
  await waitFor('the store probe to see Redis again', () => acmed.logs().includes('storage works again'), 30_000);
  await waitFor('/healthz to say 200', async () => (await admin(acmed, 'GET', '/healthz')).status === 200, 30_000);
  alive();

  // The hanging order failed on its own (the CA gave up on the black hole); it left no certificate.
  const hung = await hanging;
  assert.notEqual(hung.status, 201);
  assert.equal(await wholeOrAbsent(redis, 'hang.example.com'), false);
  for (const key of await redis.keys(`${NAMESPACE}certs/*`)) {
    await wholeOrAbsent(redis, key.slice(`${NAMESPACE}certs/`.length));
  }
  const list = await admin(acmed, 'GET', '/acme/certificates');
  assert.equal(list.status, 200);
  const hosts = (list.body.data as { host: string; valid: boolean }[]).filter((c) => c.valid).map((c) => c.host).sort();
  assert.deepEqual(hosts, ['before.example.com', 'during.example.com']);

  alive();
  assert.equal(await acmed.stop('SIGTERM'), 0, 'a clean exit after it all');
});
