/**
 * Where acmed reaches into acme-client 5.4.0 (pinned exactly in
 * package.json; test/unit/acme-client-internals.test.ts fails loudly when a
 * member used here changes): its HttpClient's request, getNonce and
 * signedRequest are replaced so every request goes through our transport,
 * takes nonces from the pool, counts toward the order it belongs to, stops
 * when that order is aborted, and is retried after a transient fault; its
 * AcmeApi sends the account requests acme-client's Client wraps in ways we
 * cannot use (see account-registration.ts, account-lifecycle.ts). None of
 * these members are in acme-client's public types.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createPrivateKey, KeyObject } from 'node:crypto';
import { createRequire } from 'node:module';
import type { Logger } from '../log.js';
import { AcmeError, AcmeProblemError, parseRetryAfter, type AcmeProblem } from './errors.js';
import type { NoncePool } from './nonce-pool.js';
import { currentOrderScope } from './order-scope.js';
import { asAction } from './request-action.js';
import { withTransientRetry } from './retry.js';
import type { Transport, TransportRequestOptions, TransportResponse } from './transport.js';

/** acme-client's HttpClient, as far as we use it. */
export interface HttpClientInternals {
  /** The account key that signs every request: PEM as acme-client keeps it, or a KeyObject once installHooks ran. */
  accountKey: Buffer | string | KeyObject;
  request(url: string, method: string, opts?: TransportRequestOptions): Promise<TransportResponse>;
  getNonce(): Promise<string>;
  getResourceUrl(resource: string): Promise<string>;
  getDirectory(): Promise<Record<string, unknown>>;
  /** The account key's public JWK (cached). */
  getJwk(): Record<string, unknown>;
  directoryUrl: string;
  signedRequest(url: string, payload: unknown, opts: SignedRequestOptions, attempts?: number): Promise<TransportResponse>;
}

export interface SignedRequestOptions {
  kid?: string | null;
  nonce?: string | null;
  includeExternalAccountBinding?: boolean;
}

/** acme-client's AcmeApi: `accountUrl` is the JWS kid of every signed request; createAccount sets it from Location. */
export interface AcmeApiInternals {
  accountUrl: string | null;
  apiRequest(url: string, payload: unknown, valid: number[]): Promise<TransportResponse>;
  createAccount(data: Record<string, unknown>): Promise<TransportResponse>;
  /** POST to the account URL: contact, status (RFC 8555 §7.3.2, §7.3.6); null payload is POST-as-GET. */
  updateAccount(data: Record<string, unknown> | null): Promise<TransportResponse>;
  /** POST the key-change JWS to the directory's keyChange (§7.3.5). */
  updateAccountKey(body: unknown): Promise<TransportResponse>;
}

export interface ClientInternals {
  http: HttpClientInternals;
  api: AcmeApiInternals;
}

/** acme-client's HttpClient class (src/http.js), used only for its signer: building a JWS makes no request. */
type HttpClientClass = new (directoryUrl: string, accountKey: Buffer) => { createSignedBody(url: string, payload: unknown): unknown };
const HttpClient = createRequire(import.meta.url)('acme-client/src/http.js') as HttpClientClass;

/**
 * The inner JWS of an RFC 8555 §7.3.5 key change: `{account, oldKey}` signed
 * by the new key, with the new key's JWK in its header. acme-client's own
 * Client.updateAccountKey would build it with a fresh, unhooked HttpClient
 * that fetches the directory over its own HTTP stack (no ca_bundle, no
 * retries); here only its signer is used, and the outer request goes
 * through the hooked AcmeApi.
 */
export function keyChangeBody(client: ClientInternals, newKeyPem: string, keyChangeUrl: string, accountUrl: string): unknown {
  const signer = new HttpClient(client.http.directoryUrl, Buffer.from(newKeyPem));
  return signer.createSignedBody(keyChangeUrl, { account: accountUrl, oldKey: client.http.getJwk() });
}

export interface HookDeps {
  transport: Transport;
  nonces: NoncePool;
  log: Logger;
  /** Delays between retries of one request; see retry.ts. */
  retryDelaysMs?: readonly number[];
}

