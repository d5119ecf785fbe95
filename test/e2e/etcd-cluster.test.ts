// Two acmed instances sharing one real etcd and one Pebble: every name is
// ordered by one instance and validated at the other (the token goes through
// etcd), each of 20 names is ordered once however many times it is asked
// for, and an instance killed with SIGKILL while it holds a name's lock has
// that job finished by the other once the lock runs out.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Etcd3 } from 'etcd3';
import { startBlackhole, type Blackhole } from '../harness/blackhole.js';
import { freePort } from '../harness/ports.js';
import { startEtcd, type EtcdServer } from '../harness/etcd.js';
import { startPebble, type PebbleHandle } from '../harness/pebble.js';
import { startAcmed, type AcmedHandle, adminPost } from '../harness/acmed.js';
import { waitFor } from '../harness/wait.js';

const run = promisify(execFile);

const PREFIX = 'acmed-e2e/';
const LOCK_TTL_SECONDS = 5;
/** Instance k answers http-01 on its own loopback address; 127.0.0.5 is a validation black hole. */
const ADDRESSES = ['127.0.0.2', '127.0.0.3'];
const BLACKHOLE_ADDRESS = '127.0.0.5';

let dir: string;
let httpPort: number;
let pebble: PebbleHandle;
let etcdServer: EtcdServer;
let etcd: Etcd3;
let instances: AcmedHandle[] = [];
let blackhole: Blackhole | undefined;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'acmed-etcd-cluster-'));
  httpPort = await freePort(ADDRESSES[0]);
  [pebble, etcdServer] = await Promise.all([startPebble({ httpPort }), startEtcd()]);
  etcd = new Etcd3({ hosts: etcdServer.endpoint });
  instances = await Promise.all(ADDRESSES.map(async (address, k) => {
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
      storage: 'etcd',
      storage_config: { etcd: { endpoints: [etcdServer.endpoint], prefix: PREFIX } },
      spool_dir: join(sub, 'spool'),
      lock_ttl_seconds: LOCK_TTL_SECONDS,
      log_level: 'debug',
    }, sub);
  }));
});

after(async () => {
  await Promise.all(instances.map((i) => i.stop('SIGTERM').catch(() => null)));
  blackhole?.close();
  etcd?.close();
  await Promise.all([pebble?.stop(), etcdServer?.stop()]);
  await rm(dir, { recursive: true, force: true });
});

/** What `acmed issue` does: POST /acme over the admin socket, waiting for the order. */
const issueVia = (instance: AcmedHandle, host: string) => adminPost(instance.socketPath, '/acme', { host });

const answered = (instance: AcmedHandle) => (instance.logs().match(/answered http-01 challenge/g) ?? []).length;

async function storedCertificate(name: string): Promise<Record<string, string>> {
  return etcd.getAll().prefix(`${PREFIX}certs/${name}/`).strings();
}

