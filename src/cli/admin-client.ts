/**
 * Talks to a running daemon over its admin socket. Connection failures become
 * one clear sentence ("acmed is not running …"), never a stack trace.
 */
import http from 'node:http';

export class CliError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
  }
}

export interface AdminResponse<T = unknown> {
  status: number;
  body: T & { message?: string };
}

export function adminRequest<T>(socketPath: string, method: string, path: string, body?: unknown): Promise<AdminResponse<T>> {
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request({
      socketPath,
      method,
      path,
      headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {},
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as AdminResponse<T>["body"] });
        } catch {
          reject(new CliError(`the admin API at ${socketPath} answered something that is not JSON (HTTP ${res.statusCode})`));
        }
      });
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
        reject(new CliError(`acmed is not running (no daemon answers on ${socketPath}); start it with "acmed run"`));
      } else if (err.code === 'EACCES') {
        reject(new CliError(`permission denied on ${socketPath}; run as the user acmed runs as`));
      } else {
        reject(new CliError(`cannot talk to acmed on ${socketPath}: ${err.message}`));
      }
    });
    req.end(payload);
  });
}

/** Throws the API's own message for a non-2xx answer. */
export function expectOk<T>(resp: AdminResponse<T>): T {
  if (resp.status >= 200 && resp.status < 300) return resp.body;
  throw new CliError(resp.body.message ?? `admin API answered HTTP ${resp.status}`);
}
