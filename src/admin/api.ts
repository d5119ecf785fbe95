/**
 * The admin API routes, Kong-compatible where Kong has the endpoint. The API
 * knows nothing of ACME or storage: it calls an AdminBackend the daemon
 * provides, and maps typed errors to HTTP statuses.
 */
import { once } from 'node:events';
import type http from 'node:http';
import { AcmeError, AcmeProblemError, errorKind } from '../acme/errors.js';
import { InvalidHostnameError } from '../hostname.js';
import type { Logger } from '../log.js';
import { AccountUnavailableError, BackedOffError, CertificateHeldError, ShuttingDownError, type IssueOutcome } from '../daemon/issuer.js';
import { CaUnavailableError, type CaState } from '../renewal/ca-backoff.js';
import type { PassResult } from '../renewal/renewer.js';
import { isStoreFault } from '../storage/errors.js';
import { LockLostError, LockTimeoutError } from '../storage/lock.js';
import { HostNotAllowedError } from '../config/managed.js';
import { PreflightFailedError, type PreflightResult } from '../challenge/preflight.js';
import type { ListPage, ListQuery } from '../daemon/listing.js';
import { HttpError, readBody, sendJson, truthy } from './http-util.js';
import { parseListQuery } from './list-query.js';

/** Rows built at a time when the whole list is asked for. */
const STREAM_PAGE = 1_000;
const ROWS_PER_WRITE = 100;

export interface CertificateStatus {
  host: string;
  names: string[];
  /** renewing: an order runs now; failed: the last attempt failed (see last_error, backoff_until). */
  status: 'valid' | 'expired' | 'missing' | 'renewing' | 'failed';
  not_before: string | null;
  not_after: string | null;
  valid: boolean;
  serial_number: string | null;
  issuer_cn: string | null;
  location: string;
  managed: boolean;
  /** When the scheduler renews it, from the index; null only while there is no certificate. */
  renew_at: string | null;
  /** The rule that set renew_at: ari, threshold, lifetime-fraction, nearly-expired, expired. */
  renew_reason: string | null;
  failures: number;
  last_error: string | null;
  backoff_until: string | null;
  /** An order placed and not finished (resumed after a restart). */
  pending_order: string | null;
}

export interface HealthReport {
  ok: boolean;
  checks: Record<string, { ok: boolean } & Record<string, unknown>>;
}

export interface AdminBackend {
  issue(host: string, force: boolean): Promise<IssueOutcome>;
  /** Kong's test_http_challenge_flow: probes the host's http-01 path; orders nothing. */
  checkHttpChallenge(host: string): Promise<PreflightResult>;
  renew(opts: { only?: string; force?: boolean }): Promise<PassResult>;
  /** Removes a certificate from storage, revoking it at the CA first when asked; null when there is none. */
  remove(host: string, opts: { revoke: boolean; reason: number }): Promise<{ name: string; revoked: boolean } | null>;
  /** One page of rows in host order (all rows when the query has no limit). */
  certificates(query: ListQuery): Promise<ListPage> | ListPage;
  certificate(host: string): Promise<CertificateStatus | null>;
  health(): Promise<HealthReport>;
  /** The exposition in pieces, written as they come (15 MB at 100,000 certificates). */
  metrics(): { contentType: string; chunks: AsyncIterable<string> };
  /** The CA's backoff state, shown beside the certificate list. */
  ca(): CaState;
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, params: string[], url: URL) => Promise<void>;

