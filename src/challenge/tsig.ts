/**
 * TSIG (RFC 8945): signs a DNS message with a shared HMAC key and checks the
 * server's signed answer. Written here because dns-packet, the DNS message
 * library acmed uses, encodes TSIG records only as opaque bytes and computes
 * no MAC, and no well-kept npm library does. The layout follows RFC 8945
 * §4.2 (the record) and §4.3.3 (what the MAC covers); tests check it against
 * a real BIND, which refuses a wrong MAC.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export type TsigAlgorithm = 'hmac-sha256' | 'hmac-sha384' | 'hmac-sha512';

const HASH: Record<TsigAlgorithm, string> = { 'hmac-sha256': 'sha256', 'hmac-sha384': 'sha384', 'hmac-sha512': 'sha512' };
const TSIG_TYPE = 250;
const CLASS_ANY = 255;
/** Seconds of clock difference the server accepts (RFC 8945 recommends 300). */
const FUDGE = 300;

export interface TsigKey {
  name: string;
  algorithm: TsigAlgorithm;
  secret: Buffer;
}

/** TSIG error codes (RFC 8945 §5.3) by value, for error messages. */
export const TSIG_ERRORS: Record<number, string> = { 16: 'BADSIG', 17: 'BADKEY', 18: 'BADTIME', 22: 'BADTRUNC' };

export class TsigSecretError extends Error {
  readonly code = 'TSIG_SECRET_INVALID';
}

/**
 * The base64 secret from a key file: either what `tsig-keygen` prints
 * (`key "name" { algorithm ...; secret "..."; };`) or the bare base64 string.
 * A file naming another algorithm than the config is refused, since BIND
 * would refuse every update signed with it.
 */
export function parseTsigSecret(text: string, algorithm: TsigAlgorithm, path: string): Buffer {
  const quoted = /secret\s+"([^"]*)"/.exec(text);
  const base64 = (quoted ? quoted[1] : text).trim();
  const named = /algorithm\s+"?([a-z0-9-]+)"?\s*;/i.exec(text)?.[1]?.toLowerCase();
  if (named && named !== algorithm) {
    throw new TsigSecretError(`${path} holds a ${named} key but dns.rfc2136.tsig_algorithm is ${algorithm}`);
  }
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64) || base64.length % 4 !== 0) {
    throw new TsigSecretError(`${path} holds no base64 TSIG secret (expected the output of tsig-keygen, or the bare base64 secret)`);
  }
  return Buffer.from(base64, 'base64');
}

/** A domain name in canonical wire form: lower case, uncompressed (RFC 8945 §4.3.3). */
export function canonicalName(name: string): Buffer {
  const labels = name.toLowerCase().replace(/\.$/, '').split('.').filter((l) => l.length > 0);
  return Buffer.concat([...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'ascii')])), Buffer.from([0])]);
}

function uint16(value: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(value);
  return b;
}

function uint48(value: number): Buffer {
  const b = Buffer.alloc(6);
  b.writeUIntBE(value, 0, 6);
  return b;
}

/** The TSIG variables the MAC covers after the message (RFC 8945 §4.3.3). */
function tsigVariables(key: TsigKey, timeSigned: number, fudge: number, error: number, other: Buffer): Buffer {
  return Buffer.concat([
    canonicalName(key.name), uint16(CLASS_ANY), Buffer.alloc(4), canonicalName(key.algorithm),
    uint48(timeSigned), uint16(fudge), uint16(error), uint16(other.length), other,
  ]);
}

function hmac(key: TsigKey, ...parts: Buffer[]): Buffer {
  const mac = createHmac(HASH[key.algorithm], key.secret);
  for (const part of parts) mac.update(part);
  return mac.digest();
}

/**
 * Appends a TSIG record to an encoded message (its additional count raised by
 * one) and returns the signed message with its MAC, which the answer's MAC
 * covers too.
 */
