/**
 * Builds the certificate status rows the admin API and CLI show, from the
 * index alone: listing 100,000 certificates opens no PEM.
 */
import type { CertificateStatus } from '../admin/api.js';
import { configuredCertificates, managedCertificateNamed } from '../config/managed.js';
import type { Config } from '../config/schema.js';
import { normalizeHostname } from '../hostname.js';
import { missingRecord, type IndexRecord } from '../renewal/index-record.js';
import type { Storage } from '../storage/storage.js';

export interface StatusSources {
  config: Config;
  records: IndexRecord[];
  storage: Pick<Storage, 'location'>;
  /** Names with a job queued or running. */
  running: Set<string>;
  now: number;
}

export function statusOf(record: IndexRecord, src: StatusSources): CertificateStatus {
  const { now } = src;
  const backoff = record.backoff;
  const inBackoff = backoff !== null && Date.parse(backoff.until) > now;
  const hasCert = record.notAfter !== null;
  const valid = hasCert && Date.parse(record.notBefore!) <= now && now < Date.parse(record.notAfter!);
  const problem = src.running.has(record.name) ? 'renewing' : backoff ? 'failed' : undefined;
  return {
    host: record.name,
    names: record.names,
    status: problem ?? (!hasCert ? 'missing' : valid ? 'valid' : 'expired'),
    not_before: record.notBefore,
    not_after: record.notAfter,
    valid,
    serial_number: record.serial,
    issuer_cn: record.issuer ? /CN=([^\n,]+)/.exec(record.issuer)?.[1] ?? null : null,
    location: src.storage.location(record.name),
    managed: managedCertificateNamed(src.config, record.name) !== undefined,
    renew_at: record.renewAt,
    renew_reason: record.renewAt ? record.renewReason : null,
    failures: backoff?.failures ?? 0,
    last_error: backoff?.lastError ?? null,
    backoff_until: inBackoff ? backoff.until : null,
    pending_order: record.order?.url ?? null,
  };
}

/** One row per configured or indexed certificate, sorted by name. */
export function listStatuses(src: StatusSources): CertificateStatus[] {
  const byName = new Map(src.records.map((r) => [r.name, r]));
  for (const cert of configuredCertificates(src.config)) {
    if (!byName.has(cert.name)) byName.set(cert.name, missingRecord(cert.name, cert.names, new Date(src.now)));
  }
  return [...byName.keys()].sort().map((name) => statusOf(byName.get(name)!, src));
}

/** The row for a host: the certificate named after it, else one that covers it. */
export function findStatus(rows: CertificateStatus[], host: string): CertificateStatus | null {
  const name = normalizeHostname(host);
  return rows.find((c) => c.host === name) ?? rows.find((c) => c.names.includes(name)) ?? null;
}
