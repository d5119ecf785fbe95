/**
 * One record per managed certificate: what the scheduler, `acmed list` and
 * metrics need without opening a PEM. It is kept in storage at
 * `index/<name>` (so a restart and every instance sharing the store see it)
 * and is always derivable from the stored certificate plus the few facts
 * that are not in it: the CA's ARI window, the failure backoff, an order in
 * flight.
 *
 * Pure: building, renewal timing and parsing take the clock as an argument.
 */
import type { CertificateInfo } from '../certificate-info.js';
import type { BackoffRecord } from './backoff.js';
import { parseBackoffRecord } from './backoff.js';
import { decideRenewal, type RenewalReason } from './decision.js';

/** The CA's ARI answer for the certificate now stored (RFC 9773). */
export interface AriRecord {
  certId: string;
  windowStart: string;
  windowEnd: string;
  /** The time picked inside the window, kept while the window stays. */
  chosenTime: string;
  /** When to ask the CA again (its Retry-After, clamped). */
  fetchAfter: string;
}

/** An order placed with the CA and not finished; its key lives at `orders/<name>`. */
export interface PendingOrderRecord {
  url: string;
  names: string[];
  placedAt: string;
}

export interface IndexRecord {
  name: string;
  names: string[];
  /**
   * Facts of the stored certificate; null while there is none. With an RSA
   * certificate kept beside the primary one (`cert_type: [ecc, rsa]`, renewed
   * together), notBefore/notAfter are those of the one that expires first, so
   * renewal and expiry follow it; serial, issuer and ARI are the primary's.
   */
  notBefore: string | null;
  notAfter: string | null;
  serial: string | null;
  issuer: string | null;
  /** Key types stored, the primary first; absent in records written before acmed knew of two. */
  keyTypes?: ('ecc' | 'rsa')[];
  /** The RSA certificate kept beside the primary one: its not-after; null or absent when there is none. */
  rsaNotAfter?: string | null;
  /** When renewal is due; null while there is no certificate (due at once). */
  renewAt: string | null;
  renewReason: RenewalReason | 'missing';
  ari: AriRecord | null;
  backoff: BackoffRecord | null;
  order: PendingOrderRecord | null;
  /** Directory URL of the CA that issued the stored certificate; null when unknown (issued before acmed recorded it: the first CA's). */
  ca: string | null;
  updatedAt: string;
}

export type RenewalPolicy = { renewThresholdDays: number | null };

/** A record for a certificate that is not stored yet. */
type KeyType = 'ecc' | 'rsa';

/**
 * The few key-type lists a record can hold, shared: 100,000 records then
 * point at one of four arrays instead of holding one each.
 */
const KEY_TYPE_LISTS: Record<string, readonly KeyType[]> = {
  '': Object.freeze([]), ecc: Object.freeze(['ecc']), rsa: Object.freeze(['rsa']), 'ecc,rsa': Object.freeze(['ecc', 'rsa']),
};

/** The shared list for these key types, primary first (unknown types left out). */
function keyTypeList(...types: (KeyType | undefined)[]): KeyType[] {
  const key = types.filter((t) => t !== undefined).join(',');
  return (KEY_TYPE_LISTS[key] ?? [...new Set(types.filter((t) => t !== undefined))]) as KeyType[];
}

export function missingRecord(name: string, names: string[], now: Date): IndexRecord {
  return {
    name, names, notBefore: null, notAfter: null, serial: null, issuer: null,
    renewAt: null, renewReason: 'missing', ari: null, backoff: null, order: null, ca: null, updatedAt: now.toISOString(),
  };
}

/**
 * The record for a stored certificate, keeping what the previous record knew
 * that the PEM does not say (backoff, a pending order; the ARI answer only
 * while it is about this very certificate).
 */
export function recordFromCertificate(
  name: string, info: CertificateInfo, prev: IndexRecord | null, policy: RenewalPolicy, now: Date, rsa?: CertificateInfo,
): IndexRecord {
  const sameCertificate = prev?.serial === info.serialHex;
  const first = rsa && rsa.notAfter < info.notAfter ? rsa : info;
  const record: IndexRecord = {
    name,
    names: info.names,
    notBefore: first.notBefore.toISOString(),
    notAfter: first.notAfter.toISOString(),
    serial: info.serialHex,
    issuer: info.issuer,
    keyTypes: keyTypeList(info.keyType, rsa?.keyType),
    rsaNotAfter: rsa ? rsa.notAfter.toISOString() : null,
    renewAt: null,
    renewReason: 'lifetime-fraction',
    ari: sameCertificate ? prev?.ari ?? null : null,
    backoff: prev?.backoff ?? null,
    order: prev?.order ?? null,
    // Kept only while it is about this very certificate: one stored by hand or by an older acmed has no known CA.
    ca: sameCertificate ? prev?.ca ?? null : null,
    updatedAt: now.toISOString(),
  };
  return withRenewalTime(record, policy, now);
}

