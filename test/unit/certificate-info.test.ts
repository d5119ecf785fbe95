// readCertificateInfo's key type: read off the SubjectPublicKeyInfo, never
// confused by the issuer's signature algorithm. Every pairing of an ECDSA or
// RSA key with an ECDSA or RSA issuer, made by openssl.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { readCertificateInfo } from '../../src/certificate-info.js';

const run = promisify(execFile);
let dir: string;

const keyArgs = { ecc: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384'], rsa: ['-newkey', 'rsa:2048'] } as const;

async function issuer(type: 'ecc' | 'rsa'): Promise<{ cert: string; key: string }> {
  const cert = join(dir, `ca-${type}.pem`);
  const key = join(dir, `ca-${type}.key`);
  await run('openssl', ['req', '-x509', ...keyArgs[type], '-nodes', '-keyout', key, '-out', cert, '-subj', `/CN=ca ${type}`, '-days', '2']);
  return { cert, key };
}

async function leaf(type: 'ecc' | 'rsa', ca: { cert: string; key: string }, tag: string): Promise<string> {
  const key = join(dir, `${tag}.key`);
  const csr = join(dir, `${tag}.csr`);
  const out = join(dir, `${tag}.pem`);
  const ext = join(dir, `${tag}.ext`);
  await writeFile(ext, 'subjectAltName=DNS:a.example.com,IP:192.0.2.1,IP:2001:db8::1\n');
  await run('openssl', ['req', '-new', ...keyArgs[type], '-nodes', '-keyout', key, '-out', csr, '-subj', '/CN=a.example.com']);
  await run('openssl', ['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', '7', '-days', '1', '-extfile', ext, '-out', out]);
  return readFile(out, 'utf8');
}

before(async () => { dir = await mkdtemp(join(tmpdir(), 'acmed-cert-info-')); });
after(async () => { await rm(dir, { recursive: true, force: true }); });

test('the key type is the certified key\'s, whatever key signed the certificate', async () => {
  const cas = { ecc: await issuer('ecc'), rsa: await issuer('rsa') };
  for (const keyType of ['ecc', 'rsa'] as const) {
    for (const caType of ['ecc', 'rsa'] as const) {
      const info = readCertificateInfo(await leaf(keyType, cas[caType], `${keyType}-by-${caType}`));
      assert.equal(info.keyType, keyType, `a ${keyType} key signed by a ${caType} issuer`);
      assert.deepEqual(info.names, ['a.example.com', '192.0.2.1', '2001:db8::1']);
    }
  }
});

test('a key of another kind has no key type', async () => {
  const ca = await issuer('ecc');
  const key = join(dir, 'ed.key');
  const csr = join(dir, 'ed.csr');
  const out = join(dir, 'ed.pem');
  await run('openssl', ['req', '-new', '-newkey', 'ed25519', '-nodes', '-keyout', key, '-out', csr, '-subj', '/CN=ed.example.com']);
  await run('openssl', ['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', '9', '-days', '1', '-out', out]);
  assert.equal(readCertificateInfo(await readFile(out, 'utf8')).keyType, undefined);
});
