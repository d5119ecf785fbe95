/**
 * The daemon's lifecycle: read the config, open storage, bind the http-01
 * listeners and the admin socket, issue every configured certificate that
 * storage lacks, and keep them renewed. SIGHUP applies a new config without
 * dropping work; SIGTERM stops taking work, lets running orders finish (or
 * abandons them cleanly) and exits. The ACME account is loaded lazily and
 * retried, so a CA that is down at boot does not keep acmed from starting.
 */
import { readFile } from 'node:fs/promises';
import type http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { isDeepStrictEqual } from 'node:util';
import { AcmeEngine } from '../acme/client.js';
import type { Registry } from 'prom-client';
import { createAdminHandler, type AdminBackend, type CertificateStatus } from '../admin/api.js';
import { createMetrics } from '../admin/metrics.js';
import { closeAdminSocket, listenAdminSocket } from '../admin/server.js';
import { ChallengeServer } from '../challenge/server.js';
import { ChallengeTokens } from '../challenge/tokens.js';
import type { Config } from '../config/schema.js';
import { createLogger, type Logger } from '../log.js';
import { Renewer } from '../renewal/renewer.js';
import { StorageError } from '../storage/errors.js';
import { createStorage } from '../storage/index.js';
import { keys } from '../storage/keys.js';
import { withLock } from '../storage/lock.js';
import type { Storage } from '../storage/storage.js';
import { runDeployHook } from './deploy-hook.js';
import { Issuer } from './issuer.js';
import { certificateForHost, configuredCertificates } from '../config/managed.js';
import { findStatus, listStatuses } from './status.js';
import { activationFds } from './systemd.js';

export interface DaemonOptions {
  config: Config;
  log?: Logger;
  /** Injectable clock, for renewal and backoff tests. */
  now?: () => number;
}

/** Running orders get this long to finish on shutdown before they are abandoned. */
const DRAIN_GRACE_MS = 6_000;
/** Probing a store that is down: first after 1 s, doubling, at most every 30 s. */
const STORAGE_RETRY_FIRST_MS = 1_000;
const STORAGE_RETRY_MAX_MS = 30_000;
/** Keys whose change means a new ACME engine (account, CA, trust). */
const ENGINE_KEYS = ['api_uri', 'ca_bundle', 'account_email', 'eab_kid', 'eab_hmac_key', 'preferred_chain'] as const;

export class Daemon {
  private enginePromise?: Promise<AcmeEngine>;
  /** The engine once loaded, for metrics. */
  private loadedEngine?: AcmeEngine;
  private readonly metrics: Registry;
  private adminServer?: http.Server;
  private stopped?: Promise<void>;
  private recovering?: Promise<void>;
  readonly renewer: Renewer;

  private constructor(
    private current: Config,
    readonly log: Logger,
    readonly storage: Storage,
    readonly tokens: ChallengeTokens,
    readonly challengeServer: ChallengeServer,
    readonly issuer: Issuer,
    private readonly now: () => number,
  ) {
    this.renewer = new Renewer({
      config: () => this.current, storage, issuer, engine: () => this.engine(), log, now,
      onStorageError: (err) => this.recoverStorage(err),
    });
    this.metrics = createMetrics({
      issuer,
      storage,
      acmeRequests: () => this.loadedEngine?.requestCount,
      challengeStats: () => tokens.stats,
      storageHealthy: async () => (await this.health()).ok,
    });
  }

  get config(): Config {
    return this.current;
  }

  static async start(opts: DaemonOptions): Promise<Daemon> {
    const config = opts.config;
    const log = opts.log ?? createLogger(config.log_level);
    const now = opts.now ?? Date.now;
    const storage = await createStorage(config);
    const tokens = new ChallengeTokens(storage);
    const challengeServer = new ChallengeServer({ tokens, log });
    let daemon: Daemon | undefined;
    const issuer = new Issuer({
      engine: () => daemon!.engine(),
      storage,
      tokens,
      log,
      now,
      keyType: () => ({ keyType: daemon!.config.cert_type, rsaBits: daemon!.config.rsa_key_size }),
      failBackoffMinutes: () => daemon!.config.fail_backoff_minutes,
      lockTtlMs: () => daemon!.config.lock_ttl_seconds * 1000,
      onStorageError: (err) => daemon!.recoverStorage(err),
      afterIssue: (outcome) => daemon!.runHook(outcome.name, outcome.names, outcome.notAfter),
    });
    daemon = new Daemon(config, log, storage, tokens, challengeServer, issuer, now);
    try {
      await challengeServer.listen(daemon.listenAddresses(config));
      daemon.adminServer = await listenAdminSocket(config.admin.socket, createAdminHandler(daemon.adminBackend(), log));
    } catch (err) {
      await daemon.stop();
      throw err;
    }
    daemon.renewer.start();
    log.info({ challenge: challengeServer.boundAddresses(), admin: config.admin.socket, storage: storage.kind }, 'acmed started');
    // Load the account now, so the first order does not pay for it; then fill in what is missing.
    void daemon.engine().catch(() => {}).then(() => daemon.issueMissing());
    return daemon;
  }

