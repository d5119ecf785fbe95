// Certificates for IP addresses: the CSR carries them as iPAddress SANs (read
// back by openssl and by acme-client's own CSR parser, neither of which is
// our encoder), a certificate's IP SANs are names acmed sees, and a config
// that asks dns-01 to prove an address is refused at the address.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import acme from 'acme-client';
import { createCertificateKey, createCsr } from '../../src/acme/certificate-key.js';
import { readCertificateInfo } from '../../src/certificate-info.js';
import { parseConfig } from '../../src/config/load.js';
import { configuredCertificates } from '../../src/config/managed.js';
import { configProblems } from '../harness/config-problems.js';

function opensslReqText(der: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile('openssl', ['req', '-inform', 'DER', '-noout', '-verify', '-text'], (err, stdout, stderr) => {
      if (err) reject(new Error(`openssl req failed: ${stderr}`));
      else resolve(stdout + stderr);
    });
    child.stdin!.end(der);
  });
}

const pemOf = (der: Buffer) => `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE REQUEST-----\n`;

describe('CSR', () => {
  test('[127.0.0.1, ::1] become iPAddress SANs, not dNSName, and no CN', async () => {
    const key = await createCertificateKey({ keyType: 'ecc' });
    const der = await createCsr(['127.0.0.1', '::1'], key.key);
    const text = await opensslReqText(der);
    assert.match(text, /verify OK/i);
    // openssl prints an iPAddress of 16 bytes uncompressed.
    assert.match(text, /IP Address:127\.0\.0\.1, IP Address:0:0:0:0:0:0:0:1\s/);
    assert.doesNotMatch(text, /DNS:/);
    assert.doesNotMatch(text, /CN ?=/);
    const read = acme.crypto.readCsrDomains(pemOf(der));
    assert.equal(read.commonName, null);
    assert.equal(read.altNames.length, 2);
    assert.equal(read.altNames[0], '127.0.0.1');
  });

  test('host names and addresses together: the first host name is the CN, each name its own kind of SAN', async () => {
    const key = await createCertificateKey({ keyType: 'rsa', rsaBits: 2048 });
    const der = await createCsr(['192.0.2.1', 'a.example.com', '2001:db8::1:0:0:1', 'fd00::2'], key.key);
    const text = await opensslReqText(der);
    assert.match(text, /verify OK/i);
    assert.match(text, /Subject: CN ?= ?a\.example\.com/);
    assert.match(text, /IP Address:192\.0\.2\.1, DNS:a\.example\.com, IP Address:2001:DB8:0:0:1:0:0:1, IP Address:FD00:0:0:0:0:0:0:2\s/);
    assert.equal(acme.crypto.readCsrDomains(pemOf(der)).commonName, 'a.example.com');
  });
});

test('a certificate\'s IP SANs are among its names, IPv6 in canonical form', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'acmed-ipcert-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-subj', '/CN=x',
    '-addext', 'subjectAltName=DNS:a.example.com,IP:127.0.0.1,IP:2001:DB8:0:0:0:0:0:1,IP:::1,email:ops@example.com'], { stdio: 'ignore' });
  const info = readCertificateInfo(readFileSync(join(dir, 'cert.pem'), 'utf8'));
  assert.deepEqual(info.names, ['a.example.com', '127.0.0.1', '2001:db8::1', '::1']);
});

describe('check-config', () => {
  const BASE = 'account_email: ops@example.com\ntos_accepted: true\n';
  const DNS = 'dns: {provider: exec, exec: {command: /bin/true}}\n';


  test('an address in a certificate with challenge: dns-01 is an error at the address', () => {
    const text = `${BASE}${DNS}certificates:\n  - names: [a.example.com, "2001:DB8::1"]\n    challenge: dns-01\n`;
    const lines = configProblems(text);
    assert.equal(lines.length, 1, lines.join('\n'));
    const line = text.split('\n').findIndex((l) => l.includes('2001:DB8::1')) + 1;
    const col = text.split('\n')[line - 1]!.indexOf('"2001:DB8::1"') + 1;
    assert.match(lines[0]!, new RegExp(`^acmed\\.yaml:${line}:${col}: certificates\\.0\\.names\\.1: 2001:db8::1 is an IP address: dns-01 cannot prove it`));
  });

  test('an address beside a wildcard name is an error at the address', () => {
    const lines = configProblems(`${BASE}${DNS}certificates:\n  - names: ["*.example.com", 192.0.2.1]\n`);
    assert.equal(lines.length, 1, lines.join('\n'));
    assert.match(lines[0]!, /certificates\.0\.names\.1: 192\.0\.2\.1 is an IP address, proved only by http-01, and \*\.example\.com only by dns-01/);
  });

  test('with challenge.type dns-01, a certificate with an address uses http-01; names are canonical', () => {
    const config = parseConfig(`${BASE}${DNS}challenge: {type: dns-01}\ncertificates:\n  - names: ["0:0::1", 127.0.0.1, a.example.com]\n  - names: [b.example.com]\n`);
    assert.deepEqual(configuredCertificates(config), [
      { name: '::1', names: ['::1', '127.0.0.1', 'a.example.com'], challenge: 'http-01' },
      { name: 'b.example.com', names: ['b.example.com'], challenge: 'dns-01' },
    ]);
  });

  test('two spellings of one address are one storage name, refused as two certificates', () => {
    const lines = configProblems(`${BASE}certificates:\n  - names: ["::1"]\n  - names: ["0:0:0:0:0:0:0:1"]\n`);
    assert.equal(lines.length, 1, lines.join('\n'));
    assert.match(lines[0]!, /both be stored as ::1/);
  });

  test('refused forms point at the name', () => {
    for (const bad of ['010.1.1.1', 'fe80::1%eth0', '1.2.3']) {
      const lines = configProblems(`${BASE}certificates:\n  - names: ["${bad}"]\n`);
      assert.match(lines[0]!, /^acmed\.yaml:4:\d+: certificates\.0\.names\.0: invalid host name/, bad);
    }
  });
});
