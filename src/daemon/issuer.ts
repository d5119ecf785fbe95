/**
 * The issuer turns a job (one certificate) into a stored certificate: it
 * joins an identical job already running in this process, refuses a host in
 * failure backoff, takes the certificate's lock in storage (so one instance
 * of several does the work), decides again under the lock whether an order
 * is still needed, runs it, writes the result, records success or failure
 * for the backoff, and emits one event that logs, metrics and the deploy
 * hook listen to.
 */
import { EventEmitter } from 'node:events';
import type { AcmeEngine } from '../acme/client.js';
import { errorKind, type AcmeError } from '../acme/errors.js';
import type { Logger } from '../log.js';
import { clearBackoff, loadBackoff, recordFailure } from '../renewal/backoff-store.js';
import { isBackedOff, type BackoffRecord } from '../renewal/backoff.js';
import { StorageError } from '../storage/errors.js';
import { keys } from '../storage/keys.js';
import { withLock, LockTimeoutError } from '../storage/lock.js';
import type { CertificateBundle, Storage } from '../storage/storage.js';
import type { ChallengeTokens } from '../challenge/tokens.js';
import type { DeployHookRun } from './deploy-hook.js';
import type { ManagedCertificate } from '../config/managed.js';

/** What to do, decided under the certificate's lock with the freshest stored copy. */
export interface IssuePlan {
  issue: boolean;
  /** ARI certID of the certificate being replaced. */
  replaces?: string;
}

export interface IssueOptions {
  /** Order even when a valid certificate is stored, and even during backoff. */
  force?: boolean;
  /** Replaces the default "issue when missing or not covering the names" check. */
  plan?: (stored: CertificateBundle | null) => Promise<IssuePlan>;
}

export interface IssueOutcome {
  name: string;
  names: string[];
  notBefore: string;
  notAfter: string;
  location: string;
  /** False when a stored certificate already covered the names. */
  issued: boolean;
  requests: number;
  durationMs: number;
  deployHook?: Pick<DeployHookRun, 'ok' | 'exitCode' | 'timedOut' | 'output'>;
}

export class BackedOffError extends Error {
  readonly code = 'BACKED_OFF';
  constructor(readonly name: string, readonly record: BackoffRecord) {
    super(`${name} is in failure backoff after ${record.failures} failed attempt${record.failures > 1 ? 's' : ''} `
      + `(last: ${record.lastError}); next try after ${record.until}; use --force to try now`);
  }
}

/** The ACME account could not be loaded or registered: nothing about any one host. */
export class AccountUnavailableError extends Error {
  readonly code = 'ACCOUNT_UNAVAILABLE';
  constructor(readonly cause: Error) {
    super(cause.message);
  }
}

export class ShuttingDownError extends Error {
  readonly code = 'SHUTTING_DOWN';
  constructor() {
    super('acmed is shutting down; no new orders are taken');
  }
}

export interface IssuerEvents {
  issued: [IssueOutcome];
  failed: [{ name: string; names: string[]; error: Error; kind: string }];
}

export interface IssuerOptions {
  engine: () => Promise<AcmeEngine>;
  storage: Storage;
  tokens: ChallengeTokens;
  log: Logger;
  keyType: () => { keyType: 'ecc' | 'rsa'; rsaBits: number };
  failBackoffMinutes: () => number;
  lockTtlMs: () => number;
  /** Called when an order failed because the store did not answer; the host is not to blame. */
  onStorageError?: (error: Error) => void;
  /** Runs after a new certificate is stored (the deploy hook); its result is reported, never fatal. */
  afterIssue?: (outcome: IssueOutcome) => Promise<DeployHookRun | undefined>;
  now?: () => number;
}

export class Issuer extends EventEmitter<IssuerEvents> {
  private readonly inflight = new Map<string, Promise<IssueOutcome>>();
  private readonly shutdown = new AbortController();
  private accepting = true;

  constructor(private readonly opts: IssuerOptions) {
    super();
  }

  /** Certificates whose order is running now. */
  get running(): string[] {
    return [...this.inflight.keys()];
  }

  issue(cert: ManagedCertificate, options: IssueOptions = {}): Promise<IssueOutcome> {
    if (!this.accepting) return Promise.reject(new ShuttingDownError());
    const running = this.inflight.get(cert.name);
    if (running) return running;
    const job = this.run(cert, options).finally(() => this.inflight.delete(cert.name));
    this.inflight.set(cert.name, job);
    return job;
  }

  /** Refuses new jobs; running ones go on. */
  stopAccepting(): void {
    this.accepting = false;
  }

  /** Abandons running orders at their next step; their locks are released and nothing partial is written. */
  abortAll(): void {
    this.accepting = false;
    this.shutdown.abort(new ShuttingDownError());
  }

