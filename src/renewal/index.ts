/**
 * The index of managed certificates: one IndexRecord per certificate, held in
 * memory for the scheduler and listings and kept in storage at
 * `index/<name>`, so it survives restarts and a cluster shares it.
 *
 * Storage stays the truth for certificates: at load (and at each daily
 * reconciliation) a record that is missing, unreadable or disagrees with the
 * stored PEM (replaced by hand) is rebuilt from it. A record that cannot be
 * written (store down) is kept in memory and written on the next flush.
 */
import { EventEmitter } from 'node:events';
import { readCertificateInfo, serialOfPem } from '../certificate-info.js';
import type { Logger } from '../log.js';
import { keys } from '../storage/keys.js';
import { nameOfSegment } from '../storage/name-segment.js';
import type { CertificateBundle, Storage } from '../storage/storage.js';
import { parseBackoffRecord } from './backoff.js';
import { eachLimited } from './each-limited.js';
import {
  missingRecord, parseIndexRecord, recordFromCertificate, withRenewalTime, type AriRecord, type IndexRecord, type RenewalPolicy,
} from './index-record.js';

/** Reads and writes in flight at once during a load or a reconciliation. */
const IO_WIDTH = 16;
/** Certificates read at once by a reconciliation: it runs beside issuance and must leave it room. */
const RECONCILE_WIDTH = 4;

export interface IndexOptions {
  storage: Storage;
  log: Logger;
  policy: () => RenewalPolicy;
  now?: () => number;
}

export class CertificateIndex extends EventEmitter<{ change: [IndexRecord]; remove: [string] }> {
  private readonly records = new Map<string, IndexRecord>();
  private readonly dirty = new Set<string>();
  private readonly writing = new Set<Promise<void>>();
  private closed = false;

  constructor(private readonly opts: IndexOptions) {
    super();
  }

  private get now(): Date {
    return new Date((this.opts.now ?? Date.now)());
  }

  get(name: string): IndexRecord | undefined {
    return this.records.get(name);
  }

  all(): IndexRecord[] {
    return [...this.records.values()];
  }

  get size(): number {
    return this.records.size;
  }

  /**
   * Loads every record and folds in legacy backoff/ari records. The stored
   * certificates are not read here: reconcile() compares them later, in the
   * background, so a daemon with 100,000 certificates starts in seconds.
   */
  async load(): Promise<{ records: number }> {
    const { storage } = this.opts;
    const accept = (key: string, raw: string | null) => {
      const name = nameAfter(key, keys.indexPrefix);
      const record = raw === null ? null : parseIndexRecord(raw);
      if (record && name !== null && record.name === name && !this.dirty.has(name)) this.records.set(name, record);
    };
    if (storage.scan) {
      await storage.scan(keys.indexPrefix, (batch) => batch.forEach(([key, raw]) => accept(key, raw)));
    } else {
      await eachLimited(await storage.list(keys.indexPrefix), IO_WIDTH, async (key) => accept(key, await storage.get(key)));
    }
    await this.foldLegacy();
    return { records: this.records.size };
  }

  /**
   * Index against storage: every stored certificate has a record that agrees
   * with its PEM. Returns how many records were rebuilt. Stops early when
   * signal aborts (shutdown).
   */
  async reconcile(signal?: AbortSignal): Promise<number> {
    let rebuilt = 0;
    const stored = await this.opts.storage.listCertificates();
    await eachLimited(stored, RECONCILE_WIDTH, async (name) => {
      if (signal?.aborted) return;
      if (await this.unchanged(name)) return;
      const bundle = await this.opts.storage.getCertificate(name).catch((err: Error) => {
        this.opts.log.warn({ cert: name, err: err.message }, 'cannot read a stored certificate; its index record is kept as it is');
        return undefined;
      });
      if (bundle === undefined) return;
      if (await this.syncWith(name, bundle)) rebuilt++;
    });
    return rebuilt;
  }

  /** True when the stored leaf is the one recorded, read cheaply where the store can (no key, no parse). */
  private async unchanged(name: string): Promise<boolean> {
    const prev = this.records.get(name);
    const { storage } = this.opts;
    if (!storage.getCertificatePem || !prev?.serial || prev.renewAt === null) return false;
    const pem = await storage.getCertificatePem(name).catch(() => null);
    return pem !== null && serialOfPem(pem) === prev.serial;
  }

  /**
   * Brings name's record in line with the stored certificate (null: none
   * stored). True when the record changed. Used under the certificate's lock
   * too, so a job decides on the freshest copy.
   */
  async syncWith(name: string, bundle: CertificateBundle | null): Promise<boolean> {
    const prev = this.records.get(name) ?? null;
    if (!bundle) {
      if (prev && prev.serial !== null) {
        await this.put({ ...missingRecord(name, prev.names, this.now), backoff: prev.backoff, order: prev.order });
        return true;
      }
      return false;
    }
    // The common case at reconciliation: the same certificate as recorded; no full parse.
    if (prev && prev.renewAt !== null && prev.serial !== null && serialOfPem(bundle.cert) === prev.serial) return false;
    let info;
    let rsa;
    try {
      info = readCertificateInfo(bundle.cert);
      rsa = bundle.rsa ? readCertificateInfo(bundle.rsa.cert) : undefined;
    } catch (err) {
      this.opts.log.warn({ cert: name, err: (err as Error).message }, 'stored certificate cannot be parsed; it will be replaced');
      if (prev?.serial === null) return false;
      await this.put({ ...missingRecord(name, bundle.names, this.now), backoff: prev?.backoff ?? null, order: prev?.order ?? null });
      return true;
    }
    if (prev && prev.serial === info.serialHex && prev.renewAt !== null) return false;
    await this.put(recordFromCertificate(name, info, prev, this.opts.policy(), this.now, rsa));
    if (prev) this.opts.log.info({ cert: name, serial: info.serialHex }, 'index record rebuilt from the stored certificate');
    return true;
  }

