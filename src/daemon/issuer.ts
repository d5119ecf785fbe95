/**
 * The issuer turns a job (one certificate) into a stored certificate: it
 * refuses a host in failure backoff, takes the certificate's lock in storage
 * (so one instance of several does the work), re-reads the stored
 * certificate and its index record under the lock, decides from that data
 * whether an order is needed, runs it (resuming an order an earlier run left),
 * checks it still holds the lock, writes the result, and emits one outcome
 * event that the log, metrics, the index, the scheduler and the deploy hook
 * listen to.
 *
 * A certificate the CA issued is never thrown away: if the store refuses it,
 * it goes to the spool and the next job for that name stores it without a
 * new order.
 */
import { createPrivateKey } from 'node:crypto';
import { EventEmitter, setMaxListeners } from 'node:events';
import type { AcmeEngine, IssuedCertificate, PendingOrder } from '../acme/client.js';
import { errorKind, isCaFault, AccountUnavailableError, AcmeError, AcmeProblemError, ProfileNotOfferedError } from '../acme/errors.js';
import { AcmedError, retryAfterSeconds } from '../errors.js';
import type { ChallengeSolver } from '../challenge/solver.js';
import type { ManagedCertificate } from '../config/managed.js';
import type { OrderSettings } from '../config/order-settings.js';
import type { FailureBlame, IssueJob, IssueOutcome, JobEvent, JobProgress } from '../renewal/job.js';
import type { Logger } from '../log.js';
import { isBackedOff, type BackoffRecord } from '../renewal/backoff.js';
import type { CaBackoffs } from '../renewal/ca-backoffs.js';
import { orderWithFallback, type CaFallback } from './ca-fallback.js';
import { ariCertId } from '../renewal/ari.js';
import { isRenewalDue } from '../renewal/index-record.js';
import { readCertificateInfo } from '../certificate-info.js';
import type { CertificateIndex } from '../renewal/index.js';
import { isStoreFault } from '../storage/errors.js';
import { keys } from '../storage/keys.js';
import { withLock, LockLostError, LockTimeoutError, type HeldLock } from '../storage/lock.js';
import type { CertificateSpool } from '../storage/spool.js';
import type { CertificateBundle, CertificateVariant, Storage } from '../storage/storage.js';

export type { IssueOutcome } from '../renewal/job.js';

export class BackedOffError extends AcmedError {
  override readonly code = 'BACKED_OFF';
  override get status(): number {
    return 409;
  }
  constructor(readonly name: string, readonly record: BackoffRecord) {
    super(`${name} is in failure backoff after ${record.failures} failed attempt${record.failures > 1 ? 's' : ''} `
      + `(last: ${record.lastError}); next try after ${record.until}; use --force to try now`);
  }

  override get kind(): string {
    return 'backoff';
  }

  override apiBody(): Record<string, unknown> {
    return { ...super.apiBody(), backoff_until: this.record.until, failures: this.record.failures };
  }

  override headers(): Record<string, string> {
    return { 'retry-after': String(retryAfterSeconds(this.record.until)) };
  }
}

export class ShuttingDownError extends AcmedError {
  override readonly code = 'SHUTTING_DOWN';
  override get status(): number {
    return 503;
  }
  override get kind(): string {
    return 'shutting_down';
  }

  constructor(message = 'acmed is shutting down; no new orders are taken') {
    super(message);
  }
}

/** A running order that shutdown cut short; the next start resumes it. */
export class OrderAbandonedError extends ShuttingDownError {
  constructor(readonly name: string) {
    super(`acmed is shutting down; the order for ${name} was abandoned and will be retried at the next start`);
  }
}

/** The CA issued the certificate but the store refused it; it is held in the spool. */
export class CertificateHeldError extends AcmedError {
  override readonly code = 'CERTIFICATE_HELD';
  override get status(): number {
    return 503;
  }
  override get kind(): string {
    return 'store';
  }

  constructor(readonly name: string, readonly cause: Error) {
    super(`the certificate for ${name} was issued but could not be stored (${cause.message}); `
      + 'it is held and will be stored as soon as the store accepts it, with no new order');
  }
}

