// The index of managed certificates: a renewal time from the moment a
// certificate is stored and after any restart, rebuilt from the PEM when the
// record is missing or disagrees (a certificate replaced by hand), job
// outcomes folded in (backoff on host failures only), and legacy backoff
// records taken over.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { createLogger } from '../../src/log.js';
import { CertificateIndex } from '../../src/renewal/index.js';
import { recordJobEvents } from '../../src/renewal/index-events.js';
import { dueTime, parseIndexRecord } from '../../src/renewal/index-record.js';
import { createFileStorage } from '../../src/storage/file.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import type { CertificateBundle, Storage } from '../../src/storage/storage.js';
import { makeCertificate } from './storage-contract-cert.js';

let dir: string;
let first: CertificateBundle;
let replacement: CertificateBundle;
const log = createLogger('error', new PassThrough());

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'acmed-index-'));
  first = await makeCertificate(dir, ['a.example.com', 'www.a.example.com'], 'one');
  replacement = await makeCertificate(dir, ['a.example.com', 'www.a.example.com'], 'two');
});
after(() => rm(dir, { recursive: true, force: true }));

const indexOn = (storage: Storage, now: () => number, threshold: number | null = null) =>
  new CertificateIndex({ storage, log, now, policy: () => ({ renewThresholdDays: threshold }) });

test('a stored certificate without a record gets one with a renewal time when the index is reconciled, kept in storage', async () => {
  const now = Date.parse(first.notBefore) + 1_000;
  const storage = createMemoryStorage();
  await storage.putCertificate(first);
  const index = indexOn(storage, () => now);
  assert.deepEqual(await index.load(), { records: 0 }, 'load reads records only, no PEM');
  assert.equal(await index.reconcile(), 1);
  const record = index.get('a.example.com')!;
  const lifetime = Date.parse(first.notAfter) - Date.parse(first.notBefore);
  // 30-day certificate: renew with 1/3 of the lifetime left.
  assert.equal(Date.parse(record.renewAt!), Date.parse(first.notAfter) - lifetime / 3);
  assert.equal(record.renewReason, 'lifetime-fraction');
  assert.deepEqual(record.names, ['a.example.com', 'www.a.example.com']);
  const stored = parseIndexRecord((await storage.get('index/a.example.com'))!);
  assert.equal(stored?.serial, record.serial);

  // A restart loads the record as it is: nothing to rebuild.
  const again = indexOn(storage, () => now);
  assert.deepEqual(await again.load(), { records: 1 });
  assert.equal(await again.reconcile(), 0);
  assert.equal(again.get('a.example.com')?.renewAt, record.renewAt);
});

test('cert_type [ecc, rsa]: the pair is due when the one that expires first is; serial and key types are recorded', async () => {
  const rsaDir = await mkdtemp(join(dir, 'dual-'));
  // The RSA certificate expires first (10 days against 30): renewal and expiry follow it.
  const { name: _n, names: _ns, ...rsa } = await makeCertificate(rsaDir, ['a.example.com', 'www.a.example.com'], 'rsa', 'rsa', 10);
  const dual: CertificateBundle = { ...first, rsa };
  const now = Date.parse(first.notBefore) + 1_000;
  const storage = createMemoryStorage();
  await storage.putCertificate(dual);
  const index = indexOn(storage, () => now);
  await index.load();
  assert.equal(await index.reconcile(), 1);
  const record = index.get('a.example.com')!;
  assert.equal(record.notAfter, rsa.notAfter);
  assert.equal(record.notBefore, rsa.notBefore);
  const lifetime = Date.parse(rsa.notAfter) - Date.parse(rsa.notBefore);
  assert.equal(Date.parse(record.renewAt!), Date.parse(rsa.notAfter) - lifetime / 3);
  assert.equal(record.serial, new X509Certificate(first.cert).serialNumber.toLowerCase(), 'the primary (ECDSA) serial');
  assert.deepEqual(record.keyTypes, ['ecc', 'rsa']);
  assert.equal(record.rsaNotAfter, rsa.notAfter);
  const stored = parseIndexRecord((await storage.get('index/a.example.com'))!);
  assert.deepEqual(stored?.keyTypes, ['ecc', 'rsa']);
  assert.equal(stored?.rsaNotAfter, rsa.notAfter);

  // The job that stores the ECDSA certificate alone (rsa dropped from cert_type) leaves no RSA facts.
  const onEvent = recordJobEvents(index, { policy: () => ({ renewThresholdDays: null }), failBackoffMinutes: () => 5, log, now: () => now });
  onEvent({
    type: 'issued', bundle: replacement,
    outcome: { name: 'a.example.com', names: replacement.names, notBefore: replacement.notBefore, notAfter: replacement.notAfter, location: '', issued: true, requests: 1, durationMs: 1 },
  });
  await index.flush();
  const after = index.get('a.example.com')!;
  assert.deepEqual(after.keyTypes, ['ecc']);
  assert.equal(after.rsaNotAfter, null);
  assert.equal(after.notAfter, replacement.notAfter);
});

test('a PEM replaced by hand, or a record that is unreadable, is rebuilt from storage', async () => {
  const now = Date.parse(first.notBefore) + 1_000;
  const storage = createMemoryStorage();
  await storage.putCertificate(first);
  const index = indexOn(storage, () => now);
  await index.load();
  await storage.putCertificate(replacement);
  assert.equal(await index.reconcile(), 1);
  const replacedSerial = new X509Certificate(replacement.cert).serialNumber.toLowerCase();
  assert.equal(index.get('a.example.com')?.serial, replacedSerial);
  assert.equal(parseIndexRecord((await storage.get('index/a.example.com'))!)?.serial, replacedSerial);
  await storage.set('index/a.example.com', '{broken');
  const restarted = indexOn(storage, () => now);
  assert.deepEqual(await restarted.load(), { records: 0 }, 'an unreadable record is not loaded');
  assert.equal(await restarted.reconcile(), 1);
  assert.notEqual(restarted.get('a.example.com')?.renewAt, null);
});

