// Client certificates for the admin API's mutual TLS, made with openssl the
// way an operator would: an email SAN, a CN, or a DNS SAN as the identity.
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { TestCa } from './pebble.js';

const run = promisify(execFile);

export interface ClientCert {
  certPath: string;
  keyPath: string;
}

export async function issueClientCert(ca: TestCa, dir: string, name: string, id: { cn: string; email?: string; dns?: string }): Promise<ClientCert> {
  const keyPath = join(dir, `${name}.key`);
  const csrPath = join(dir, `${name}.csr`);
  const certPath = join(dir, `${name}.pem`);
  const extPath = join(dir, `${name}.ext`);
  const sans = [...(id.email ? [`email:${id.email}`] : []), ...(id.dns ? [`DNS:${id.dns}`] : [])];
  await writeFile(extPath, [
    ...(sans.length > 0 ? [`subjectAltName=${sans.join(',')}`] : []),
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature',
    'extendedKeyUsage=clientAuth',
    '',
  ].join('\n'));
  await run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', keyPath, '-out', csrPath, '-subj', `/CN=${id.cn}`]);
  await run('openssl', ['x509', '-req', '-in', csrPath, '-CA', ca.certPath, '-CAkey', ca.keyPath,
    '-set_serial', `0x${Date.now().toString(16)}${Math.floor(Math.random() * 1e6).toString(16)}`, '-days', '2', '-extfile', extPath, '-out', certPath]);
  return { certPath, keyPath };
}
