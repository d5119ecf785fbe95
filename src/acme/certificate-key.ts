/**
 * The certificate's key and its CSR, made off the event loop: the key pair
 * comes from crypto.generateKeyPair, which runs on libuv's threadpool (an
 * RSA 4096 key takes a second), and so does an RSA CSR's signature (the
 * callback form of crypto.sign). An ECDSA signature takes ~40 µs, less than
 * the hop to the threadpool and back, so that one is made in place.
 *
 * The CSR is encoded here by hand rather than with acme-client's createCsr:
 * that one parses the PEM key four times (OpenSSL 3 decoders cost ~0.7 ms
 * each), imports it into WebCrypto and builds the request through an ASN.1
 * schema library, ~7 ms of main-thread CPU per certificate, which made it
 * the largest single cost of bulk issuance. A PKCS#10 request for a set of
 * DNS names is one fixed DER shape (below), signed with the key we already
 * hold as a KeyObject; ~0.2 ms.
 */
import { createPrivateKey, createPublicKey, generateKeyPair, sign, type KeyObject } from 'node:crypto';
import { isIpAddress } from '../ip-address.js';

export interface CertificateKey {
  /** PKCS#8 PEM, as stored and handed to the terminator. */
  pem: string;
  key: KeyObject;
}

export interface KeySpec {
  keyType: 'ecc' | 'rsa';
  rsaBits?: number;
  /** ECDSA curve; default P-256. */
  curve?: 'P-256' | 'P-384';
}

/** A new certificate key, generated on the threadpool. */
export function createCertificateKey(spec: KeySpec): Promise<CertificateKey> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, _publicKey: KeyObject, privateKey: KeyObject) => {
      if (err) reject(err);
      else resolve({ pem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, key: privateKey });
    };
    if (spec.keyType === 'rsa') generateKeyPair('rsa', { modulusLength: spec.rsaBits ?? 4096 }, done);
    else generateKeyPair('ec', { namedCurve: spec.curve ?? 'P-256' }, done);
  });
}

/** A stored key (a resumed order's) as a CertificateKey. */
export function certificateKeyFromPem(pem: string): CertificateKey {
  return { pem, key: createPrivateKey(pem) };
}

/**
 * A DER PKCS#10 request (RFC 2986) for names: subject CN = the first host
 * name when it fits the 64-character limit of RFC 5280 (CAs refuse a longer
 * CN; the names are in the SAN either way), and a subjectAltName extension
 * request with every name: a host name as a dNSName, an IP address as an
 * iPAddress (RFC 8738 §3). An IP address is never the CN (CA/B Forum rules
 * keep IPs out of it in text form, and Let's Encrypt leaves the CN out).
 */
export async function createCsr(names: readonly string[], key: KeyObject): Promise<Buffer> {
  if (names.length === 0) throw new Error('a CSR needs at least one name');
  const { oid: signatureOid, hash } = signatureAlgorithm(key);
  const commonName = names.find((name) => !isIpAddress(name) && name.length <= 64);
  const subject = seq(...(commonName ? [set(seq(OID_COMMON_NAME, tlv(0x0c, Buffer.from(commonName, 'utf8'))))] : []));
  const san = seq(...names.map(generalName));
  const extensions = seq(seq(OID_SUBJECT_ALT_NAME, tlv(0x04, san)));
  const attributes = tlv(0xa0, seq(OID_EXTENSION_REQUEST, set(extensions))); // [0] IMPLICIT SET OF Attribute
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const info = seq(VERSION_1, subject, spki, attributes);
  // EC signatures come out DER-encoded (Ecdsa-Sig-Value), as X.509 wants them; RSA uses PKCS#1 v1.5.
  const signature = key.asymmetricKeyType === 'ec'
    ? sign(hash, info, key)
    : await new Promise<Buffer>((resolve, reject) => sign(hash, info, key, (err, sig) => (err ? reject(err) : resolve(sig))));
  return seq(info, signatureOid, tlv(0x03, Buffer.concat([Buffer.from([0]), signature])));
}

/** GeneralName (RFC 5280 §4.2.1.6): dNSName [2] IA5String, or iPAddress [7] OCTET STRING of 4 or 16 bytes. */
function generalName(name: string): Buffer {
  if (!isIpAddress(name)) return tlv(0x82, Buffer.from(name, 'ascii'));
  return tlv(0x87, ipAddressBytes(name));
}

function ipAddressBytes(address: string): Buffer {
  if (!address.includes(':')) return Buffer.from(address.split('.').map(Number));
  // Expanded to eight groups by hand: Node has no inet_pton, and "::" stands for a run of zero groups.
  const [head, tail] = address.split('::') as [string, string | undefined];
  const groups = (part: string | undefined) => (part ? part.split(':').map((g) => parseInt(g, 16)) : []);
  const before = groups(head);
  const after = tail === undefined ? [] : groups(tail);
  const all = tail === undefined ? before : [...before, ...new Array<number>(8 - before.length - after.length).fill(0), ...after];
  const bytes = Buffer.alloc(16);
  all.forEach((group, i) => bytes.writeUInt16BE(group, i * 2));
  return bytes;
}

function signatureAlgorithm(key: KeyObject): { oid: Buffer; hash: string } {
  if (key.asymmetricKeyType === 'rsa') return { oid: ALG_SHA256_RSA, hash: 'sha256' };
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === 'prime256v1') return { oid: ALG_ECDSA_SHA256, hash: 'sha256' };
    if (curve === 'secp384r1') return { oid: ALG_ECDSA_SHA384, hash: 'sha384' };
    throw new Error(`unsupported ECDSA curve for a certificate key: ${curve}`);
  }
  throw new Error(`unsupported certificate key type: ${key.asymmetricKeyType}`);
}

// DER: tag, definite length, content.
function tlv(tag: number, content: Buffer): Buffer {
  const n = content.length;
  const length = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : n < 0x10000 ? [0x82, n >> 8, n & 0xff] : [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  return Buffer.concat([Buffer.from([tag, ...length]), content]);
}

function seq(...items: Buffer[]): Buffer {
  return tlv(0x30, Buffer.concat(items));
}

function set(...items: Buffer[]): Buffer {
  return tlv(0x31, Buffer.concat(items));
}

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const VERSION_1 = hex('02 01 00'); // INTEGER 0
const OID_COMMON_NAME = hex('06 03 55 04 03'); // 2.5.4.3
const OID_SUBJECT_ALT_NAME = hex('06 03 55 1d 11'); // 2.5.29.17
const OID_EXTENSION_REQUEST = hex('06 09 2a 86 48 86 f7 0d 01 09 0e'); // 1.2.840.113549.1.9.14
const ALG_ECDSA_SHA256 = hex('30 0a 06 08 2a 86 48 ce 3d 04 03 02'); // 1.2.840.10045.4.3.2
const ALG_ECDSA_SHA384 = hex('30 0a 06 08 2a 86 48 ce 3d 04 03 03'); // 1.2.840.10045.4.3.3
const ALG_SHA256_RSA = hex('30 0d 06 09 2a 86 48 86 f7 0d 01 01 0b 05 00'); // 1.2.840.113549.1.1.11, NULL parameters
