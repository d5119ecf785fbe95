/**
 * The ACME engine: acme-client for JWS signing, with our own transport
 * (typed errors, timeouts, extra roots), a nonce pool, keys and CSRs made off
 * the event loop (certificate-key.ts), and an order flow that waits on what
 * the CA shows (its fetch of the token, the authorization's state,
 * Retry-After) rather than on a clock, so a single-name certificate costs 7
 * requests on a warm connection, under load too.
 *
 * An order survives what it should not fail for: one dropped connection or
 * 5xx (the request is retried, retry.ts), a CA that forgot the account (it is
 * registered again, account-registration.ts), and a crash between placing
 * and finishing the order (the caller stores a PendingOrder and resumes it).
 * A failed validation ends the order at once rather than at the poll deadline.
 */
import { Client, type Order } from 'acme-client';
import type { OrderCreateRequest } from 'acme-client/types/rfc8555.js';
import { VERSION } from '../version.js';
import type { ChallengeAnswer, ChallengeSolver } from '../challenge/solver.js';
import type { Logger } from '../log.js';
import { legacyAccountKeys, type AccountKeys } from '../storage/keys.js';
import type { Storage } from '../storage/storage.js';
import { abortable, sleepUnlessAborted } from './abort.js';
import { loadAccountUrl, loadOrCreateAccountKey } from './account.js';
import { AccountLifecycle } from './account-lifecycle.js';
import { AccountRegistration } from './account-registration.js';
import { installHooks, type ClientInternals } from './acme-client-hooks.js';
import { certificateKeyFromPem, createCertificateKey, createCsr, type CertificateKey } from './certificate-key.js';
import { validationFailure, type Authorization, type Challenge } from './authorizations.js';
import {
  AcmeError, AcmeOrderInvalidError, AcmeProblemError, isAccountUnknown, parseRetryAfter, ProfileNotOfferedError, type AcmeProblem,
} from './errors.js';
import { NoncePool } from './nonce-pool.js';
import { orderUnusable, resumeMismatch, type PendingOrder } from './pending-order.js';
import { pollUntil, type PollOptions } from './poll.js';
import { runInOrderScope, type OrderScope } from './order-scope.js';
import { isTransient } from './retry.js';
import { Transport } from './transport.js';
import { identifierOf, nameOfIdentifier } from './identifiers.js';
import { asAction, type AcmeRequestSample } from './request-action.js';
import { readCertificateInfo, splitPemChain } from '../certificate-info.js';
import { ariCertId, parseRenewalInfo, type RenewalInfo } from '../renewal/ari.js';

export type { PendingOrder } from './pending-order.js';

export interface AcmeEngineOptions {
  directoryUrl: string;
  /** Where this CA's account lives in storage (account.ts accountKeysOf); default: the legacy `account/…` keys. */
  account?: AccountKeys;
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
  /** Told of every HTTP request to the CA, with the ACME step it belongs to (metrics). */
  observeRequest?: (sample: AcmeRequestSample) => void;
}

/** Validation completes a moment after the CA's fetch; poll just after it. */
const SETTLE_AFTER_FETCH_MS = 15;
const FIRST_POLL_AFTER_FINALIZE_MS = 30;

export interface CertificateRequest {
  names: string[];
  keyType: 'ecc' | 'rsa';
  rsaBits?: number;
  /** ECDSA curve; default P-256. */
  curve?: 'P-256' | 'P-384';
  /** The key to certify again (reuse_key), PEM; else a new one is made. */
  reuseKey?: string;
  /** An ACME profile for newOrder; refused before any order when the CA's directory does not list it. */
  profile?: string | null;
  /** Issuer CN of the chain to prefer (overrides the engine's preferredChain). */
  preferredChain?: string | null;
  /** ARI certID of the certificate this one replaces (RFC 9773 `replaces`). */
  replaces?: string;
  /** Abandons the order between steps, during waits and mid-request (shutdown); the order rejects with its reason. */
  signal?: AbortSignal;
  /** An order an earlier run placed (crash, restart): resumed instead of placing a new one. */
  resume?: PendingOrder;
  /** Called as soon as newOrder has answered and the key exists, so the caller can persist it for resume. */
  onOrderPlaced?: (pending: PendingOrder) => Promise<void>;
  /** Told each step as it starts (ordering, validating, finalizing, downloading), for `acmed issue`'s progress. */
  onStep?: (step: OrderStep) => void;
}