/** Recomputes renewAt and its reason from the certificate's lifetime, ARI and the threshold. */
export function withRenewalTime(record: IndexRecord, policy: RenewalPolicy, now: Date): IndexRecord {
  if (!record.notBefore || !record.notAfter) return { ...record, renewAt: null, renewReason: 'missing' };
  const ari = record.ari
    ? { windowStart: new Date(record.ari.windowStart), windowEnd: new Date(record.ari.windowEnd), chosenTime: new Date(record.ari.chosenTime) }
    : null;
  const decision = decideRenewal({
    notBefore: new Date(record.notBefore), notAfter: new Date(record.notAfter), ari, renewThresholdDays: policy.renewThresholdDays, now,
  });
  return { ...record, renewAt: decision.at.toISOString(), renewReason: decision.reason };
}

/**
 * When the scheduler should look at this certificate next: its renewal time
 * (at once when missing or an order is pending), but never before its
 * failure backoff ends.
 */
export function dueTime(record: IndexRecord, now: Date): Date {
  let due = record.renewAt && !record.order ? Date.parse(record.renewAt) : now.getTime();
  const backoffUntil = record.backoff ? Date.parse(record.backoff.until) : NaN;
  if (!Number.isNaN(backoffUntil)) due = Math.max(due, backoffUntil);
  return new Date(due);
}

/** True when the stored certificate should be replaced now (ignoring backoff). */
export function isRenewalDue(record: IndexRecord, now: Date): boolean {
  return record.renewAt === null || Date.parse(record.renewAt) <= now.getTime();
}

/** A stored certificate not yet due, with no order pending: nothing to order now. */
export function isSettled(record: IndexRecord, now: Date): boolean {
  return record.serial !== null && !isRenewalDue(record, now) && record.order === null;
}

const isoOrNull = (v: unknown) => (v === null || (typeof v === 'string' && !Number.isNaN(Date.parse(v))) ? v : undefined);
const stringOrNull = (v: unknown) => (v === null || typeof v === 'string' ? v : undefined);

/** A stored value back into a record, or null when it is not one (then it is rebuilt from the PEM). */
export function parseIndexRecord(raw: string): IndexRecord | null {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(raw) as Record<string, unknown>;
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null || typeof v.name !== 'string' || !Array.isArray(v.names)
    || !v.names.every((n) => typeof n === 'string')) return null;
  const fields = {
    notBefore: isoOrNull(v.notBefore), notAfter: isoOrNull(v.notAfter), renewAt: isoOrNull(v.renewAt),
    serial: stringOrNull(v.serial), issuer: stringOrNull(v.issuer),
  };
  if (Object.values(fields).some((f) => f === undefined)) return null;
  const ari = v.ari && typeof v.ari === 'object' ? v.ari as AriRecord : null;
  const order = v.order && typeof v.order === 'object' && typeof (v.order as PendingOrderRecord).url === 'string'
    ? v.order as PendingOrderRecord : null;
  return {
    name: v.name,
    names: v.names as string[],
    ...(fields as Pick<IndexRecord, 'notBefore' | 'notAfter' | 'renewAt' | 'serial' | 'issuer'>),
    ...(Array.isArray(v.keyTypes) ? { keyTypes: keyTypeList(...v.keyTypes.filter((t): t is KeyType => t === 'ecc' || t === 'rsa')) } : {}),
    ...(typeof v.rsaNotAfter === 'string' && !Number.isNaN(Date.parse(v.rsaNotAfter)) ? { rsaNotAfter: v.rsaNotAfter } : {}),
    renewReason: (typeof v.renewReason === 'string' ? v.renewReason : 'missing') as IndexRecord['renewReason'],
    ari,
    backoff: parseBackoffRecord(v.backoff),
    order,
    ca: typeof v.ca === 'string' ? v.ca : null,
    updatedAt: typeof v.updatedAt === 'string' ? v.updatedAt : new Date(0).toISOString(),
  };
}