export interface IssuerOptions {
  /** The engine (account, connection) of one CA, by directory URL. */
  engine: (directoryUrl: string) => Promise<AcmeEngine>;
  /** The CAs to order from, in fallback order (read at each order, so a reload applies). */
  cas: () => string[];
  storage: Storage;
  index: CertificateIndex;
  spool: CertificateSpool;
  ca: CaBackoffs;
  /** The solver for the certificate's challenge type (http-01 tokens, dns-01 records). */
  solver: (cert: ManagedCertificate) => ChallengeSolver;
  log: Logger;
  /** How this certificate is ordered (key, profile, chain), read at each order so a reload applies. */
  settings: (cert: ManagedCertificate) => OrderSettings;
  lockTtlMs: () => number;
  now?: () => number;
  /** Runs before an order is placed (preflight_check); throws to fail the job without one. */
  preflight?: (cert: ManagedCertificate) => Promise<void>;
  /** Runs right before each order (the Kubernetes challenge Ingress is brought up to date there). */
  beforeOrder?: (cert: ManagedCertificate) => Promise<void>;
}

export class Issuer extends EventEmitter<{ outcome: [JobEvent]; progress: [JobProgress]; fallback: [CaFallback] }> {
  private readonly shutdown = new AbortController();
  private accepting = true;

