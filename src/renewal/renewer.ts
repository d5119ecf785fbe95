/**
 * The renewal scheduler. Every managed certificate has a due time in the
 * index (its renewal time, or "now" while it is missing, never before its
 * backoff ends); one DueQueue timer fires for the earliest, and what is due
 * goes to the work queue. After each job the certificate is planned again
 * from the outcome: a new renewal time, its host backoff, the CA's backoff,
 * or a short retry when the store or a lock was the trouble.
 *
 * The daily run (node-cron, at a minute derived from this machine's name so
 * a fleet spreads out) is a reconciliation and a safety net: index against
 * storage, ARI refresh, and a re-plan of everything.
 */
import { hostname } from 'node:os';
import cron, { type ScheduledTask } from 'node-cron';
import type { AcmeEngine } from '../acme/client.js';
import { firstCa } from '../config/ca-list.js';
import type { Config } from '../config/schema.js';
import { certificateForHost, configuredCertificates, isManagedName, managedCertificateNamed, type ManagedCertificate } from '../config/managed.js';
import type { Logger } from '../log.js';
import type { Storage } from '../storage/storage.js';
import { ariNeedsFetch, fetchAri } from './ari-cache.js';
import { isBackedOff } from './backoff.js';
import type { CaBackoffs } from './ca-backoffs.js';
import { DueQueue, realTimers, type Timers } from './due-queue.js';
import { eachLimited } from './each-limited.js';
import { dueTime, isSettled, type IndexRecord } from './index-record.js';
import type { CertificateIndex } from './index.js';
import type { IssueOutcome, JobEvent } from './job.js';
import { cronExpressionFor } from './schedule.js';

export interface RenewerOptions {
  config: () => Config;
  index: CertificateIndex;
  storage: Storage;
  ca: CaBackoffs;
  /** Hands a job to the work queue. */
  submit: (cert: ManagedCertificate, opts?: { force?: boolean }) => Promise<IssueOutcome>;
  /** The engine of a CA, by directory URL. */
  engine: (directoryUrl: string) => Promise<AcmeEngine>;
  log: Logger;
  timers?: Timers;
}

export interface PassResult {
  checked: number;
  renewed: string[];
  failed: { name: string; error: string }[];
  /** Due, but skipped because the host is in failure backoff. */
  backedOff: string[];
  notDue: number;
}

/** Certificates looked at in parallel during a pass. */
const PASS_WIDTH = 16;
/** A job that failed for the store's or a lock's sake is tried again after this. */
const RETRY_AFTER_LOCAL_FAULT_MS = 30_000;

export class Renewer {
  private task?: ScheduledTask;
  private expression?: string;
  private running?: Promise<PassResult>;
  private reconciling?: Promise<number>;
  /** When the index was last checked against every stored certificate; null until the first check ends. */
  reconciledAt: string | null = null;
  private readonly stopping = new AbortController();
  readonly due: DueQueue;
  private readonly timers: Timers;

  constructor(private readonly opts: RenewerOptions) {
    this.timers = opts.timers ?? realTimers;
    this.due = new DueQueue((name) => this.onDue(name), this.timers);
    opts.index.on('change', (record) => this.plan(record));
    opts.index.on('remove', (name) => this.due.remove(name));
  }

  private get now(): Date {
    return new Date(this.timers.now());
  }

  /** The cron expression in force: renewal_schedule, or the per-machine daily minute. */
  scheduleExpression(): string {
    return this.opts.config().renewal_schedule ?? cronExpressionFor(hostname());
  }

  /** (Re)starts the daily reconciliation and plans every managed certificate. */
  async start(): Promise<void> {
    const expression = this.scheduleExpression();
    if (!this.task || expression !== this.expression) {
      void this.task?.destroy();
      this.expression = expression;
      this.task = cron.schedule(expression, () => this.scheduledPass(), { name: 'acmed-renewal', noOverlap: true });
      this.opts.log.info({ schedule: expression }, 'reconciliation schedule set');
    }
    await this.planAll();
  }

  async stop(): Promise<void> {
    this.due.stop();
    await this.task?.destroy();
    this.task = undefined;
    await this.running?.catch(() => {});
    this.stopping.abort(); // a reconciliation reading 100,000 PEMs stops at the next one
    await this.reconciling?.catch(() => {});
  }

