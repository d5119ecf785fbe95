/**
 * The http-01 responder. It answers exactly GET/HEAD
 * /.well-known/acme-challenge/<token> with the key authorization and 404s the
 * rest. It sits on port 80 in front of the internet, so it keeps nothing per
 * request and drops slow clients: tight header and request timeouts.
 *
 * Two paths, one answer. Node's HTTP server handles every connection that is
 * not plain; in front of it a fast path answers the plain case (a whole
 * "GET|HEAD <prefix><token> HTTP/1.1" request with ordinary headers in one
 * read) itself, with the bytes Node would have sent but without Node's
 * per-request objects: about half the CPU per answer (bench/http01.ts).
 * Anything the fast path's strict match does not accept (another method or
 * path, HTTP/1.0, a body, a request split over reads or pipelined behind
 * another, an unusual header, unsent answers piling up, a token only the
 * shared store knows) hands the connection with the bytes read so far to
 * Node's server for the rest of its life, so malformed and hostile input
 * always meets Node's parser, limits and timeouts.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { nameOfHostHeader, urlHostOf } from './host-header.js';
import type { Logger } from '../log.js';
import type { ChallengeTokens } from './tokens.js';

const PREFIX = '/.well-known/acme-challenge/';
const KEEP_ALIVE_TIMEOUT_MS = 5_000;
/** Node's own slack on the advertised keep-alive timeout (HTTP_SERVER_KEEP_ALIVE_TIMEOUT_BUFFER). */
const KEEP_ALIVE_SLACK_MS = 1_000;

export interface ChallengeServerOptions {
  tokens: ChallengeTokens;
  log: Logger;
  headersTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** false: every request goes through Node's HTTP server (tests compare both paths). */
  fastPath?: boolean;
  /** challenge.redirect_https, read per request: 301 to https for what is not a challenge, instead of 404. */
  redirectHttps?: () => boolean;
  /** Told the Host header of each request that is not a challenge (on-demand issuance); must not block or throw. */
  onOther?: (host: string | undefined) => void;
}

interface Listener {
  server: http.Server;
  /** Connections the fast path holds; handed-off ones are Node's to track. */
  fast: Set<Socket>;
}

export class ChallengeServer {
  private readonly servers = new Map<string, Listener>();

  constructor(private readonly opts: ChallengeServerOptions) {}

