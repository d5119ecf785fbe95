// Synthetic certificates for the large benchmark cases: a throwaway local CA
// signs N leaf certificates, with no CA traffic. @peculiar/x509 (acme-client's
// own X.509 library) builds one template leaf; signing 100,000 through it
// takes ~1.9 ms each (190 s), so each further certificate is the template
// with its serial, name and expiry bytes replaced (names and times have a
// fixed width, so the DER layout does not move) and its TBS signed again
// with node:crypto (~0.1 ms). Every certificate is a valid X.509 that
// node:crypto and openssl parse and verify against the CA.
import { createPrivateKey, sign, webcrypto, type KeyObject } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import type { CertificateVariant } from '../src/storage/storage.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
const DAY_MS = 86_400_000;
/** The template's placeholders; each certificate puts same-width values in their place. */
const NAME_WIDTH = 7;
const TEMPLATE_LABEL = 'x'.repeat(NAME_WIDTH);
const TEMPLATE_SERIAL = 'ab'.repeat(16);

export interface SyntheticCertificate extends CertificateVariant {
  name: string;
}

export interface SyntheticCa {
  caPem: string;
  /** The i-th certificate: name `c<i, zero-padded>.<domain>`, expiring `expiresInDays(i)` from now. */
  certificate(i: number): SyntheticCertificate;
}

export function syntheticName(i: number, domain: string): string {
  return `c${String(i).padStart(NAME_WIDTH - 1, '0')}.${domain}`;
}

/** A throwaway CA and a leaf template; `expiresInDays` spreads expiries so the index has something to plan. */
export async function syntheticCa(opts: { domain: string; expiresInDays: (i: number) => number; now?: number }): Promise<SyntheticCa> {
  const now = opts.now ?? Date.now();
  const caKeys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const leafKeys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01', name: 'CN=acmed bench throwaway CA', notBefore: new Date(now - DAY_MS), notAfter: new Date(now + 400 * DAY_MS),
    keys: caKeys, signingAlgorithm: ALG, extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
  });
  const templateName = `${TEMPLATE_LABEL}.${opts.domain}`;
  const notBefore = new Date(Math.floor((now - DAY_MS) / 1000) * 1000);
  const templateNotAfter = new Date(notBefore.getTime() + 90 * DAY_MS);
  const template = await x509.X509CertificateGenerator.create({
    serialNumber: TEMPLATE_SERIAL, subject: `CN=${templateName}`, issuer: ca.subject,
    notBefore, notAfter: templateNotAfter, publicKey: leafKeys.publicKey, signingKey: caKeys.privateKey, signingAlgorithm: ALG,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: templateName }])],
  });
  const { tbs, signatureAlgorithm } = partsOf(Buffer.from(template.rawData));
  const caKey = createPrivateKey({ key: Buffer.from(await webcrypto.subtle.exportKey('pkcs8', caKeys.privateKey)), format: 'der', type: 'pkcs8' });
  const privkey = pem('PRIVATE KEY', Buffer.from(await webcrypto.subtle.exportKey('pkcs8', leafKeys.privateKey)));
  const caPem = ca.toString('pem');

  const spots = {
    name: allOffsets(tbs, Buffer.from(templateName)),
    serial: allOffsets(tbs, Buffer.from(TEMPLATE_SERIAL, 'hex')),
    notAfter: allOffsets(tbs, Buffer.from(utcTime(templateNotAfter))),
  };
  if (spots.name.length !== 2 || spots.serial.length !== 1 || spots.notAfter.length !== 1) {
    throw new Error(`synthetic template layout unexpected: ${JSON.stringify(spots)}`);
  }

  return {
    caPem,
    certificate(i) {
      const name = syntheticName(i, opts.domain);
      if (name.length !== templateName.length) throw new Error(`synthetic index ${i} does not fit ${NAME_WIDTH - 1} digits`);
      const notAfter = new Date(Math.floor((now + opts.expiresInDays(i) * DAY_MS) / 1000) * 1000);
      const body = Buffer.from(tbs);
      for (const at of spots.name) body.write(name, at, 'latin1');
      // Serial: the template's first byte (high bit set, so its DER keeps the leading zero) then the index.
      const serial = Buffer.alloc(16);
      serial[0] = 0xab;
      serial.writeUInt32BE(i, 12);
      serial.copy(body, spots.serial[0]);
      body.write(utcTime(notAfter), spots.notAfter[0], 'latin1');
      const signature = sign('sha256', body, { key: caKey as KeyObject, dsaEncoding: 'der' });
      const der = derSequence([body, signatureAlgorithm, derBitString(signature)]);
      const cert = pem('CERTIFICATE', der);
      return {
        name, cert, chain: caPem, fullchain: `${cert}${caPem}`, privkey,
        notBefore: notBefore.toISOString(), notAfter: notAfter.toISOString(),
      };
    },
  };
}

function pem(label: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g)!.join('\n');
  return `-----BEGIN ${label}-----\n${lines}\n-----END ${label}-----\n`;
}

/** RFC 5280 UTCTime, YYMMDDHHMMSSZ (valid through 2049, which is all a benchmark needs). */
function utcTime(d: Date): string {
  return d.toISOString().replace(/^\d\d(\d\d)-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.\d+Z$/, '$1$2$3$4$5$6Z');
}

function allOffsets(haystack: Buffer, needle: Buffer): number[] {
  const found: number[] = [];
  for (let at = haystack.indexOf(needle); at !== -1; at = haystack.indexOf(needle, at + 1)) found.push(at);
  return found;
}

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function derSequence(parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from([0x30]), derLength(body.length), body]);
}

function derBitString(bytes: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0x03]), derLength(bytes.length + 1), Buffer.from([0]), bytes]);
}

/** A DER certificate's first two elements: the TBS and the signatureAlgorithm. */
function partsOf(certDer: Buffer): { tbs: Buffer; signatureAlgorithm: Buffer } {
  const tbsStart = headerLength(certDer, 0);
  const tbsEnd = tbsStart + elementLength(certDer, tbsStart);
  return {
    tbs: Buffer.from(certDer.subarray(tbsStart, tbsEnd)),
    signatureAlgorithm: certDer.subarray(tbsEnd, tbsEnd + elementLength(certDer, tbsEnd)),
  };
}

function headerLength(der: Buffer, at: number): number {
  const first = der[at + 1]!;
  return first < 0x80 ? 2 : 2 + (first & 0x7f);
}

function elementLength(der: Buffer, at: number): number {
  const first = der[at + 1]!;
  if (first < 0x80) return 2 + first;
  let len = 0;
  for (let k = 0; k < (first & 0x7f); k++) len = (len << 8) | der[at + 2 + k]!;
  return headerLength(der, at) + len;
}
