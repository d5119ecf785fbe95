/**
 * ACME Renewal Information (RFC 9773): the certificate identifier the CA's
 * renewalInfo endpoint is keyed by, validation of the CA's answer, and the two
 * small rules a client follows with it (how long to wait before asking again,
 * and when inside the suggested window to renew).
 *
 * No I/O here: fetching renewalInfo belongs to the ACME client.
 */
import { X509Certificate } from 'node:crypto';

/** The CA's renewalInfo answer was not what RFC 9773 describes. */
export class RenewalInfoError extends Error {
  readonly code = 'ARI_INVALID';
}

/** A certificate lacks what an ARI identifier is built from. */
export class AriCertIdError extends Error {
  readonly code = 'ARI_CERT_ID';
}

export interface RenewalWindow {
  start: Date;
  end: Date;
}

export interface RenewalInfo extends RenewalWindow {
  explanationURL?: string;
}

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;

/** Bounds on how long to wait before asking the CA for renewalInfo again. */
export const ARI_RETRY_MIN_MS = MINUTE_MS;
export const ARI_RETRY_MAX_MS = DAY_MS;
export const ARI_RETRY_DEFAULT_MS = 6 * HOUR_MS;

// --- certificate identifier -------------------------------------------------

/**
 * The RFC 9773 certificate identifier: base64url(AKI keyIdentifier) "."
 * base64url(serial number INTEGER content octets). The serial keeps its DER
 * form exactly, including the leading 0x00 a positive INTEGER carries when its
 * high bit is set; node's X509Certificate.serialNumber drops that byte.
 */
export function ariCertId(certPem: string): string {
  const der = new X509Certificate(certPem).raw;
  const { keyIdentifier, serial } = readAriParts(der);
  return formatAriCertId(keyIdentifier, serial);
}

/** Joins the two raw parts of an ARI identifier (exported for testing against RFC 9773's example). */
export function formatAriCertId(keyIdentifier: Uint8Array, serialContent: Uint8Array): string {
  return `${Buffer.from(keyIdentifier).toString('base64url')}.${Buffer.from(serialContent).toString('base64url')}`;
}

/*
 * A minimal DER walk, written by hand on purpose: node:crypto exposes neither
 * the raw serial INTEGER nor the AKI extension's bytes, and the ASN.1
 * libraries in node_modules (asn1js, @peculiar/x509) arrive only as
 * acme-client's transitive dependencies, so importing them would break
 * silently whenever acme-client changes its own. The certificate has already
 * been parsed (and so checked) by X509Certificate; this reader only needs to
 * step over TLVs to two known places.
 */

interface Tlv {
  tag: number;
  /** Offset of the first content octet. */
  start: number;
  /** Offset just past the last content octet. */
  end: number;
}

function readTlv(der: Uint8Array, offset: number, limit: number): Tlv {
  if (offset + 2 > limit) throw new AriCertIdError('truncated DER');
  const tag = der[offset];
  if ((tag & 0x1f) === 0x1f) throw new AriCertIdError('unsupported DER tag');
  let lengthByte = der[offset + 1];
  let pos = offset + 2;
  let length: number;
  if (lengthByte < 0x80) {
    length = lengthByte;
  } else {
    lengthByte &= 0x7f;
    if (lengthByte === 0 || lengthByte > 4 || pos + lengthByte > limit) throw new AriCertIdError('bad DER length');
    length = 0;
    for (let i = 0; i < lengthByte; i++) length = length * 256 + der[pos++];
  }
  if (pos + length > limit) throw new AriCertIdError('DER element runs past its container');
  return { tag, start: pos, end: pos + length };
}

/** The children of a constructed element, in order. */
function children(der: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let pos = parent.start; pos < parent.end; ) {
    const child = readTlv(der, pos, parent.end);
    out.push(child);
    pos = child.end;
  }
  return out;
}

const TAG_INTEGER = 0x02;
const TAG_OCTET_STRING = 0x04;
const TAG_OID = 0x06;
const TAG_SEQUENCE = 0x30;
const TAG_VERSION = 0xa0; // [0] EXPLICIT Version
const TAG_EXTENSIONS = 0xa3; // [3] EXPLICIT Extensions
const TAG_KEY_IDENTIFIER = 0x80; // [0] IMPLICIT KeyIdentifier inside AuthorityKeyIdentifier
const OID_AUTHORITY_KEY_IDENTIFIER = Buffer.from([0x55, 0x1d, 0x23]); // 2.5.29.35

