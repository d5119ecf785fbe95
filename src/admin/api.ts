/**
 * The admin API routes, Kong-compatible where Kong has the endpoint. The API
 * knows nothing of ACME or storage: it calls an AdminBackend the daemon
 * provides, and maps typed errors to HTTP statuses.
 */
import { once } from 'node:events';
import type http from 'node:http';
import type { Logger } from '../log.js';
import type { IssueOutcome } from '../daemon/issuer.js';
import type { CaState } from '../renewal/ca-backoff.js';
import type { PassResult } from '../renewal/renewer.js';
import { AcmedError } from '../errors.js';
import { isStoreFault } from '../storage/errors.js';
import { PreflightFailedError, type PreflightResult } from '../challenge/preflight.js';
import type { ListPage, ListQuery } from '../daemon/listing.js';
import { HttpError, readBody, sendJson, truthy } from './http-util.js';
import { parseListQuery } from './list-query.js';
import { toWireOutcome, toWirePass, type CertificateStatus, type DaemonSummary, type HealthReport } from './wire.js';
import type { JobProgress as IssueStep } from '../renewal/job.js';
import type { AdminHandler } from './server.js';

/** Rows built at a time when the whole list is asked for. */
const STREAM_PAGE = 1_000;
const NDJSON = 'application/x-ndjson';
const ROWS_PER_WRITE = 100;

export type { CertificateStatus, HealthReport } from './wire.js';

export interface AdminBackend {
  /** onStep hears the job's steps as they start (`acmed issue` on a terminal). */
  issue(host: string, force: boolean, onStep?: (step: IssueStep) => void): Promise<IssueOutcome>;
  /** Kong's test_http_challenge_flow: probes the host's http-01 path; orders nothing. */
  checkHttpChallenge(host: string): Promise<PreflightResult>;
  /** `issue`: a host named in `only` that has no certificate yet is ordered rather than refused (NoCertificateError). */
  renew(opts: { only?: string; force?: boolean; issue?: boolean }): Promise<PassResult>;
  /** Removes a certificate from storage, revoking it at the CA first when asked; null when there is none. */
  remove(host: string, opts: { revoke: boolean; reason: number }): Promise<{ name: string; revoked: boolean } | null>;
  /** One page of rows in host order (all rows when the query has no limit). */
  certificates(query: ListQuery): Promise<ListPage> | ListPage;
  certificate(host: string): Promise<CertificateStatus | null>;
  health(): Promise<HealthReport>;
  account(action: AccountAction): Promise<unknown>;
  summary(): Promise<DaemonSummary>;
  /** The exposition in pieces, written as they come (15 MB at 100,000 certificates). */
  metrics(): { contentType: string; chunks: AsyncIterable<string> };
  /** The CA's backoff state, shown beside the certificate list. */
  ca(): CaState;
}

/** `acmed renew <host>` for a host that has never had a certificate. */
export class NoCertificateError extends HttpError {
  constructor(host: string) {
    super(404, `no certificate for ${host} to renew; "acmed issue ${host}" (or "acmed renew --issue ${host}") orders one`);
  }
}

/** ca: the directory URL of the CA whose account is meant (`?ca=`); default the first of api_uri. */
export type AccountAction = ({ type: 'show' } | { type: 'rollover' } | { type: 'update'; email: string } | { type: 'deactivate' }) & { ca?: string };

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, params: string[], url: URL) => Promise<void>;

