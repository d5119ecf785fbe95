/**
 * The http-01 preflight (Kong's `test_http_challenge_flow`, `acmed issue
 * --check-only`, and `preflight_check: true` before each new order): acmed
 * publishes a random probe token the way it publishes a real one (in this
 * process and in storage, so an instance sharing the store answers it too),
 * fetches http://<host>/.well-known/acme-challenge/<probe> the way the CA
 * would, and says what answered. A CA that cannot reach acmed fails the
 * order and counts against the account's failed-validation limit; a probe
 * costs nothing at the CA.
 *
 * The probe does not follow redirects (the CA does): a redirect on the
 * challenge path is reported, since acmed's own server never sends one. It
 * connects to the name's IPv4 address when it has one, and to an IP
 * address name itself (as the CA does: RFC 8738 §6), with it as the Host.
 */
import { AcmedError } from '../errors.js';
import { randomBytes } from 'node:crypto';
import { Resolver, lookup } from 'node:dns/promises';
import http from 'node:http';
import { isIP } from 'node:net';
import type { ChallengePublisher } from './publisher.js';
import { urlHostOf } from './host-header.js';

const PREFIX = '/.well-known/acme-challenge/';
/** Enough of an answer to compare with the probe and quote back. */
const MAX_BODY_BYTES = 4096;

export interface PreflightOptions {
  tokens: ChallengePublisher;
  /** The port the CA validates on: 80 for every public CA (`preflight_port`; a test CA like Pebble takes another). */
  port: number;
  /** "host:port" of a DNS server to ask instead of the system resolver (`preflight_resolver`). */
  resolver: string | null;
  /** For name resolution and for the HTTP answer, each. */
  timeoutMs?: number;
}

/** What the probe reached: acmed, or what instead. */
export type PreflightReached = 'acmed' | 'dns_failure' | 'timeout' | 'connection_failed' | 'other_server';

export interface PreflightResult {
  ok: boolean;
  host: string;
  url: string;
  reached: PreflightReached;
  /** The address connected to, once the name resolved. */
  address: string | null;
  status: number | null;
  /** The answer's Server header, when another server answered. */
  server: string | null;
  /** One sentence for a person. */
  detail: string;
  ms: number;
}

/** A preflight that did not reach acmed; an order would have failed validation. */
export class PreflightFailedError extends AcmedError {
  override readonly code = 'PREFLIGHT_FAILED';
  constructor(readonly result: PreflightResult) {
    super(`http-01 preflight for ${result.host} failed: ${result.detail}; no ACME order was placed`);
  }

  /** The error kind logs, backoff records and metrics show. */
  override get kind(): string {
    return 'preflight';
  }

  /** 422: the request was understood, but the host cannot be validated from here (before any ACME order). */
  override get status(): number {
    return 422;
  }

  override apiBody(): Record<string, unknown> {
    return { message: this.message, kind: 'preflight_failed', data: this.result };
  }
}

/** Probes one (already validated and allowed) host name. */
export async function probeHttpChallenge(host: string, opts: PreflightOptions): Promise<PreflightResult> {
  const started = Date.now();
  const token = randomBytes(24).toString('base64url');
  const expected = `${token}.${randomBytes(16).toString('base64url')}`;
  const url = `http://${urlHostOf(host)}${opts.port === 80 ? '' : `:${opts.port}`}${PREFIX}${token}`;
  const result = (reached: PreflightReached, detail: string, extra: Partial<PreflightResult> = {}): PreflightResult => ({
    ok: reached === 'acmed', host, url, reached, address: null, status: null, server: null, detail, ms: Date.now() - started, ...extra,
  });
  const timeoutMs = opts.timeoutMs ?? 10_000;

  let address: string;
  try {
    address = await resolve(host, opts.resolver, timeoutMs);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    return result('dns_failure', `${host} does not resolve (${code}${opts.resolver ? ` from ${opts.resolver}` : ''})`);
  }
  await opts.tokens.publish(token, expected);
  try {
    const answer = await fetchOnce(address, opts.port, host, `${PREFIX}${token}`, timeoutMs);
    const at = { address, status: answer.status, server: answer.server };
    const where = `${address}:${opts.port}`;
    if (answer.status === 200 && answer.body === expected) {
      return result('acmed', `${url} answered with the probe's key authorization: acmed (this instance or one sharing its store) answers http-01 for ${host}`, { address });
    }
    const who = answer.server ? `a server calling itself "${answer.server}"` : 'a server';
    if (answer.status >= 300 && answer.status < 400) {
      return result('other_server', `${who} at ${where} redirected the challenge path to ${answer.location ?? '(no Location)'}; acmed never redirects it, so port ${opts.port} of ${host} is not (only) acmed`, at);
    }
    if (answer.status === 404 && answer.body === 'Not found\n') {
      return result('other_server', `${where} answered 404 for the probe token: another acmed that does not share this one's store, or another server`, at);
    }
    return result('other_server', `${who} at ${where} answered HTTP ${answer.status}${answer.body ? ` "${quote(answer.body)}"` : ''} instead of the probe's key authorization`, at);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ETIMEDOUT') return result('timeout', `no answer from ${address}:${opts.port} within ${timeoutMs} ms`, { address });
    return result('connection_failed', `cannot connect to ${address}:${opts.port} (${code ?? (err as Error).message})`, { address });
  } finally {
    await opts.tokens.withdraw(token).catch(() => {});
  }
}

async function resolve(host: string, server: string | null, timeoutMs: number): Promise<string> {
  if (isIP(host)) return host;
  // IPv4 first, from the system resolver or the one given (Let's Encrypt tries IPv6 first: an AAAA record that points elsewhere is not caught).
  if (!server) {
    const found = await withTimeout(lookup(host, { all: true }), timeoutMs);
    return (found.find((a) => a.family === 4) ?? found[0]!).address;
  }
  const resolver = new Resolver({ timeout: Math.min(timeoutMs, 5_000), tries: 2 });
  resolver.setServers([server]);
  try {
    const [v4] = await resolver.resolve4(host);
    if (v4) return v4;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENODATA') throw err;
  }
  const [v6] = await resolver.resolve6(host);
  if (!v6) throw Object.assign(new Error('no address'), { code: 'ENODATA' });
  return v6;
}

interface Answer { status: number; body: string; server: string | null; location: string | null }

function fetchOnce(address: string, port: number, host: string, path: string, timeoutMs: number): Promise<Answer> {
  return new Promise((done, fail) => {
    const req = http.request({
      host: address, family: isIP(address), port, path, method: 'GET', agent: false, timeout: timeoutMs,
      headers: { host: port === 80 ? urlHostOf(host) : `${urlHostOf(host)}:${port}`, 'user-agent': 'acmed-preflight', connection: 'close' },
    }, (res) => {
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (chunk: string) => {
        body += chunk;
        if (body.length > MAX_BODY_BYTES) res.destroy();
      });
      const finish = () => done({
        status: res.statusCode ?? 0, body: body.slice(0, MAX_BODY_BYTES),
        server: header(res.headers.server), location: header(res.headers.location),
      });
      res.on('end', finish);
      res.on('close', finish); // cut short above: what came is enough
    });
    const timer = setTimeout(() => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })), timeoutMs);
    req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    req.on('close', () => clearTimeout(timer));
    req.on('error', fail);
    req.end();
  });
}

function header(value: string | string[] | undefined): string | null {
  return (Array.isArray(value) ? value[0] : value) ?? null;
}

function quote(body: string): string {
  const line = body.replace(/[^\x20-\x7e]+/g, ' ').trim();
  return line.length > 80 ? `${line.slice(0, 80)}…` : line;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
