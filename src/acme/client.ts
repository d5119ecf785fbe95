/**
 * The ACME engine: acme-client for JWS signing, key and CSR handling, with
 * our own transport (typed errors, timeouts, extra roots), a nonce pool, and
 * an order flow that polls the order rather than each authorization, so a
 * single-name certificate costs 7 requests on a warm connection.
 *
 * An order survives what it should not fail for: one dropped connection or
 * 5xx (the request is retried, retry.ts), a CA that forgot the account (it is
 * registered again, account-registration.ts), and a crash between placing
 * and finishing the order (the caller stores a PendingOrder and resumes it).
 * A failed validation ends the order at once rather than at the poll deadline.
 */
import { Client, crypto as acmeCrypto } from 'acme-client';
import type { ChallengePublisher } from '../challenge/publisher.js';
import type { Logger } from '../log.js';
import type { Storage } from '../storage/storage.js';
import { abortable, sleepUnlessAborted } from './abort.js';
import { loadAccountUrl, loadOrCreateAccountKey } from './account.js';
import { AccountRegistration } from './account-registration.js';
import { installHooks, type ClientInternals } from './acme-client-hooks.js';
import { validationFailure, type Authorization } from './authorizations.js';
import {
  AcmeError, AcmeOrderInvalidError, AcmeProblemError, isAccountUnknown, parseRetryAfter, type AcmeProblem,
} from './errors.js';
import { NoncePool } from './nonce-pool.js';
import { orderUnusable, resumeMismatch, type PendingOrder } from './pending-order.js';
import { pollUntil, type PollOptions } from './poll.js';
import { runInOrderScope, type OrderScope } from './order-scope.js';
import { isTransient } from './retry.js';
import { Transport } from './transport.js';
import { readCertificateInfo, splitPemChain } from '../certificate-info.js';
import { ariCertId, parseRenewalInfo, type RenewalInfo } from '../renewal/ari.js';

export type { PendingOrder } from './pending-order.js';

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
  /** Waits before each retry of one request after a transient fault; default 250 ms, 1 s, 3 s; [] sends once. */
  retryDelaysMs?: readonly number[];
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
  /** Abandons the order between steps, during waits and mid-request (shutdown); the order rejects with its reason. */
  signal?: AbortSignal;
  /** An order an earlier run placed (crash, restart): resumed instead of placing a new one. */
  resume?: PendingOrder;
  /** Called as soon as newOrder has answered and the key exists, so the caller can persist it for resume. */
  onOrderPlaced?: (pending: PendingOrder) => Promise<void>;
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
  /** ACME requests this order took (retries included; a shared account re-registration not). */
  requests: number;
  /** True when an earlier run's order (CertificateRequest.resume) was carried on. */
  resumed: boolean;
}

type Order = {
  url: string;
  status: string;
  expires?: string;
  identifiers?: { type: string; value: string }[];
  authorizations: string[];
  finalize: string;
  certificate?: string;
  error?: AcmeProblem;
};

/** An order being worked on, with the certificate key its CSR is made from. */
interface OrderInProgress {
  order: Order;
  privkey: Promise<string>;
  resumed: boolean;
  /** Settles once onOrderPlaced has run (never rejects). */
  persisted: Promise<void>;
}

export class AcmeEngine {
  private readonly internals: ClientInternals;