export function signMessage(message: Buffer, key: TsigKey, now = Date.now()): { signed: Buffer; mac: Buffer } {
  const timeSigned = Math.floor(now / 1000);
  const mac = hmac(key, message, tsigVariables(key, timeSigned, FUDGE, 0, Buffer.alloc(0)));
  const originalId = message.readUInt16BE(0);
  const rdata = Buffer.concat([
    canonicalName(key.algorithm), uint48(timeSigned), uint16(FUDGE), uint16(mac.length), mac,
    uint16(originalId), uint16(0), uint16(0),
  ]);
  const record = Buffer.concat([canonicalName(key.name), uint16(TSIG_TYPE), uint16(CLASS_ANY), Buffer.alloc(4), uint16(rdata.length), rdata]);
  const signed = Buffer.concat([message, record]);
  signed.writeUInt16BE(message.readUInt16BE(10) + 1, 10);
  return { signed, mac };
}

export interface TsigAnswer {
  /** The TSIG error the server set (0: none). */
  error: number;
  /** True when the answer carried a TSIG whose MAC checks out against our request's. */
  verified: boolean;
  /** True when the answer carried no TSIG at all (servers answer a bad key unsigned). */
  unsigned: boolean;
}

/**
 * Checks the TSIG of a server's answer to a request we signed (RFC 8945
 * §5.3): the MAC covers our request's MAC, the answer without its TSIG
 * record (additional count lowered, original ID), and the TSIG variables.
 */
export function verifyAnswer(answer: Buffer, requestMac: Buffer, key: TsigKey): TsigAnswer {
  const last = lastRecord(answer);
  if (!last || last.type !== TSIG_TYPE) return { error: 0, verified: false, unsigned: true };
  const rdata = answer.subarray(last.rdataStart, last.end);
  let offset = skipName(rdata, 0);
  const algorithm = rdata.subarray(0, offset);
  const timeSigned = rdata.readUIntBE(offset, 6);
  const fudge = rdata.readUInt16BE(offset + 6);
  const macSize = rdata.readUInt16BE(offset + 8);
  offset += 10;
  const mac = rdata.subarray(offset, offset + macSize);
  offset += macSize;
  const originalId = rdata.readUInt16BE(offset);
  const error = rdata.readUInt16BE(offset + 2);
  const otherLength = rdata.readUInt16BE(offset + 4);
  const other = rdata.subarray(offset + 6, offset + 6 + otherLength);
  if (macSize === 0 || !algorithm.equals(canonicalName(key.algorithm))) return { error, verified: false, unsigned: false };

  const unsignedPart = Buffer.from(answer.subarray(0, last.start));
  unsignedPart.writeUInt16BE(originalId, 0);
  unsignedPart.writeUInt16BE(answer.readUInt16BE(10) - 1, 10);
  const expected = hmac(key, uint16(requestMac.length), requestMac, unsignedPart, tsigVariables(key, timeSigned, fudge, error, other));
  const verified = mac.length === expected.length && timingSafeEqual(mac, expected);
  return { error, verified, unsigned: false };
}

/** Offset just past the (possibly compressed) name starting at offset. */
function skipName(buf: Buffer, offset: number): number {
  for (;;) {
    const length = buf[offset];
    if (length === undefined) throw new Error('DNS message ends inside a name');
    if ((length & 0xc0) === 0xc0) return offset + 2;
    offset += 1 + length;
    if (length === 0) return offset;
  }
}

/** Where the message's last record lies (TSIG is always last), by walking every section. */
function lastRecord(buf: Buffer): { start: number; type: number; rdataStart: number; end: number } | null {
  if (buf.length < 12) return null;
  let offset = 12;
  for (let i = buf.readUInt16BE(4); i > 0; i--) offset = skipName(buf, offset) + 4;
  const records = buf.readUInt16BE(6) + buf.readUInt16BE(8) + buf.readUInt16BE(10);
  let last = null;
  for (let i = 0; i < records; i++) {
    const start = offset;
    const fixed = skipName(buf, offset);
    const type = buf.readUInt16BE(fixed);
    const rdataStart = fixed + 10;
    const end = rdataStart + buf.readUInt16BE(fixed + 8);
    last = { start, type, rdataStart, end };
    offset = end;
  }
  return last;
}