  /**
   * Listens on every "host:port" (or "fd:N", a descriptor from socket
   * activation) given, and stops listening on the ones no longer given.
   * Tokens live in the token store, not here, so rebinding loses none.
   */
  async listen(addresses: string[]): Promise<void> {
    for (const [address, listener] of this.servers) {
      if (!addresses.includes(address)) {
        await closeListener(listener);
        this.servers.delete(address);
      }
    }
    for (const address of addresses) {
      if (this.servers.has(address)) continue;
      const listener = this.createServer();
      const { server } = listener;
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(parseListen(address), () => {
          server.off('error', reject);
          resolve();
        });
      });
      this.servers.set(address, listener);
    }
  }

  /** The bound addresses ("127.0.0.1:5002"), useful when a port was 0. */
  boundAddresses(): string[] {
    return [...this.servers.values()].map(({ server }) => {
      const info = server.address() as AddressInfo;
      return info.family === 'IPv6' ? `[${info.address}]:${info.port}` : `${info.address}:${info.port}`;
    });
  }

  async close(): Promise<void> {
    await Promise.all([...this.servers.values()].map(closeListener));
    this.servers.clear();
  }

  private createServer(): Listener {
    const headersTimeout = this.opts.headersTimeoutMs ?? 10_000;
    const server = http.createServer({
      headersTimeout,
      requestTimeout: this.opts.requestTimeoutMs ?? 15_000,
      // Node enforces both timeouts only on this sweep (default every 30 s), so
      // without it a slow client would hold its socket far past headersTimeout.
      connectionsCheckingInterval: Math.min(1_000, headersTimeout),
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
      maxHeaderSize: 8 * 1024,
    }, (req, res) => this.handle(req, res));
    server.on('clientError', (_err, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      else socket.destroy();
    });
    const fast = new Set<Socket>();
    if (this.opts.fastPath !== false) {
      // Node's own handling of a new connection, kept to run on a handed-off one.
      const toNode = server.listeners('connection') as ((this: http.Server, socket: Socket) => void)[];
      server.removeAllListeners('connection');
      server.on('connection', (socket: Socket) => this.accept(socket, headersTimeout, fast, (s) => {
        for (const listener of toNode) listener.call(server, s);
      }));
    }
    return { server, fast };
  }

  /** A new connection: the fast path's until it sees a request it does not take. */
  private accept(socket: Socket, headersTimeout: number, fast: Set<Socket>, toNode: (socket: Socket) => void): void {
    fast.add(socket);
    let answered = false;
    const onData = (chunk: Buffer) => {
      if (socket.writableLength === 0) {
        const answer = this.fastAnswer(chunk, socket);
        if (answer !== undefined) {
          socket.write(answer.response);
          if (answer.close) {
            socket.off('data', onData);
            socket.destroySoon();
          } else if (!answered) {
            answered = true;
            socket.setTimeout(KEEP_ALIVE_TIMEOUT_MS + KEEP_ALIVE_SLACK_MS);
          }
          return;
        }
      }
      // Node's from here on, starting with these bytes.
      fast.delete(socket);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('timeout', onTimeout);
      socket.off('error', onError);
      socket.off('close', onClose);
      socket.setTimeout(0);
      toNode(socket);
      socket.unshift(chunk);
    };
    const onEnd = () => socket.end();
    const onTimeout = () => socket.destroy();
    const onError = () => socket.destroy();
    const onClose = () => fast.delete(socket);
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('timeout', onTimeout);
    socket.on('error', onError);
    socket.on('close', onClose);
    // Until the first request, as long as Node gives a client to send its headers.
    socket.setTimeout(headersTimeout);
  }

  /**
   * The fast path's answer to one read, or undefined when it is not one whole
   * plain request (Node's server takes over). Counts the lookup only when it
   * answers.
   */
  private fastAnswer(chunk: Buffer, socket: Socket): { response: string | Buffer; close: boolean } | undefined {
    if (chunk.length > FAST_MAX_REQUEST) return undefined;
    const request = chunk.toString('latin1');
    const match = FAST_REQUEST.exec(request);
    if (match === null) return undefined;
    const headers = `\n${match[3]!}`;
    const lower = headers.toLowerCase();
    if (FAST_REFUSED_HEADER.test(lower)) return undefined;
    const host = singleHeader(lower, '\nhost:');
    // Present and not empty: Node answers a missing Host with 400.
    if (host < 0 || lower.charCodeAt(host) === 13) return undefined;
    const connection = singleHeader(lower, '\nconnection:');
    let close = false;
    if (connection === -2) return undefined;
    if (connection >= 0) {
      const value = lower.slice(connection, lower.indexOf('\r', connection)).trimEnd();
      if (value === 'close') close = true;
      else if (value !== 'keep-alive') return undefined;
    }
    const found = this.opts.tokens.lookupLocal(match[2]!);
    if (found === null) return undefined; // only the shared store can tell: Node's path awaits it
    const head = match[1] === 'HEAD';
    if (found === undefined) return { response: fastResponse(404, NOT_FOUND, head, close), close };
    if (this.opts.log.isLevelEnabled('debug')) {
      const value = headers.slice(host, headers.indexOf('\r', host)).trimEnd();
      this.opts.log.debug({ host: value, remote: socket.remoteAddress }, 'answered http-01 challenge');
    }
    return { response: fastResponse(200, found, head, close), close };
  }

  /**
   * Node's path. Synchronous for a token held in this process (no promise, no
   * URL object, no per-request header object); a token only the shared store
   * may hold is awaited.
   */
  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = req.url ?? '';
    const method = req.method;
    if ((method !== 'GET' && method !== 'HEAD') || !url.startsWith(PREFIX)) {
      this.other(req, res, url);
      return;
    }
    const query = url.indexOf('?', PREFIX.length);
    const token = query < 0 ? url.slice(PREFIX.length) : url.slice(PREFIX.length, query);
    const found = this.opts.tokens.lookupLocal(token);
    if (found === null) void this.handleShared(req, res, token);
    else this.answer(req, res, found);
  }

  /** Not a challenge: on-demand hears of it, then 301 to https (challenge.redirect_https) or 404. */
  private other(req: http.IncomingMessage, res: http.ServerResponse, url: string): void {
    const host = req.headers.host;
    try {
      this.opts.onOther?.(host);
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, 'on-demand check failed');
    }
    const location = this.opts.redirectHttps?.() ? httpsLocation(host, url) : undefined;
    if (location === undefined) {
      send(res, 404, NOT_FOUND_HEADERS, NOT_FOUND);
      return;
    }
    res.writeHead(301, ['location', location, 'content-length', '0', 'cache-control', 'no-store']);
    res.end();
  }

  /** A token this process does not hold, looked up in the shared store. */
  private async handleShared(req: http.IncomingMessage, res: http.ServerResponse, token: string): Promise<void> {
    let keyAuthorization: string | undefined;
    try {
      keyAuthorization = await this.opts.tokens.lookup(token);
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, 'challenge token lookup failed');
    }
    this.answer(req, res, keyAuthorization);
  }

  private answer(req: http.IncomingMessage, res: http.ServerResponse, keyAuthorization: string | undefined): void {
    if (keyAuthorization === undefined) {
      send(res, 404, NOT_FOUND_HEADERS, NOT_FOUND);
      return;
    }
    // Checked first so the hot path builds no log object when debug is off.
    if (this.opts.log.isLevelEnabled('debug')) {
      this.opts.log.debug({ host: req.headers.host, remote: req.socket.remoteAddress }, 'answered http-01 challenge');
    }
    send(res, 200, headersFor(keyAuthorization), keyAuthorization);
  }
}