export function createAdminHandler(backend: AdminBackend, log: Logger): http.RequestListener {
  const routes: { method: string; path: RegExp; handler: Handler }[] = [
    {
      method: 'POST', path: /^\/acme$/, handler: async (req, res) => {
        const body = await readBody(req);
        if (typeof body.host !== 'string' || body.host === '') throw new HttpError(400, 'host is required');
        // Kong's dry run of the http-01 path: a probe token fetched over HTTP, no ACME request.
        if (truthy(body.test_http_challenge_flow)) {
          const result = await backend.checkHttpChallenge(body.host);
          // 400 on failure, as Kong answers a failed sanity check.
          if (!result.ok) throw new HttpError(400, new PreflightFailedError(result).message, { kind: 'preflight_failed', data: result });
          sendJson(res, 200, { message: result.detail, data: result });
          return;
        }
        const outcome = await backend.issue(body.host, truthy(body.force));
        const message = outcome.issued
          ? `certificate for ${outcome.name} is created`
          : `certificate for ${outcome.name} is already valid until ${outcome.notAfter}`;
        sendJson(res, outcome.issued ? 201 : 200, { message, data: outcome });
      },
    },
    {
      // Kong: renew everything in the background, 202. `?wait=true` (acmed's
      // addition, used by `acmed renew`) runs the pass now, optionally for one
      // `host` and with `force`, and answers with what it did.
      method: 'PATCH', path: /^\/acme$/, handler: async (req, res, _params, url) => {
        const body = await readBody(req);
        const only = typeof body.host === 'string' && body.host !== '' ? body.host : undefined;
        const force = truthy(body.force);
        if (!truthy(url.searchParams.get('wait'))) {
          backend.renew({ only, force }).catch((err: Error) => log.error({ err: err.message }, 'background renewal pass failed'));
          sendJson(res, 202, { message: 'renewal of certificates started' });
          return;
        }
        sendJson(res, 200, { data: await backend.renew({ only, force }) });
      },
    },
    {
      // Kong's list, with acmed's paging (`limit`, `after`; the answer's
      // `next` is the following page's `after`) and filters (`status`,
      // `expiring_within`). Without `limit` every row comes back, written a
      // page at a time so 100,000 rows never sit in memory at once.
      method: 'GET', path: /^\/acme\/certificates$/, handler: async (_req, res, _params, url) => {
        const query = parseListQuery(url.searchParams);
        if (query.limit !== undefined) {
          const page = await backend.certificates(query);
          res.writeHead(200, { 'content-type': 'application/json' });
          res.write('{"data":[');
          await writeRows(res, page.rows, true);
          res.end(`],"next":${JSON.stringify(page.next)},"ca":${JSON.stringify(backend.ca())}}\n`);
          return;
        }
        await streamAllRows(res, backend, query);
      },
    },
    {
      method: 'GET', path: /^\/acme\/certificates\/([^/]+)$/, handler: async (_req, res, [host]) => {
        const found = await backend.certificate(decodeURIComponent(host));
        if (!found) throw new HttpError(404, `no certificate for ${decodeURIComponent(host)}`);
        sendJson(res, 200, { data: found });
      },
    },
    {
      // Kong deletes the stored certificate; acmed's `?revoke=true` (used by
      // `acmed revoke`) revokes it at the CA first (`reason`, RFC 5280 code).
      method: 'DELETE', path: /^\/acme\/certificates\/([^/]+)$/, handler: async (_req, res, [host], url) => {
        const reason = Number(url.searchParams.get('reason') ?? 0);
        if (![0, 1, 3, 4, 5].includes(reason)) throw new HttpError(400, 'reason must be 0, 1, 3, 4 or 5 (RFC 5280 codes the CA accepts)');
        const removed = await backend.remove(decodeURIComponent(host), { revoke: truthy(url.searchParams.get('revoke')), reason });
        if (!removed) throw new HttpError(404, `no certificate for ${decodeURIComponent(host)}`);
        sendJson(res, 200, {
          message: `certificate ${removed.name} ${removed.revoked ? 'revoked and ' : ''}removed from storage`,
          data: removed,
        });
      },
    },
    {
      method: 'GET', path: /^\/metrics$/, handler: async (_req, res) => {
        const { contentType, chunks } = backend.metrics();
        let started = false;
        for await (const chunk of chunks) {
          if (!started) res.writeHead(200, { 'content-type': contentType }); // after the first piece, so a failure is still a 500
          started = true;
          if (!res.write(chunk)) await once(res, 'drain');
        }
        res.end();
      },
    },
    {
      method: 'GET', path: /^\/healthz$/, handler: async (_req, res) => {
        const health = await backend.health();
        sendJson(res, health.ok ? 200 : 503, { status: health.ok ? 'ok' : 'unhealthy', checks: health.checks });
      },
    },
  ];

  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://admin');
    const match = routes.map((r) => ({ r, m: r.path.exec(url.pathname) })).filter((x) => x.m);
    const route = match.find((x) => x.r.method === req.method);
    if (!route) {
      if (match.length > 0) sendJson(res, 405, { message: `method ${req.method} not allowed on ${url.pathname}` });
      else sendJson(res, 404, { message: 'Not found' });
      return;
    }
    route.r.handler(req, res, route.m!.slice(1), url).catch((err: unknown) => {
      const { status, body, headers } = toErrorResponse(err);
      if (status >= 500) log.error({ err: (err as Error).message, path: url.pathname }, 'admin request failed');
      if (!res.headersSent) sendJson(res, status, body, headers);
      else res.destroy();
    });
  };
}

