/**
 * The renewal loop. A pass looks at every managed certificate, asks ARI when
 * the CA offers it, decides with decideRenewal, and hands what is due to the
 * issuer; one certificate's failure never stops the others. Passes run on a
 * node-cron schedule (by default once a day at a minute derived from this
 * machine's name, so a fleet spreads out), and the loop also wakes early for
 * a certificate due before the next daily run (short-lived certificates).
 */
import { hostname } from 'node:os';
import cron, { type ScheduledTask } from 'node-cron';
import type { AcmeEngine } from '../acme/client.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { StorageError } from '../storage/errors.js';
import type { CertificateBundle, Storage } from '../storage/storage.js';
import { certificateForHost, configuredCertificates, type ManagedCertificate } from '../config/managed.js';
import { BackedOffError, type Issuer } from '../daemon/issuer.js';
import { lookupAri } from './ari-cache.js';
import { decideRenewal, type RenewalDecision } from './decision.js';
import { cronExpressionFor, nextWake } from './schedule.js';

export interface RenewerOptions {
  config: () => Config;
  storage: Storage;
  issuer: Issuer;
  engine: () => Promise<AcmeEngine>;
  log: Logger;
  now?: () => number;
  /** The store did not answer during a pass; the daemon retries when it is back. */
  onStorageError?: (error: Error) => void;
}

export interface PassResult {
  checked: number;
  renewed: string[];
  failed: { name: string; error: string }[];
  /** Due, but skipped because the host is in failure backoff. */
  backedOff: string[];
  notDue: number;
}

/** setTimeout's longest delay; a later wake is left to the daily run. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class Renewer {
  private task?: ScheduledTask;
  private wakeTimer?: NodeJS.Timeout;
  private expression?: string;
  private running?: Promise<PassResult>;
  private readonly dueTimes = new Map<string, Date>();

  constructor(private readonly opts: RenewerOptions) {}

  private get now(): Date {
    return new Date((this.opts.now ?? Date.now)());
  }

  /** The cron expression in force: renewal_schedule, or the per-machine daily minute. */
  scheduleExpression(): string {
    return this.opts.config().renewal_schedule ?? cronExpressionFor(hostname());
  }

  /** (Re)starts the schedule; a changed renewal_schedule takes effect here. */
  start(): void {
    const expression = this.scheduleExpression();
    if (this.task && expression === this.expression) return;
    void this.task?.destroy();
    this.expression = expression;
    this.task = cron.schedule(expression, () => this.scheduledPass(), { name: 'acmed-renewal', noOverlap: true });
    this.opts.log.info({ schedule: expression }, 'renewal schedule set');
  }

  async stop(): Promise<void> {
    clearTimeout(this.wakeTimer);
    await this.task?.destroy();
    this.task = undefined;
    await this.running?.catch(() => {});
  }

  /** When the named certificate is next due, as of the last pass (for status). */
  dueAt(name: string): Date | undefined {
    return this.dueTimes.get(name);
  }

  /** Runs a pass now; concurrent callers share one pass (unless they ask for one host). */
  pass(opts: { only?: string; force?: boolean } = {}): Promise<PassResult> {
    if (opts.only || opts.force) return this.runPass(opts);
    this.running ??= this.runPass({}).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private scheduledPass(): Promise<void> {
    return this.pass().then((result) => {
      this.opts.log.info({ ...result, renewed: result.renewed.length, failed: result.failed.length, backedOff: result.backedOff.length }, 'renewal pass done');
    }, (err: Error) => {
      this.opts.log.error({ err: err.message }, 'renewal pass failed');
    });
  }

  private async runPass(opts: { only?: string; force?: boolean }): Promise<PassResult> {
    const result: PassResult = { checked: 0, renewed: [], failed: [], backedOff: [], notDue: 0 };
    const certificates = await this.managedCertificates(opts.only).catch((err: Error) => {
      if (err instanceof StorageError) this.opts.onStorageError?.(err);
      throw err;
    });
    for (const cert of certificates) {
      if (this.opts.issuer.stopping) break;
      result.checked++;
      try {
        const stored = await this.opts.storage.getCertificate(cert.name);
        const decision = stored ? await this.decide(cert, stored) : undefined;
        if (decision) this.dueTimes.set(cert.name, decision.at);
        if (stored && decision && !decision.renew && !opts.force) {
          result.notDue++;
          continue;
        }
        const outcome = await this.opts.issuer.issue(cert, {
          force: opts.force,
          // Decide again under the lock: another instance may have renewed it since.
          plan: async (fresh) => {
            if (!fresh || opts.force) return { issue: true, replaces: decision?.replaces };
            const again = await this.decide(cert, fresh);
            return { issue: again.renew || !cert.names.every((n) => fresh.names.includes(n)), replaces: again.replaces };
          },
        });
        if (outcome.issued) {
          result.renewed.push(cert.name);
          const renewed = await this.opts.storage.getCertificate(cert.name);
          if (renewed) this.dueTimes.set(cert.name, (await this.decide(cert, renewed)).at);
        } else {
          result.notDue++;
        }
      } catch (err) {
        if (err instanceof BackedOffError) {
          result.backedOff.push(cert.name);
          this.dueTimes.set(cert.name, new Date(err.record.until)); // wake when the backoff ends
        } else {
          if (err instanceof StorageError) this.opts.onStorageError?.(err);
          result.failed.push({ name: cert.name, error: (err as Error).message });
        }
      }
    }
    this.scheduleWake();
    return result;
  }

  /** Configured certificates, plus stored ones still allowed by `domains` (on-demand certificates). */
  private async managedCertificates(only?: string): Promise<ManagedCertificate[]> {
    const config = this.opts.config();
    if (only) return [certificateForHost(config, only)];
    const byName = new Map(configuredCertificates(config).map((c) => [c.name, c]));
    for (const name of await this.opts.storage.listCertificates()) {
      if (byName.has(name)) continue;
      try {
        const cert = certificateForHost(config, name);
        if (cert.name === name) byName.set(name, cert);
      } catch {
        // removed from the config: its files stay, it is no longer renewed
      }
    }
    return [...byName.values()];
  }

  private async decide(cert: ManagedCertificate, stored: CertificateBundle): Promise<RenewalDecision & { replaces?: string }> {
    const now = this.now;
    let ari = null;
    try {
      ari = await lookupAri(stored, { storage: this.opts.storage, engine: await this.opts.engine(), log: this.opts.log, now });
    } catch {
      // no engine (CA unreachable): decide on the lifetime rules alone
    }
    const decision = decideRenewal({
      notBefore: new Date(stored.notBefore),
      notAfter: new Date(stored.notAfter),
      ari: ari?.choice ?? null,
      renewThresholdDays: this.opts.config().renew_threshold_days,
      now,
    });
    return { ...decision, replaces: ari?.certId };
  }

  /** Wakes for the earliest certificate due before the next scheduled run. */
  private scheduleWake(): void {
    clearTimeout(this.wakeTimer);
    const now = this.now;
    const nextRun = this.task?.getNextRun() ?? new Date(now.getTime() + 24 * 3_600_000);
    const wake = nextWake([...this.dueTimes.values()], nextRun, now);
    if (!wake) return;
    const delay = Math.min(Math.max(wake.getTime() - now.getTime(), 1_000), MAX_TIMER_MS);
    this.wakeTimer = setTimeout(() => void this.scheduledPass(), delay);
    this.opts.log.debug({ wakeAt: wake.toISOString() }, 'renewal wake set before the next scheduled run');
  }
}
