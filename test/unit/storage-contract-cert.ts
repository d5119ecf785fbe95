// A real certificate for the storage contract tests: a throwaway CA and a leaf
// for the given names (IP addresses as iPAddress SANs), made with openssl, returned as the CertificateBundle
// the issuer would hand to putCertificate.

import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isIP } from 'node:net';
import { promisify } from 'node:util';
import { readCertificateInfo } from '../../src/certificate-info.js';
import type { CertificateBundle } from '../../src/storage/storage.js';
import { createTestCa } from '../harness/pebble.js';

const run = promisify(execFile);

export async function makeCertificate(dir: string, names: string[], tag = 'leaf', keyType: 'ecc' | 'rsa' = 'ecc', days = 30): Promise<CertificateBundle> {
  const ca = await createTestCa(dir);
  const keyPath = join(dir, `${tag}.key`);
  const csrPath = join(dir, `${tag}.csr`);
  const certPath = join(dir, `${tag}.pem`);
  const extPath = join(dir, `${tag}.ext`);
  await writeFile(extPath, `subjectAltName=${names.map((n) => `${isIP(n) ? 'IP' : 'DNS'}:${n}`).join(',')}\nextendedKeyUsage=serverAuth\n`);
  const newKey = keyType === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  await run('openssl', ['req', '-new', ...newKey, '-nodes',
    '-keyout', keyPath, '-out', csrPath, '-subj', `/CN=${names[0]}`]);
  await run('openssl', ['x509', '-req', '-in', csrPath, '-CA', ca.certPath, '-CAkey', ca.keyPath,
    '-set_serial', `0x${Date.now().toString(16)}`, '-days', String(days), '-extfile', extPath, '-out', certPath]);
  const cert = await readFile(certPath, 'utf8');
  const info = readCertificateInfo(cert);
  return {
    name: names[0], names: info.names, cert, chain: ca.certPem, fullchain: cert + ca.certPem,
    privkey: await readFile(keyPath, 'utf8'),
    notBefore: info.notBefore.toISOString(), notAfter: info.notAfter.toISOString(),
  };
}