async function streamAllRows(res: http.ServerResponse, backend: AdminBackend, query: ListQuery): Promise<void> {
  res.writeHead(200, { 'content-type': 'application/json' });
  let after = query.after;
  let first = true;
  res.write('{"data":[');
  for (;;) {
    const page = await backend.certificates({ ...query, limit: STREAM_PAGE, after });
    await writeRows(res, page.rows, first);
    first &&= page.rows.length === 0;
    if (page.next === null) break;
    after = page.next;
  }
  res.end(`],"ca":${JSON.stringify(backend.ca())}}\n`);
}

/**
 * Writes rows as JSON array elements, a hundred at a time: each piece stays
 * under V8's large-object size (128 KB), so it dies young instead of waiting
 * in the old heap for a full collection (a 5,000-row page in one string grew
 * the heap by 70 MB per listing of 100,000).
 */
async function writeRows(res: http.ServerResponse, rows: CertificateStatus[], first: boolean): Promise<void> {
  for (let i = 0; i < rows.length; i += ROWS_PER_WRITE) {
    const text = rows.slice(i, i + ROWS_PER_WRITE).map((row) => JSON.stringify(row)).join(',');
    if (!res.write(first && i === 0 ? text : `,${text}`)) await once(res, 'drain');
  }
}

function toErrorResponse(err: unknown): { status: number; body: Record<string, unknown>; headers?: Record<string, string> } {
  if (err instanceof HttpError) return { status: err.status, body: { message: err.message, ...err.extra } };
  if (err instanceof InvalidHostnameError) return { status: 400, body: { message: err.message } };
  if (err instanceof HostNotAllowedError) return { status: 403, body: { message: err.message } };
  if (err instanceof PreflightFailedError) return { status: 422, body: { message: err.message, kind: 'preflight_failed', data: err.result } };
  if (err instanceof BackedOffError) {
    const retryAfter = Math.max(1, Math.ceil((Date.parse(err.record.until) - Date.now()) / 1000));
    return {
      status: 409,
      body: { message: err.message, kind: 'backoff', backoff_until: err.record.until, failures: err.record.failures },
      headers: { 'retry-after': String(retryAfter) },
    };
  }
  if (err instanceof AccountUnavailableError) {
    const kind = errorKind(err.cause);
    const body: Record<string, unknown> = { message: `ACME order failed: ${err.message}`, kind };
    if (err.cause instanceof AcmeProblemError) body.problem = err.cause.problem;
    return { status: kind === 'rateLimited' ? 429 : 502, body };
  }
  if (err instanceof ShuttingDownError) return { status: 503, body: { message: err.message, kind: 'shutting_down' } };
  if (err instanceof LockTimeoutError || err instanceof LockLostError) return { status: 409, body: { message: err.message, kind: 'locked' } };
  if (err instanceof CaUnavailableError) {
    const retryAfter = Math.max(1, Math.ceil((Date.parse(err.state.until ?? '') - Date.now()) / 1000) || 1);
    return { status: 503, body: { message: err.message, kind: 'ca_unavailable', ca: err.state }, headers: { 'retry-after': String(retryAfter) } };
  }
  if (err instanceof CertificateHeldError) return { status: 503, body: { message: err.message, kind: 'store' } };
  if (isStoreFault(err)) return { status: 503, body: { message: `storage failed: ${(err as Error).message}`, kind: 'store' } };
  if (err instanceof AcmeError) {
    const kind = errorKind(err);
    const retryAfter = err.retryAfterMs !== undefined ? Math.ceil(err.retryAfterMs / 1000) : undefined;
    const status = kind === 'rateLimited' ? 429 : 502;
    const body: Record<string, unknown> = { message: `ACME order failed: ${err.message}`, kind };
    if (err instanceof AcmeProblemError) body.problem = err.problem;
    if (retryAfter !== undefined) body.retry_after = retryAfter;
    return { status, body, headers: retryAfter !== undefined ? { 'retry-after': String(retryAfter) } : undefined };
  }
  const code = (err as { code?: string }).code;
  return { status: 500, body: { message: (err as Error).message ?? 'internal error', ...(code ? { kind: code } : {}) } };
}
