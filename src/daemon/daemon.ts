/**
 * The daemon's lifecycle: read the config, open storage (behind the health
 * decorator), release locks its own previous run left, load the index, bind
 * the http-01 listeners and the admin socket, and start the scheduler, which
 * issues what is missing and renews what falls due. Every request becomes a
 * job on one bounded work queue; the issuer's outcome events feed the index,
 * the scheduler, metrics and the deploy hook. SIGHUP applies a new config
 * without dropping work; SIGTERM stops taking work, lets running orders
 * finish (or abandons them cleanly) and exits. The ACME account is loaded
 * lazily and retried, so a CA that is down at boot does not keep acmed from
 * starting.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type http from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isDeepStrictEqual } from 'node:util';
import { AcmeEngine } from '../acme/client.js';
import { isCaFault } from '../acme/errors.js';
import { createAdminHandler, NoCertificateError, type AccountAction, type AdminBackend, type HealthReport } from '../admin/api.js';
import { createMetrics, type DaemonMetrics } from '../admin/metrics.js';
import { closeAdminSocket, listenAdminSocket } from '../admin/server.js';
import { AdminTcpListener } from '../admin/tcp-listener.js';
import { ChallengeServer } from '../challenge/server.js';
import { createDns01Solver } from '../challenge/dns-providers.js';
import type { Dns01Solver } from '../challenge/dns01.js';
import type { ChallengeSolver } from '../challenge/solver.js';
import { ChallengeTokens } from '../challenge/tokens.js';
import { OnDemand } from '../challenge/on-demand.js';
import { PreflightFailedError, probeHttpChallenge, type PreflightResult } from '../challenge/preflight.js';
import { normalizeHostname } from '../hostname.js';
import { certificateForHost, challengeFor, type ManagedCertificate } from '../config/managed.js';
import { orderSettings, requestedProfiles } from '../config/order-settings.js';
import { isZeroSsl, zeroSslEab } from '../acme/zerossl-eab.js';
import type { Config } from '../config/schema.js';
import { createLogger, type Logger } from '../log.js';
import { CaBackoffs } from '../renewal/ca-backoffs.js';
import { caDirectories, configuredEab, firstCa, listedCa } from '../config/ca-list.js';
import { accountKeysOf } from '../acme/account.js';
import { recordJobEvents } from '../renewal/index-events.js';
import { CertificateIndex } from '../renewal/index.js';
import type { IssueOutcome, JobProgress } from '../renewal/job.js';
import type { DaemonSummary } from '../admin/wire.js';
import { countByState } from './status.js';
import { VERSION } from '../version.js';
import { Renewer } from '../renewal/renewer.js';
import { realTimers, type Timers } from '../renewal/due-queue.js';
import { WorkQueue } from '../renewal/work-queue.js';
import { withHealth, type MonitoredStorage } from '../storage/health.js';
import { createStorage } from '../storage/index.js';
import { keys } from '../storage/keys.js';
import { releaseStaleOwnLocks, withLock } from '../storage/lock.js';
import { CertificateSpool } from '../storage/spool.js';
import { runDeployHook } from './deploy-hook.js';
import { DeployHooks } from './deploy-hooks.js';
import { Issuer, ShuttingDownError } from './issuer.js';
import { logJobEvents } from './outcome-log.js';
import { CertificateListing, type ListPage, type ListQuery } from './listing.js';
import { activationFds } from './systemd.js';
import type { IngressSource } from '../kubernetes/ingress-source.js';

export interface DaemonOptions {
  config: Config;
  log?: Logger;
  /** Injectable clock, for renewal and backoff tests. */
  now?: () => number;
  /** Injectable timers for the scheduler (tests move the clock and fire it). */
  timers?: Timers;
  /**
   * Called once the http-01 server and the admin socket listen, before the
   * index has loaded: what systemd's READY means (the terminator can start;
   * certificates on disk are already served). Admin calls that need the
   * index wait for it.
   */
  onListening?: () => void;
  /** The config file's path, shown by `acmed status` and logged at start. */
  configPath?: string;
}

/** Running orders get this long to finish on shutdown before they are abandoned. */
const DRAIN_GRACE_MS = 6_000;
/** Keys whose change means a new ACME engine (account, CA, trust). */
const ENGINE_KEYS = ['api_uri', 'ca_bundle', 'account_email', 'eab_kid', 'eab_hmac_key', 'eab', 'preferred_chain'] as const;
/** A certificate past its renewal time by more than this, and not in backoff, counts as overdue in /healthz. */
const OVERDUE_GRACE_MS = 10 * 60_000;