  /** When the named certificate is due for renewal, from its index record. */
  renewAt(name: string): Date | undefined {
    const at = this.opts.index.get(name)?.renewAt;
    return at ? new Date(at) : undefined;
  }

  /** Gives every managed certificate a record (missing ones: due now) and a place in the queue. */
  async planAll(): Promise<void> {
    const config = this.opts.config();
    for (const cert of configuredCertificates(config)) {
      if (!this.opts.index.get(cert.name)) await this.opts.index.ensure(cert.name, cert.names).catch(() => this.due.schedule(cert.name, this.now));
    }
    for (const record of this.opts.index.all()) this.plan(record);
  }

  /** Plans one certificate from its record; names no longer managed are dropped. */
  plan(record: IndexRecord): void {
    if (!this.isManaged(record.name)) {
      this.due.remove(record.name);
      return;
    }
    let at = dueTime(record, this.now);
    // A stored certificate whose ARI answer is due to be refreshed wakes for that too.
    if (record.ari && isSettled(record, this.now)) {
      at = new Date(Math.min(at.getTime(), Date.parse(record.ari.fetchAfter)));
    }
    // Nothing can be ordered before the CA's backoff ends.
    const caUntil = this.opts.ca.backedOff ? Date.parse(this.opts.ca.state().until ?? '') : NaN;
    if (!Number.isNaN(caUntil)) at = new Date(Math.max(at.getTime(), caUntil));
    this.due.schedule(record.name, at);
  }

  /** Plans a certificate again after its job: outcome first, then its record. */
  afterJob(event: JobEvent): void {
    const name = event.type === 'issued' ? event.outcome.name : event.name;
    if (event.type === 'skipped' && event.reason === 'shutdown') return;
    if (event.type === 'issued') {
      void this.refreshAri(name); // a new certificate: ask for its window now
      return; // the index change plans it
    }
    if (event.type === 'failed') {
      const retryAt = this.retryTime(event.blame);
      if (retryAt === null) return;
      if (event.blame !== 'host') {
        // Whoever asked first (config, CLI, on-demand), the name is tried again when the fault clears.
        if (!this.opts.index.get(name)) void this.opts.index.ensure(name, event.names).catch(() => {});
        this.due.schedule(name, retryAt);
        return;
      }
    }
    const record = this.opts.index.get(name);
    if (record) this.plan(record);
  }

  /** Store or CA trouble: try again later (the store's 'up' and the CA's 'up' also kick planAll). */
  private retryTime(blame: string): Date | null {
    const now = this.now.getTime();
    switch (blame) {
      case 'shutdown': case 'config': return null; // config: a reload plans it again
      case 'ca': return new Date(Date.parse(this.opts.ca.state().until ?? '') || now + 5_000);
      case 'store': case 'lock': case 'account': return new Date(now + RETRY_AFTER_LOCAL_FAULT_MS);
      default: return new Date(now);
    }
  }

  private onDue(name: string): void {
    const cert = this.managedCertificate(name);
    if (!cert) return;
    const record = this.opts.index.get(name);
    if (record && isSettled(record, this.now)) {
      void this.refreshAri(name).finally(() => {
        const fresh = this.opts.index.get(name);
        if (fresh) this.plan(fresh);
      });
      return;
    }
    this.opts.submit(cert).catch(() => {}); // the outcome event plans it again
  }

  /** Asks the CA for the certificate's ARI window when it offers ARI and the last answer is stale. */
  async refreshAri(name: string): Promise<void> {
    const record = this.opts.index.get(name);
    if (!record?.serial) return;
    // Asked of the CA that issued it: only that CA knows its renewal window.
    const issuedBy = record.ca ?? firstCa(this.opts.config());
    if (this.opts.ca.of(issuedBy).backedOff) return;
    // The record's ARI answer is always about the stored certificate (a new serial drops it): no PEM read while it is fresh.
    if (record.ari && Date.parse(record.ari.fetchAfter) > this.now.getTime()) return;
    try {
      const engine = await this.opts.engine(issuedBy);
      if (!(await engine.offersRenewalInfo())) return; // a CA without ARI: nothing to read or ask
      const bundle = await this.opts.storage.getCertificate(name);
      if (!bundle || !ariNeedsFetch(record.ari, bundle.cert, this.now)) return;
      const ari = await fetchAri(bundle.cert, record.ari, { engine, log: this.opts.log, now: this.now });
      if (JSON.stringify(ari) !== JSON.stringify(record.ari)) await this.opts.index.setAri(name, ari);
    } catch (err) {
      this.opts.log.debug({ cert: name, err: (err as Error).message }, 'ARI refresh skipped');
    }
  }

