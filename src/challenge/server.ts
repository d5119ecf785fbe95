/**
 * The http-01 responder. It answers exactly GET/HEAD
 * /.well-known/acme-challenge/<token> with the key authorization and 404s the
 * rest. It sits on port 80 in front of the internet, so it keeps nothing per
 * request and drops slow clients: tight header and request timeouts.
 */
import http from 'node:http';
import type { AddressInfo, Server } from 'node:net';
import type { Logger } from '../log.js';
import type { ChallengeTokens } from './tokens.js';

const PREFIX = '/.well-known/acme-challenge/';

export interface ChallengeServerOptions {
  tokens: ChallengeTokens;
  log: Logger;
  headersTimeoutMs?: number;
  requestTimeoutMs?: number;
}

export class ChallengeServer {
  private readonly servers = new Map<string, Server>();

  constructor(private readonly opts: ChallengeServerOptions) {}

  /**
   * Listens on every "host:port" (or "fd:N", a descriptor from socket
   * activation) given, and stops listening on the ones no longer given.
   * Tokens live in the token store, not here, so rebinding loses none.
   */
  async listen(addresses: string[]): Promise<void> {
    for (const [address, server] of this.servers) {
      if (!addresses.includes(address)) {
        await closeServer(server);
        this.servers.delete(address);
      }
    }
    for (const address of addresses) {
      if (this.servers.has(address)) continue;
      const server = this.createServer();
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(parseListen(address), () => {
          server.off('error', reject);
          resolve();
        });
      });
      this.servers.set(address, server);
    }
  }

  /** The bound addresses ("127.0.0.1:5002"), useful when a port was 0. */
  boundAddresses(): string[] {
    return [...this.servers.values()].map((server) => {
      const info = server.address() as AddressInfo;
      return info.family === 'IPv6' ? `[${info.address}]:${info.port}` : `${info.address}:${info.port}`;
    });
  }

  async close(): Promise<void> {
    await Promise.all([...this.servers.values()].map(closeServer));
    this.servers.clear();
  }

  private createServer(): http.Server {
    const headersTimeout = this.opts.headersTimeoutMs ?? 10_000;
    const server = http.createServer({
      headersTimeout,
      requestTimeout: this.opts.requestTimeoutMs ?? 15_000,
      // Node enforces both timeouts only on this sweep (default every 30 s), so
      // without it a slow client would hold its socket far past headersTimeout.
      connectionsCheckingInterval: Math.min(1_000, headersTimeout),
      keepAliveTimeout: 5_000,
      maxHeaderSize: 8 * 1024,
    }, (req, res) => {
      void this.handle(req, res);
    });
    server.on('clientError', (_err, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      else socket.destroy();
    });
    return server;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '').split('?')[0];
    let keyAuthorization: string | undefined;
    if ((req.method === 'GET' || req.method === 'HEAD') && path.startsWith(PREFIX)) {
      try {
        keyAuthorization = await this.opts.tokens.lookup(path.slice(PREFIX.length));
      } catch (err) {
        this.opts.log.warn({ err: (err as Error).message }, 'challenge token lookup failed');
      }
    }
    if (keyAuthorization === undefined) {
      send(res, 404, 'Not found\n');
      return;
    }
    // Checked first so the hot path builds no log object when debug is off.
    if (this.opts.log.isLevelEnabled('debug')) {
      this.opts.log.debug({ host: req.headers.host, remote: req.socket.remoteAddress }, 'answered http-01 challenge');
    }
    send(res, 200, keyAuthorization);
  }
}

function send(res: http.ServerResponse, status: number, body: string): void {
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

function parseListen(address: string): { host: string; port: number } | { fd: number } {
  if (address.startsWith('fd:')) return { fd: Number(address.slice(3)) };
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon).replace(/^\[|\]$/g, '');
  return { host, port: Number(address.slice(colon + 1)) };
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    (server as http.Server).closeAllConnections?.();
  });
}