export class Daemon {
  /** One ACME engine per CA (directory URL), made on first use. */
  private readonly engines = new Map<string, Promise<AcmeEngine>>();
  /** The engines once loaded, for probing their CA. */
  private readonly loadedEngines = new Map<string, AcmeEngine>();
  private readonly metrics: DaemonMetrics;
  private adminServer?: http.Server;
  /** admin.listen: the API for other machines, behind a token or mutual TLS. */
  private adminTcp?: AdminTcpListener;
  private readonly startedAt = Date.now();
  private configPath?: string;
  private stopped?: Promise<void>;
  private indexLoaded?: Promise<void>;
  /** The CAs a probe loop runs for. */
  private readonly caProbing = new Set<string>();
  private indexReady = false;
  /** The dns-01 solver, when the config has a `dns` section. */
  private dns01?: Dns01Solver;
  readonly renewer: Renewer;
  readonly queue: WorkQueue<IssueOutcome>;
  readonly hooks: DeployHooks;
  readonly issuer: Issuer;
  /** on_demand: port-80 requests for allowed hosts without a certificate become jobs. */
  readonly onDemand: OnDemand;
  private readonly listing: CertificateListing;
  /** The Ingress source, when kubernetes.enabled. */
  kubernetes?: IngressSource;
  /** Certificates annotated Ingresses ask for, managed beside `certificates`. */
  private ingressCertificates: ManagedCertificate[] = [];
  private managedCache?: { base: Config; certs: ManagedCertificate[]; config: Config };

  private constructor(
    private current: Config,
    readonly log: Logger,
    readonly storage: MonitoredStorage,
    readonly index: CertificateIndex,
    readonly spool: CertificateSpool,
    readonly ca: CaBackoffs,
    readonly tokens: ChallengeTokens,
    readonly challengeServer: ChallengeServer,
    private readonly now: () => number,
    timers: Timers | undefined,
  ) {
    this.issuer = new Issuer({
      engine: (directoryUrl) => this.engine(directoryUrl), cas: () => caDirectories(this.current), storage, index, spool, ca, log, now,
      solver: (cert) => this.solverFor(cert),
      settings: (cert) => orderSettings(this.current, cert.name),
      lockTtlMs: () => this.current.lock_ttl_seconds * 1000,
      preflight: (cert) => this.preflightBeforeOrder(cert),
      beforeOrder: (cert) => this.kubernetes?.beforeOrder(cert) ?? Promise.resolve(),
    });
    this.queue = new WorkQueue(current.max_concurrent_orders);
    this.renewer = new Renewer({
      config: () => this.managedConfig(), index, storage, ca, log, timers: timers ?? { ...realTimers, now },
      engine: (directoryUrl) => this.engine(directoryUrl),
      submit: (cert, opts) => this.submit(cert, opts?.force),
    });
    this.hooks = new DeployHooks((outcome) => this.runHook(outcome));
    this.listing = new CertificateListing({
      index, storage, config: () => this.managedConfig(), queued: () => new Set(this.queue.pending), now,
    });
    // One outcome event per job; everything that reacts to a job listens here.
    this.issuer.on('outcome', recordJobEvents(index, {
      policy: () => ({ renewThresholdDays: this.current.renew_threshold_days }),
      failBackoffMinutes: () => this.current.fail_backoff_minutes,
      log, now,
    }));
    this.issuer.on('outcome', logJobEvents(log));
    this.issuer.on('outcome', this.hooks.onEvent);
    this.issuer.on('outcome', (event) => this.renewer.afterJob(event));
    this.issuer.on('outcome', (event) => this.kubernetes?.onOutcome(event));
    this.metrics = createMetrics({
      issuer: this.issuer, hooks: this.hooks, index, ca,
      challengeStats: () => tokens.stats,
      storageHealth: () => storage.health(),
      queue: this.queue,
      now,
      perCertificate: () => this.current.metrics.per_certificate,
    });
    this.onDemand = new OnDemand({
      config: () => this.current, log, now,
      standing: (name) => {
        // Until the index is loaded nothing is known about any host: wait rather than order what may exist.
        if (!this.indexReady) return 'loading';
        if (this.queue.has(name)) return 'pending';
        const record = index.get(name);
        if (record?.backoff && Date.parse(record.backoff.until) > now()) return 'backed_off';
        return record?.notAfter ? 'has_certificate' : 'none';
      },
      submit: (cert) => this.submit(cert),
      observe: (result) => this.metrics.observeOnDemand(result),
    });
    storage.on('up', () => void this.storageBack());
    ca.on('up', (url) => log.info({ ca: url }, 'the CA answers again; orders resume'));
    ca.on('down', (url) => void this.probeCa(url));
    this.issuer.on('fallback', ({ from, to, error, skipped }) => {
      // A CA skipped for its backoff was already reported when it went down.
      log[skipped ? 'info' : 'warn']({ from, to, reason: error.message, skipped }, 'falling back to the next CA');
    });
  }

