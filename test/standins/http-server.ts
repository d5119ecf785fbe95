// The HTTP plumbing the Consul and Vault stand-ins share: a loopback server on
// a free port, request bodies, JSON/text replies, a request counter (to prove
// "no I/O happened") and stall()/resume() (to play a store that hangs).

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

export interface Request {
  method: string;
  url: URL;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

export type Handler = (req: Request, res: ServerResponse) => void | Promise<void>;

export interface StandinServer {
  url: string;
  host: string;
  port: number;
  /** Requests received so far. */
  readonly requests: number;
  /** Holds every request from now on without answering, like a store that hangs. */
  stall(): void;
  /** Answers the held requests and serves normally again. */
  resume(): void;
  close(): Promise<void>;
}

export async function startHttpStandin(handler: Handler): Promise<StandinServer> {
  let requests = 0;
  let held: (() => void)[] | null = null;

  const server: Server = createServer((raw, res) => {
    requests++;
    const chunks: Buffer[] = [];
    raw.on('data', (c: Buffer) => chunks.push(c));
    raw.on('end', () => {
      const req: Request = {
        method: raw.method ?? 'GET',
        url: new URL(raw.url ?? '/', 'http://standin'),
        headers: raw.headers,
        body: Buffer.concat(chunks),
      };
      const serve = () => {
        Promise.resolve(handler(req, res)).catch((err: Error) => sendText(res, 500, err.message));
      };
      if (held) held.push(serve);
      else serve();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('stand-in: no address');

  return {
    url: `http://127.0.0.1:${address.port}`,
    host: '127.0.0.1',
    port: address.port,
    get requests() {
      return requests;
    },
    stall() {
      held ??= [];
    },
    resume() {
      const waiting = held ?? [];
      held = null;
      for (const serve of waiting) serve();
    },
    close() {
      held = null;
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

export function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  if (res.destroyed) return;
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

export function sendText(res: ServerResponse, status: number, text: string): void {
  if (res.destroyed) return;
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function sendEmpty(res: ServerResponse, status: number): void {
  if (res.destroyed) return;
  res.writeHead(status);
  res.end();
}

/** Go's strconv.ParseBool, which Consul and Vault use for boolean query parameters. */
export function parseBool(value: string | null): boolean {
  return value !== null && ['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value);
}

/** A Go duration ("15s", "1m30s", "500ms", "0s") in ms; NaN when malformed. */
export function parseGoDuration(text: string): number {
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  if (text === '0') return 0;
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) return NaN;
  return parts.reduce((sum, [, n, unit]) => sum + Number(n) * units[unit], 0);
}
