// HTTPS reverse proxy in front of Pebble that counts requests, so benchmarks
// can compare how many ACME round trips each client needs per certificate.
// Pebble builds directory URLs and Location headers from the request's Host
// header; forwarding Host unchanged keeps clients talking to the proxy.

import { createServer, request, Agent } from 'node:https';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface CountingProxyOptions {
  /** Upstream base URL, e.g. https://127.0.0.1:14000 */
  target: string;
  /** PEM trusted for the upstream's TLS cert. */
  targetCa: string;
  /** The proxy's own TLS cert and key (PEM). */
  tls: { cert: string; key: string };
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

  const server = createServer({ cert: opts.tls.cert, key: opts.tls.key, keepAlive: true }, (req, res) => {
    const path = req.url ?? '/';
    const key = path.split('?')[0] ?? path;
    total++;
    byPath[key] = (byPath[key] ?? 0) + 1;

    const upstream = request({
      protocol: target.protocol,
      hostname: target.hostname,
      port: target.port,
      method: req.method,
      path,
      headers: forwardable(req.headers),
      agent,
    }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.statusMessage, forwardable(up.headers));
      up.pipe(res);
    });
    upstream.on('error', (err) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`counting-proxy: ${err.message}`);
    });
    req.pipe(upstream);
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
