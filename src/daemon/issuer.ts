/**
 * The issuer turns a job (one certificate) into a stored certificate: it
 * joins an identical job already running in this process, takes the
 * certificate's lock in storage (so one instance of several does the work),
 * runs the ACME order, writes the result, and emits one event that logs,
 * metrics and the deploy hook listen to.
 */
import { EventEmitter } from 'node:events';
import type { AcmeEngine } from '../acme/client.js';
import { errorKind } from '../acme/errors.js';
import type { Logger } from '../log.js';
import { keys } from '../storage/keys.js';
import { withLock } from '../storage/lock.js';
import type { CertificateBundle, Storage } from '../storage/storage.js';
import type { ChallengeTokens } from '../challenge/tokens.js';
import type { ManagedCertificate } from './managed.js';

export interface IssueOptions {
  /** Order a new certificate even when a valid one covering the names is stored. */
  force?: boolean;
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
  now?: () => number;
}

export class Issuer extends EventEmitter<IssuerEvents> {
  private readonly inflight = new Map<string, Promise<IssueOutcome>>();

  constructor(private readonly opts: IssuerOptions) {
    super();
  }

  /** Certificates whose order is running now. */
  get running(): string[] {
    return [...this.inflight.keys()];
  }

  issue(cert: ManagedCertificate, options: IssueOptions = {}): Promise<IssueOutcome> {
    const running = this.inflight.get(cert.name);
    if (running) return running;
    const job = this.run(cert, options).finally(() => this.inflight.delete(cert.name));
    this.inflight.set(cert.name, job);
    return job;
  }

  /** Resolves once every running order has settled (for a clean shutdown). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.inflight.values()]);
  }

  private async run(cert: ManagedCertificate, options: IssueOptions): Promise<IssueOutcome> {
    const { storage, log } = this.opts;
    const now = this.opts.now ?? Date.now;
    const started = Date.now();
    try {
      return await withLock(storage, keys.lock(cert.name), async () => {
        // Another instance (or an earlier run) may have done the work meanwhile.
        const stored = await storage.getCertificate(cert.name);
        if (stored && !options.force && covers(stored, cert.names) && Date.parse(stored.notAfter) > now()) {
          return this.outcome(cert, stored, false, 0, started);
        }
        const engine = await this.opts.engine();
        const issued = await engine.issue({ names: cert.names, ...this.opts.keyType() }, this.opts.tokens);
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
        const outcome = this.outcome(cert, bundle, true, issued.requests, started);
        log.info({ cert: cert.name, names: cert.names, notAfter: outcome.notAfter, requests: outcome.requests, ms: outcome.durationMs }, 'certificate issued');
        this.emit('issued', outcome);
        return outcome;
      });
    } catch (err) {
      const error = err as Error;
      const kind = errorKind(err);
      log.warn({ cert: cert.name, names: cert.names, kind, err: error.message }, 'certificate order failed');
      this.emit('failed', { name: cert.name, names: cert.names, error, kind });
      throw err;
    }
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

function covers(bundle: CertificateBundle, names: string[]): boolean {
  return names.every((name) => bundle.names.includes(name));
}
