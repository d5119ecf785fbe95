// The certificate key and the hand-encoded CSR: openssl reads the request,
// checks its self-signature and finds every name; the key is PKCS#8; RSA key
// generation and signing leave the event loop free.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { certificateKeyFromPem, createCertificateKey, createCsr, type KeySpec } from '../../src/acme/certificate-key.js';

/** `openssl req -verify -text` of a DER request; resolves with stdout + stderr. */
function opensslReq(der: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile('openssl', ['req', '-inform', 'DER', '-noout', '-verify', '-text'], (err, stdout, stderr) => {
      if (err) reject(new Error(`openssl req failed: ${stderr}`));
      else resolve(stdout + stderr);
    });
    child.stdin!.end(der);
  });
}

const cases: [string, KeySpec, RegExp, RegExp][] = [
  ['ECDSA P-256', { keyType: 'ecc' }, /ecdsa-with-SHA256/, /NIST CURVE: P-256/],
  ['ECDSA P-384', { keyType: 'ecc', curve: 'P-384' }, /ecdsa-with-SHA384/, /NIST CURVE: P-384/],
  ['RSA 2048', { keyType: 'rsa', rsaBits: 2048 }, /sha256WithRSAEncryption/, /Public-Key: \(2048 bit\)/],
];

for (const [label, spec, signatureAlgorithm, keyDetail] of cases) {
  test(`${label}: a PKCS#8 key and a CSR openssl verifies, with every name in the SAN and the first as CN`, async () => {
    const key = await createCertificateKey(spec);
    assert.match(key.pem, /^-----BEGIN PRIVATE KEY-----\n/);
    assert.equal(createPrivateKey(key.pem).asymmetricKeyType, spec.keyType === 'rsa' ? 'rsa' : 'ec');
    const names = ['example.com', 'www.example.com', 'a-much-longer-label-for-the-der-length-bytes.sub.example.org'];
    const text = await opensslReq(await createCsr(names, key.key));
    assert.match(text, /verify OK/i);
    assert.match(text, signatureAlgorithm);
    assert.match(text, keyDetail);
    assert.match(text, /Subject: CN ?= ?example\.com/);
    assert.match(text, new RegExp(names.map((n) => `DNS:${n.replace(/\./g, '\\.')}`).join(', ')));
  });
}

test('a first name longer than 64 characters goes in the SAN only, with an empty subject', async () => {
  const key = await createCertificateKey({ keyType: 'ecc' });
  const long = `${'x'.repeat(60)}.example.com`;
  const text = await opensslReq(await createCsr([long], key.key));
  assert.match(text, /verify OK/i);
  assert.doesNotMatch(text, /CN ?=/);
  assert.match(text, new RegExp(`DNS:${long.replace(/\./g, '\\.')}`));
});

test('a CSR for 100 names (two-byte DER lengths) verifies', async () => {
  const key = await createCertificateKey({ keyType: 'ecc' });
  const names = Array.from({ length: 100 }, (_, i) => `host-${i}.example.com`);
  const text = await opensslReq(await createCsr(names, key.key));
  assert.match(text, /verify OK/i);
  assert.match(text, /DNS:host-99\.example\.com/);
});

test('a stored key (a resumed order) makes a CSR the same way', async () => {
  const made = await createCertificateKey({ keyType: 'ecc' });
  const again = certificateKeyFromPem(made.pem);
  assert.equal(again.pem, made.pem);
  assert.match(await opensslReq(await createCsr(['resume.example.com'], again.key)), /verify OK/i);
});

test('an RSA 4096 key and its CSR are made while timers keep firing', async () => {
  let ticks = 0;
  const timer = setInterval(() => { ticks++; }, 5);
  const started = Date.now();
  const key = await createCertificateKey({ keyType: 'rsa', rsaBits: 4096 });
  await createCsr(['rsa.example.com'], key.key);
  const took = Date.now() - started;
  clearInterval(timer);
  assert.equal(key.key.asymmetricKeyDetails?.modulusLength, 4096);
  // Blocking work lets the interval fire at most once; expect about one tick per 5 ms.
  assert.ok(ticks > 1 && ticks >= Math.min(3, Math.floor(took / 50)), `only ${ticks} ticks in ${took} ms`);
});

test('no names, no CSR', async () => {
  const key = await createCertificateKey({ keyType: 'ecc' });
  await assert.rejects(createCsr([], key.key), /at least one name/);
});