  constructor(private readonly opts: IssuerOptions) {
    super();
    // Each `acmed issue` on a terminal listens to 'progress' while it waits; 300 at once are normal.
    this.setMaxListeners(0);
    // Likewise every job holding a lock or waiting out a CA's backoff listens to the shutdown
    // signal (and removes its listener when done): 20 certificates queued in an outage are normal.
    setMaxListeners(0, this.shutdown.signal);
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

  private get now(): number {
    return (this.opts.now ?? Date.now)();
  }

  /** Runs one job; resolves with what was stored (or found valid), rejects with a typed error. */
  async run(job: IssueJob): Promise<IssueOutcome> {
    const { cert } = job;
    if (!this.accepting) {
      const error = new ShuttingDownError();
      this.emit('outcome', { type: 'skipped', name: cert.name, names: cert.names, reason: 'shutdown', error });
      throw error;
    }
    const record = this.opts.index.get(cert.name);
    if (!job.force && record?.backoff && isBackedOff(record.backoff, new Date(this.now))) {
      const error = new BackedOffError(cert.name, record.backoff);
      this.emit('outcome', { type: 'skipped', name: cert.name, names: cert.names, reason: 'backoff', error });
      throw error;
    }
    const started = Date.now();
    const attempt = { ordered: false };
    try {
      const result = await withLock(this.opts.storage, keys.lock(cert.name), (lock) => this.underLock(job, lock, started, attempt), {
        signal: this.shutdown.signal, ttlMs: this.opts.lockTtlMs(),
      });
      this.emit('outcome', result);
      return result.outcome!;
    } catch (err) {
      throw this.failed(cert, err as Error, attempt.ordered);
    }
  }

  private async underLock(
    job: IssueJob, lock: HeldLock, started: number, attempt: { ordered: boolean },
  ): Promise<Extract<JobEvent, { type: 'issued' | 'skipped' }>> {
    const { storage, index, spool } = this.opts;
    const { cert } = job;
    const signal = AbortSignal.any([this.shutdown.signal, lock.signal]);
    const step = (name: JobProgress['step']) => this.emit('progress', { name: cert.name, step: name, elapsedMs: Date.now() - started });
    step('locked');
    // Another instance (or an earlier run) may have done the work meanwhile: decide on fresh data.
    await index.refresh(cert.name);
    const stored = await storage.getCertificate(cert.name);
    await index.syncWith(cert.name, stored);
    const record = index.get(cert.name);
    const covers = (b: CertificateBundle) => cert.names.every((n) => b.names.includes(n));

    const held = spool.get(cert.name);
    if (held && covers(held) && Date.parse(held.notAfter) > this.now && (!stored || Date.parse(held.notAfter) > Date.parse(stored.notAfter))) {
      await this.store(held, lock);
      return this.issuedEvent(cert, held, { requests: 0, started, fromSpool: true });
    }
    const settings = this.opts.settings(cert);
    // Adding or dropping the RSA certificate beside the primary one is a change worth an order now.
    const keptTypes = (b: CertificateBundle) => (settings.keyTypes.length === 2) === Boolean(b.rsa);
    if (!job.force && stored && covers(stored) && keptTypes(stored) && record && !isRenewalDue(record, new Date(this.now))) {
      return { type: 'skipped', name: cert.name, names: cert.names, reason: 'valid', outcome: this.outcome(cert, stored, false, 0, started) };
    }
    if (!job.force && record?.backoff && isBackedOff(record.backoff, new Date(this.now))) {
      throw new BackedOffError(cert.name, record.backoff); // recorded by another instance meanwhile
    }

    await this.opts.preflight?.(cert);
    signal.throwIfAborted();
    // One order per key type, the primary first, for the same names; stored only when all
    // succeeded, so the two certificates are always renewed together (both or neither).
    const replacing = stored && covers(stored) ? stored : undefined;
    const issuedBy = record?.ca ?? this.opts.cas()[0];
    const orderEachKeyType = async (directoryUrl: string): Promise<IssuedCertificate[]> => {
      const issued: IssuedCertificate[] = [];
      for (const keyType of settings.keyTypes) {
        const variantSettings = { ...settings, keyType };
        const previous = replacing && (keyType === settings.keyType ? replacing : replacing.rsa);
        // reuse_key: the variant's own stored key, as long as it is still of the kind the settings ask for.
        const reuseKey = settings.reuseKey && previous && keyMatches(previous.privkey, variantSettings) ? previous.privkey : undefined;
        // ARI `replaces` names the certificate this order succeeds (the index holds the primary's),
        // and only the CA that issued it knows it.
        const replaces = !previous || !record?.ari || directoryUrl !== issuedBy ? undefined
          : keyType === settings.keyType ? record.ari.certId : certIdOrNone(previous.cert);
        signal.throwIfAborted();
        issued.push(await this.order(directoryUrl, job, signal, replaces, attempt, step, { ...variantSettings, reuseKey }));
      }
      return issued;
    };
    // Each order starts at the first CA, so renewals go back to it once it answers again;
    // both key types come from one CA, the one shown as having issued the certificate.
    const { value: issued, ca } = await orderWithFallback(
      this.opts.cas(), orderEachKeyType, (fallback) => this.emit('fallback', fallback), () => this.opts.ca.unavailable(),
    );
    const [primary, rsa] = issued;
    const bundle: CertificateBundle = {
      name: cert.name, names: cert.names, ...variantOf(primary), ...(rsa ? { rsa: variantOf(rsa) } : {}),
    };
    try {
      await this.store(bundle, lock);
    } catch (err) {
      // Paid for: whatever kept it from the store (a fault, a lost lock), the certificate is held, not thrown away.
      await spool.hold(bundle);
      if (isStoreFault(err)) throw new CertificateHeldError(cert.name, err as Error);
      throw err;
    }
    step('stored');
    await this.forgetOrder(cert);
    const propagation = issued.filter((i) => i.propagationMs !== undefined);
    return this.issuedEvent(cert, bundle, {
      requests: issued.reduce((sum, i) => sum + i.requests, 0), started, resumed: issued.some((i) => i.resumed),
      dnsPropagationMs: propagation.length ? propagation.reduce((sum, i) => sum + i.propagationMs!, 0) : undefined, ca,
    });
  }

  /** Asks one CA, through its backoff gate, resuming a pending order placed with it when there is one. */
  private async order(
    directoryUrl: string, job: IssueJob, signal: AbortSignal, replaces: string | undefined, attempt: { ordered: boolean },
    onStep: (step: JobProgress['step']) => void, settings: Omit<OrderSettings, 'reuseKey'> & { reuseKey?: string },
  ): Promise<IssuedCertificate> {
    const { cert } = job;
    const { log } = this.opts;
    const ca = this.opts.ca.of(directoryUrl);
    const { probe } = await ca.admit();
    let answered = false;
    try {
      const engine = await this.opts.engine(directoryUrl).catch((err: Error) => {
        if (isCaFault(err) || isStoreFault(err)) throw err;
        answered = true;
        throw new AccountUnavailableError(err);
      });
      await this.opts.beforeOrder?.(cert);
      attempt.ordered = true;
      const solver = this.opts.solver(cert);
      const resume = await this.pendingOrder(cert, directoryUrl, settings.keyType);
      const issued = await engine.issue({
        names: cert.names, keyType: settings.keyType, rsaBits: settings.rsaBits, curve: settings.curve, reuseKey: settings.reuseKey,
        profile: settings.profile, preferredChain: settings.preferredChain, replaces, signal, resume,
        onOrderPlaced: (pending) => this.rememberOrder(cert, { ...pending, ca: directoryUrl }), onStep,
      }, solver);
      ca.success();
      answered = true;
      return issued;
    } catch (err) {
      if (isCaFault(err)) {
        const state = ca.fault(err as Error);
        if (state.failures === 1 || probe) log.warn({ ca: directoryUrl, err: (err as Error).message, until: state.until }, 'the CA is not answering; orders wait for it');
        answered = true;
      } else if (err instanceof AcmeError) {
        ca.success(); // the CA answered, if only to say no
        answered = true;
      }
      throw err;
    } finally {
      if (probe && !answered) ca.release();
    }
  }

  /** Fencing: the certificate is written only while this job still holds the lock. */
  private async store(bundle: CertificateBundle, lock: HeldLock): Promise<void> {
    lock.signal.throwIfAborted();
    await lock.assertHeld();
    await this.opts.storage.putCertificate(bundle);
    await this.opts.spool.release(bundle.name, bundle.notAfter);
  }

  /**
   * The order an earlier run placed with this CA for this certificate and key type (with two
   * types, the one in flight then; one placed before acmed knew several CAs: with the first).
   */
  private async pendingOrder(cert: ManagedCertificate, directoryUrl: string, keyType: OrderSettings['keyType']): Promise<PendingOrder | undefined> {
    const sameNames = (names: string[]) => names.join(',') === cert.names.join(',');
    const order = this.opts.index.get(cert.name)?.order;
    if (order && !sameNames(order.names)) return undefined;
    const raw = await this.opts.storage.get(keys.order(cert.name)).catch(() => null);
    if (!raw) return undefined;
    try {
      const saved = JSON.parse(raw) as PendingOrder;
      // The index points at the stored order; a crash between the two writes (rememberOrder) leaves
      // the stored one without a pointer, still this certificate's to resume (the CA says if it can be).
      const ours = order ? saved.url === order.url : sameNames(saved.names);
      return ours && saved.keyType === keyType && (saved.ca ?? this.opts.cas()[0]) === directoryUrl ? saved : undefined;
    } catch {
      return undefined;
    }
  }

  /** Keeps the order URL in the index and its key in storage, so a crash resumes it instead of ordering again. */
  private async rememberOrder(cert: ManagedCertificate, pending: PendingOrder): Promise<void> {
    await this.opts.storage.set(keys.order(cert.name), JSON.stringify(pending));
    await this.opts.index.update(cert.name, cert.names, (r) => ({
      ...r, order: { url: pending.url, names: pending.names, placedAt: new Date(this.now).toISOString() },
    }));
  }

  private async forgetOrder(cert: ManagedCertificate): Promise<void> {
    try {
      await this.opts.storage.delete(keys.order(cert.name));
      const record = this.opts.index.get(cert.name);
      if (record?.order) await this.opts.index.put({ ...record, order: null });
    } catch (err) {
      this.opts.log.warn({ cert: cert.name, err: (err as Error).message }, 'could not clear the finished order from the index');
    }
  }

  /** Maps a job's error to its typed form and emits the outcome. */
  private failed(cert: ManagedCertificate, error: Error, ordered: boolean): Error {
    if (this.shutdown.signal.aborted && !(error instanceof CertificateHeldError)) error = new OrderAbandonedError(cert.name);
    const blame = blameOf(error);
    const kind = errorKind(error instanceof AccountUnavailableError ? error.cause : error);
    if (error instanceof BackedOffError) {
      this.emit('outcome', { type: 'skipped', name: cert.name, names: cert.names, reason: 'backoff', error });
    } else {
      this.emit('outcome', {
        type: 'failed', name: cert.name, names: cert.names, error, kind, blame,
        retryAfterMs: (error as AcmeProblemError).retryAfterMs, ordered,
      });
    }
    return error;
  }

  private issuedEvent(
    cert: ManagedCertificate, bundle: CertificateBundle,
    opts: { requests: number; started: number; resumed?: boolean; fromSpool?: boolean; dnsPropagationMs?: number; ca?: string },
  ): Extract<JobEvent, { type: 'issued' }> {
    const outcome = this.outcome(cert, bundle, true, opts.requests, opts.started);
    if (opts.ca) outcome.ca = opts.ca;
    if (opts.resumed) outcome.resumed = true;
    if (opts.dnsPropagationMs !== undefined) outcome.dnsPropagationMs = opts.dnsPropagationMs;
    if (opts.fromSpool) outcome.fromSpool = true;
    return { type: 'issued', outcome, bundle };
  }

  private outcome(cert: ManagedCertificate, bundle: CertificateBundle, issued: boolean, requests: number, started: number): IssueOutcome {
    const keyTypes = [bundle.cert, ...(bundle.rsa ? [bundle.rsa.cert] : [])].flatMap((pem) => {
      const type = keyTypeOfCertificate(pem);
      return type ? [type] : [];
    });
    return {
      name: cert.name, names: bundle.names, notBefore: bundle.notBefore, notAfter: bundle.notAfter,
      location: this.opts.storage.location(cert.name), issued, requests, durationMs: Date.now() - started,
      keyTypes, ...(bundle.rsa ? { rsaNotAfter: bundle.rsa.notAfter } : {}),
    };
  }
}

/** One order's certificate as the bundle's fields (the primary's, or its `rsa` variant). */
function variantOf(issued: IssuedCertificate): CertificateVariant {
  return {
    cert: issued.cert, chain: issued.chain, fullchain: issued.fullchain, privkey: issued.privkey,
    notBefore: issued.notBefore.toISOString(), notAfter: issued.notAfter.toISOString(),
  };
}

/** A certificate without the parts ARI needs (no AKI) is replaced without naming it. */
function certIdOrNone(pem: string): string | undefined {
  try {
    return ariCertId(pem);
  } catch {
    return undefined;
  }
}

function keyTypeOfCertificate(pem: string): 'ecc' | 'rsa' | undefined {
  try {
    return readCertificateInfo(pem).keyType;
  } catch {
    return undefined;
  }
}

/** Whether a stored key is of the type (and curve or size) the settings ask for. */
function keyMatches(pem: string, settings: OrderSettings): boolean {
  try {
    const key = createPrivateKey(pem);
    const details = key.asymmetricKeyDetails ?? {};
    if (settings.keyType === 'rsa') return key.asymmetricKeyType === 'rsa' && details.modulusLength === settings.rsaBits;
    return key.asymmetricKeyType === 'ec' && details.namedCurve === (settings.curve === 'P-384' ? 'secp384r1' : 'prime256v1');
  } catch {
    return false;
  }
}

/** Who is to blame for a failed job: only 'host' failures put the host into backoff. */
export function blameOf(error: Error): FailureBlame {
  if (error instanceof ShuttingDownError) return 'shutdown';
  if (error instanceof ProfileNotOfferedError) return 'config';
  if (error instanceof CertificateHeldError || isStoreFault(error)) return 'store';
  if (error instanceof LockTimeoutError || error instanceof LockLostError) return 'lock';
  if (error instanceof AccountUnavailableError) return 'account';
  if (isCaFault(error) || (error as { code?: string }).code === 'CA_UNAVAILABLE') return 'ca';
  return 'host';
}
