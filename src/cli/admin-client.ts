/**
 * Talks to a running daemon: over its admin socket, or over HTTPS to its
 * TCP listener with a bearer token and/or a client certificate. Connection
 * failures become one clear sentence, never a stack trace.
 */
import http from 'node:http';
import https from 'node:https';
import type { ErrorBody } from '../admin/wire.js';
import { describeTarget, type AdminTarget } from './admin-target.js';
import { CliError } from './errors.js';

export { CliError } from './errors.js';

export interface AdminResponse<T = unknown> {
  status: number;
  body: T & Partial<ErrorBody>;
}

export function adminRequest<T>(target: AdminTarget, method: string, path: string, body?: unknown): Promise<AdminResponse<T>> {
  return new Promise((resolve, reject) => {
    const req = openRequest(target, method, path, body === undefined ? undefined : Buffer.from(JSON.stringify(body)));
    req.on('response', (res: http.IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as AdminResponse<T>['body'] });
        } catch {
          reject(new CliError(`the admin API at ${describeTarget(target)} answered something that is not JSON (HTTP ${res.statusCode})`));
        }
      });
    });
    req.on('error', (err: NodeJS.ErrnoException) => reject(connectionError(target, err)));
  });
}

/**
 * Sends a request and hands back the response as a stream (for answers that
 * arrive in pieces: `acmed issue`'s progress). Errors as adminRequest's.
 */
export function adminStream(target: AdminTarget, method: string, path: string, body: unknown, accept: string): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = openRequest(target, method, path, Buffer.from(JSON.stringify(body)), { accept });
    req.on('response', resolve);
    req.on('error', (err: NodeJS.ErrnoException) => reject(connectionError(target, err)));
  });
}

function openRequest(target: AdminTarget, method: string, path: string, payload?: Buffer, extra: Record<string, string> = {}): http.ClientRequest {
  const headers: Record<string, string | number> = { ...extra };
  if (payload) Object.assign(headers, { 'content-type': 'application/json', 'content-length': payload.length });
  let req: http.ClientRequest;
  if (target.kind === 'socket') {
    req = http.request({ socketPath: target.path, method, path, headers });
  } else {
    if (target.token) headers.authorization = `Bearer ${target.token}`;
    const options = { method, path, headers, host: target.url.hostname.replace(/^\[|\]$/g, ''), port: target.url.port || undefined };
    req = target.url.protocol === 'https:'
      ? https.request({ ...options, cert: target.cert, key: target.key, ca: target.ca })
      : http.request(options);
  }
  req.end(payload);
  return req;
}

function connectionError(target: AdminTarget, err: NodeJS.ErrnoException): CliError {
  const where = describeTarget(target);
  if (target.kind === 'socket') {
    if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') return new CliError(`acmed is not running (no daemon answers on ${where}); start it with "acmed run"`);
    if (err.code === 'EACCES') return new CliError(`permission denied on ${where}; run as the user acmed runs as`);
    return new CliError(`cannot talk to acmed on ${where}: ${err.message}`);
  }
  if (err.code === 'ECONNREFUSED') return new CliError(`no acmed answers at ${where} (connection refused)`);
  if (err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN') return new CliError(`cannot resolve ${target.url.hostname} for ${where}`);
  if (err.code === 'ECONNRESET' || /alert|certificate|handshake/i.test(err.message)) {
    // OpenSSL's text carries its source file and line: keep the alert, which says what happened.
    const reason = /alert [a-z ]+/i.exec(err.message)?.[0] ?? err.message.split('\n')[0];
    return new CliError(`the TLS handshake with ${where} failed (${reason}); check --cert/--key (the daemon's admin.tls.client_ca must have signed it) and --cacert`);
  }
  return new CliError(`cannot talk to acmed at ${where}: ${err.message}`);
}

/** Throws the API's own message for a non-2xx answer. */
export function expectOk<T>(resp: AdminResponse<T>): AdminResponse<T>['body'] {
  if (resp.status >= 200 && resp.status < 300) return resp.body;
  throw new CliError(resp.body.message ?? `admin API answered HTTP ${resp.status}`);
}
