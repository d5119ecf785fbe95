/**
 * The ACME engine: acme-client for JWS signing, key and CSR handling, with
 * our own transport (typed errors, timeouts, extra roots), a nonce pool, and
 * an order flow that polls the order rather than each authorization, so a
 * single-name certificate costs 7 requests on a warm connection.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, crypto as acmeCrypto } from 'acme-client';
import type { ChallengePublisher } from '../challenge/publisher.js';
import type { Logger } from '../log.js';
import type { Storage } from '../storage/storage.js';
import { loadAccountUrl, loadOrCreateAccountKey, saveAccountUrl } from './account.js';
import { AcmeError, AcmeOrderInvalidError, AcmeProblemError, parseRetryAfter, type AcmeProblem } from './errors.js';
import { NoncePool } from './nonce-pool.js';
import { pollUntil, type PollOptions } from './poll.js';
import { Transport, type TransportResponse } from './transport.js';
import { readCertificateInfo, splitPemChain } from '../certificate-info.js';
import { ariCertId, parseRenewalInfo, type RenewalInfo } from '../renewal/ari.js';

export interface AcmeEngineOptions {
  directoryUrl: string;
  email: string;
  caBundle?: string;
  eab?: { kid: string; hmacKey: string };
  preferredChain?: string | null;
  storage: Storage;
  log: Logger;
  requestTimeoutMs?: number;
  poll?: PollOptions;
}


/** Validation completes a moment after the CA's fetch; poll just after it. */
const SETTLE_AFTER_FETCH_MS = 15;
const FIRST_POLL_AFTER_FINALIZE_MS = 30;

export interface CertificateRequest {
  names: string[];
  keyType: 'ecc' | 'rsa';
  rsaBits?: number;
  /** ARI certID of the certificate this one replaces (RFC 9773 `replaces`). */
  replaces?: string;
  /** Abandons the order between steps (shutdown). */
  signal?: AbortSignal;
}

/** The CA's suggested renewal window for one certificate (RFC 9773). */
export interface RenewalInfoAnswer {
  certId: string;
  window: RenewalInfo;
  retryAfterMs?: number;
}

export interface IssuedCertificate {
  names: string[];
  cert: string;
  chain: string;
  fullchain: string;
  privkey: string;
  notBefore: Date;
  notAfter: Date;
  /** ACME requests this order took. */
  requests: number;
}

/** The parts of acme-client's HttpClient we hook into (not in its public types). */
interface HttpClientInternals {
  request: Transport['request'];
  getNonce(): Promise<string>;
  getResourceUrl(resource: string): Promise<string>;
  getDirectory(): Promise<Record<string, unknown>>;
  signedRequest(url: string, payload: unknown, opts: object, attempts?: number): Promise<TransportResponse>;
}

interface ClientInternals {
  http: HttpClientInternals;
  api: { apiRequest(url: string, payload: unknown, valid: number[]): Promise<TransportResponse> };
}

type Order = { url: string; status: string; authorizations: string[]; finalize: string; certificate?: string; error?: AcmeProblem };
type Authorization = {
  url: string;
  status: string;
  identifier: { type: string; value: string };
  challenges: { type: string; url: string; token: string; status: string; error?: AcmeProblem }[];
};

export class AcmeEngine {
  private constructor(
    private readonly client: Client,
    private readonly transport: Transport,
    private readonly opts: AcmeEngineOptions,
  ) {}

  /** Loads (or creates and registers) the account and warms the directory and nonce pool. */
  static async create(opts: AcmeEngineOptions): Promise<AcmeEngine> {
    const nonces = new NoncePool();
    const transport = new Transport({ caBundle: opts.caBundle, timeoutMs: opts.requestTimeoutMs, nonces, userAgent: 'acmed/0.1' });
    const accountKey = await loadOrCreateAccountKey(opts.storage);
    const accountUrl = await loadAccountUrl(opts.storage, opts.directoryUrl);
    const client = new Client({
      directoryUrl: opts.directoryUrl,
      accountKey,
      accountUrl: accountUrl ?? undefined,
      externalAccountBinding: opts.eab,
    });
    hook(client as unknown as ClientInternals, transport, nonces);
    const engine = new AcmeEngine(client, transport, opts);
    try {
      await (client as unknown as ClientInternals).http.getDirectory();
      if (accountUrl) {
        nonces.add(await (client as unknown as ClientInternals).http.getNonce());
      } else {
        await engine.register();
      }
    } catch (err) {
      transport.close();
      throw err;
    }
    return engine;
  }