  /** Re-reads name's record from storage (another instance may have changed it). */
  async refresh(name: string): Promise<IndexRecord | undefined> {
    const raw = await this.opts.storage.get(keys.index(name));
    const record = raw === null ? null : parseIndexRecord(raw);
    if (record && record.name === name && !this.dirty.has(name)) {
      this.records.set(name, record);
      this.emit('change', record);
    }
    return this.records.get(name);
  }

  /** Makes sure a record exists for a certificate someone asked for (config, CLI, on-demand). */
  async ensure(name: string, names: string[]): Promise<IndexRecord> {
    const existing = this.records.get(name);
    if (existing) return existing;
    const record = missingRecord(name, names, this.now);
    await this.put(record);
    return record;
  }

  /** Stores a changed record: in memory at once, in storage now or on the next flush. */
  async put(record: IndexRecord): Promise<void> {
    const stamped = { ...record, updatedAt: this.now.toISOString() };
    this.records.set(record.name, stamped);
    this.emit('change', stamped);
    await this.persist(record.name);
  }

  /** Applies a change to name's record (creating it when missing). */
  async update(name: string, names: string[], change: (r: IndexRecord) => IndexRecord): Promise<IndexRecord> {
    const current = this.records.get(name) ?? missingRecord(name, names, this.now);
    const next = change(current);
    await this.put(next);
    return next;
  }

  async setAri(name: string, ari: AriRecord | null): Promise<IndexRecord | undefined> {
    const current = this.records.get(name);
    if (!current) return undefined;
    const next = withRenewalTime({ ...current, ari }, this.opts.policy(), this.now);
    await this.put(next);
    return next;
  }

  /** Recomputes every renewal time (renew_threshold_days changed on reload). */
  async replan(): Promise<void> {
    await eachLimited(this.all(), IO_WIDTH, async (r) => {
      const next = withRenewalTime(r, this.opts.policy(), this.now);
      if (next.renewAt !== r.renewAt) await this.put(next);
    });
  }

  async remove(name: string): Promise<void> {
    this.records.delete(name);
    this.dirty.delete(name);
    this.emit('remove', name);
    await this.opts.storage.delete(keys.index(name));
  }

  /**
   * Writes records that could not be written before and waits for writes in
   * flight (a stop must not cut one short); true when none is left.
   */
  async flush(): Promise<boolean> {
    await Promise.allSettled([...this.writing]);
    await eachLimited([...this.dirty], IO_WIDTH, (name) => this.persist(name));
    return this.dirty.size === 0;
  }

  /** The last flush before the store closes: writes after it stay in memory (a stop must not leave a write half done). */
  async close(): Promise<void> {
    await this.flush().catch(() => {});
    this.closed = true;
  }

  private persist(name: string): Promise<void> {
    const record = this.records.get(name);
    if (!record) return Promise.resolve();
    if (this.closed) {
      this.dirty.add(name);
      return Promise.resolve();
    }
    const write = this.opts.storage.set(keys.index(name), JSON.stringify(record)).then(() => {
      this.dirty.delete(name);
    }, (err: unknown) => {
      this.dirty.add(name);
      throw err;
    });
    this.writing.add(write);
    void write.catch(() => {}).finally(() => this.writing.delete(write));
    return write;
  }

  /** Backoff and ARI records from before the index, folded into it once. */
  private async foldLegacy(): Promise<void> {
    const { storage } = this.opts;
    const legacy = [
      ...(await storage.list(keys.backoffPrefix)).map((k) => ({ key: k, name: nameAfter(k, keys.backoffPrefix), kind: 'backoff' as const })),
      ...(await storage.list(keys.ariPrefix)).map((k) => ({ key: k, name: nameAfter(k.replace(/\.json$/, ''), keys.ariPrefix), kind: 'ari' as const })),
    ].filter((entry): entry is typeof entry & { name: string } => entry.name !== null);
    await eachLimited(legacy, IO_WIDTH, async ({ key, name, kind }) => {
      const raw = await storage.get(key);
      let value: unknown = null;
      try {
        value = raw === null ? null : JSON.parse(raw);
      } catch {
        // unreadable: dropped
      }
      const current = this.records.get(name) ?? missingRecord(name, [name], this.now);
      if (kind === 'backoff') await this.put({ ...current, backoff: current.backoff ?? parseBackoffRecord(value) });
      else await this.put({ ...current, ari: current.ari ?? (value as AriRecord | null) });
      await storage.delete(key);
    });
  }
}

/** The certificate name a per-name key stands for (keys.ts), or null for a key no name maps to. */
function nameAfter(key: string, prefix: string): string | null {
  try {
    return nameOfSegment(key.slice(prefix.length));
  } catch {
    return null;
  }
}