  /** The ACME engine, created on first use; a failed start is retried on the next use. */
  engine(): Promise<AcmeEngine> {
    if (!this.enginePromise) {
      const config = this.current;
      const attempt = (async () => AcmeEngine.create({
        directoryUrl: config.api_uri,
        email: config.account_email,
        caBundle: config.ca_bundle ? await readCaBundle(config.ca_bundle) : undefined,
        eab: config.eab_kid && config.eab_hmac_key ? { kid: config.eab_kid, hmacKey: config.eab_hmac_key } : undefined,
        preferredChain: config.preferred_chain,
        storage: this.storage,
        log: this.log,
      }))();
      this.enginePromise = attempt;
      attempt.then((engine) => {
        this.loadedEngine = engine;
      }, (err: Error) => {
        this.log.error({ err: err.message, api_uri: config.api_uri }, 'cannot load the ACME account; will retry on the next order');
        if (this.enginePromise === attempt) this.enginePromise = undefined;
      });
    }
    return this.enginePromise;
  }

  /** Issues every configured certificate that storage does not hold yet. */
  async issueMissing(): Promise<void> {
    for (const cert of configuredCertificates(this.current)) {
      if (this.issuer.stopping) return;
      try {
        const stored = await this.storage.getCertificate(cert.name);
        if (stored && cert.names.every((n) => stored.names.includes(n))) continue;
        await this.issuer.issue(cert);
      } catch (err) {
        // Order failures are logged by the issuer; one certificate's failure never stops the others.
        if (err instanceof StorageError) this.recoverStorage(err);
      }
    }
  }

  /**
   * Applies a new, already validated config without dropping in-flight work.
   * Storage settings need a restart (the open store holds locks and tokens);
   * they are kept as they were, with a warning.
   */
  async reload(next: Config): Promise<void> {
    const previous = this.current;
    const storageKeys = ['storage', 'storage_config', 'haproxy_pem'] as const;
    const storageChanged = storageKeys.filter((k) => !isDeepStrictEqual(previous[k], next[k]));
    if (storageChanged.length > 0) {
      this.log.warn({ keys: storageChanged }, 'storage settings changed; they take effect on restart');
    }
    const applied: Config = { ...next, storage: previous.storage, storage_config: previous.storage_config, haproxy_pem: previous.haproxy_pem };
    this.current = applied;
    this.log.level = applied.log_level;

    if (ENGINE_KEYS.some((k) => !isDeepStrictEqual(previous[k], applied[k]))) {
      // Running orders keep the engine they started with; new ones get a new one.
      const old = this.enginePromise;
      this.enginePromise = undefined;
      this.loadedEngine = undefined;
      void old?.then((engine) => this.issuer.drain().then(() => engine.close()), () => {});
    }
    if (!isDeepStrictEqual(this.listenAddresses(previous), this.listenAddresses(applied))) {
      await this.challengeServer.listen(this.listenAddresses(applied));
    }
    if (previous.admin.socket !== applied.admin.socket) {
      const old = this.adminServer;
      this.adminServer = await listenAdminSocket(applied.admin.socket, createAdminHandler(this.adminBackend(), this.log));
      if (old) await closeAdminSocket(old, previous.admin.socket);
    }
    this.renewer.start();
    this.log.info({ certificates: applied.certificates.length, challenge: this.challengeServer.boundAddresses() }, 'config reloaded');
    void this.issueMissing();
  }

