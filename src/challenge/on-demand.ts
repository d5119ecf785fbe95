/**
 * On-demand issuance (`on_demand.enabled`, off by default): a plain HTTP
 * request on the port-80 server for a host that `domains` allows and that
 * has no certificate yet hands a job for it to the work queue, like any
 * other requester. The request itself is answered at once (301 or 404) and
 * never waits for this.
 *
 * The port-80 server faces the internet, and its Host header is whatever a
 * client sends, so before anything reaches the CA a host must be a valid
 * name, match `domains` (a host outside it never causes an ACME request),
 * and fit in `max_per_hour` new hosts per sliding hour; with `ask_url`, the
 * operator's endpoint must also answer 2xx to `GET <ask_url>?domain=<host>`.
 */
import { certificateForHost, type ManagedCertificate } from '../config/managed.js';
import type { Config } from '../config/schema.js';
import type { OnDemandResult } from '../admin/metrics.js';
import { nameOfHostHeader } from './host-header.js';
import type { Logger } from '../log.js';

const HOUR_MS = 3_600_000;
/** How long an ask_url refusal is remembered, so a client repeating a refused host does not flood the endpoint. */
const REFUSAL_MEMORY_MS = 10 * 60_000;
/** Bounds the refusal memory under a flood of distinct names. */
const MAX_REMEMBERED_REFUSALS = 10_000;
const ASK_TIMEOUT_MS = 5_000;

/** Where a host stands with the daemon, as far as on-demand cares. */
/** loading: the index is not loaded yet, so nothing is known; the visit is looked at again once it is. */
/** Visits remembered while the index loads, at most. */
const MAX_DEFERRED = 1_000;

export type HostStanding = 'has_certificate' | 'pending' | 'backed_off' | 'none' | 'loading';

export interface OnDemandOptions {
  config: () => Config;
  /** From the index and the work queue: whether a host already has (or is getting) a certificate. */
  standing: (name: string) => HostStanding;
  /** Hands a job to the work queue (Daemon.submit). */
  submit: (cert: ManagedCertificate) => Promise<unknown>;
  /** One count per request looked at (metrics). */
  observe?: (result: OnDemandResult) => void;
  log: Logger;
  now?: () => number;
  /** ask_url timeout; tests shorten it. */
  askTimeoutMs?: number;
}

export class OnDemand {
  /** When each host of the last hour was started, oldest first. */
  private readonly started: number[] = [];
  /** Hosts between their slot being taken and their job being queued (ask_url in flight). */
  private readonly asking = new Set<string>();
  private readonly refused = new Map<string, number>();
  /** Host headers seen while the index was loading (a start at 100,000 certificates takes a second or two). */
  private readonly deferred = new Set<string>();
  /** Background work started by notice(), so tests (and shutdown) can wait for it. */
  private readonly running = new Set<Promise<void>>();

  constructor(private readonly opts: OnDemandOptions) {}

  private get now(): number {
    return (this.opts.now ?? Date.now)();
  }

  /**
   * A port-80 request that is not a challenge, with its Host header.
   * Synchronous and never throws: whatever it starts runs in the background.
   */
  notice(hostHeader: string | undefined): void {
    const config = this.opts.config();
    if (!config.on_demand.enabled || !hostHeader) return;
    const decision = this.decide(config, hostHeader);
    if (decision.result === 'rate_limited') {
      this.opts.log.warn({ host: decision.name, max_per_hour: config.on_demand.max_per_hour }, 'on-demand issuance refused: too many new hosts this hour');
    }
    if (!decision.cert) {
      this.opts.observe?.(decision.result);
      return;
    }
    const work = this.start(config, decision.cert, decision.slot!);
    this.running.add(work);
    void work.finally(() => this.running.delete(work));
  }

  /** The index has loaded: the visits of the start-up are looked at now, as if they came again. */
  indexLoaded(): void {
    const hosts = [...this.deferred];
    this.deferred.clear();
    for (const host of hosts) this.notice(host);
  }

