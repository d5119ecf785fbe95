/**
 * The HTTP transport under acme-client. It replaces acme-client's axios path
 * because that path (5.4) retries 5xx and 429 internally with sleeps of up to
 * a minute, flattens problem documents into strings, and on a network failure
 * throws a TypeError that hides the real cause. Here: keep-alive connections,
 * a request timeout, the extra `ca_bundle` roots, nonce harvesting, a request
 * counter, typed errors, and an AbortSignal per request; retrying is the
 * caller's decision (retry.ts, applied in acme-client-hooks.ts).
 */
import http from 'node:http';
import https from 'node:https';
import { createSecureContext, rootCertificates } from 'node:tls';
import { AcmeNetworkError, AcmeProblemError, parseRetryAfter, type AcmeProblem } from './errors.js';
import type { NoncePool } from './nonce-pool.js';
import { currentAction, type AcmeRequestSample } from './request-action.js';

/** The response shape acme-client reads (a subset of axios's). */
export interface TransportResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  data: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- JSON or PEM text, as acme-client expects
}

export interface TransportOptions {
  /** Extra PEM roots trusted in addition to the system ones. */
  caBundle?: string;
  timeoutMs?: number;
  userAgent?: string;
  nonces: NoncePool;
  /** Called once per request when it is answered or fails (metrics). */
  observe?: (sample: AcmeRequestSample) => void;
}

export interface TransportRequestOptions {
  data?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

const BAD_NONCE = 'urn:ietf:params:acme:error:badNonce';

export class Transport {
  /** Requests sent since start; read by the benchmark and metrics. */
  requestCount = 0;
  private readonly httpsAgent: https.Agent;
  private readonly httpAgent = new http.Agent({ keepAlive: true, maxSockets: 16 });

  constructor(private readonly opts: TransportOptions) {
    this.httpsAgent = new https.Agent({
      keepAlive: true,
      maxSockets: 16,
      // Built once: a `ca` list here would make Node parse every root again for each new connection.
      secureContext: opts.caBundle ? createSecureContext({ ca: [...rootCertificates, opts.caBundle] }) : undefined,
    });
  }

  /** acme-client's HttpClient.request signature, plus a signal that ends the request (rejecting with its reason). */
  request = async (url: string, method: string, opts: TransportRequestOptions = {}): Promise<TransportResponse> => {
    const resp = await this.observed(url, method.toUpperCase(), opts);
    const problem = resp.status >= 400 ? toProblem(resp) : undefined;
    // acme-client resends a badNonce request itself with the nonce from this
    // response, so that nonce must not also go into the pool.
    if (problem?.type !== BAD_NONCE) this.opts.nonces.add(header(resp, 'replay-nonce'));
    if (problem && problem.type !== BAD_NONCE) {
      throw new AcmeProblemError(problem, resp.status, url, parseRetryAfter(resp.headers['retry-after']));
    }
    return resp;
  };

  /** send(), timed and reported to `observe` with the step it belongs to. */
  private async observed(url: string, method: string, opts: TransportRequestOptions): Promise<TransportResponse> {
    const observe = this.opts.observe;
    if (!observe) return this.send(url, method, opts.data, opts.signal);
    const action = currentAction();
    const started = performance.now();
    let status = 'error';
    try {
      const resp = await this.send(url, method, opts.data, opts.signal);
      status = String(resp.status);
      return resp;
    } finally {
      try {
        observe({ action, method, status, seconds: (performance.now() - started) / 1000 });
      } catch {
        // Counting a request must never fail it.
      }
    }
  }

  close(): void {
    this.httpsAgent.destroy();
    this.httpAgent.destroy();
  }

  private send(url: string, method: string, data: unknown, signal: AbortSignal | undefined): Promise<TransportResponse> {
    signal?.throwIfAborted();
    const target = new URL(url);
    const body = data === undefined ? undefined : Buffer.from(JSON.stringify(data));
    const client = target.protocol === 'https:' ? https : http;
    this.requestCount++;
    return new Promise((resolve, reject) => {
      let answered = false;
      const req = client.request(target, {
        method,
        agent: target.protocol === 'https:' ? this.httpsAgent : this.httpAgent,
        timeout: this.opts.timeoutMs ?? 30_000,
        signal,
        headers: {
          'user-agent': this.opts.userAgent ?? 'acmed',
          ...(body ? { 'content-type': 'application/jose+json', 'content-length': String(body.length) } : {}),
        },
      }, (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', (err) => reject(signal?.aborted ? signal.reason : networkError(target, err)));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const type = String(res.headers['content-type'] ?? '');
          let parsed: unknown = text;
          if (type.includes('json') && text.length > 0) {
            try {
              parsed = JSON.parse(text);
            } catch {
              parsed = text; // a broken body still yields a problem from the status below
            }
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, data: parsed });
        });
      });
      req.on('timeout', () => req.destroy(Object.assign(new Error('request timed out'), { code: 'ETIMEDOUT' })));
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (signal?.aborted) return reject(signal.reason);
        const stale = !answered && req.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE');
        reject(networkError(target, err, stale));
      });
      req.end(body);
    });
  }
}

function header(resp: TransportResponse, name: string): string | undefined {
  const value = resp.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function toProblem(resp: TransportResponse): AcmeProblem {
  const data = resp.data;
  if (data && typeof data === 'object' && typeof data.type === 'string') return data as AcmeProblem;
  const detail = typeof data === 'string' && data.length > 0 ? data.slice(0, 200) : undefined;
  return { type: resp.status >= 500 ? 'serverInternal' : 'httpError', detail, status: resp.status };
}

function networkError(target: URL, err: Error, staleConnection = false): AcmeNetworkError {
  const code = (err as NodeJS.ErrnoException).code;
  const where = staleConnection ? ' on a kept-alive connection' : '';
  return new AcmeNetworkError(`cannot reach the CA at ${target.host}: ${code ?? err.message}${where}`, err, staleConnection);
}