  /**
   * The store stopped answering: keep serving what is in memory, report
   * unhealthy, and probe with backoff; once it answers again, redo the work
   * that failed (missing certificates, the renewal pass).
   */
  recoverStorage(err: Error): void {
    if (this.recovering || this.issuer.stopping) return;
    this.log.error({ err: err.message, storage: this.storage.kind }, 'storage is not answering; will retry with backoff');
    this.recovering = (async () => {
      for (let delay = STORAGE_RETRY_FIRST_MS; !this.issuer.stopping; delay = Math.min(delay * 2, STORAGE_RETRY_MAX_MS)) {
        await sleep(delay);
        if ((await this.health()).ok) break;
      }
      this.recovering = undefined;
      if (this.issuer.stopping) return;
      this.log.info({ storage: this.storage.kind }, 'storage answers again; resuming');
      await this.issueMissing();
      await this.renewer.pass().catch(() => {});
    })();
  }

  /** Stops taking work, lets running orders finish (abandoning them after a grace period), closes everything. */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.issuer.stopAccepting();
      // No new admin connections; the ones waiting on an order get their answer below.
      const adminClosed = this.adminServer ? closeAdminSocket(this.adminServer, this.current.admin.socket) : Promise.resolve();
      await this.renewer.stop();
      const drained = await Promise.race([
        this.issuer.drain().then(() => true),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), DRAIN_GRACE_MS).unref()),
      ]);
      const engine = this.enginePromise ? await this.enginePromise.catch(() => undefined) : undefined;
      if (!drained) {
        this.log.warn({ running: this.issuer.running }, 'abandoning running orders');
        this.issuer.abortAll();
        engine?.close(); // fails requests in flight now instead of after their timeout
        await this.issuer.drain();
      }
      engine?.close();
      await adminClosed;
      await this.challengeServer.close();
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

  private async runHook(name: string, names: string[], notAfter: string) {
    const command = this.current.deploy_hook;
    if (!command) return undefined;
    return runDeployHook({
      command,
      timeoutMs: this.current.deploy_hook_timeout_seconds * 1000,
      lineage: this.storage.location(name).replace(/\/$/, ''),
      names,
      host: name,
      notAfter,
    }, this.log);
  }

  private adminBackend(): AdminBackend {
    return {
      issue: async (host, force) => this.issuer.issue(certificateForHost(this.current, host), { force }),
      renew: (opts) => this.renewer.pass(opts),
      remove: (host, opts) => this.remove(host, opts),
      certificates: () => this.certificateStatuses(),
      certificate: async (host) => findStatus(await this.certificateStatuses(), host),
      health: () => this.health(),
      metrics: async () => ({ contentType: this.metrics.contentType, body: await this.metrics.metrics() }),
    };
  }

  /**
   * Takes a certificate out of storage (revoking it first when asked). A
   * certificate still listed in `certificates` is ordered anew right away:
   * revoking a compromised key should not leave the name without one.
   */
  private async remove(host: string, opts: { revoke: boolean; reason: number }): Promise<{ name: string; revoked: boolean } | null> {
    const row = findStatus(await this.certificateStatuses(), host);
    if (!row || row.not_after === null) return null;
    const name = row.host;
    await withLock(this.storage, keys.lock(name), async () => {
      const bundle = await this.storage.getCertificate(name);
      if (!bundle) return;
      if (opts.revoke) await (await this.engine()).revoke(bundle.cert, opts.reason);
      await this.storage.deleteCertificate(name);
      await this.storage.delete(keys.ari(name));
    }, { ttlMs: this.current.lock_ttl_seconds * 1000 });
    this.log.info({ cert: name, revoked: opts.revoke, reason: opts.reason }, 'certificate removed');
    void this.issueMissing();
    return { name, revoked: opts.revoke };
  }

  private async health(): Promise<{ ok: boolean; checks: Record<string, string> }> {
    const checks: Record<string, string> = {};
    try {
      await this.storage.list(keys.lockPrefix);
      checks.storage = 'ok';
    } catch (err) {
      checks.storage = (err as Error).message;
    }
    return { ok: checks.storage === 'ok', checks };
  }

  /** Status rows of every configured or stored certificate. */
  certificateStatuses(): Promise<CertificateStatus[]> {
    return listStatuses({
      managed: configuredCertificates(this.current),
      storage: this.storage,
      running: this.issuer.running,
      renewAt: (name) => this.renewer.dueAt(name),
      now: this.now(),
    });
  }
}

async function readCaBundle(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ca_bundle ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}