  get requestCount(): number {
    return this.transport.requestCount;
  }

  close(): void {
    this.transport.close();
  }

  private async register(): Promise<void> {
    await this.client.createAccount({ termsOfServiceAgreed: true, contact: [`mailto:${this.opts.email}`] });
    const url = this.client.getAccountUrl();
    await saveAccountUrl(this.opts.storage, this.opts.directoryUrl, url);
    this.opts.log.info({ accountUrl: url }, 'registered ACME account');
  }

  /** Revokes a certificate with the account key (RFC 8555 §7.6); reason per RFC 5280 (0 unspecified, 1 keyCompromise, 4 superseded, 5 cessationOfOperation). */
  async revoke(certPem: string, reason = 0): Promise<void> {
    await this.client.revokeCertificate(certPem, { reason });
  }

  /**
   * The CA's renewal window for a certificate, or null when the CA offers no
   * ARI (no `renewalInfo` in its directory). An unauthenticated GET.
   */
  async renewalInfo(certPem: string): Promise<RenewalInfoAnswer | null> {
    const directory = await (this.client as unknown as ClientInternals).http.getDirectory();
    if (typeof directory.renewalInfo !== 'string') return null;
    const certId = ariCertId(certPem);
    const resp = await this.transport.request(`${directory.renewalInfo.replace(/\/$/, '')}/${certId}`, 'get');
    return { certId, window: parseRenewalInfo(resp.data), retryAfterMs: parseRetryAfter(resp.headers['retry-after']) };
  }

  /**
   * Runs one order to completion and returns the certificate; throws typed
   * AcmeErrors. When the CA says the old certificate was already replaced,
   * orders once more without `replaces`, as RFC 9773 asks.
   */
  async issue(request: CertificateRequest, challenges: ChallengePublisher): Promise<IssuedCertificate> {
    try {
      return await this.order(request, challenges);
    } catch (err) {
      if (request.replaces && err instanceof AcmeProblemError && err.problemType === 'alreadyReplaced') {
        this.opts.log.info({ names: request.names }, 'CA says the certificate was already replaced; ordering without "replaces"');
        return this.order({ ...request, replaces: undefined }, challenges);
      }
      throw err;
    }
  }

  private async order(request: CertificateRequest, challenges: ChallengePublisher): Promise<IssuedCertificate> {
    const signal = request.signal;
    signal?.throwIfAborted();
    const startCount = this.transport.requestCount;
    // The key is made while the CA handles the order: RSA 4096 can take a second.
    const keyPromise = request.keyType === 'rsa'
      ? acmeCrypto.createPrivateRsaKey(request.rsaBits ?? 4096)
      : acmeCrypto.createPrivateEcdsaKey('P-256');
    keyPromise.catch(() => {}); // awaited below; avoid an unhandled rejection if the order fails first

    const t0 = Date.now();
    const mark = (step: string) => this.opts.log.debug({ step, ms: Date.now() - t0, names: request.names }, 'order step');
    const order = await this.client.createOrder({
      identifiers: request.names.map((value) => ({ type: 'dns', value })),
      ...(request.replaces ? { replaces: request.replaces } : {}),
    } as never) as unknown as Order;
    const published: string[] = [];
    try {
      if (order.status === 'pending') {
        const authzs = await this.client.getAuthorizations(order as never) as unknown as Authorization[];
        signal?.throwIfAborted();
        await Promise.all(authzs.filter((a) => a.status === 'pending').map(async (authz) => {
          const challenge = authz.challenges.find((c) => c.type === 'http-01');
          if (!challenge) {
            throw new AcmeOrderInvalidError(undefined, `the CA offers no http-01 challenge for ${authz.identifier.value}`);
          }
          const keyAuthorization = await this.client.getChallengeKeyAuthorization(challenge as never);
          await challenges.publish(challenge.token, keyAuthorization);
          published.push(challenge.token);
          await this.client.completeChallenge(challenge as never);
        }));
      }
      mark('challenges answered');
      const firstPoll = this.opts.poll?.firstDelayMs ?? 100;
      const ready = order.status === 'pending'
        ? await this.waitForOrder(order, ['ready', 'valid'], signal, async () => {
          if (challenges.waitForFetches) {
            await challenges.waitForFetches(published, firstPoll);
            await sleep(SETTLE_AFTER_FETCH_MS, undefined, { signal });
          } else {
            await sleep(firstPoll, undefined, { signal });
          }
        })
        : order;
      mark('order ready');
      if (ready.status === 'invalid') throw await this.explainInvalid(ready);

      const api = (this.client as unknown as ClientInternals).api;
      const keyPem = (await keyPromise).toString();
      signal?.throwIfAborted();
      const [, csr] = await acmeCrypto.createCsr({ commonName: request.names[0], altNames: request.names }, keyPem);
      let final = ready;
      if (final.status !== 'valid') {
        const resp = await api.apiRequest(ready.finalize, { csr: pemBodyBase64Url(csr) }, [200]);
        final = { ...resp.data, url: order.url } as Order;
        mark('finalized');
        // Issuance is usually quick; a Retry-After from the CA sets the first wait instead.
        const firstWait = parseRetryAfter(resp.headers['retry-after']) ?? FIRST_POLL_AFTER_FINALIZE_MS;
        if (final.status !== 'valid') final = await this.waitForOrder(final, ['valid'], signal, () => sleep(firstWait, undefined, { signal }));
      }
      mark('order valid');
      if (final.status !== 'valid') throw await this.explainInvalid(final);

      const fullchain = await this.client.getCertificate(final as never, this.opts.preferredChain ?? undefined);
      mark('downloaded');
      const [leaf, ...intermediates] = splitPemChain(fullchain);
      const info = readCertificateInfo(leaf);
      return {
        names: request.names,
        cert: leaf,
        chain: intermediates.join(''),
        fullchain: [leaf, ...intermediates].join(''),
        privkey: keyPem,
        notBefore: info.notBefore,
        notAfter: info.notAfter,
        requests: this.transport.requestCount - startCount,
      };
    } finally {
      await Promise.all(published.map((token) => challenges.withdraw(token).catch(() => {})));
    }
  }