export type OrderStep = 'ordering' | 'validating' | 'finalizing' | 'downloading';

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
  /** dns-01: milliseconds spent waiting for the TXT records to show on the DNS servers. */
  propagationMs?: number;
}


/** An order being worked on, with the certificate key its CSR is made from. */
interface OrderInProgress {
  order: Order;
  privkey: Promise<CertificateKey>;
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
    private readonly opts: AcmeEngineOptions & { account: AccountKeys },
  ) {
    this.internals = client as unknown as ClientInternals;
  }

  /** Loads (or creates and registers) the account and warms the directory and nonce pool. */
  static async create(options: AcmeEngineOptions): Promise<AcmeEngine> {
    const opts = { ...options, account: options.account ?? legacyAccountKeys };
    const nonces = new NoncePool();
    const transport = new Transport({
      caBundle: opts.caBundle, timeoutMs: opts.requestTimeoutMs, nonces, userAgent: `acmed/${VERSION}`, observe: opts.observeRequest,
    });
    const accountKey = await loadOrCreateAccountKey(opts.storage, opts.account);
    const accountUrl = await loadAccountUrl(opts.storage, opts.directoryUrl, opts.account);
    const client = new Client({
      directoryUrl: opts.directoryUrl,
      accountKey,
      accountUrl: accountUrl ?? undefined,
      externalAccountBinding: opts.eab,
    });
    const internals = client as unknown as ClientInternals;
    installHooks(internals, { transport, nonces, log: opts.log, retryDelaysMs: opts.retryDelaysMs });
    const account = new AccountRegistration(internals, {
      directoryUrl: opts.directoryUrl, email: opts.email, eabKid: opts.eab?.kid, storage: opts.storage, account: opts.account, log: opts.log, nonces,
    });
    try {
      await asAction('get_directory', () => internals.http.getDirectory());
      if (accountUrl) {
        nonces.add(await internals.http.getNonce());
        opts.log.info({ accountUrl, ca: opts.directoryUrl }, 'using the stored ACME account');
      } else {
        const url = await asAction('new_account', () => account.register());
        opts.log.info({ accountUrl: url, ca: opts.directoryUrl }, 'registered ACME account');
      }
    } catch (err) {
      transport.close();
      throw err;
    }
    return new AcmeEngine(client, transport, account, opts);
  }

  /** The account's life after registration: show, key rollover, contact, deactivation. */
  accountLifecycle(): AccountLifecycle {
    return new AccountLifecycle(this.internals, {
      directoryUrl: this.opts.directoryUrl, storage: this.opts.storage, account: this.opts.account, log: this.opts.log,
    });
  }

  /** Requests sent by this engine since start, all orders together. */
  get requestCount(): number {
    return this.transport.requestCount;
  }

  /** The CA this engine orders from. */
  get directoryUrl(): string {
    return this.opts.directoryUrl;
  }

  close(): void {
    this.transport.close();
  }

  /** The profiles the CA's directory lists (`meta.profiles`, draft-ietf-acme-profiles); [] when it has none. */
  async offeredProfiles(): Promise<string[]> {
    const meta = (await this.internals.http.getDirectory()).meta as { profiles?: Record<string, unknown> } | undefined;
    return Object.keys(meta?.profiles ?? {});
  }

  private async assertProfileOffered(profile: string): Promise<void> {
    const offered = await this.offeredProfiles();
    if (!offered.includes(profile)) throw new ProfileNotOfferedError(profile, this.opts.directoryUrl, offered);
  }

  /** One plain GET of the directory, no retries: is the CA answering? (probing a CA in backoff) */
  async ping(): Promise<void> {
    await asAction('get_directory', () => this.transport.request(this.opts.directoryUrl, 'get'));
  }

  /** True when the CA's directory offers ARI (`renewalInfo`); lets a pass skip reading PEMs when it does not. */
  async offersRenewalInfo(): Promise<boolean> {
    return typeof (await asAction('get_directory', () => this.internals.http.getDirectory())).renewalInfo === 'string';
  }

  /** Revokes a certificate with the account key (RFC 8555 §7.6); reason per RFC 5280 (0 unspecified, 1 keyCompromise, 4 superseded, 5 cessationOfOperation). */
  async revoke(certPem: string, reason = 0): Promise<void> {
    await asAction('revoke_certificate', () => this.client.revokeCertificate(certPem, { reason }));
  }

  /**
   * The CA's renewal window for a certificate, or null when the CA offers no
   * ARI (no `renewalInfo` in its directory). An unauthenticated GET.
   */
  async renewalInfo(certPem: string): Promise<RenewalInfoAnswer | null> {
    const http = this.internals.http;
    const directory = await asAction('get_directory', () => http.getDirectory());
    if (typeof directory.renewalInfo !== 'string') return null;
    const certId = ariCertId(certPem);
    const resp = await asAction('get_renewal_info', () => http.request(`${(directory.renewalInfo as string).replace(/\/$/, '')}/${certId}`, 'get'));
    return { certId, window: parseRenewalInfo(resp.data), retryAfterMs: parseRetryAfter(resp.headers['retry-after']) };
  }

  /**
   * Runs one order to completion and returns the certificate; throws typed
   * AcmeErrors, or the signal's reason when aborted. When the CA has
   * forgotten the account, registers it again (once) and orders again; when
   * the CA says the old certificate was already replaced, orders once more
   * without `replaces`, as RFC 9773 asks.
   */
  async issue(request: CertificateRequest, challenges: ChallengeSolver): Promise<IssuedCertificate> {
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

  private async issueInScope(request: CertificateRequest, challenges: ChallengeSolver): Promise<Omit<IssuedCertificate, 'requests'>> {
    let current = request;
    let accountRecovered = false;
    for (;;) {
      const accountUrl = this.account.url;
      try {
        return await this.order(current, challenges);
      } catch (err) {
        if (!accountRecovered && isAccountUnknown(err)) {
          accountRecovered = true;
          await abortable(asAction('new_account', () => this.account.recover(accountUrl)), current.signal);
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

  private async order(request: CertificateRequest, challenges: ChallengeSolver): Promise<Omit<IssuedCertificate, 'requests'>> {
    const signal = request.signal;
    signal?.throwIfAborted();
    const t0 = Date.now();
    const mark = (step: string) => this.opts.log.debug({ step, ms: Date.now() - t0, names: request.names }, 'order step');
    request.onStep?.('ordering');
    const work = (request.resume ? await this.resumeOrder(request, request.resume) : null) ?? await this.placeOrder(request);
    mark(work.resumed ? 'order resumed' : 'order placed');
    const published: ChallengeAnswer[] = [];
    const waits = { propagationMs: 0 };
    try {
      let order = work.order;
      if (order.status === 'pending') {
        request.onStep?.('validating');
        order = await this.authorize(order, challenges, published, waits, signal);
        mark('order ready');
      }
      if (order.status === 'ready') {
        const key = await work.privkey;
        // Stored before finalizing, so a crash after it still finds the order.
        await work.persisted;
        signal?.throwIfAborted();
        request.onStep?.('finalizing');
        order = await this.finalize(order, key, request.names, signal);
        mark('finalized');
      }
      if (order.status === 'processing') {
        order = await this.waitForOrder(order, ['valid'], signal);
      }
      if (order.status !== 'valid') throw await this.explainInvalid(order);
      request.onStep?.('downloading');

      const preferred = request.preferredChain !== undefined ? request.preferredChain : this.opts.preferredChain;
      const fullchain = await asAction('get_certificate', () => this.client.getCertificate(order, preferred ?? undefined));
      mark('downloaded');
      const privkey = (await work.privkey).pem;
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
        ...(challenges.type === 'dns-01' ? { propagationMs: waits.propagationMs } : {}),
      };
    } finally {
      await Promise.all(published.map((answer) => challenges.cleanUp(answer).catch(() => {})));
    }
  }

  /** Places a new order; the certificate key is made meanwhile and handed to onOrderPlaced with the order's URL. */
  private async placeOrder(request: CertificateRequest): Promise<OrderInProgress> {
    // The key is made on the threadpool while the CA handles the order: RSA 4096 can take a second.
    if (request.profile) await this.assertProfileOffered(request.profile);
    const privkey = request.reuseKey
      ? Promise.resolve(certificateKeyFromPem(request.reuseKey))
      : createCertificateKey({ keyType: request.keyType, rsaBits: request.rsaBits, curve: request.curve });
    privkey.catch(() => {}); // awaited later; avoid an unhandled rejection if the order fails first
    // `replaces` (RFC 9773) and `profile` are newer than acme-client 5.4's OrderCreateRequest type; it sends the object as given.
    const newOrder: OrderCreateRequest & { replaces?: string; profile?: string } = {
      identifiers: request.names.map(identifierOf),
      ...(request.replaces ? { replaces: request.replaces } : {}),
      ...(request.profile ? { profile: request.profile } : {}),
    };
    const order = await asAction('new_order', () => this.client.createOrder(newOrder));
    const { onOrderPlaced } = request;
    // Runs beside the challenges rather than before them; finalize waits for it.
    const persisted = onOrderPlaced
      ? privkey.then((key) => onOrderPlaced({ url: order.url, names: request.names, privkey: key.pem, keyType: request.keyType }))
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
    const privkey = Promise.resolve().then(() => certificateKeyFromPem(pending.privkey));
    privkey.catch(() => {}); // a broken stored key fails the order at finalize, like before
    return { order, privkey, resumed: true, persisted: Promise.resolve() };
  }

  /**
   * Answers the pending authorizations and waits until the CA has validated
   * them: every answer is presented first, then the solver says when they
   * are visible (dns-01 propagation), then the CA is told to validate.
   */
  private async authorize(
    order: Order, challenges: ChallengeSolver, published: ChallengeAnswer[], waits: { propagationMs: number }, signal: AbortSignal | undefined,
  ): Promise<Order> {
    const authzs = await asAction('get_authorization', () => this.client.getAuthorizations(order));
    signal?.throwIfAborted();
    const pending = authzs.filter((a) => a.status !== 'valid');
    // allSettled: every answer that went out is in `published` for cleanup before the order fails.
    const presented = await Promise.allSettled(pending.map((authz) => this.present(authz, challenges, published)));
    const failed = presented.find((p): p is PromiseRejectedResult => p.status === 'rejected');
    if (failed) throw await this.giveUpAuthorizations(pending, failed.reason as Error, signal);
    const answered = presented.map((p) => (p as PromiseFulfilledResult<{ challenge: Challenge; answer: ChallengeAnswer }>).value);
    if (challenges.ready) {
      try {
        waits.propagationMs += await challenges.ready(answered.map((a) => a.answer), signal);
      } catch (err) {
        throw await this.giveUpAuthorizations(pending, err as Error, signal);
      }
      signal?.throwIfAborted();
    }
    const tokens = await Promise.all(answered.map(({ challenge }, i) => this.complete(pending[i]!, challenge)));
    this.opts.log.debug({ step: 'challenges answered', names: order.identifiers?.map((i) => i.value), tokens: published.length }, 'order step');
    return this.waitForValidation(order, new Map(pending.map((a, i) => [a.url, tokens[i]!])), challenges, signal);
  }

  /**
   * Waits until the CA has validated the open authorizations (url → token),
   * looking at what the CA reports rather than at the clock:
   *
   * - the first look comes once the CA has fetched every token (the http-01
   *   server sees it) and a moment more for it to record the result;
   * - with one authorization open, that authorization is polled: valid means
   *   the order is ready (RFC 8555 §7.1.6), so finalize follows with no order
   *   poll, and an error on it ends the order at once; with several, the
   *   order is polled, and while it is pending so are the authorizations
   *   still open (dropping those that turned valid);
   * - a Retry-After from the CA sets the next wait; otherwise the wait backs
   *   off but ends as soon as the CA fetches an open token again (a retrying
   *   or slower validation), so a busy CA costs a poll per step it takes, not
   *   a poll per timer.
   *
   * Resolves with the order as the CA reported it, or marked ready.
   */
  private waitForValidation(
    order: Order, open: Map<string, string>, challenges: ChallengeSolver, signal: AbortSignal | undefined,
  ): Promise<Order> {
    const firstPoll = this.opts.poll?.firstDelayMs ?? 100;
    const ready = (): Order => ({ ...order, status: 'ready' });
    /** Up to ms, or until the CA fetches the open tokens, then the settle time. */
    const untilFetched = async (ms: number): Promise<void> => {
      if (!challenges.waitForFetches) return sleepUnlessAborted(ms, signal);
      const started = Date.now();
      await abortable(challenges.waitForFetches([...open.values()], ms), signal);
      if (Date.now() - started < ms) await sleepUnlessAborted(SETTLE_AFTER_FETCH_MS, signal);
    };
    return pollUntil<Order>(async () => {
      if (open.size === 1) {
        const [url] = open.keys();
        const resp = await asAction('get_authorization', () => this.internals.api.apiRequest(url!, null, [200]));
        const authz = { ...resp.data, url } as Authorization;
        const failure = validationFailure(authz);
        if (failure) throw failure;
        if (authz.status === 'valid') {
          open.delete(url!);
          return { value: ready() };
        }
        return { value: order, retryAfterMs: parseRetryAfter(resp.headers['retry-after']) };
      }
      const resp = await asAction('get_order', () => this.internals.api.apiRequest(order.url, null, [200]));
      const current = { ...resp.data, url: order.url } as Order;
      if (current.status === 'pending') {
        await this.failOnFailedValidation(open);
        if (open.size === 0) return { value: ready() };
      }
      return { value: current, retryAfterMs: parseRetryAfter(resp.headers['retry-after']) };
    }, (o) => o.status !== 'pending', {
      what: `order ${order.url}`, ...this.opts.poll, signal, initialWait: () => untilFetched(firstPoll), backoffWait: untilFetched,
    });
  }

  /** Presents the answer to the authorization's challenge of the solver's type (served token, TXT record). */
  private async present(
    authz: Authorization, challenges: ChallengeSolver, published: ChallengeAnswer[],
  ): Promise<{ challenge: Challenge; answer: ChallengeAnswer }> {
    const failure = validationFailure(authz);
    if (failure) throw failure;
    const challenge = authz.challenges.find((c) => c.type === challenges.type);
    if (!challenge) {
      const wildcard = authz.wildcard ? ' (a wildcard name: only dns-01 can prove it)' : '';
      throw new AcmeOrderInvalidError(undefined, `the CA offers no ${challenges.type} challenge for ${authz.wildcard ? '*.' : ''}${authz.identifier.value}${wildcard}`);
    }
    const keyAuthorization = await this.client.getChallengeKeyAuthorization(challenge);
    const answer: ChallengeAnswer = {
      identifier: nameOfIdentifier(authz.identifier), wildcard: authz.wildcard === true, token: challenge.token, keyAuthorization,
    };
    // Listed before it goes out, so a half-done present (an update sent, its reply lost) is cleaned up too.
    published.push(answer);
    await challenges.present(answer);
    return { challenge, answer };
  }

  /**
   * Our side failed before the CA was asked to validate (a refused DNS
   * update, records that never showed): deactivates the order's open
   * authorizations (RFC 8555 §7.5.2), so the CA holds nothing pending on our
   * account for them (Let's Encrypt limits pending authorizations). Not on
   * shutdown: a resumed order carries on with them. Returns the error to throw.
   */
  private async giveUpAuthorizations(pending: Authorization[], error: Error, signal: AbortSignal | undefined): Promise<Error> {
    if (signal?.aborted || error instanceof AcmeError) return error;
    const open = pending.filter((a) => a.status === 'pending');
    const results = await Promise.allSettled(open.map((authz) => this.client.deactivateAuthorization(authz)));
    const deactivated = results.filter((r) => r.status === 'fulfilled').length;
    this.opts.log.info({ names: open.map((a) => a.identifier.value), deactivated, of: open.length }, 'order given up before validation; its authorizations deactivated');
    return error;
  }

  /** Tells the CA to validate a presented challenge; returns its token. */
  private async complete(authz: Authorization, challenge: Challenge): Promise<string> {
    // A resumed order may have been answered before the crash: the CA only needs the answer presented again.
    if (challenge.status !== 'pending') return challenge.token;
    try {
      await asAction('accept_challenge', () => this.client.completeChallenge(challenge));
    } catch (err) {
      // An answer the CA took but whose reply was lost is refused when sent
      // again (Pebble: malformed, "only status pending"); go on if it took.
      if (!(err instanceof AcmeProblemError) || isTransient(err) || isAccountUnknown(err)) throw err;
      const now = await this.fetchAuthorization(authz.url);
      const again = now.challenges.find((c) => c.url === challenge.url);
      if (now.status === 'pending' && (!again || again.status === 'pending')) throw err;
    }
    return challenge.token;
  }

  /** Sends the CSR and waits for the certificate to be issued. */
  private async finalize(order: Order, key: CertificateKey, names: string[], signal: AbortSignal | undefined): Promise<Order> {
    const csr = await createCsr(names, key.key);
    signal?.throwIfAborted();
    let resp;
    for (let sent = 1; ; sent++) {
      try {
        resp = await asAction('finalize_order', () => this.internals.api.apiRequest(order.finalize, { csr: csr.toString('base64url') }, [200]));
        break;
      } catch (err) {
        if (!(err instanceof AcmeProblemError && err.problemType === 'orderNotReady')) throw err;
        // Either a finalize the CA took but whose reply was lost (sent
        // again, it is refused as not ready), or the order was finalized on
        // the strength of a valid authorization before the CA counted the
        // order itself ready: carry on from where the order is.
        const now = await this.fetchOrder(order.url);
        if (now.status === 'processing' || now.status === 'valid' || now.status === 'invalid') return now;
        if (sent > 1) throw err;
        const settled = now.status === 'ready' ? now : await this.waitForOrder(now, ['ready', 'processing', 'valid'], signal);
        if (settled.status !== 'ready') return settled;
      }
    }
    const final = { ...resp.data, url: order.url } as Order;
    if (final.status === 'valid' || final.status === 'invalid') return final;
    // Issuance is usually quick; a Retry-After from the CA sets the first wait instead.
    const firstWait = parseRetryAfter(resp.headers['retry-after']) ?? FIRST_POLL_AFTER_FINALIZE_MS;
    return this.waitForOrder(final, ['valid'], signal, () => sleepUnlessAborted(firstWait, signal));
  }

  private async fetchOrder(url: string): Promise<Order> {
    const resp = await asAction('get_order', () => this.internals.api.apiRequest(url, null, [200]));
    return { ...resp.data, url } as Order;
  }

  private async fetchAuthorization(url: string): Promise<Authorization> {
    const resp = await asAction('get_authorization', () => this.internals.api.apiRequest(url, null, [200]));
    return { ...resp.data, url } as Authorization;
  }

  /** Polls the order until it reaches one of `wanted` (or invalid), honouring the CA's Retry-After. */
  private async waitForOrder(
    order: Order, wanted: string[], signal: AbortSignal | undefined, initialWait?: () => Promise<void>,
  ): Promise<Order> {
    return pollUntil(async () => {
      const resp = await asAction('get_order', () => this.internals.api.apiRequest(order.url, null, [200]));
      const current = { ...resp.data, url: order.url } as Order;
      return { value: current, retryAfterMs: parseRetryAfter(resp.headers['retry-after']) };
    }, (o) => wanted.includes(o.status) || o.status === 'invalid', { what: `order ${order.url}`, ...this.opts.poll, initialWait, signal });
  }

  /** Throws the first failed validation among the watched authorizations (by URL); forgets those that turned valid. */
  private async failOnFailedValidation(watched: Map<string, unknown>): Promise<void> {
    const authzs = await Promise.all([...watched.keys()].map((url) => this.fetchAuthorization(url)));
    for (const authz of authzs) {
      const failure = validationFailure(authz);
      if (failure) throw failure;
      if (authz.status === 'valid') watched.delete(authz.url);
    }
  }

  /** Finds the failed challenge behind an invalid order, so the error says why. */
  private async explainInvalid(order: Order): Promise<AcmeError> {
    try {
      const authzs = await asAction('get_authorization', () => this.client.getAuthorizations(order));
      for (const authz of authzs) {
        const failure = validationFailure(authz);
        if (failure?.problem) return failure;
      }
    } catch {
      // fall through to the order's own error
    }
    return new AcmeOrderInvalidError(order.error as AcmeProblem | undefined, `order ${order.url} is ${order.status}`);
  }
}

