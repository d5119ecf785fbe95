/**
 * Pages of certificate status rows for `GET /acme/certificates` and `acmed
 * list`, in host order, from the in-memory index: no PEM is read, and only
 * the rows of one page are built, so listing 100,000 certificates keeps the
 * daemon's memory flat. The sorted host list is kept between requests and
 * rebuilt only when a name comes or goes.
 */
import type { CertificateStatus } from '../admin/wire.js';
import { configuredCertificates } from '../config/managed.js';
import type { Config } from '../config/schema.js';
import { normalizeHostname } from '../hostname.js';
import { missingRecord, type IndexRecord } from '../renewal/index-record.js';
import type { CertificateIndex } from '../renewal/index.js';
import type { Storage } from '../storage/storage.js';
import { isValidAt, stateOf, statusOf, type CertificateState } from './status.js';

export interface ListQuery {
  /** Rows per page; all when omitted. */
  limit?: number;
  /** Start after this host (the previous page's `next`). */
  after?: string;
  states?: ReadonlySet<CertificateState>;
  /** Only certificates that expire within this many ms (expired ones included); missing ones never match. */
  expiringWithinMs?: number;
  /** Only rows whose certificate is not valid now (Kong's invalid_only). */
  invalidOnly?: boolean;
}

export interface ListPage {
  rows: CertificateStatus[];
  /** Pass as `after` for the next page; null on the last one. */
  next: string | null;
}

export interface ListingSources {
  index: CertificateIndex;
  config: () => Config;
  storage: Pick<Storage, 'location'>;
  /** Names with a job queued or running. */
  queued: () => Set<string>;
  now: () => number;
}

export class CertificateListing {
  private sorted: string[] | null = null;
  private known = new Set<string>();
  private configured = new Map<string, string[]>();

  constructor(private readonly src: ListingSources) {
    src.index.on('change', (record) => {
      if (!this.known.has(record.name)) this.sorted = null;
    });
    src.index.on('remove', () => {
      this.sorted = null;
    });
  }

  /** The config's certificates changed (a reload): the name list is rebuilt on the next page. */
  invalidate(): void {
    this.sorted = null;
  }

  page(query: ListQuery): ListPage {
    const names = this.names();
    const now = this.src.now();
    const queued = this.src.queued();
    const limit = query.limit ?? Infinity;
    const rows: CertificateStatus[] = [];
    let i = query.after === undefined ? 0 : firstAfter(names, query.after);
    const sources = { config: this.src.config(), storage: this.src.storage, running: queued, now };
    for (; i < names.length && rows.length < limit; i++) {
      const record = this.recordOf(names[i]);
      if (!record || !matches(record, query, now, queued)) continue;
      rows.push(statusOf(record, sources));
    }
    return { rows, next: i < names.length && rows.length === limit ? rows[rows.length - 1].host : null };
  }

  /** The row for a host: the certificate named after it, else one whose names cover it. */
  find(host: string): CertificateStatus | null {
    const name = normalizeHostname(host);
    this.names();
    const record = this.recordOf(name)
      ?? [...this.configured].map(([first]) => this.recordOf(first)!).find((r) => r.names.includes(name))
      ?? this.src.index.all().find((r) => r.names.includes(name));
    if (!record) return null;
    return statusOf(record, { config: this.src.config(), storage: this.src.storage, running: this.src.queued(), now: this.src.now() });
  }

  private recordOf(name: string): IndexRecord | undefined {
    const record = this.src.index.get(name);
    if (record) return record;
    const names = this.configured.get(name);
    return names ? missingRecord(name, names, new Date(this.src.now())) : undefined;
  }

  private names(): string[] {
    if (this.sorted) return this.sorted;
    this.configured = new Map(configuredCertificates(this.src.config()).map((c) => [c.name, c.names]));
    this.known = new Set([...this.src.index.all().map((r) => r.name), ...this.configured.keys()]);
    this.sorted = [...this.known].sort();
    return this.sorted;
  }
}

function matches(record: IndexRecord, query: ListQuery, now: number, queued: Set<string>): boolean {
  if (query.invalidOnly && isValidAt(record, now)) return false;
  if (query.states && !query.states.has(stateOf(record, now, queued))) return false;
  if (query.expiringWithinMs !== undefined && (record.notAfter === null || Date.parse(record.notAfter) > now + query.expiringWithinMs)) return false;
  return true;
}

/** Index of the first name sorted after `after` (binary search). */
function firstAfter(names: string[], after: string): number {
  let lo = 0;
  let hi = names.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (names[mid] <= after) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