function readAriParts(der: Uint8Array): { keyIdentifier: Uint8Array; serial: Uint8Array } {
  const cert = readTlv(der, 0, der.length);
  const tbs = children(der, cert)[0];
  if (cert.tag !== TAG_SEQUENCE || tbs?.tag !== TAG_SEQUENCE) throw new AriCertIdError('not an X.509 certificate');
  const fields = children(der, tbs);
  let i = fields[0]?.tag === TAG_VERSION ? 1 : 0;
  const serial = fields[i++];
  if (serial?.tag !== TAG_INTEGER || serial.end === serial.start) throw new AriCertIdError('certificate has no serial number');

  const extensions = fields.find((f) => f.tag === TAG_EXTENSIONS);
  const extList = extensions ? children(der, extensions)[0] : undefined;
  for (const ext of extList ? children(der, extList) : []) {
    const parts = children(der, ext);
    const oid = parts[0];
    if (oid?.tag !== TAG_OID || !Buffer.from(der.subarray(oid.start, oid.end)).equals(OID_AUTHORITY_KEY_IDENTIFIER)) continue;
    const value = parts[parts.length - 1];
    if (value.tag !== TAG_OCTET_STRING) break;
    const aki = readTlv(der, value.start, value.end);
    const keyId = aki.tag === TAG_SEQUENCE ? children(der, aki).find((c) => c.tag === TAG_KEY_IDENTIFIER) : undefined;
    if (!keyId || keyId.end === keyId.start) break;
    return { keyIdentifier: der.subarray(keyId.start, keyId.end), serial: der.subarray(serial.start, serial.end) };
  }
  throw new AriCertIdError('certificate has no Authority Key Identifier keyIdentifier, which ARI needs');
}

// --- renewalInfo response ----------------------------------------------------

// RFC 3339 date-time. Date.parse alone accepts far looser text ("1" is 2001).
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;

function parseTimestamp(value: unknown, field: string): Date {
  if (typeof value !== 'string' || !RFC3339.test(value)) {
    throw new RenewalInfoError(`renewalInfo suggestedWindow.${field} is not an RFC 3339 timestamp: ${JSON.stringify(value)?.slice(0, 80)}`);
  }
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw new RenewalInfoError(`renewalInfo suggestedWindow.${field} is not a valid date: ${value}`);
  return new Date(ms);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Validates a renewalInfo body ({"suggestedWindow": {"start", "end"},
 * "explanationURL"?}). A malformed window throws RenewalInfoError, so the
 * caller falls back to its own schedule rather than trusting junk. A bad
 * explanationURL is only informational, so it is dropped, not fatal.
 */
export function parseRenewalInfo(body: unknown): RenewalInfo {
  if (!isObject(body)) throw new RenewalInfoError('renewalInfo response is not a JSON object');
  const window = body.suggestedWindow;
  if (!isObject(window)) throw new RenewalInfoError('renewalInfo response has no suggestedWindow object');
  const start = parseTimestamp(window.start, 'start');
  const end = parseTimestamp(window.end, 'end');
  if (end.getTime() < start.getTime()) {
    throw new RenewalInfoError(`renewalInfo suggestedWindow ends (${end.toISOString()}) before it starts (${start.toISOString()})`);
  }
  const info: RenewalInfo = { start, end };
  if (typeof body.explanationURL === 'string' && URL.canParse(body.explanationURL)) {
    const url = new URL(body.explanationURL);
    if (url.protocol === 'https:' || url.protocol === 'http:') info.explanationURL = body.explanationURL;
  }
  return info;
}

/**
 * How long to wait before polling renewalInfo again: the CA's Retry-After
 * when it sent one, held to [1 minute, 1 day] so a CA can neither make us
 * poll in a loop nor go silent for weeks; 6 hours when it sent none.
 */
export function clampRetryAfter(ms: number | undefined): number {
  if (ms === undefined || Number.isNaN(ms)) return ARI_RETRY_DEFAULT_MS;
  return Math.min(ARI_RETRY_MAX_MS, Math.max(ARI_RETRY_MIN_MS, ms));
}

/**
 * A time drawn uniformly from [start, end), as RFC 9773 asks, so that many
 * clients given the same window do not all renew at its first instant.
 * `random` is injectable (Math.random in production) for tests.
 */
export function pickTimeInWindow(window: RenewalWindow, random: () => number): Date {
  const start = window.start.getTime();
  const span = window.end.getTime() - start;
  if (Number.isNaN(start) || Number.isNaN(span)) throw new RangeError('pickTimeInWindow: invalid window');
  if (span <= 0) return new Date(start);
  const drawn = random();
  const r = Number.isFinite(drawn) ? Math.min(Math.max(drawn, 0), 1) : 0;
  return new Date(start + Math.min(Math.floor(r * span), span - 1));
}