  get config(): Config {
    return this.current;
  }

  /**
   * The config as the planners see it: `certificates` plus what annotated
   * Ingresses ask for. One object per change, since the managed-name lookups
   * are cached per config object.
   */
  private managedConfig(): Config {
    const cache = this.managedCache;
    if (cache && cache.base === this.current && cache.certs === this.ingressCertificates) return cache.config;
    const config = this.ingressCertificates.length === 0 ? this.current : {
      ...this.current, certificates: [...this.current.certificates, ...this.ingressCertificates.map((c) => ({ names: c.names }))],
    };
    this.managedCache = { base: this.current, certs: this.ingressCertificates, config };
    return config;
  }

  /** Starts the Ingress source (kubernetes.enabled): loads the credentials, lists, then watches. */
  private async startKubernetes(): Promise<void> {
    const [{ IngressSource }, { loadKubeConfig, ownNamespace }] = await Promise.all([
      import('../kubernetes/ingress-source.js'), import('../kubernetes/client.js'),
    ]);
    const kc = loadKubeConfig(this.current.kubernetes.kubeconfig);
    this.kubernetes = new IngressSource({
      kc, namespace: ownNamespace(kc), config: () => this.current, storage: this.storage, log: this.log, now: this.now,
      submit: (cert) => this.submit(cert),
      onCertificates: (certs) => {
        this.ingressCertificates = certs;
        this.listing.invalidate();
        void this.renewer.planAll().catch(() => {});
      },
    });
    await this.kubernetes.start();
  }

  static async start(opts: DaemonOptions): Promise<Daemon> {
    const config = opts.config;
    const log = opts.log ?? createLogger(config.log_level);
    const now = opts.now ?? Date.now;
    const storage = withHealth(await createStorage(config), { log, now, minFreeBytes: config.min_free_mb * 1024 * 1024 });
    const spool = await CertificateSpool.open(spoolDir(config), { log });
    const index = new CertificateIndex({ storage, log, now, policy: () => ({ renewThresholdDays: daemon.config.renew_threshold_days }) });
    const ca = new CaBackoffs(() => caDirectories(daemon.config), { now });
    const tokens = new ChallengeTokens(storage, log);
    const challengeServer = new ChallengeServer({
      tokens, log,
      redirectHttps: () => daemon.config.challenge.redirect_https,
      onOther: (host) => daemon.onDemand.notice(host),
    });
    const daemon: Daemon = new Daemon(config, log, storage, index, spool, ca, tokens, challengeServer, now, opts.timers);
    try {
      if (config.dns) daemon.dns01 = await createDns01Solver(config.dns, storage, log);
    } catch (err) {
      await daemon.stop();
      throw err;
    }
    // Before any order runs: a crashed run's TXT records go, and a resumed order writes its own again.
    await daemon.cleanDnsLeftovers();
    // Before port 80 opens: the CA may be validating an order this daemon's previous run was killed in.
    const restored = await tokens.restore().catch((err: Error) => {
      log.warn({ err: err.message }, 'cannot restore the challenge tokens of interrupted orders');
      return 0;
    });
    if (restored > 0) log.info({ tokens: restored }, 'challenge tokens of interrupted orders restored');
    try {
      await challengeServer.listen(daemon.listenAddresses(config));
      daemon.adminServer = await listenAdminSocket(config.admin.socket, createAdminHandler(daemon.adminBackend(), log));
      if (config.admin.listen) daemon.adminTcp = await AdminTcpListener.open(config.admin, createAdminHandler(daemon.adminBackend(), log), log);
    } catch (err) {
      await daemon.stop();
      throw err;
    }
    daemon.configPath = opts.configPath;
    log.info({
      version: VERSION, config: opts.configPath ?? null, ca: caDirectories(config), challenge: challengeServer.boundAddresses(),
      admin: config.admin.socket, admin_listen: config.admin.listen, storage: storage.kind,
    }, 'acmed started');
    opts.onListening?.();
    // Load the account now, so the first order does not pay for it.
    void daemon.engine().catch(() => {});
    daemon.indexLoaded = daemon.loadState();
    await daemon.indexLoaded;
    if (config.kubernetes.enabled) {
      try {
        await daemon.startKubernetes();
      } catch (err) {
        await daemon.stop();
        throw err;
      }
    }
    return daemon;
  }

