// The key-value field set every store but files writes: a bundle with an RSA
// certificate beside the primary one round-trips through the `-rsa` fields,
// and one without them reads back without an RSA variant.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromFields, pemEntries, RSA_PEM_FIELDS, toFields } from '../../src/storage/certificate-fields.js';
import type { CertificateBundle } from '../../src/storage/storage.js';
import { makeCertificate } from './storage-contract-cert.js';

let dir: string;
let ecc: CertificateBundle;
let dual: CertificateBundle;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'acmed-fields-'));
  ecc = await makeCertificate(dir, ['f.example.com', 'www.f.example.com'], 'ecc');
  const { name: _n, names: _ns, ...rsa } = await makeCertificate(dir, ['f.example.com', 'www.f.example.com'], 'rsa', 'rsa', 20);
  dual = { ...ecc, rsa };
});
after(() => rm(dir, { recursive: true, force: true }));

test('a bundle with an RSA variant goes to the plain and the -rsa fields and comes back whole', () => {
  const fields = toFields(dual);
  assert.deepEqual(Object.keys(fields).sort(), [
    'cert', 'cert-rsa', 'chain', 'chain-rsa', 'fullchain', 'fullchain-rsa', 'not_after', 'not_after-rsa', 'privkey', 'privkey-rsa',
  ]);
  assert.equal(fields['privkey-rsa'], dual.rsa!.privkey);
  assert.equal(fields['not_after-rsa'], dual.rsa!.notAfter);
  assert.notEqual(fields.not_after, fields['not_after-rsa']);
  assert.deepEqual(fromFields('F.example.com.', fields), dual);
});

test('a bundle without one has no -rsa field, and reads back without an RSA variant', () => {
  const fields = toFields(ecc);
  assert.ok(!Object.keys(fields).some((f) => f.endsWith('-rsa')));
  const back = fromFields('f.example.com', fields)!;
  assert.deepEqual(back, ecc);
  assert.ok(!('rsa' in back));
});

test('the RSA variant needs its pair: a lone privkey-rsa is no variant; cert and chain come from fullchain-rsa when absent', () => {
  const { 'fullchain-rsa': _gone, ...withoutChain } = toFields(dual);
  assert.equal(fromFields('f.example.com', withoutChain)!.rsa, undefined);
  const minimal = { fullchain: dual.fullchain, privkey: dual.privkey, 'fullchain-rsa': dual.rsa!.fullchain, 'privkey-rsa': dual.rsa!.privkey };
  assert.deepEqual(fromFields('f.example.com', minimal)!.rsa, dual.rsa);
});

test('pemEntries lists the -rsa files only for a bundle with an RSA variant (what file, Consul and etcd write)', () => {
  assert.deepEqual(pemEntries(ecc).map(([f]) => f), ['fullchain', 'privkey', 'cert', 'chain']);
  assert.deepEqual(pemEntries(dual).map(([f]) => f), ['fullchain', 'privkey', 'cert', 'chain', ...RSA_PEM_FIELDS]);
  assert.deepEqual(RSA_PEM_FIELDS, ['fullchain-rsa', 'privkey-rsa', 'cert-rsa', 'chain-rsa']);
});
