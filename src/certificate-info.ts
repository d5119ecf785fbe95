/** Facts read off a PEM certificate with node's own X.509 parser. */
import { X509Certificate } from 'node:crypto';
import { isIPv6 } from 'node:net';
import { canonicalIpv6 } from './ip-address.js';

export interface CertificateInfo {
  names: string[];
  notBefore: Date;
  notAfter: Date;
  serialHex: string;
  issuer: string;
  /** The certified key's type as `cert_type` names it; undefined for any other (a DSA or EdDSA key). */
  keyType?: 'ecc' | 'rsa';
}

/**
 * The DER of the two algorithm identifiers a certified key of ours can
 * have (id-ecPublicKey 1.2.840.10045.2.1, rsaEncryption
 * 1.2.840.113549.1.1.1). Within a certificate they occur only in its
 * SubjectPublicKeyInfo: the signature algorithms are other OIDs
 * (ecdsa-with-SHA256 …4.3.2, sha256WithRSAEncryption …1.1.11). Found in the
 * DER rather than through `publicKey`, whose KeyObject holds native memory
 * V8 does not see: reading 100,000 certificates at start that way grew the
 * daemon by tens of MB until a full collection.
 */
const EC_PUBLIC_KEY = Buffer.from('06072a8648ce3d0201', 'hex');
const RSA_ENCRYPTION = Buffer.from('06092a864886f70d010101', 'hex');

function keyTypeOf(der: Buffer): 'ecc' | 'rsa' | undefined {
  if (der.includes(EC_PUBLIC_KEY)) return 'ecc';
  if (der.includes(RSA_ENCRYPTION)) return 'rsa';
  return undefined;
}

export function readCertificateInfo(pem: string): CertificateInfo {
  const cert = new X509Certificate(pem);
  const names = (cert.subjectAltName ?? '')
    .split(', ')
    .map(nameOfSanEntry)
    .filter((name): name is string => name !== undefined);
  return {
    names,
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    serialHex: cert.serialNumber.toLowerCase(),
    issuer: cert.issuer,
    keyType: keyTypeOf(cert.raw),
  };
}

/**
 * A dNSName, or an iPAddress in the form acmed writes names in: OpenSSL
 * prints IPv6 uncompressed and upper-case ("IP Address:0:0:0:0:0:0:0:1"),
 * which would never equal the configured "::1". Other kinds of SAN are no names of ours.
 */
function nameOfSanEntry(entry: string): string | undefined {
  if (entry.startsWith('DNS:')) return entry.slice(4);
  if (!entry.startsWith('IP Address:')) return undefined;
  const address = entry.slice('IP Address:'.length);
  return isIPv6(address) ? canonicalIpv6(address) : address;
}

/** Splits a PEM chain into its certificates, in order. */
export function splitPemChain(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)?.map((c) => `${c}\n`) ?? [];
}

/**
 * The serial number of a PEM certificate (lower-case hex, as serialHex), read
 * straight off the DER without building an X509Certificate: the index's
 * reconciliation compares 100,000 serials and parses only the certificates
 * whose serial changed. Null when the PEM does not look as expected (the
 * caller then parses it in full).
 */
export function serialOfPem(pem: string): string | null {
  const body = /-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/.exec(pem)?.[1];
  if (!body) return null;
  const der = Buffer.from(body.replace(/\s+/g, ''), 'base64');
  const certificate = derElement(der, 0);
  const tbs = certificate && derElement(der, certificate.contentStart);
  if (!certificate || certificate.tag !== 0x30 || !tbs || tbs.tag !== 0x30) return null;
  let field = derElement(der, tbs.contentStart);
  if (field?.tag === 0xa0) field = derElement(der, field.end); // [0] version
  if (!field || field.tag !== 0x02 || field.end > der.length) return null;
  let bytes = der.subarray(field.contentStart, field.end);
  if (bytes.length > 1 && bytes[0] === 0) bytes = bytes.subarray(1);
  return bytes.toString('hex');
}

function derElement(der: Buffer, at: number): { tag: number; contentStart: number; end: number } | null {
  if (at + 2 > der.length) return null;
  const first = der[at + 1];
  if (first < 0x80) return { tag: der[at], contentStart: at + 2, end: at + 2 + first };
  const width = first & 0x7f;
  if (width === 0 || width > 4 || at + 2 + width > der.length) return null;
  let length = 0;
  for (let k = 0; k < width; k++) length = length * 256 + der[at + 2 + k];
  return { tag: der[at], contentStart: at + 2 + width, end: at + 2 + width + length };
}
