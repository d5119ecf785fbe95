// HTTPS reverse proxy in front of Pebble that counts requests, so benchmarks
// can compare how many ACME round trips each client needs per certificate.
// Pebble builds directory URLs and Location headers from the request's Host
// header; forwarding Host unchanged keeps clients talking to the proxy.
// An optional `handle` hook lets a stand-in built on this proxy (ari-proxy.ts)
// answer some requests itself or rewrite the upstream's answers.

import { createServer, request, Agent } from 'node:https';
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface CountingProxyOptions {
  /** Upstream base URL, e.g. https://127.0.0.1:14000 */
  target: string;
  /** PEM trusted for the upstream's TLS cert. */
  targetCa: string;
  /** The proxy's own TLS cert and key (PEM). */
  tls: { cert: string; key: string };
  /**
   * Sees every request, body buffered, instead of the plain relay. `forward`
   * sends it upstream (optionally with another method, path or body) and
   * returns the buffered answer; whatever `handle` returns goes to the client.
   * Requests are counted either way.
   */
  handle?: (req: ProxyRequest, forward: (override?: Partial<ProxyRequest>) => Promise<ProxyReply>) => Promise<ProxyReply>;
}

export interface ProxyRequest {
  method: string;
  /** Path with query string, as received. */
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface ProxyReply {
  status: number;
  headers: OutgoingHttpHeaders;
  body: Buffer | string;
}

export interface RequestCounts {
  total: number;
  /** Keyed by request path without query string. */
  byPath: Record<string, number>;
}

export interface CountingProxy {
  url: string;
  counts(): RequestCounts;
  reset(): void;
  close(): Promise<void>;
}

// Per-connection headers must not be relayed (RFC 9110 section 7.6.1).
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade',
]);

function forwardable(h: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
  return out;
}

export async function startCountingProxy(opts: CountingProxyOptions): Promise<CountingProxy> {
  const target = new URL(opts.target);
  const agent = new Agent({ keepAlive: true, ca: opts.targetCa });
  let total = 0;
  let byPath: Record<string, number> = {};

  const upstreamOptions = (method: string, path: string, headers: OutgoingHttpHeaders) => ({
    protocol: target.protocol, hostname: target.hostname, port: target.port, method, path, headers, agent,
  });

  const relay = (req: IncomingMessage, res: ServerResponse, path: string): void => {
    const upstream = request(upstreamOptions(req.method ?? 'GET', path, forwardable(req.headers)), (up) => {
      res.writeHead(up.statusCode ?? 502, up.statusMessage, forwardable(up.headers));
      up.pipe(res);
    });
    upstream.on('error', (err) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`counting-proxy: ${err.message}`);
    });
    req.pipe(upstream);
  };

  const forwardBuffered = (r: ProxyRequest): Promise<ProxyReply> => new Promise((resolve, reject) => {
    const headers = forwardable(r.headers);
    delete headers['content-length'];
    delete headers['transfer-encoding'];
    if (r.body.length > 0) headers['content-length'] = r.body.length;
    const upstream = request(upstreamOptions(r.method, r.path, headers), (up) => {
      const chunks: Buffer[] = [];
      up.on('data', (c: Buffer) => chunks.push(c));
      up.on('error', reject);
      up.on('end', () => resolve({ status: up.statusCode ?? 502, headers: forwardable(up.headers), body: Buffer.concat(chunks) }));
    });
    upstream.on('error', reject);
    upstream.end(r.body);
  });

  const handleBuffered = async (req: IncomingMessage, res: ServerResponse, path: string, handle: NonNullable<CountingProxyOptions['handle']>) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const incoming: ProxyRequest = { method: req.method ?? 'GET', path, headers: req.headers, body: Buffer.concat(chunks) };
    const reply = await handle(incoming, (override) => forwardBuffered({ ...incoming, ...override }));
    const headers = { ...reply.headers };
    delete headers['transfer-encoding'];
    // A HEAD answer keeps the upstream's content-length; anything else gets the length of what is sent.
    if (incoming.method !== 'HEAD') headers['content-length'] = Buffer.byteLength(reply.body);
    res.writeHead(reply.status, headers);
    res.end(incoming.method === 'HEAD' ? undefined : reply.body);
  };

  const server = createServer({ cert: opts.tls.cert, key: opts.tls.key, keepAlive: true }, (req, res) => {
    const path = req.url ?? '/';
    const key = path.split('?')[0] ?? path;
    total++;
    byPath[key] = (byPath[key] ?? 0) + 1;
    if (!opts.handle) {
      relay(req, res, path);
      return;
    }
    handleBuffered(req, res, path, opts.handle).catch((err: Error) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`counting-proxy: ${err.message}`);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `https://127.0.0.1:${port}`,
    counts: () => ({ total, byPath: { ...byPath } }),
    reset: () => { total = 0; byPath = {}; },
    close: () => new Promise<void>((resolve) => {
      agent.destroy();
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
