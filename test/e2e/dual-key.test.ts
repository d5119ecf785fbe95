// cert_type: [ecc, rsa] against a real Pebble: an ECDSA and an RSA
// certificate for the same names, side by side in one live/<name>/ version
// (plain names and -rsa names), renewed together in one swap, keys kept with
// reuse_key; on Redis, one hash with both field sets.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, readlink, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from '../harness/ports.js';
import { startPebble, type PebbleHandle } from '../harness/pebble.js';
import { baseConfig, startAcmed, writeAcmedConfig, type AcmedHandle } from '../harness/acmed.js';
import { startRedis, type RedisServer } from '../harness/redis.js';
import { waitFor } from '../harness/wait.js';

const PEM_FILES = ['cert', 'chain', 'fullchain', 'privkey'];
const ALL_FILES = [...PEM_FILES, ...PEM_FILES.map((f) => `${f}-rsa`)].map((f) => `${f}.pem`).sort();

let pebble: PebbleHandle;
let httpPort: number;
let dir: string;
let config: Record<string, unknown>;
let acmed: AcmedHandle;

before(async () => {
  httpPort = await freePort();
  pebble = await startPebble({ httpPort });
  dir = await mkdtemp(join(tmpdir(), 'acmed-dualkey-'));
  config = {
    ...baseConfig({ dir, directoryUrl: pebble.directoryUrl, caBundlePath: pebble.caBundlePath, httpPort }),
    rsa_key_size: 3072,
    certificates: [
      // The list's order does not matter: the ECDSA certificate takes the plain names.
      { names: ['dual.example.com', 'www.dual.example.com'], cert_type: ['rsa', 'ecc'], rsa_key_size: 2048, ecc_curve: 'P-384' },
      { names: ['pinned.example.com'], cert_type: ['ecc', 'rsa'], rsa_key_size: 2048, reuse_key: true },
    ],
  };
  acmed = await startAcmed(config, dir);
});

