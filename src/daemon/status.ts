/** Builds the certificate status rows the admin API and CLI show. */
import { readCertificateInfo } from '../certificate-info.js';
import type { CertificateStatus } from '../admin/api.js';
import { normalizeHostname } from '../hostname.js';
import { loadBackoff } from '../renewal/backoff-store.js';
import { keys } from '../storage/keys.js';
import type { BackoffRecord } from '../renewal/backoff.js';
import type { CertificateBundle, Storage } from '../storage/storage.js';
import type { ManagedCertificate } from '../config/managed.js';

export interface StatusContext {
  storage: Storage;
  managed?: ManagedCertificate;
  running: boolean;
  backoff: BackoffRecord | null;
  renewAt?: Date;
  now: number;
}

export function statusOf(name: string, bundle: CertificateBundle | null, ctx: StatusContext): CertificateStatus {
  const common = {
    host: name,
    location: ctx.storage.location(name),
    managed: ctx.managed !== undefined,
    renew_at: ctx.renewAt?.toISOString() ?? null,
    failures: ctx.backoff?.failures ?? 0,
    last_error: ctx.backoff?.lastError ?? null,
    backoff_until: ctx.backoff && Date.parse(ctx.backoff.until) > ctx.now ? ctx.backoff.until : null,
  };
  const problem = ctx.running ? 'renewing' : ctx.backoff ? 'failed' : undefined;
  if (!bundle) {
    return {
      ...common, names: ctx.managed?.names ?? [name], status: problem ?? 'missing',
      not_before: null, not_after: null, valid: false, serial_number: null, issuer_cn: null,
    };
  }
  const info = readCertificateInfo(bundle.cert);
  const valid = info.notBefore.getTime() <= ctx.now && ctx.now < info.notAfter.getTime();
  return {
    ...common,
    names: info.names,
    status: problem ?? (valid ? 'valid' : 'expired'),
    not_before: info.notBefore.toISOString(),
    not_after: info.notAfter.toISOString(),
    valid,
    serial_number: info.serialHex,
    issuer_cn: /CN=([^\n]+)/.exec(info.issuer)?.[1] ?? null,
  };
}

export interface StatusSources {
  managed: ManagedCertificate[];
  storage: Storage;
  running: string[];
  renewAt: (name: string) => Date | undefined;
  now: number;
}

/** One row per configured, stored or failing (in backoff) certificate, sorted by name. */
export async function listStatuses(src: StatusSources): Promise<CertificateStatus[]> {
  const failing = (await src.storage.list(keys.backoffPrefix)).map((key) => key.slice(keys.backoffPrefix.length));
  const names = new Set([...src.managed.map((c) => c.name), ...(await src.storage.listCertificates()), ...failing]);
  const running = new Set(src.running);
  return Promise.all([...names].sort().map(async (name) => statusOf(name, await src.storage.getCertificate(name), {
    storage: src.storage,
    managed: src.managed.find((c) => c.name === name),
    running: running.has(name),
    backoff: await loadBackoff(src.storage, name).catch(() => null),
    renewAt: src.renewAt(name),
    now: src.now,
  })));
}

/** The row for a host: the certificate named after it, else one that covers it. */
export function findStatus(rows: CertificateStatus[], host: string): CertificateStatus | null {
  const name = normalizeHostname(host);
  return rows.find((c) => c.host === name) ?? rows.find((c) => c.names.includes(name)) ?? null;
}