  private constructor(
    private readonly client: Client,
    private readonly transport: Transport,
    private readonly account: AccountRegistration,
    private readonly opts: AcmeEngineOptions,
  ) {
    this.internals = client as unknown as ClientInternals;
  }

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
    const internals = client as unknown as ClientInternals;
    installHooks(internals, { transport, nonces, log: opts.log, retryDelaysMs: opts.retryDelaysMs });
    const account = new AccountRegistration(internals, {
      directoryUrl: opts.directoryUrl, email: opts.email, eabKid: opts.eab?.kid, storage: opts.storage, log: opts.log, nonces,
    });
    try {
      await internals.http.getDirectory();
      if (accountUrl) {
        nonces.add(await internals.http.getNonce());
      } else {
        const url = await account.register();
        opts.log.info({ accountUrl: url }, 'registered ACME account');
      }
    } catch (err) {
      transport.close();
      throw err;
    }
    return new AcmeEngine(client, transport, account, opts);
  }

  /** Requests sent by this engine since start, all orders together. */
  get requestCount(): number {
    return this.transport.requestCount;
  }

  close(): void {
    this.transport.close();
  }

  /** One plain GET of the directory, no retries: is the CA answering? (probing a CA in backoff) */
  async ping(): Promise<void> {
    await this.transport.request(this.opts.directoryUrl, 'get');
  }

  /** True when the CA's directory offers ARI (`renewalInfo`); lets a pass skip reading PEMs when it does not. */
  async offersRenewalInfo(): Promise<boolean> {
    return typeof (await this.internals.http.getDirectory()).renewalInfo === 'string';
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
    const http = this.internals.http;
    const directory = await http.getDirectory();
    if (typeof directory.renewalInfo !== 'string') return null;
    const certId = ariCertId(certPem);
    const resp = await http.request(`${directory.renewalInfo.replace(/\/$/, '')}/${certId}`, 'get');
    return { certId, window: parseRenewalInfo(resp.data), retryAfterMs: parseRetryAfter(resp.headers['retry-after']) };
  }

  /**
   * Runs one order to completion and returns the certificate; throws typed
   * AcmeErrors, or the signal's reason when aborted. When the CA has
   * forgotten the account, registers it again (once) and orders again; when
   * the CA says the old certificate was already replaced, orders once more
   * without `replaces`, as RFC 9773 asks.
   */
  async issue(request: CertificateRequest, challenges: ChallengePublisher): Promise<IssuedCertificate> {
    const scope: OrderScope = { requests: 0, signal: request.signal };
    try {
      const issued = await runInOrderScope(scope, () => this.issueInScope(request, challenges));
      return { ...issued, requests: scope.requests };
    } catch (err) {
      // Timers and aborted requests reject with a generic AbortError; the caller gets the reason it gave.
      if (request.signal?.aborted) throw request.signal.reason;
      throw err;
    }
  }

  private async issueInScope(request: CertificateRequest, challenges: ChallengePublisher): Promise<Omit<IssuedCertificate, 'requests'>> {
    let current = request;
    let accountRecovered = false;
    for (;;) {
      const accountUrl = this.account.url;
      try {
        return await this.order(current, challenges);
      } catch (err) {
        if (!accountRecovered && isAccountUnknown(err)) {
          accountRecovered = true;
          await abortable(this.account.recover(accountUrl), current.signal);
          // The earlier order belonged to the account the CA forgot.
          current = { ...current, resume: undefined };
          continue;
        }
        if (current.replaces && err instanceof AcmeProblemError && err.problemType === 'alreadyReplaced') {
          this.opts.log.info({ names: current.names }, 'CA says the certificate was already replaced; ordering without "replaces"');
          current = { ...current, replaces: undefined };
          continue;
        }
        throw err;
      }
    }
  }

  private async order(request: CertificateRequest, challenges: ChallengePublisher): Promise<Omit<IssuedCertificate, 'requests'>> {
    const signal = request.signal;
    signal?.throwIfAborted();
    const t0 = Date.now();
    const mark = (step: string) => this.opts.log.debug({ step, ms: Date.now() - t0, names: request.names }, 'order step');
    const work = (request.resume ? await this.resumeOrder(request, request.resume) : null) ?? await this.placeOrder(request);
    mark(work.resumed ? 'order resumed' : 'order placed');
    const published: string[] = [];
    try {
      let order = work.order;
      if (order.status === 'pending') {
        order = await this.authorize(order, challenges, published, signal);
        mark('order ready');
      }
      if (order.status === 'ready') {
        const privkey = await work.privkey;
        // Stored before finalizing, so a crash after it still finds the order.
        await work.persisted;
        signal?.throwIfAborted();
        order = await this.finalize(order, privkey, request.names, signal);
        mark('finalized');
      }
      if (order.status === 'processing') {
        order = await this.waitForOrder(order, ['valid'], signal);
      }
      if (order.status !== 'valid') throw await this.explainInvalid(order);

      const fullchain = await this.client.getCertificate(order as never, this.opts.preferredChain ?? undefined);
      mark('downloaded');
      const privkey = await work.privkey;
      await work.persisted;
      const [leaf, ...intermediates] = splitPemChain(fullchain);
      const info = readCertificateInfo(leaf);
      return {
        names: request.names,
        cert: leaf,
        chain: intermediates.join(''),
        fullchain: [leaf, ...intermediates].join(''),
        privkey,
        notBefore: info.notBefore,
        notAfter: info.notAfter,
        resumed: work.resumed,
      };
    } finally {
      await Promise.all(published.map((token) => challenges.withdraw(token).catch(() => {})));
    }
  }

  /** Places a new order; the certificate key is made meanwhile and handed to onOrderPlaced with the order's URL. */
  private async placeOrder(request: CertificateRequest): Promise<OrderInProgress> {
    // The key is made while the CA handles the order: RSA 4096 can take a second.
    const privkey = (request.keyType === 'rsa'
      ? acmeCrypto.createPrivateRsaKey(request.rsaBits ?? 4096)
      : acmeCrypto.createPrivateEcdsaKey('P-256')).then((key) => key.toString());
    privkey.catch(() => {}); // awaited later; avoid an unhandled rejection if the order fails first
    const order = await this.client.createOrder({
      identifiers: request.names.map((value) => ({ type: 'dns', value })),
      ...(request.replaces ? { replaces: request.replaces } : {}),
    } as never) as unknown as Order;
    const { onOrderPlaced } = request;
    // Runs beside the challenges rather than before them; finalize waits for it.
    const persisted = onOrderPlaced
      ? privkey.then((key) => onOrderPlaced({ url: order.url, names: request.names, privkey: key, keyType: request.keyType }))
        .catch((err: Error) => {
          // Only resuming after a crash is lost; the order itself goes on.
          this.opts.log.warn({ names: request.names, orderUrl: order.url, err: err?.message }, 'could not store the placed order for resume');
        })
      : Promise.resolve();
    return { order, privkey, resumed: false, persisted };
  }

  /** The earlier run's order if it can be carried on; null to place a new one. CA faults are thrown, not papered over. */
  private async resumeOrder(request: CertificateRequest, pending: PendingOrder): Promise<OrderInProgress | null> {
    const log = this.opts.log;
    const mismatch = resumeMismatch(pending, request);
    if (mismatch) {
      log.info({ names: request.names, orderUrl: pending.url, reason: mismatch }, 'not resuming the earlier order; placing a new one');
      return null;
    }
    let order: Order;
    try {
      order = await this.fetchOrder(pending.url);
    } catch (err) {
      if (request.signal?.aborted || isTransient(err)) throw err;
      log.info({ names: request.names, orderUrl: pending.url, reason: (err as Error).message }, 'cannot resume the earlier order; placing a new one');
      return null;
    }
    const unusable = orderUnusable(order, request.names, Date.now());
    if (unusable) {
      log.info({ names: request.names, orderUrl: pending.url, reason: unusable }, 'cannot resume the earlier order; placing a new one');
      return null;
    }
    log.info({ names: request.names, orderUrl: pending.url, status: order.status }, 'resuming the earlier order');
    return { order, privkey: Promise.resolve(pending.privkey), resumed: true, persisted: Promise.resolve() };
  }

  /** Answers the pending authorizations and waits until the order leaves pending. */
  private async authorize(order: Order, challenges: ChallengePublisher, published: string[], signal: AbortSignal | undefined): Promise<Order> {
    const authzs = await this.client.getAuthorizations(order as never) as unknown as Authorization[];
    signal?.throwIfAborted();
    const pending = authzs.filter((a) => a.status !== 'valid');
    await Promise.all(pending.map((authz) => this.answer(authz, challenges, published)));
    this.opts.log.debug({ step: 'challenges answered', names: order.identifiers?.map((i) => i.value), tokens: published.length }, 'order step');
    const firstPoll = this.opts.poll?.firstDelayMs ?? 100;
    return this.waitForOrder(order, ['ready', 'valid'], signal, async () => {
      if (challenges.waitForFetches) {
        await challenges.waitForFetches(published, firstPoll);
        await sleepUnlessAborted(SETTLE_AFTER_FETCH_MS, signal);
      } else {
        await sleepUnlessAborted(firstPoll, signal);
      }
    }, new Set(pending.map((a) => a.url)));
  }

  /** Publishes the http-01 key authorization and tells the CA to validate. */
  private async answer(authz: Authorization, challenges: ChallengePublisher, published: string[]): Promise<void> {
    const failure = validationFailure(authz);
    if (failure) throw failure;
    const challenge = authz.challenges.find((c) => c.type === 'http-01');
    if (!challenge) {
      throw new AcmeOrderInvalidError(undefined, `the CA offers no http-01 challenge for ${authz.identifier.value}`);
    }
    const keyAuthorization = await this.client.getChallengeKeyAuthorization(challenge as never);
    await challenges.publish(challenge.token, keyAuthorization);
    published.push(challenge.token);
    // A resumed order may have been answered before the crash: the CA only needs the token served again.
    if (challenge.status !== 'pending') return;
    try {
      await this.client.completeChallenge(challenge as never);
    } catch (err) {
      // An answer the CA took but whose reply was lost is refused when sent
      // again (Pebble: malformed, "only status pending"); go on if it took.
      if (!(err instanceof AcmeProblemError) || isTransient(err) || isAccountUnknown(err)) throw err;
      const now = await this.fetchAuthorization(authz.url);
      const again = now.challenges.find((c) => c.url === challenge.url);
      if (now.status === 'pending' && (!again || again.status === 'pending')) throw err;
    }
  }

  /** Sends the CSR and waits for the certificate to be issued. */
  private async finalize(order: Order, privkey: string, names: string[], signal: AbortSignal | undefined): Promise<Order> {
    const [, csr] = await acmeCrypto.createCsr({ commonName: names[0], altNames: names }, privkey);
    signal?.throwIfAborted();
    let resp;
    try {
      resp = await this.internals.api.apiRequest(order.finalize, { csr: pemBodyBase64Url(csr) }, [200]);
    } catch (err) {
      // A finalize the CA took but whose reply was lost is refused as
      // orderNotReady when sent again; carry on from where the order is.
      if (!(err instanceof AcmeProblemError && err.problemType === 'orderNotReady')) throw err;
      const now = await this.fetchOrder(order.url);
      if (now.status !== 'processing' && now.status !== 'valid') throw err;
      return now;
    }
    const final = { ...resp.data, url: order.url } as Order;
    if (final.status === 'valid' || final.status === 'invalid') return final;
    // Issuance is usually quick; a Retry-After from the CA sets the first wait instead.
    const firstWait = parseRetryAfter(resp.headers['retry-after']) ?? FIRST_POLL_AFTER_FINALIZE_MS;
    return this.waitForOrder(final, ['valid'], signal, () => sleepUnlessAborted(firstWait, signal));
  }

  private async fetchOrder(url: string): Promise<Order> {
    const resp = await this.internals.api.apiRequest(url, null, [200]);
    return { ...resp.data, url } as Order;
  }

  private async fetchAuthorization(url: string): Promise<Authorization> {
    const resp = await this.internals.api.apiRequest(url, null, [200]);
    return { ...resp.data, url } as Authorization;
  }

  /**
   * Polls the order (not each authorization) until it leaves pending/processing.
   * With `watched`, a poll that still finds the order pending also reads those
   * authorizations and ends the order at the first failed validation; the fast
   * path (ready at the first look) costs no extra request.
   */
  private async waitForOrder(
    order: Order, wanted: string[], signal: AbortSignal | undefined, initialWait?: () => Promise<void>, watched?: Set<string>,
  ): Promise<Order> {
    return pollUntil(async () => {
      const resp = await this.internals.api.apiRequest(order.url, null, [200]);
      const current = { ...resp.data, url: order.url } as Order;
      if (watched?.size && current.status === 'pending') await this.failOnFailedValidation(watched);
      return { value: current, retryAfterMs: parseRetryAfter(resp.headers['retry-after']) };
    }, (o) => wanted.includes(o.status) || o.status === 'invalid', { what: `order ${order.url}`, ...this.opts.poll, initialWait, signal });
  }

  /** Throws the first failed validation among the watched authorizations; forgets those that turned valid. */
  private async failOnFailedValidation(watched: Set<string>): Promise<void> {
    const authzs = await Promise.all([...watched].map((url) => this.fetchAuthorization(url)));
    for (const authz of authzs) {
      const failure = validationFailure(authz);
      if (failure) throw failure;
      if (authz.status === 'valid') watched.delete(authz.url);
    }
  }

  /** Finds the failed challenge behind an invalid order, so the error says why. */
  private async explainInvalid(order: Order): Promise<AcmeError> {
    try {
      const authzs = await this.client.getAuthorizations(order as never) as unknown as Authorization[];
      for (const authz of authzs) {
        const failure = validationFailure(authz);
        if (failure?.problem) return failure;
      }
    } catch {
      // fall through to the order's own error
    }
    return new AcmeOrderInvalidError(order.error, `order ${order.url} is ${order.status}`);
  }
}

/** The CSR's DER as base64url, as the finalize request carries it. */
function pemBodyBase64Url(csrPem: Buffer | string): string {
  const body = csrPem.toString().replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
  return Buffer.from(body, 'base64').toString('base64url');
}