after(async () => {
  await acmed?.stop();
  await pebble?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** The key and certificate of one variant ('' or '-rsa'): the key must be the one certified. */
async function variant(liveDir: string, suffix: string) {
  const privkey = await readFile(join(liveDir, `privkey${suffix}.pem`), 'utf8');
  const certPem = await readFile(join(liveDir, `cert${suffix}.pem`), 'utf8');
  const key = createPrivateKey(privkey);
  const cert = new X509Certificate(certPem);
  assert.ok(cert.checkPrivateKey(key), `privkey${suffix}.pem must match cert${suffix}.pem`);
  const fullchain = await readFile(join(liveDir, `fullchain${suffix}.pem`), 'utf8');
  const chain = await readFile(join(liveDir, `chain${suffix}.pem`), 'utf8');
  assert.equal(fullchain, certPem + chain, `fullchain${suffix}.pem is cert + chain`);
  assert.equal((await stat(join(liveDir, `privkey${suffix}.pem`))).mode & 0o777, 0o600);
  return { privkey, certPem, key, cert, details: key.asymmetricKeyDetails ?? {} };
}

/** Issues (or renews with force) through the CLI, as an operator would. */
async function issue(host: string, force = false) {
  const r = await acmed.cli(['issue', host, '--json', ...(force ? ['--force'] : [])]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

test('cert_type [ecc, rsa]: eight files in one live version, an EC and an RSA key, each matching its certificate', async () => {
  await issue('dual.example.com');
  const liveDir = join(acmed.storagePath, 'live', 'dual.example.com');
  assert.deepEqual((await readdir(liveDir)).sort(), ALL_FILES);
  const ecc = await variant(liveDir, '');
  const rsa = await variant(liveDir, '-rsa');
  assert.equal(ecc.key.asymmetricKeyType, 'ec');
  assert.equal(ecc.details.namedCurve, 'secp384r1', 'the certificate\'s own ecc_curve');
  assert.equal(rsa.key.asymmetricKeyType, 'rsa');
  assert.equal(rsa.details.modulusLength, 2048, 'the certificate\'s own rsa_key_size, not the global 3072');
  for (const { cert } of [ecc, rsa]) {
    assert.ok(cert.checkHost('dual.example.com') && cert.checkHost('www.dual.example.com'), 'covers both names');
  }
  assert.notEqual(ecc.cert.serialNumber, rsa.cert.serialNumber);

  const show = await acmed.cli(['show', 'dual.example.com', '--json']);
  assert.equal(show.code, 0, show.stderr);
  const row = JSON.parse(show.stdout);
  assert.deepEqual(row.key_types, ['ecc', 'rsa']);
  assert.equal(Date.parse(row.rsa_not_after), Date.parse(rsa.cert.validTo));
  assert.equal(row.serial_number, ecc.cert.serialNumber.toLowerCase(), 'serial_number stays the primary (ECDSA) one');
  const earlier = Math.min(Date.parse(ecc.cert.validTo), Date.parse(rsa.cert.validTo));
  assert.equal(Date.parse(row.not_after), earlier, 'not_after is the one that expires first');
  const human = await acmed.cli(['show', 'dual.example.com']);
  assert.match(human.stdout, /^keys: +ecc, rsa \(the RSA certificate expires /m);
});

test('a forced renewal replaces both certificates in one swap of live/<name>, with new keys', async () => {
  const liveLink = join(acmed.storagePath, 'live', 'dual.example.com');
  const archive = join(acmed.storagePath, 'archive', 'dual.example.com');
  const before = { target: await readlink(liveLink), ecc: await variant(liveLink, ''), rsa: await variant(liveLink, '-rsa') };
  const versionsBefore = await readdir(archive);
  const result = await issue('dual.example.com', true);
  assert.equal(result.issued, true);
  assert.deepEqual(result.key_types, ['ecc', 'rsa']);
  assert.ok(result.requests >= 2 * 4, `two orders' requests summed (${result.requests})`);
  const target = await readlink(liveLink);
  assert.notEqual(target, before.target);
  const added = (await readdir(archive)).filter((v) => !versionsBefore.includes(v));
  assert.equal(added.length, 1, 'one new version holds both certificates');
  assert.equal(target.split('/').pop(), added[0]);
  assert.deepEqual((await readdir(join(archive, added[0]))).sort(), ALL_FILES);
  const ecc = await variant(liveLink, '');
  const rsa = await variant(liveLink, '-rsa');
  assert.notEqual(ecc.certPem, before.ecc.certPem);
  assert.notEqual(rsa.certPem, before.rsa.certPem);
  assert.notEqual(ecc.privkey, before.ecc.privkey, 'reuse_key is off: a new ECDSA key');
  assert.notEqual(rsa.privkey, before.rsa.privkey, 'reuse_key is off: a new RSA key');
});

test('reuse_key: true keeps both keys across a renewal', async () => {
  await issue('pinned.example.com');
  const liveDir = join(acmed.storagePath, 'live', 'pinned.example.com');
  const first = { ecc: await variant(liveDir, ''), rsa: await variant(liveDir, '-rsa') };
  await issue('pinned.example.com', true);
  const second = { ecc: await variant(liveDir, ''), rsa: await variant(liveDir, '-rsa') };
  assert.notEqual(second.ecc.certPem, first.ecc.certPem);
  assert.notEqual(second.rsa.certPem, first.rsa.certPem);
  assert.equal(second.ecc.privkey, first.ecc.privkey);
  assert.equal(second.rsa.privkey, first.rsa.privkey);
});

test('dropping rsa from cert_type: the next issuance stores the ECDSA pair alone, no -rsa file left live', async () => {
  await writeAcmedConfig(dir, {
    ...config,
    certificates: [{ names: ['dual.example.com', 'www.dual.example.com'], cert_type: 'ecc', ecc_curve: 'P-384' }],
  });
  const reloads = acmed.logs().split('config reloaded').length;
  acmed.child.kill('SIGHUP');
  await waitFor('the reload', () => acmed.logs().split('config reloaded').length > reloads);
  // Not forced: a stored certificate with another set of key types is ordered anew.
  const result = await issue('dual.example.com');
  assert.equal(result.issued, true);
  assert.deepEqual(result.key_types, ['ecc']);
  assert.equal(result.rsa_not_after, null);
  const liveDir = join(acmed.storagePath, 'live', 'dual.example.com');
  assert.deepEqual((await readdir(liveDir)).sort(), PEM_FILES.map((f) => `${f}.pem`).sort());
  assert.equal((await variant(liveDir, '')).key.asymmetricKeyType, 'ec');
  const row = JSON.parse((await acmed.cli(['show', 'dual.example.com', '--json'])).stdout);
  assert.deepEqual(row.key_types, ['ecc']);
  assert.equal(row.rsa_not_after, null);
});

test('on Redis, the certificate hash holds both field sets', async (t) => {
  const redisServer: RedisServer = await startRedis();
  t.after(() => redisServer.stop());
  const sub = join(dir, 'redis');
  await mkdir(sub);
  const redisConfig = {
    ...baseConfig({ dir: sub, directoryUrl: pebble.directoryUrl, caBundlePath: pebble.caBundlePath, httpPort }),
    cert_type: ['ecc', 'rsa'],
    rsa_key_size: 2048,
    storage: 'redis',
    storage_config: { redis: { host: redisServer.host, port: redisServer.port, namespace: 'dual:' } },
  };
  // Pebble validates at httpPort, where the first daemon answers: stop it so this one may bind there.
  await acmed.stop();
  const second = await startAcmed(redisConfig, sub);
  t.after(() => second.stop());
  const r = await second.cli(['issue', 'kv.example.com']);
  assert.equal(r.code, 0, r.stderr);
  const client = new Redis({ host: redisServer.host, port: redisServer.port, lazyConnect: true });
  t.after(() => client.disconnect());
  const fields = await client.hgetall('dual:certs/kv.example.com');
  const names = ['fullchain', 'privkey', 'cert', 'chain', 'not_after'];
  assert.deepEqual(Object.keys(fields).sort(), [...names, ...names.map((n) => `${n}-rsa`)].sort());
  assert.equal(createPrivateKey(fields.privkey).asymmetricKeyType, 'ec');
  assert.equal(createPrivateKey(fields['privkey-rsa']).asymmetricKeyType, 'rsa');
  assert.ok(new X509Certificate(fields['cert-rsa']).checkPrivateKey(createPrivateKey(fields['privkey-rsa'])));
  assert.ok(new X509Certificate(fields['cert-rsa']).checkHost('kv.example.com'));
  assert.equal(Date.parse(fields['not_after-rsa']), Date.parse(new X509Certificate(fields['cert-rsa']).validTo));
  assert.ok(!existsSync(join(sub, 'data')), 'nothing written to files');
});
