/**
 * The daemon's lifecycle: read the config, open storage, bind the http-01
 * listeners and the admin socket, then issue every configured certificate
 * that storage lacks. The ACME account is loaded lazily and retried, so a CA
 * that is down at boot does not keep acmed (and its admin API) from starting.
 */
import { readFile } from 'node:fs/promises';
import type http from 'node:http';
import { AcmeEngine } from '../acme/client.js';
import { createAdminHandler, type AdminBackend, type CertificateStatus } from '../admin/api.js';
import { closeAdminSocket, listenAdminSocket } from '../admin/server.js';
import { ChallengeServer } from '../challenge/server.js';
import { ChallengeTokens } from '../challenge/tokens.js';
import type { Config } from '../config/schema.js';
import { normalizeHostname } from '../hostname.js';
import { createLogger, type Logger } from '../log.js';
import { createStorage } from '../storage/index.js';
import type { Storage } from '../storage/storage.js';
import { Issuer } from './issuer.js';
import { certificateForHost, configuredCertificates } from './managed.js';
import { statusOf } from './status.js';

export interface DaemonOptions {
  config: Config;
  log?: Logger;
  now?: () => number;
}

export class Daemon {
  private enginePromise?: Promise<AcmeEngine>;
  private adminServer?: http.Server;
  private stopping = false;

  private constructor(
    private config: Config,
    readonly log: Logger,
    readonly storage: Storage,
    readonly tokens: ChallengeTokens,
    readonly challengeServer: ChallengeServer,
    readonly issuer: Issuer,
    private readonly now: () => number,
  ) {}

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
    });
    daemon = new Daemon(config, log, storage, tokens, challengeServer, issuer, now);
    try {
      await challengeServer.listen(config.challenge.listen);
      daemon.adminServer = await listenAdminSocket(config.admin.socket, createAdminHandler(daemon.adminBackend(), log));
    } catch (err) {
      await daemon.stop();
      throw err;
    }
    log.info({ challenge: challengeServer.boundAddresses(), admin: config.admin.socket, storage: storage.kind }, 'acmed started');
    // Load the account now, so the first order does not pay for it.
    void daemon.engine().catch(() => {}).then(() => daemon.issueMissing());
    return daemon;
  }

  /** The ACME engine, created on first use; a failed start is retried on the next use. */
  engine(): Promise<AcmeEngine> {
    if (!this.enginePromise) {
      const config = this.config;
      this.enginePromise = (async () => AcmeEngine.create({
        directoryUrl: config.api_uri,
        email: config.account_email,
        caBundle: config.ca_bundle ? await readCaBundle(config.ca_bundle) : undefined,
        eab: config.eab_kid && config.eab_hmac_key ? { kid: config.eab_kid, hmacKey: config.eab_hmac_key } : undefined,
        preferredChain: config.preferred_chain,
        storage: this.storage,
        log: this.log,
      }))();
      this.enginePromise.catch((err: Error) => {
        this.log.error({ err: err.message, api_uri: config.api_uri }, 'cannot reach the ACME account; will retry on the next order');
        this.enginePromise = undefined;
      });
    }
    return this.enginePromise;
  }

  /** Issues every configured certificate that storage does not hold yet. */
  async issueMissing(): Promise<void> {
    for (const cert of configuredCertificates(this.config)) {
      if (this.stopping) return;
      try {
        const stored = await this.storage.getCertificate(cert.name);
        if (stored && cert.names.every((n) => stored.names.includes(n))) continue;
        await this.issuer.issue(cert);
      } catch {
        // logged by the issuer; one certificate's failure never stops the others
      }
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.adminServer) await closeAdminSocket(this.adminServer, this.config.admin.socket);
    await this.issuer.drain();
    await this.challengeServer.close();
    if (this.enginePromise) (await this.enginePromise.catch(() => undefined))?.close();
    await this.storage.close();
    this.log.info('acmed stopped');
  }

  private adminBackend(): AdminBackend {
    return {
      issue: async (host, force) => this.issuer.issue(certificateForHost(this.config, host), { force }),
      certificates: () => this.certificateStatuses(),
      certificate: async (host) => {
        const name = normalizeHostname(host);
        const all = await this.certificateStatuses();
        return all.find((c) => c.host === name) ?? all.find((c) => c.names.includes(name)) ?? null;
      },
      health: async () => {
        const checks: Record<string, string> = {};
        try {
          await this.storage.list('locks/');
          checks.storage = 'ok';
        } catch (err) {
          checks.storage = (err as Error).message;
        }
        return { ok: checks.storage === 'ok', checks };
      },
    };
  }

  private async certificateStatuses(): Promise<CertificateStatus[]> {
    const managed = configuredCertificates(this.config);
    const names = new Set([...managed.map((c) => c.name), ...(await this.storage.listCertificates())]);
    const running = new Set(this.issuer.running);
    return Promise.all([...names].sort().map(async (name) => statusOf(name, await this.storage.getCertificate(name), {
      storage: this.storage,
      managed: managed.find((c) => c.name === name),
      running: running.has(name),
      now: this.now(),
    })));
  }
}

async function readCaBundle(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ca_bundle ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}
