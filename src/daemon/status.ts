/**
 * The certificate status row the admin API and CLI show, from the index
 * record alone: listing 100,000 certificates opens no PEM.
 */
import type { CertificateStatus } from '../admin/wire.js';
import { firstCa } from '../config/ca-list.js';
import { isManagedName } from '../config/managed.js';
import type { Config } from '../config/schema.js';
import type { IndexRecord } from '../renewal/index-record.js';
import type { Storage } from '../storage/storage.js';

export interface StatusSources {
  config: Config;
  storage: Pick<Storage, 'location'>;
  /** Names with a job queued or running. */
  running: Set<string>;
  now: number;
}

export type CertificateState = CertificateStatus['status'];

/** Whether the stored certificate is valid now. */
export function isValidAt(record: IndexRecord, now: number): boolean {
  return record.notAfter !== null && Date.parse(record.notBefore!) <= now && now < Date.parse(record.notAfter);
}

/** The one-word state `acmed list` shows and metrics count: an order running or failing wins over the certificate's own. */
export function stateOf(record: IndexRecord, now: number, running: Set<string>): CertificateState {
  if (running.has(record.name)) return 'renewing';
  if (record.backoff) return 'failed';
  if (record.notAfter === null) return 'missing';
  return isValidAt(record, now) ? 'valid' : 'expired';
}

/** How many records are in each state: `acmed status` and the acmed_certificates gauge. */
export function countByState(records: Iterable<IndexRecord>, now: number, busy: Set<string>): Record<CertificateState, number> {
  const counts: Record<CertificateState, number> = { valid: 0, expired: 0, missing: 0, renewing: 0, failed: 0 };
  for (const record of records) counts[stateOf(record, now, busy)]++;
  return counts;
}

export function statusOf(record: IndexRecord, src: StatusSources): CertificateStatus {
  const { now } = src;
  const backoff = record.backoff;
  const inBackoff = backoff !== null && Date.parse(backoff.until) > now;
  const valid = isValidAt(record, now);
  return {
    host: record.name,
    names: record.names,
    status: stateOf(record, now, src.running),
    not_before: record.notBefore,
    not_after: record.notAfter,
    valid,
    serial_number: record.serial,
    issuer_cn: record.issuer ? /CN=([^\n,]+)/.exec(record.issuer)?.[1] ?? null : null,
    // Only where a certificate is stored: a path shown for a name without one would not exist.
    location: record.notAfter !== null ? src.storage.location(record.name) : null,
    managed: isManagedName(src.config, record.name),
    renew_at: record.renewAt,
    renew_reason: record.renewAt ? record.renewReason : null,
    failures: backoff?.failures ?? 0,
    last_error: backoff?.lastError ?? null,
    backoff_until: inBackoff ? backoff.until : null,
    pending_order: record.order?.url ?? null,
    ca: record.notAfter !== null ? record.ca ?? firstCa(src.config) : null,
  };
}