export function createAdminHandler(backend: AdminBackend, log: Logger): AdminHandler {
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
        const message = (outcome: IssueOutcome) => outcome.issued
          ? `certificate for ${outcome.name} is created`
          : `certificate for ${outcome.name} is already valid until ${outcome.notAfter}`;
        if (String(req.headers.accept ?? '').includes(NDJSON)) {
          await streamIssue(res, (onStep) => backend.issue(body.host as string, truthy(body.force), onStep), message);
          return;
        }
        const outcome = await backend.issue(body.host, truthy(body.force));
        sendJson(res, outcome.issued ? 201 : 200, { message: message(outcome), data: toWireOutcome(outcome) });
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
        const issue = truthy(body.issue);
        if (!truthy(url.searchParams.get('wait'))) {
          backend.renew({ only, force, issue }).catch((err: Error) => log.error({ err: err.message }, 'background renewal pass failed'));
          sendJson(res, 202, { message: 'renewal of certificates started' });
          return;
        }
        sendJson(res, 200, { data: toWirePass(await backend.renew({ only, force, issue })) });
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
        const removed = await backend.remove(host, { revoke: truthy(url.searchParams.get('revoke')), reason });
        if (!removed) throw new HttpError(404, `no certificate for ${host}`);
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
    // acmed's additions: the ACME account's life cycle (`acmed account …`).
    {
      method: 'GET', path: /^\/acme\/account$/, handler: async (_req, res, _params, url) => {
        sendJson(res, 200, { data: await backend.account({ type: 'show', ...caParam(url) }) });
      },
    },
    {
      method: 'PATCH', path: /^\/acme\/account$/, handler: async (req, res, _params, url) => {
        const { email } = await readBody(req);
        if (typeof email !== 'string' || !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) throw new HttpError(400, 'email must be an email address');
        sendJson(res, 200, { message: 'account contact updated; set account_email in the config too', data: await backend.account({ type: 'update', email, ...caParam(url) }) });
      },
    },
    {
      method: 'POST', path: /^\/acme\/account\/rollover$/, handler: async (_req, res, _params, url) => {
        sendJson(res, 200, { message: 'account key rolled over; orders from now on are signed with the new key', data: await backend.account({ type: 'rollover', ...caParam(url) }) });
      },
    },
    {
      method: 'POST', path: /^\/acme\/account\/deactivate$/, handler: async (req, res, _params, url) => {
        // Irreversible at the CA: the caller must say so in the request itself.
        if (!truthy((await readBody(req)).confirm)) throw new HttpError(400, 'deactivating the account cannot be undone; send confirm: true');
        sendJson(res, 200, { message: 'account deactivated; the next order registers a new account with a new key', data: await backend.account({ type: 'deactivate', ...caParam(url) }) });
      },
    },
    {
      // acmed's addition: what `acmed status` shows.
      method: 'GET', path: /^\/acme\/status$/, handler: async (_req, res) => {
        sendJson(res, 200, { data: await backend.summary() });
      },
    },
    {
      method: 'GET', path: /^\/healthz$/, handler: async (_req, res) => {
        const health = await backend.health();
        sendJson(res, health.ok ? 200 : 503, { status: health.ok ? 'ok' : 'unhealthy', checks: health.checks });
      },
    },
  ];

  return (req, res, caller) => {
    const started = Date.now();
    const url = new URL(req.url ?? '/', 'http://admin');
    // Who did what: every request once, when answered (scrapes and health probes at debug).
    res.once('finish', () => {
      const quiet = req.method === 'GET' && (url.pathname === '/metrics' || url.pathname === '/healthz');
      log[quiet ? 'debug' : 'info']({ caller, method: req.method, path: url.pathname, status: res.statusCode, ms: Date.now() - started }, 'admin request');
    });
    const match = routes.map((r) => ({ r, m: r.path.exec(url.pathname) })).filter((x) => x.m);
    const route = match.find((x) => x.r.method === req.method);
    if (!route) {
      if (match.length > 0) sendJson(res, 405, { message: `method ${req.method} not allowed on ${url.pathname}` });
      else sendJson(res, 404, { message: 'Not found' });
      return;
    }
    Promise.resolve().then(() => route.r.handler(req, res, route.m!.slice(1).map(decodePathSegment), url)).catch((err: unknown) => {
      const { status, body, headers } = toErrorResponse(err);
      // Typed failures (an order the CA refused, a store that is down) were logged by whoever raised them; only the unexpected are logged here.
      if (status === 500) log.error({ err: (err as Error).message, path: url.pathname }, 'admin request failed');
      if (!res.headersSent) sendJson(res, status, body, headers);
      else res.destroy();
    });
  };
}

/**
 * `POST /acme` with `Accept: application/x-ndjson`: one JSON line per step as
 * it starts, then one line with the answer the plain request would have
 * given (its HTTP status as `status`). The HTTP status is 200: it was sent
 * before the outcome was known.
 */
async function streamIssue(
  res: http.ServerResponse,
  issue: (onStep: (step: IssueStep) => void) => Promise<IssueOutcome>,
  message: (outcome: IssueOutcome) => string,
): Promise<void> {
  res.writeHead(200, { 'content-type': NDJSON, 'cache-control': 'no-store' });
  res.write(`${JSON.stringify({ step: 'queued', elapsed_ms: 0 })}\n`);
  try {
    const outcome = await issue((step) => res.write(`${JSON.stringify({ step: step.step, elapsed_ms: step.elapsedMs })}\n`));
    res.end(`${JSON.stringify({ status: outcome.issued ? 201 : 200, message: message(outcome), data: toWireOutcome(outcome) })}\n`);
  } catch (err) {
    const { status, body } = toErrorResponse(err);
    res.end(`${JSON.stringify({ status, ...body })}\n`);
  }
}

/** A path segment as text; a malformed percent-encoding is the client's mistake (400), not a crash (500). */
function decodePathSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, `malformed percent-encoding in the path: ${JSON.stringify(segment.slice(0, 100))}`);
  }
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

/** Every deliberate error says its own status and body (AcmedError); a store's errno is the store's fault; the rest is a bug. */
function toErrorResponse(err: unknown): { status: number; body: Record<string, unknown>; headers?: Record<string, string> } {
  if (err instanceof AcmedError) return { status: err.status, body: err.apiBody(), headers: err.headers() };
  if (isStoreFault(err)) return { status: 503, body: { message: `storage failed: ${(err as Error).message}`, kind: 'store' } };
  const code = (err as { code?: string }).code;
  return { status: 500, body: { message: (err as Error).message ?? 'internal error', ...(code ? { kind: code } : {}) } };
}

/** `?ca=<directory url>`: which CA's account an account call is about. */
function caParam(url: URL): { ca?: string } {
  const ca = url.searchParams.get('ca');
  return ca ? { ca } : {};
}