export function installHooks(client: ClientInternals, deps: HookDeps): void {
  const { transport, nonces, log } = deps;
  const http = client.http;
  // acme-client hands the PEM to crypto for each signature, and OpenSSL 3
  // parses it anew every time (~0.7 ms, most of a JWS's cost); parsed once
  // here, every signature (and the JWK) comes from the KeyObject.
  if (!(http.accountKey instanceof KeyObject)) http.accountKey = createPrivateKey(http.accountKey);
  const originalSignedRequest = http.signedRequest.bind(http);

  /** One HTTP request, billed to the order it runs in and stopped by that order's signal. */
  const send = (url: string, method: string, opts: TransportRequestOptions = {}): Promise<TransportResponse> => {
    const scope = currentOrderScope();
    if (scope) scope.requests++;
    const sent = transport.request(url, method, { ...opts, signal: scope?.signal });
    // log_level trace: every ACME request, for following a conversation with the CA.
    if (log.isLevelEnabled('trace')) {
      const started = Date.now();
      sent.then(
        (resp) => log.trace({ method: method.toUpperCase(), path: pathOf(url), status: resp.status, ms: Date.now() - started }, 'ACME request'),
        (err: Error) => log.trace({ method: method.toUpperCase(), path: pathOf(url), err: err.message, ms: Date.now() - started }, 'ACME request failed'),
      );
    }
    return sent;
  };

  // Set while an attempt runs: a request made inside it (the nonce HEAD of
  // a signed request) is retried by that attempt's loop, not by one of its
  // own, so retries never multiply.
  const insideAttempt = new AsyncLocalStorage<true>();
  const retrying = <T>(url: string, attempt: () => Promise<T>): Promise<T> => {
    if (insideAttempt.getStore()) return attempt();
    return withTransientRetry(() => insideAttempt.run(true, attempt), {
      delaysMs: deps.retryDelaysMs,
      signal: currentOrderScope()?.signal,
      onRetry: ({ attempt: n, delayMs, error }) => log.debug({ path: pathOf(url), retry: n, delayMs, reason: reasonOf(error) }, 'retrying ACME request'),
    });
  };

  // A signed POST must not be resent with the nonce it already spent, so
  // POSTs are retried one level up, in signedRequest; GET and HEAD here.
  http.request = (url, method, opts) => (method.toLowerCase() === 'post'
    ? send(url, method, opts)
    : retrying(url, () => send(url, method, opts)));

  http.getNonce = async () => {
    const pooled = nonces.take();
    if (pooled) return pooled;
    const url = await http.getResourceUrl('newNonce');
    await asAction('new_nonce', () => http.request(url, 'head'));
    const fresh = nonces.take();
    if (!fresh) throw new AcmeProblemError({ type: 'badNonce', detail: 'the CA sent no Replay-Nonce' }, 0, 'newNonce');
    return fresh;
  };

  http.signedRequest = async (url, payload, opts, attempts = 0) => {
    // acme-client calls signedRequest again itself (attempts > 0) to resend
    // after a badNonce; only the outermost call retries, or retries would nest.
    if (attempts > 0) return failOnError(url, await originalSignedRequest(url, payload, opts, attempts));
    // Each attempt takes a fresh nonce and is signed anew.
    return retrying(url, async () => failOnError(url, await originalSignedRequest(url, payload, { ...opts, nonce: null }, 0)));
  };
}

/** acme-client returns the last badNonce response after its resends; make it an error like any other. */
function failOnError(url: string, resp: TransportResponse): TransportResponse {
  if (resp.status >= 400) {
    throw new AcmeProblemError(resp.data as AcmeProblem, resp.status, url, parseRetryAfter(resp.headers['retry-after']));
  }
  return resp;
}

function pathOf(url: string): string {
  try {
    return new URL(url).pathname;
  } catch {
    return url;
  }
}

function reasonOf(err: unknown): string {
  return err instanceof AcmeError || err instanceof Error ? err.message : String(err);
}