  /** Polls the order (not each authorization) until it leaves pending/processing. */
  private async waitForOrder(order: Order, wanted: string[], signal: AbortSignal | undefined, initialWait: () => Promise<void>): Promise<Order> {
    const api = (this.client as unknown as ClientInternals).api;
    return pollUntil(async () => {
      const resp = await api.apiRequest(order.url, null, [200]);
      return { value: { ...resp.data, url: order.url } as Order, retryAfterMs: parseRetryAfter(resp.headers['retry-after']) };
    }, (o) => wanted.includes(o.status) || o.status === 'invalid', { what: `order ${order.url}`, ...this.opts.poll, initialWait, signal });
  }

  /** Finds the failed challenge behind an invalid order, so the error says why. */
  private async explainInvalid(order: Order): Promise<AcmeError> {
    try {
      const authzs = await this.client.getAuthorizations(order as never) as unknown as Authorization[];
      for (const authz of authzs) {
        const failed = authz.challenges.find((c) => c.error);
        if (failed?.error) {
          return new AcmeOrderInvalidError(failed.error, `validation of ${authz.identifier.value} failed`);
        }
      }
    } catch {
      // fall through to the order's own error
    }
    return new AcmeOrderInvalidError(order.error, `order ${order.url} is ${order.status}`);
  }
}

/** Installs our transport and nonce pool into acme-client's HttpClient. */
function hook(client: ClientInternals, transport: Transport, nonces: NoncePool): void {
  const http = client.http;
  const originalSignedRequest = http.signedRequest.bind(http);
  http.request = transport.request;
  http.getNonce = async () => {
    const pooled = nonces.take();
    if (pooled) return pooled;
    await transport.request(await http.getResourceUrl('newNonce'), 'head');
    const fresh = nonces.take();
    if (!fresh) throw new AcmeProblemError({ type: 'badNonce', detail: 'the CA sent no Replay-Nonce' }, 0, 'newNonce');
    return fresh;
  };
  // acme-client returns the last badNonce response after its retries; make it an error like any other.
  http.signedRequest = async (url, payload, opts, attempts) => {
    const resp = await originalSignedRequest(url, payload, opts, attempts);
    if (resp.status >= 400) {
      throw new AcmeProblemError(resp.data as AcmeProblem, resp.status, url, parseRetryAfter(resp.headers['retry-after']));
    }
    return resp;
  };
}

/** The CSR's DER as base64url, as the finalize request carries it. */
function pemBodyBase64Url(csrPem: Buffer | string): string {
  const body = csrPem.toString().replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
  return Buffer.from(body, 'base64').toString('base64url');
}