test('20 names, each ordered through one instance and validated at the other, then asked for again through the other: 20 orders, 20 valid certificates', async (t) => {
  const [a, b] = instances;
  const names = Array.from({ length: 20 }, (_, i) => `e${i + 1}.example.com`);
  // Name i is ordered through instance i % 2; Pebble's validation goes to the other one only.
  await Promise.all(names.map((name, i) => pebble.addA(name, [ADDRESSES[(i + 1) % 2]])));
  const answeredBefore = instances.map(answered);

  const ordersBefore = pebble.ordersAdded();
  const started = Date.now();
  const first = await Promise.all(names.map(async (name, i) => ({ name, answer: await issueVia(instances[i % 2], name) })));
  t.diagnostic(`20 names issued in ${Date.now() - started} ms`);
  assert.deepEqual(first.filter((r) => r.answer.status !== 201).map((r) => `${r.name}: ${r.answer.status} ${JSON.stringify(r.answer.body)}`), []);
  for (const r of first) {
    assert.equal(r.answer.body.data.issued, true, `${r.name}: ${JSON.stringify(r.answer.body)}`);
    assert.equal(r.answer.body.data.name, r.name);
  }
  // Each instance answered the validations of the other's ten orders, from tokens it read in etcd.
  await waitFor('each instance to have answered ten validations', () => instances.every((inst, k) => answered(inst) - answeredBefore[k] >= 10), { timeoutMs: 5_000 })
    .catch(() => assert.fail(`validations answered per instance: ${instances.map((inst, k) => answered(inst) - answeredBefore[k]).join(', ')}`));

  // Asked again through the instance that did not order it: found stored, not ordered again.
  const second = await Promise.all(names.map(async (name, i) => ({ name, answer: await issueVia(instances[(i + 1) % 2], name) })));
  for (const r of second) {
    assert.equal(r.answer.status, 200, `${r.name}: ${r.answer.status} ${JSON.stringify(r.answer.body)}`);
    assert.equal(r.answer.body.data.issued, false, `${r.name} was ordered twice`);
  }
  await sleep(300); // Pebble's last log lines
  assert.equal(pebble.ordersAdded() - ordersBefore, 20, 'exactly one order per name');

  const rootPath = join(dir, 'root.pem');
  await writeFile(rootPath, await pebble.rootPem());
  for (const name of names) {
    const files = await storedCertificate(name);
    const dirKey = `${PREFIX}certs/${name}/`;
    assert.deepEqual(Object.keys(files).sort(), ['cert.pem', 'chain.pem', 'fullchain.pem', 'privkey.pem'].map((f) => dirKey + f));
    const leaf = new X509Certificate(files[`${dirKey}cert.pem`]);
    assert.equal(leaf.subjectAltName, `DNS:${name}`);
    assert.ok(leaf.checkPrivateKey(createPrivateKey(files[`${dirKey}privkey.pem`])), `${name}: privkey matches cert`);
    assert.equal(files[`${dirKey}fullchain.pem`], files[`${dirKey}cert.pem`] + files[`${dirKey}chain.pem`]);
    const certPath = join(dir, `${name}.pem`);
    const chainPath = join(dir, `${name}.chain.pem`);
    await writeFile(certPath, files[`${dirKey}cert.pem`]);
    await writeFile(chainPath, files[`${dirKey}chain.pem`]);
    const { stdout } = await run('openssl', ['verify', '-CAfile', rootPath, '-untrusted', chainPath, certPath]);
    assert.equal(stdout.trim(), `${certPath}: OK`);
  }
  assert.deepEqual(await etcd.getAll().prefix(`${PREFIX}state/locks/`).keys(), [], 'no lock left behind');
  assert.equal(a.child.exitCode, null);
  assert.equal(b.child.exitCode, null);
});

test('an instance killed with SIGKILL while holding a name\'s lock: the other takes the lock over once it runs out and finishes the order (resumed, not placed again)', async (t) => {
  const [a, b] = instances;
  const name = 'takeover.example.com';
  const lockKey = `${PREFIX}state/locks/${name}`;

  // A's validation hangs on a server that accepts and never answers, so A still holds the lock when it dies.
  blackhole = await startBlackhole(BLACKHOLE_ADDRESS, httpPort);
  await pebble.addA(name, [BLACKHOLE_ADDRESS]);

  const logStart = a.logs().length;
  const viaA = issueVia(a, name).catch((err: Error) => ({ status: 0, body: err.message }));
  await waitFor('A\'s order to have answered its challenges', () => a.logs().slice(logStart).split('\n')
    .some((line) => line.includes('challenges answered') && line.includes(name)));
  const lock = await etcd.get(lockKey).exec();
  assert.equal(lock.kvs.length, 1, 'A holds the lock');
  assert.notEqual(lock.kvs[0].lease, '0', 'the lock is on a lease');

  a.child.kill('SIGKILL');
  await waitFor('A to exit', () => a.child.exitCode !== null || a.child.signalCode !== null, { timeoutMs: 5_000 });
  const killedAt = Date.now();
  assert.ok(await etcd.get(lockKey).exists(), 'the dead instance\'s lock is still there');
  assert.notEqual((await viaA).status, 201, 'the killed instance did not answer success');

  await pebble.clearA(name);
  await pebble.addA(name, [ADDRESSES[1]]);
  const ordersBefore = pebble.ordersAdded();
  const answer = await issueVia(b, name);
  const took = Date.now() - killedAt;
  t.diagnostic(`B answered ${took} ms after the kill`);
  assert.equal(answer.status, 201, JSON.stringify(answer.body));
  assert.equal(answer.body.data.issued, true);
  // B could not have had the lock before A's ran out.
  assert.ok(took >= (LOCK_TTL_SECONDS * 1000 * 2) / 3 - 200, `B waited about the lock TTL: ${took} ms`);
  assert.ok(took < LOCK_TTL_SECONDS * 1000 + 20_000, `B took ${took} ms`);
  assert.equal(answer.body.data.resumed, true, JSON.stringify(answer.body.data));
  assert.equal(pebble.ordersAdded() - ordersBefore, 0, 'no new order');

  assert.equal(await etcd.get(lockKey).exists(), false, 'the lock is gone afterwards');
  const files = await storedCertificate(name);
  const leaf = new X509Certificate(files[`${PREFIX}certs/${name}/cert.pem`]);
  assert.ok(leaf.checkPrivateKey(createPrivateKey(files[`${PREFIX}certs/${name}/privkey.pem`])));
  assert.equal(b.child.exitCode, null);
});