  get stopping(): boolean {
    return !this.accepting;
  }

  /** Resolves once every running job has settled. */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.inflight.values()]);
  }

  private async run(cert: ManagedCertificate, options: IssueOptions): Promise<IssueOutcome> {
    const { storage, log } = this.opts;
    const now = this.opts.now ?? Date.now;
    const started = Date.now();
    try {
      if (!options.force) {
        const backoff = await loadBackoff(storage, cert.name);
        if (backoff && isBackedOff(backoff, new Date(now()))) throw new BackedOffError(cert.name, backoff);
      }
      const outcome = await withLock(storage, keys.lock(cert.name), async () => {
        // Another instance (or an earlier run) may have done the work meanwhile.
        const stored = await storage.getCertificate(cert.name);
        const plan = options.plan ? await options.plan(stored) : defaultPlan(cert, stored, options, now());
        if (!plan.issue) return this.outcome(cert, stored!, false, 0, started);
        const engine = await this.opts.engine().catch((err: Error) => {
          throw err instanceof StorageError ? err : new AccountUnavailableError(err);
        });
        const issued = await engine.issue({
          names: cert.names, ...this.opts.keyType(), replaces: plan.replaces, signal: this.shutdown.signal,
        }, this.opts.tokens);
        const bundle: CertificateBundle = {
          name: cert.name,
          names: cert.names,
          cert: issued.cert,
          chain: issued.chain,
          fullchain: issued.fullchain,
          privkey: issued.privkey,
          notBefore: issued.notBefore.toISOString(),
          notAfter: issued.notAfter.toISOString(),
        };
        await storage.putCertificate(bundle);
        return this.outcome(cert, bundle, true, issued.requests, started);
      }, { signal: this.shutdown.signal, ttlMs: this.opts.lockTtlMs() });
      if (!outcome.issued) return outcome;
      await clearBackoff(storage, cert.name).catch((err: Error) => log.warn({ cert: cert.name, err: err.message }, 'could not clear backoff record'));
      log.info({ cert: cert.name, names: cert.names, notAfter: outcome.notAfter, requests: outcome.requests, ms: outcome.durationMs }, 'certificate issued');
      const hook = await this.opts.afterIssue?.(outcome);
      if (hook) outcome.deployHook = { ok: hook.ok, exitCode: hook.exitCode, timedOut: hook.timedOut, output: hook.output };
      this.emit('issued', outcome);
      return outcome;
    } catch (err) {
      await this.recordFailure(cert, err as Error);
      throw err;
    }
  }

  private async recordFailure(cert: ManagedCertificate, error: Error): Promise<void> {
    const { storage, log } = this.opts;
    const kind = errorKind(error);
    // Refusals, shutdown, a busy lock, an account that cannot be loaded and a store that is down say nothing about the host: no backoff for them.
    const storageDown = error instanceof StorageError;
    if (storageDown) this.opts.onStorageError?.(error);
    const countsAsFailure = !(error instanceof BackedOffError || error instanceof ShuttingDownError
      || error instanceof LockTimeoutError || error instanceof AccountUnavailableError || storageDown || this.shutdown.signal.aborted);
    if (countsAsFailure) {
      const now = this.opts.now ?? Date.now;
      try {
        const record = await recordFailure(storage, cert.name, {
          at: new Date(now()), kind, message: error.message, retryAfterMs: (error as AcmeError).retryAfterMs,
        }, this.opts.failBackoffMinutes());
        log.warn({ cert: cert.name, names: cert.names, kind, err: error.message, failures: record.failures, backoffUntil: record.until }, 'certificate order failed');
      } catch (storeErr) {
        log.warn({ cert: cert.name, kind, err: error.message, storeErr: (storeErr as Error).message }, 'certificate order failed; backoff not recorded');
      }
    } else {
      log.info({ cert: cert.name, reason: error.message }, 'certificate order not attempted');
    }
    this.emit('failed', { name: cert.name, names: cert.names, error, kind });
  }

  private outcome(cert: ManagedCertificate, bundle: CertificateBundle, issued: boolean, requests: number, started: number): IssueOutcome {
    return {
      name: cert.name,
      names: bundle.names,
      notBefore: bundle.notBefore,
      notAfter: bundle.notAfter,
      location: this.opts.storage.location(cert.name),
      issued,
      requests,
      durationMs: Date.now() - started,
    };
  }
}

function defaultPlan(cert: ManagedCertificate, stored: CertificateBundle | null, options: IssueOptions, now: number): IssuePlan {
  const valid = stored !== null && cert.names.every((n) => stored.names.includes(n)) && Date.parse(stored.notAfter) > now;
  return { issue: options.force === true || !valid };
}