  /** Runs a pass now (acmed renew, PATCH /acme, the daily run); concurrent callers share one. */
  pass(opts: { only?: string; force?: boolean } = {}): Promise<PassResult> {
    if (opts.only || opts.force) return this.runPass(opts);
    this.running ??= this.runPass({}).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** The daily run: the index checked against storage (every PEM read, in the background), then a pass. */
  private async scheduledPass(): Promise<void> {
    try {
      const rebuilt = await this.reconcile();
      const result = await this.pass();
      this.opts.log.info({ ...result, rebuilt, renewed: result.renewed.length, failed: result.failed.length, backedOff: result.backedOff.length }, 'reconciliation done');
    } catch (err) {
      this.opts.log.error({ err: (err as Error).message }, 'reconciliation failed');
    }
  }

  /**
   * Index against storage, and a fresh ARI answer for certificates whose
   * answer is missing or stale. Concurrent callers share one.
   */
  reconcile(): Promise<number> {
    this.reconciling ??= (async () => {
      const { signal } = this.stopping;
      const rebuilt = await this.opts.index.reconcile(signal);
      // ARI answers missing (the CA was down at issuance) or stale (a wake that a clock change skipped).
      const nowMs = this.now.getTime();
      const ariDue = this.opts.index.all()
        .filter((r) => r.serial !== null && (r.ari === null || Date.parse(r.ari.fetchAfter) <= nowMs)).map((r) => r.name);
      await eachLimited(ariDue, PASS_WIDTH, async (name) => {
        if (!signal.aborted) await this.refreshAri(name);
      });
      if (!signal.aborted) this.reconciledAt = this.now.toISOString();
      return rebuilt;
    })().finally(() => {
      this.reconciling = undefined;
    });
    return this.reconciling;
  }

  /**
   * A pass decides from the index alone (no PEM is read): what is settled is
   * planned, what is due or missing goes to the work queue.
   */
  private async runPass(opts: { only?: string; force?: boolean }): Promise<PassResult> {
    const result: PassResult = { checked: 0, renewed: [], failed: [], backedOff: [], notDue: 0 };
    const config = this.opts.config();
    const names = opts.only ? [certificateForHost(config, opts.only).name] : this.managedNames();
    const now = this.now;
    const due: ManagedCertificate[] = [];
    for (const name of names) {
      result.checked++;
      const record = this.opts.index.get(name);
      if (record && !opts.force && isSettled(record, now)) {
        result.notDue++;
      } else if (!opts.force && record?.backoff && isBackedOff(record.backoff, now)) {
        result.backedOff.push(name);
      } else {
        due.push(opts.only ? certificateForHost(config, opts.only) : managedCertificateNamed(config, name)!);
      }
    }
    await Promise.all(due.map(async (cert) => {
      try {
        const outcome = await this.opts.submit(cert, { force: opts.force });
        if (outcome.issued) result.renewed.push(cert.name);
        else result.notDue++;
      } catch (err) {
        if ((err as { code?: string }).code === 'BACKED_OFF') result.backedOff.push(cert.name);
        else result.failed.push({ name: cert.name, error: (err as Error).message });
      }
    }));
    if (!opts.only) await this.planAll();
    return result;
  }

  /** Names of the configured certificates, plus indexed ones still allowed by `domains` (on-demand certificates). */
  private managedNames(): string[] {
    const config = this.opts.config();
    const configured = configuredCertificates(config).map((c) => c.name);
    const seen = new Set(configured);
    const names = [...configured];
    for (const record of this.opts.index.all()) {
      if (!seen.has(record.name) && isManagedName(config, record.name)) names.push(record.name);
    }
    return names;
  }

  private managedCertificate(name: string): ManagedCertificate | undefined {
    return managedCertificateNamed(this.opts.config(), name);
  }

  private isManaged(name: string): boolean {
    return isManagedName(this.opts.config(), name);
  }
}