test('job outcomes: a host failure backs off and delays the due time; CA faults do not; a new certificate clears it', async () => {
  let now = Date.parse(first.notBefore) + 1_000;
  const storage = createMemoryStorage();
  const index = indexOn(storage, () => now);
  await index.load();
  const apply = recordJobEvents(index, { policy: () => ({ renewThresholdDays: null }), failBackoffMinutes: () => 5, log, now: () => now });
  const names = ['b.example.com'];
  await index.ensure('b.example.com', names);
  assert.equal(dueTime(index.get('b.example.com')!, new Date(now)).getTime(), now, 'missing: due now');

  apply({ type: 'failed', name: 'b.example.com', names, error: new Error('connect ECONNREFUSED'), kind: 'network', blame: 'ca' });
  await new Promise((r) => setImmediate(r));
  assert.equal(index.get('b.example.com')?.backoff, null, 'a CA fault is not the host\'s');

  apply({ type: 'failed', name: 'b.example.com', names, error: new Error('validation failed'), kind: 'unauthorized', blame: 'host' });
  await new Promise((r) => setImmediate(r));
  const backedOff = index.get('b.example.com')!;
  assert.equal(backedOff.backoff?.failures, 1);
  assert.equal(dueTime(backedOff, new Date(now)).getTime(), now + 5 * 60_000);
  assert.equal(parseIndexRecord((await storage.get('index/b.example.com'))!)?.backoff?.failures, 1, 'kept in storage');

  now += 10 * 60_000;
  const bundle = { ...first, name: 'b.example.com' };
  apply({ type: 'issued', bundle, outcome: { name: 'b.example.com', names: bundle.names, notBefore: bundle.notBefore, notAfter: bundle.notAfter, location: '', issued: true, requests: 7, durationMs: 1 } });
  await new Promise((r) => setImmediate(r));
  const issued = index.get('b.example.com')!;
  assert.equal(issued.backoff, null);
  assert.equal(issued.notAfter, first.notAfter);
  assert.ok(Date.parse(issued.renewAt!) > now);
});

test('legacy backoff/<name> records are folded into the index and removed', async () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  const storage = createMemoryStorage();
  const backoff = { failures: 2, until: '2026-01-01T00:10:00.000Z', lastError: 'x', lastKind: 'dns', lastFailureAt: '2026-01-01T00:00:00.000Z' };
  await storage.set('backoff/c.example.com', JSON.stringify(backoff));
  const index = indexOn(storage, () => now);
  await index.load();
  assert.deepEqual(index.get('c.example.com')?.backoff, backoff);
  assert.equal(await storage.get('backoff/c.example.com'), null);
  assert.equal(parseIndexRecord((await storage.get('index/c.example.com'))!)?.backoff?.failures, 2);
});

test('a record that cannot be written is kept in memory and written by flush', async () => {
  const now = Date.now();
  const inner = createMemoryStorage();
  let down = false;
  const storage: Storage = { ...inner, set: async (k, v, o) => { if (down) throw Object.assign(new Error('ENOSPC'), { code: 'ENOSPC' }); return inner.set(k, v, o); } };
  const index = indexOn(storage, () => now);
  down = true;
  await assert.rejects(index.ensure('d.example.com', ['d.example.com']), /ENOSPC/);
  assert.ok(index.get('d.example.com'), 'kept in memory');
  assert.equal(await inner.get('index/d.example.com'), null);
  down = false;
  assert.equal(await index.flush(), true);
  assert.ok(await inner.get('index/d.example.com'));
});

test('a store without scan() is loaded by list and get, with the same records', async () => {
  const now = Date.parse(first.notBefore) + 1_000;
  const storage = createMemoryStorage();
  await storage.putCertificate(first);
  await indexOn(storage, () => now).reconcile();
  const { scan: _scan, ...withoutScan } = storage;
  const viaList = indexOn(withoutScan, () => now);
  assert.deepEqual(await viaList.load(), { records: 1 });
  const viaScan = indexOn(storage, () => now);
  await viaScan.load();
  assert.deepEqual(viaList.get('a.example.com'), viaScan.get('a.example.com'));
});

test('on file storage reconciliation reads the leaf alone, and still catches a PEM replaced by hand', async () => {
  const now = Date.parse(first.notBefore) + 1_000;
  const storage = createFileStorage({ path: join(dir, 'reconcile') });
  await storage.putCertificate(first);
  const index = indexOn(storage, () => now);
  assert.equal(await index.reconcile(), 1);
  let fullReads = 0;
  const counted: Storage = { ...storage, getCertificate: (name) => { fullReads++; return storage.getCertificate(name); } };
  const watched = indexOn(counted, () => now);
  await watched.load();
  assert.equal(await watched.reconcile(), 0);
  assert.equal(fullReads, 0, 'an unchanged certificate is not read in full');
  await storage.putCertificate(replacement);
  assert.equal(await watched.reconcile(), 1);
  assert.equal(fullReads, 1);
  assert.equal(watched.get('a.example.com')?.serial, new X509Certificate(replacement.cert).serialNumber.toLowerCase());
});