const NOT_FOUND = 'Not found\n';

/** Response headers as a flat array: writeHead takes it without building an object. */
function plainTextHeaders(body: string): string[] {
  return [
    'content-type', 'text/plain; charset=utf-8',
    'content-length', String(Buffer.byteLength(body)),
    'cache-control', 'no-store',
  ];
}

const NOT_FOUND_HEADERS = plainTextHeaders(NOT_FOUND);

// The last answer's headers, reused while the same token is fetched over and over.
let lastBody = NOT_FOUND;
let lastHeaders = NOT_FOUND_HEADERS;

function headersFor(body: string): string[] {
  if (body !== lastBody) {
    lastHeaders = plainTextHeaders(body);
    lastBody = body;
  }
  return lastHeaders;
}

function send(res: http.ServerResponse, status: number, headers: string[], body: string): void {
  res.writeHead(status, headers);
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

// ---- the fast path's match and answers ----

/** Larger requests are Node's (its limit, maxHeaderSize, is 8 KiB). */
const FAST_MAX_REQUEST = 4096;

/**
 * One whole plain request and nothing after it: method, the challenge path
 * with a base64url token and an optional query of RFC 3986 characters,
 * HTTP/1.1, 1 to 32 header lines of token characters, a colon and visible
 * ASCII, CRLF line ends, the empty line, the end. Each part is a plain
 * character class bounded by a delimiter it cannot contain, so the match is
 * linear. A query is allowed because Node's path allows one (and ignores it).
 */
const FAST_REQUEST = /^(GET|HEAD) \/\.well-known\/acme-challenge\/([A-Za-z0-9_-]{1,256})(?:\?[A-Za-z0-9._~%!$&'()*+,;=:@\/?-]*)? HTTP\/1\.1\r\n((?:[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t\x20-\x7e]*\r\n){1,32})\r\n$/;

/** Headers that change how Node reads or answers a request: Node's call. */
const FAST_REFUSED_HEADER = /\n(?:content-length|transfer-encoding|upgrade|expect):/;

/**
 * Where the value of the header `key` ("\nname:", lower case) starts in the
 * lower-cased header block, past leading blanks; -1 when absent, -2 when
 * repeated.
 */
function singleHeader(lower: string, key: string): number {
  const at = lower.indexOf(key);
  if (at < 0) return -1;
  if (lower.indexOf(key, at + key.length) >= 0) return -2;
  let start = at + key.length;
  while (lower.charCodeAt(start) === 32 || lower.charCodeAt(start) === 9) start++;
  return start;
}

/** Node's Date header value: the current second, computed once per second. */
let dateValue = '';
function httpDate(): string {
  if (dateValue === '') {
    const now = new Date();
    dateValue = now.toUTCString();
    setTimeout(() => { dateValue = ''; }, 1000 - now.getMilliseconds()).unref();
  }
  return dateValue;
}

const KEEP_ALIVE_HEADERS = `Connection: keep-alive\r\nKeep-Alive: timeout=${Math.floor(KEEP_ALIVE_TIMEOUT_MS / 1000)}\r\n`;
const CLOSE_HEADERS = 'Connection: close\r\n';

// The answer to the same token's GET in the same second, kept as bytes.
let hotBody = '';
let hotDate = '';
let hotResponse = Buffer.alloc(0);

/** Byte for byte what send() makes Node write for the same request. */
function fastResponse(status: 200 | 404, body: string, head: boolean, close: boolean): string | Buffer {
  const date = httpDate();
  const hot = status === 200 && !head && !close;
  if (hot && body === hotBody && date === hotDate) return hotResponse;
  const response = `HTTP/1.1 ${status === 200 ? '200 OK' : '404 Not Found'}\r\n`
    + `content-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\n`
    + `Date: ${date}\r\n${close ? CLOSE_HEADERS : KEEP_ALIVE_HEADERS}\r\n${head ? '' : body}`;
  if (!hot) return response;
  hotBody = body;
  hotDate = date;
  hotResponse = Buffer.from(response);
  return hotResponse;
}

/**
 * https://<host><path> for a Host header that is a valid host name or IP
 * address (its port dropped: https is 443); undefined for anything else,
 * which gets the 404, so a forged Host never becomes a redirect to somewhere odd.
 */
function httpsLocation(host: string | undefined, url: string): string | undefined {
  const name = nameOfHostHeader(host);
  if (!name) return undefined;
  // Only origin-form paths of visible ASCII; an absolute-form or odd target redirects to the root.
  const path = /^\/[\x21-\x7e]*$/.test(url) ? url : '/';
  return `https://${urlHostOf(name)}${path}`;
}

function parseListen(address: string): { host: string; port: number } | { fd: number } {
  if (address.startsWith('fd:')) return { fd: Number(address.slice(3)) };
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon).replace(/^\[|\]$/g, '');
  return { host, port: Number(address.slice(colon + 1)) };
}

function closeListener({ server, fast }: Listener): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
    for (const socket of fast) socket.destroy();
    fast.clear();
  });
}