  /**
   * Releases our predecessor's locks, loads the index and plans every
   * certificate; retried when the store comes back. Clearing an interrupted
   * write's leftovers and checking the index against every PEM come after,
   * in the background: at 100,000 certificates they take minutes.
   */
  private async loadState(): Promise<void> {
    try {
      const released = await releaseStaleOwnLocks(this.storage);
      if (released.length > 0) this.log.info({ locks: released }, 'released locks left by this host\'s previous run');
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'cannot release the locks an earlier run left; they expire by themselves');
    }
    await this.loadIndex();
    // Called before any job can start, so every write it sees is an earlier run's.
    const recovered = this.recoverLeftovers();
    await this.renewer.start().catch((err: Error) => this.log.error({ err: err.message }, 'cannot plan renewals'));
    this.planHeld();
    if (this.indexReady) void recovered.then(() => this.reconcileInBackground());
  }

  private async recoverLeftovers(): Promise<void> {
    try {
      const cleared = await this.storage.recover?.() ?? [];
      if (cleared.length > 0) this.log.warn({ removed: cleared }, 'removed what an interrupted write left behind');
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'cannot clear what an interrupted write left behind; it is never read');
    }
  }

  /**
   * Checks every stored certificate against its index record once after
   * start (a PEM replaced by hand, a record lost): in the background, so
   * start-up, issuance and the http-01 server never wait for 100,000 reads.
   */
  private async reconcileInBackground(): Promise<void> {
    const started = this.now();
    try {
      const rebuilt = await this.renewer.reconcile();
      this.log.info({ rebuilt, ms: this.now() - started }, 'index checked against storage');
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'cannot check the index against storage; the daily run tries again');
    }
  }

  /** Certificates held in the spool are stored by the next job for their name. */
  private planHeld(): void {
    for (const bundle of this.spool.held()) this.renewer.due.schedule(bundle.name, new Date(this.now()));
  }

  private async loadIndex(): Promise<void> {
    try {
      const started = this.now();
      const { records } = await this.index.load();
      this.indexReady = true;
      this.log.info({ records, held: this.spool.held().length, ms: this.now() - started }, 'certificate index loaded');
      this.onDemand.indexLoaded();
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'cannot load the certificate index; planning from the config until the store answers');
    }
  }

  private async storageBack(): Promise<void> {
    if (this.issuer.stopping) return;
    this.log.debug({ storage: this.storage.kind }, 'storage answers again; replanning');
    await this.index.flush().catch(() => {});
    // The index in memory survived the outage; it is read again only if the store was down at start.
    const firstLoad = !this.indexReady;
    if (firstLoad) await this.loadIndex();
    await this.renewer.planAll().catch(() => {});
    this.planHeld();
    if (firstLoad && this.indexReady) void this.reconcileInBackground();
  }

  /** The ACME engine of one CA (default: the first), created on first use; a failed start is retried on the next use. */
  engine(directoryUrl = firstCa(this.current)): Promise<AcmeEngine> {
    const existing = this.engines.get(directoryUrl);
    if (existing) return existing;
    const config = this.current;
    const ca = this.ca.of(directoryUrl);
    const attempt = (async () => AcmeEngine.create({
      directoryUrl,
      account: await accountKeysOf(this.storage, directoryUrl, firstCa(config)),
      email: config.account_email,
      caBundle: config.ca_bundle ? await readCaBundle(config.ca_bundle) : undefined,
      eab: await this.externalAccountBinding(config, directoryUrl),
      preferredChain: config.preferred_chain,
      storage: this.storage,
      log: this.log,
      observeRequest: (sample) => this.metrics.observeAcmeRequest(sample),
    }))();
    this.engines.set(directoryUrl, attempt);
    attempt.then((engine) => {
      this.loadedEngines.set(directoryUrl, engine);
      ca.success();
      void this.checkProfiles(engine, config);
    }, (err: Error) => {
      this.log.error({ err: err.message, ca: directoryUrl }, 'cannot load the ACME account; will retry on the next order');
      if (isCaFault(err)) ca.fault(err);
      if (this.engines.get(directoryUrl) === attempt) this.engines.delete(directoryUrl);
    });
    return attempt;
  }

  /** The configured binding for a CA; for ZeroSSL without one, the one ZeroSSL hands out for account_email. */
  private async externalAccountBinding(config: Config, directoryUrl: string): Promise<{ kid: string; hmacKey: string } | undefined> {
    const configured = configuredEab(config, directoryUrl);
    if (configured) return configured;
    if (!isZeroSsl(directoryUrl)) return undefined;
    return zeroSslEab({ email: config.account_email, storage: this.storage });
  }

  /**
   * A profile the CA does not list is said at start (as soon as the CA's
   * directory is read), not found by a failed order at 3 a.m.; orders of
   * those certificates are refused before any ACME request.
   */
  private async checkProfiles(engine: AcmeEngine, config: Config): Promise<void> {
    const wanted = requestedProfiles(config);
    if (wanted.length === 0) return;
    const offered = await engine.offeredProfiles().catch(() => null);
    if (!offered) return;
    const ca = engine.directoryUrl;
    for (const { profile, path } of wanted) {
      if (offered.includes(profile)) continue;
      if (ca === firstCa(config)) {
        this.log.error({ profile, config_key: path.join('.'), offered, ca }, 'the CA does not offer this profile; its certificates will not be ordered until the config is fixed');
      } else {
        this.log.warn({ profile, config_key: path.join('.'), offered, ca }, 'a fallback CA does not offer this profile; orders for its certificates skip that CA');
      }
    }
  }

  /** Running orders keep the engine they started with; new ones get a new one (new config, new account key). */
  private replaceEngine(directoryUrl?: string): void {
    for (const [url, old] of [...this.engines]) {
      if (directoryUrl !== undefined && url !== directoryUrl) continue;
      this.engines.delete(url);
      this.loadedEngines.delete(url);
      void old.then((engine) => this.queue.drain().then(() => engine.close()), () => {});
    }
  }

  /** `acmed account …`: the account's life cycle; a new key or a deactivated account means a new engine. */
  async account(action: AccountAction): Promise<unknown> {
    const ca = listedCa(this.current, action.ca);
    const lifecycle = (await this.engine(ca)).accountLifecycle();
    switch (action.type) {
      case 'show': return lifecycle.details();
      case 'update': return lifecycle.updateEmail(action.email);
      case 'rollover': {
        const result = await lifecycle.rollover();
        this.replaceEngine(ca);
        return result;
      }
      case 'deactivate': {
        const result = await lifecycle.deactivate();
        this.replaceEngine(ca);
        return result;
      }
    }
  }

  /**
   * While the CA is in backoff, asks it (one GET of the directory) each time
   * the wait ends, so /healthz and waiting orders learn it is back even when
   * no order happens to be due then.
   */
  private async probeCa(directoryUrl: string): Promise<void> {
    if (this.caProbing.has(directoryUrl)) return;
    this.caProbing.add(directoryUrl);
    const ca = this.ca.of(directoryUrl);
    try {
      while (!ca.state().up && !this.issuer.stopping) {
        const wait = Math.max(0, Date.parse(ca.state().until ?? '') - this.now());
        await sleep(Math.min(wait, 60_000) + 50, undefined, { ref: false });
        if (this.issuer.stopping) return;
        const admitted = await ca.admit().catch(() => null);
        if (!admitted?.probe) continue; // still backed off, or an order is probing
        const loaded = this.loadedEngines.get(directoryUrl);
        if (loaded) {
          await loaded.ping().then(() => ca.success(), (err: Error) => {
            if (isCaFault(err)) ca.fault(err);
            else ca.success(); // it answered, if only with an error
          });
        } else {
          // Loading the account marks the CA up or down itself; anything else (the store) leaves the probe to the next caller.
          await this.engine(directoryUrl).catch((err: Error) => {
            if (!isCaFault(err)) ca.release();
          });
        }
      }
    } finally {
      this.caProbing.delete(directoryUrl);
    }
  }

  /** The solver an order for cert answers its challenges with. */
  private solverFor(cert: ManagedCertificate): ChallengeSolver {
    if (challengeFor(this.current, cert) === 'http-01') return this.tokens;
    if (!this.dns01) throw new Error(`${cert.name} needs dns-01, and the config has no "dns" section`);
    return this.dns01;
  }

  /**
   * Removes the dns-01 records this instance's earlier run left, through the
   * provider configured now. Without a `dns` section the entries stay in
   * storage until one is configured again.
   */
  private async cleanDnsLeftovers(): Promise<void> {
    if (!this.dns01) return;
    try {
      const removed = await this.dns01.cleanLeftovers();
      if (removed > 0) this.log.info({ records: removed }, 'removed dns-01 records an earlier run left');
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'cannot remove the dns-01 records an earlier run left; trying again at the next start');
    }
  }

  /** Hands a job to the work queue: the one way any caller gets a certificate issued. */
  submit(cert: ManagedCertificate, force = false): Promise<IssueOutcome> {
    if (this.issuer.stopping) return Promise.reject(new ShuttingDownError());
    return this.queue.submit(cert.name, () => this.issuer.run({ cert, force }));
  }

  /** A job for a host, waiting for its result and its deploy hook (acmed issue, POST /acme). */
  async issue(host: string, force = false, onStep?: (step: JobProgress) => void): Promise<IssueOutcome> {
    const cert = certificateForHost(this.managedConfig(), host);
    const listener = (step: JobProgress) => {
      if (step.name === cert.name) onStep?.(step);
    };
    if (onStep) this.issuer.on('progress', listener);
    try {
      return await this.issueAndDeploy(cert, force);
    } finally {
      this.issuer.off('progress', listener);
    }
  }

  private async issueAndDeploy(cert: ManagedCertificate, force: boolean): Promise<IssueOutcome> {
    const outcome = await this.submit(cert, force);
    if (outcome.issued && this.current.deploy_hook) this.issuer.emit('progress', { name: outcome.name, step: 'deploy hook', elapsedMs: outcome.durationMs });
    const hook = await this.hooks.resultOf(outcome);
    return hook ? { ...outcome, deployHook: { ok: hook.ok, exitCode: hook.exitCode, timedOut: hook.timedOut, output: hook.output } } : outcome;
  }

  /**
   * Kong's test_http_challenge_flow and `acmed issue --check-only`: probes
   * the host's http-01 path with a random token. Only a host acmed would
   * order for is probed (an invalid or unlisted one is refused first), so
   * the probe cannot be aimed at arbitrary names.
   */
  async checkHttpChallenge(host: string): Promise<PreflightResult> {
    certificateForHost(this.managedConfig(), host);
    return probeHttpChallenge(normalizeHostname(host), this.preflightOptions());
  }

  /** preflight_check: every name of the certificate must reach acmed, or no order is placed. */
  private async preflightBeforeOrder(cert: ManagedCertificate): Promise<void> {
    if (!this.current.preflight_check) return;
    const results = await Promise.all(cert.names.map((name) => probeHttpChallenge(name, this.preflightOptions())));
    const failed = results.find((r) => !r.ok);
    if (failed) throw new PreflightFailedError(failed);
    this.log.debug({ cert: cert.name, ms: Math.max(...results.map((r) => r.ms)) }, 'http-01 preflight passed');
  }

  private preflightOptions() {
    return { tokens: this.tokens, port: this.current.preflight_port, resolver: this.current.preflight_resolver };
  }

  /**
   * Applies a new, already validated config without dropping in-flight work.
   * Storage settings need a restart (the open store holds locks and tokens);
   * they are kept as they were, with a warning.
   */
  async reload(next: Config): Promise<void> {
    const previous = this.current;
    const storageKeys = ['storage', 'storage_config', 'haproxy_pem', 'spool_dir', 'min_free_mb'] as const;
    const storageChanged = storageKeys.filter((k) => !isDeepStrictEqual(previous[k], next[k]));
    if (storageChanged.length > 0) {
      this.log.warn({ keys: storageChanged }, 'storage settings changed; they take effect on restart');
    }
    // First, so a TSIG secret file that cannot be read refuses the whole reload.
    const dnsChanged = !isDeepStrictEqual(previous.dns, next.dns);
    const dns01 = dnsChanged && next.dns ? await createDns01Solver(next.dns, this.storage, this.log) : this.dns01;
    if (!isDeepStrictEqual(previous.kubernetes, next.kubernetes)) {
      this.log.warn({ keys: ['kubernetes'] }, 'kubernetes settings changed; they take effect on restart');
    }
    const applied: Config = {
      ...next, storage: previous.storage, storage_config: previous.storage_config, haproxy_pem: previous.haproxy_pem, kubernetes: previous.kubernetes,
      spool_dir: previous.spool_dir, min_free_mb: previous.min_free_mb,
    };
    this.current = applied;
    this.log.level = applied.log_level;

    if (ENGINE_KEYS.some((k) => !isDeepStrictEqual(previous[k], applied[k]))) this.replaceEngine();
    if (!isDeepStrictEqual(this.listenAddresses(previous), this.listenAddresses(applied))) {
      await this.challengeServer.listen(this.listenAddresses(applied));
    }
    if (previous.admin.socket !== applied.admin.socket) {
      const old = this.adminServer;
      this.adminServer = await listenAdminSocket(applied.admin.socket, createAdminHandler(this.adminBackend(), this.log));
      if (old) await closeAdminSocket(old, previous.admin.socket);
    }
    // Running orders keep the solver they started with (and clean up through it); new ones get the new one.
    if (dnsChanged) this.dns01 = next.dns ? dns01 : undefined;
    await this.reloadAdminTcp(applied);
    this.queue.resize(applied.max_concurrent_orders);
    this.listing.invalidate(); // `certificates` may have changed
    if (previous.renew_threshold_days !== applied.renew_threshold_days) await this.index.replan().catch(() => {});
    await this.renewer.start();
    this.log.info({ certificates: applied.certificates.length, challenge: this.challengeServer.boundAddresses() }, 'config reloaded');
  }

  /** Credentials are read again on every reload, so a rotated token or certificate takes effect. */
  private async reloadAdminTcp(applied: Config): Promise<void> {
    const kept = applied.admin.listen && this.adminTcp ? await this.adminTcp.reload(applied.admin) : null;
    if (kept) return;
    // Closed first: the new listener may want the same port.
    await this.adminTcp?.close();
    this.adminTcp = applied.admin.listen ? await AdminTcpListener.open(applied.admin, createAdminHandler(this.adminBackend(), this.log), this.log) : undefined;
  }

  /** Stops taking work, lets running orders finish (abandoning them after a grace period), closes everything. */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.issuer.stopAccepting();
      await this.kubernetes?.stop().catch(() => {});
      this.queue.cancelWaiting(() => new ShuttingDownError());
      // No new admin connections; the ones waiting on an order get their answer below.
      const adminClosed = Promise.all([
        this.adminServer ? closeAdminSocket(this.adminServer, this.current.admin.socket) : undefined,
        this.adminTcp?.close(),
      ]);
      await this.indexLoaded?.catch(() => {});
      await this.renewer.stop();
      const drained = await Promise.race([
        this.queue.drain().then(() => true),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), DRAIN_GRACE_MS).unref()),
      ]);
      const engines = (await Promise.all([...this.engines.values()].map((e) => e.catch(() => undefined)))).filter((e) => e !== undefined);
      if (!drained) {
        this.log.warn({ running: this.queue.running }, 'abandoning running orders');
        this.issuer.abortAll();
        engines.forEach((e) => e.close()); // fails requests in flight now instead of after their timeout
        await this.queue.drain();
      }
      engines.forEach((e) => e.close());
      await adminClosed;
      await this.challengeServer.close();
      await this.index.close();
      await this.storage.close();
      this.log.info('acmed stopped');
    })();
    return this.stopped;
  }

  /** Socket activation's descriptors win over challenge.listen. */
  private listenAddresses(config: Config): string[] {
    const fds = activationFds();
    return fds.length > 0 ? fds.map((fd) => `fd:${fd}`) : config.challenge.listen;
  }

  private async runHook(outcome: IssueOutcome) {
    const command = this.current.deploy_hook;
    if (!command) return undefined;
    return runDeployHook({
      command,
      timeoutMs: this.current.deploy_hook_timeout_seconds * 1000,
      lineage: this.storage.location(outcome.name).replace(/\/$/, ''),
      names: outcome.names,
      host: outcome.name,
      notAfter: outcome.notAfter,
    }, this.log);
  }

  private adminBackend(): AdminBackend {
    // Admin calls that read the index wait for its load (a second or two at 100,000 certificates).
    const loaded = () => this.indexLoaded?.catch(() => {});
    return {
      issue: (host, force, onStep) => this.issue(host, force, onStep),
      checkHttpChallenge: (host) => this.checkHttpChallenge(host),
      renew: async (opts) => {
        await loaded();
        if (opts.only && !opts.issue) {
          // "renew" of a name that never had a certificate is a typo more often than a wish: say so.
          const cert = certificateForHost(this.managedConfig(), opts.only);
          if (!this.index.get(cert.name)?.notAfter) throw new NoCertificateError(opts.only);
        }
        return this.renewer.pass({ only: opts.only, force: opts.force });
      },
      remove: async (host, opts) => {
        await loaded();
        return this.remove(host, opts);
      },
      certificates: async (query) => {
        await loaded();
        return this.certificates(query);
      },
      certificate: async (host) => {
        await loaded();
        return this.listing.find(host);
      },
      health: () => this.health(),
      account: (action) => this.account(action),
      summary: async () => {
        await loaded();
        return this.summary();
      },
      metrics: () => ({ contentType: this.metrics.contentType, chunks: this.metrics.chunks() }),
      ca: () => this.ca.state(),
    };
  }

  /**
   * Takes a certificate out of storage (revoking it first when asked). A
   * certificate still listed in `certificates` is ordered anew right away:
   * revoking a compromised key should not leave the name without one.
   */
  private async remove(host: string, opts: { revoke: boolean; reason: number }): Promise<{ name: string; revoked: boolean } | null> {
    const row = this.listing.find(host);
    if (!row || row.not_after === null) return null;
    const name = row.host;
    await withLock(this.storage, keys.lock(name), async (lock) => {
      const bundle = await this.storage.getCertificate(name);
      if (!bundle) return;
      // Revoked by the account of the CA that issued it.
      if (opts.revoke) await (await this.engine(this.index.get(name)?.ca ?? undefined)).revoke(bundle.cert, opts.reason);
      await lock.assertHeld();
      await this.storage.deleteCertificate(name);
      await this.index.remove(name);
    }, { ttlMs: this.current.lock_ttl_seconds * 1000 });
    this.log.info({ cert: name, revoked: opts.revoke, reason: opts.reason }, 'certificate removed');
    await this.renewer.planAll();
    return { name, revoked: opts.revoke };
  }

  /** What /healthz reports: 503 when acmed cannot issue (CA in backoff) or cannot store (store down, read-only, full). */
  async health(): Promise<HealthReport> {
    const store = await this.storage.probe();
    const ca = this.ca.state();
    const nowMs = this.now();
    const next = this.renewer.due.next();
    const running = new Set(this.queue.running);
    const overdue = this.index.all().filter((r) => r.renewAt !== null && Date.parse(r.renewAt) < nowMs - OVERDUE_GRACE_MS
      && !(r.backoff && Date.parse(r.backoff.until) > nowMs) && !running.has(r.name)).length;
    const storeOk = store.up && store.writable && !store.lowSpace;
    // Down until the CA has answered again, not merely until its backoff ends.
    const caOk = ca.up;
    return {
      ok: storeOk && caOk,
      checks: {
        ca: {
          ok: caOk, up: ca.up, failures: ca.failures, backoff_until: ca.until, last_error: ca.lastError, since: ca.since,
          cas: this.ca.states().map((s) => ({ url: s.url, up: s.up, failures: s.failures, backoff_until: s.until, last_error: s.lastError })),
        },
        storage: {
          ok: storeOk, up: store.up, writable: store.writable, free_bytes: store.freeBytes, low_space: store.lowSpace,
          last_error: store.lastError, held_certificates: this.spool.held().length,
        },
        scheduler: {
          ok: true, certificates: this.index.size, index_loaded: this.indexReady, index_checked_at: this.renewer.reconciledAt, next_due: next?.at.toISOString() ?? null, next_name: next?.name ?? null,
          overdue, queued: this.queue.pending.length, running: this.queue.running.length,
        },
      },
    };
  }

  /** `acmed status`: the daemon at a glance. */
  async summary(): Promise<DaemonSummary> {
    const store = await this.storage.probe();
    const ca = this.ca.state();
    const nowMs = this.now();
    const byStatus = countByState(this.index.all(), nowMs, new Set(this.queue.running));
    const next = this.renewer.due.next();
    return {
      version: VERSION,
      started_at: new Date(this.startedAt).toISOString(),
      uptime_seconds: Math.round((Date.now() - this.startedAt) / 1000),
      config: this.configPath ?? null,
      ca: { url: firstCa(this.current), up: ca.up, until: ca.until, last_error: ca.lastError },
      cas: this.ca.states().map((s) => ({ url: s.url, up: s.up, until: s.until, last_error: s.lastError })),
      storage: { kind: this.storage.kind, up: store.up && store.writable },
      certificates: { total: this.index.size, by_status: byStatus },
      next_renewal: next ? { name: next.name, at: next.at.toISOString() } : null,
      running_orders: this.queue.running.length,
    };
  }

  /** A page of status rows (configured or indexed certificates, host order), from the index: no certificate is read. */
  certificates(query: ListQuery = {}): ListPage {
    return this.listing.page(query);
  }
}

/**
 * Where certificates the store refused are held. One folder per store and
 * CA, so two daemons on one machine (or a test run after another) never
 * deliver each other's certificates.
 */
function spoolDir(config: Config): string {
  if (config.spool_dir) return config.spool_dir;
  if (config.storage === 'file') return join(config.storage_config.file.path, 'spool');
  // The first CA only: adding a fallback CA keeps the folder (and what it holds).
  const identity = JSON.stringify([config.storage, config.storage_config[config.storage as keyof Config['storage_config']], firstCa(config)]);
  return join('/var/lib/acmed/spool', `${config.storage}-${createHash('sha256').update(identity).digest('hex').slice(0, 12)}`);
}

async function readCaBundle(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ca_bundle ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}