  /** Resolves once the background work started so far (ask_url, queueing) is done; the jobs themselves run on. */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running]);
  }

  private decide(config: Config, hostHeader: string): { result: OnDemandResult; name?: string; cert?: ManagedCertificate; slot?: number } {
    let cert: ManagedCertificate;
    try {
      // "name:port", "[v6]:port" or without the port; anything invalid is refused here.
      const name = nameOfHostHeader(hostHeader);
      if (name === undefined) return { result: 'not_allowed' };
      cert = certificateForHost(config, name);
    } catch {
      return { result: 'not_allowed' };
    }
    // A host in `certificates` is kept issued by the scheduler already.
    if (config.certificates.some((c) => c.names.includes(cert.name))) return { result: 'has_certificate', name: cert.name };
    const standing = this.opts.standing(cert.name);
    if (standing === 'loading') {
      // Bounded: a flood during start-up is not remembered beyond this.
      if (this.deferred.size < MAX_DEFERRED) this.deferred.add(cert.name);
      return { result: 'pending', name: cert.name };
    }
    if (standing !== 'none') return { result: standing, name: cert.name };
    if (this.asking.has(cert.name)) return { result: 'pending', name: cert.name };
    const refusedUntil = this.refused.get(cert.name);
    if (refusedUntil !== undefined && refusedUntil > this.now) return { result: 'refused_by_ask_url', name: cert.name };
    const slot = this.takeSlot(config.on_demand.max_per_hour);
    if (slot === undefined) return { result: 'rate_limited', name: cert.name };
    return { result: 'started', name: cert.name, cert, slot };
  }

  /** Takes one of the sliding hour's slots: its time, or undefined when all are taken. */
  private takeSlot(maxPerHour: number): number | undefined {
    const now = this.now;
    while (this.started.length > 0 && this.started[0]! <= now - HOUR_MS) this.started.shift();
    if (this.started.length >= maxPerHour) return undefined;
    this.started.push(now);
    return now;
  }

  private releaseSlot(slot: number): void {
    const at = this.started.indexOf(slot);
    if (at >= 0) this.started.splice(at, 1);
  }

  private async start(config: Config, cert: ManagedCertificate, slot: number): Promise<void> {
    const { log } = this.opts;
    const askUrl = config.on_demand.ask_url;
    if (askUrl) {
      this.asking.add(cert.name);
      let answer: OnDemandResult | 'allowed';
      try {
        answer = await this.ask(askUrl, cert.name);
      } finally {
        this.asking.delete(cert.name);
      }
      if (answer !== 'allowed') {
        // Not issued: the slot goes back, and the count says why.
        this.releaseSlot(slot);
        this.opts.observe?.(answer);
        return;
      }
    }
    this.opts.observe?.('started');
    log.info({ host: cert.name }, 'on-demand issuance started');
    // The issuer logs and records the outcome like any job's.
    void this.opts.submit(cert).catch(() => {});
  }

  private async ask(askUrl: string, name: string): Promise<OnDemandResult | 'allowed'> {
    const url = new URL(askUrl);
    url.searchParams.set('domain', name);
    try {
      const res = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(this.opts.askTimeoutMs ?? ASK_TIMEOUT_MS) });
      await res.body?.cancel();
      if (res.status >= 200 && res.status < 300) return 'allowed';
      this.opts.log.info({ host: name, status: res.status }, 'on-demand issuance refused by ask_url');
      this.remember(name);
      return 'refused_by_ask_url';
    } catch (err) {
      this.opts.log.warn({ host: name, err: (err as Error).message }, 'on-demand issuance: ask_url did not answer; not issuing');
      return 'ask_url_failed';
    }
  }

  private remember(name: string): void {
    if (this.refused.size >= MAX_REMEMBERED_REFUSALS) this.refused.clear();
    this.refused.set(name, this.now + REFUSAL_MEMORY_MS);
  }
}
