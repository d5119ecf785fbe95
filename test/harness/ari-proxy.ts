// A small ARI (RFC 9773) stand-in in front of Pebble, which has none in
// Debian's 2.4. Built on the counting proxy's `handle` hook: it adds
// `renewalInfo` (and, when asked, `meta.profiles`) to Pebble's directory,
// answers renewalInfo lookups itself from windows the test sets, records
// every newOrder's JWS payload (with its `profile`), and can
// refuse the next order that carries `replaces` with `alreadyReplaced`, so a
// test sees the client order again without it. Everything else goes to
// Pebble unchanged (Host kept, so Pebble's URLs keep pointing here).

import {
  startCountingProxy, type CountingProxy, type CountingProxyOptions, type ProxyReply, type ProxyRequest,
} from './counting-proxy.js';

export type AriProxyOptions = Omit<CountingProxyOptions, 'handle'> & {
  /** Profiles (name → description) added to the directory's `meta.profiles`, which Pebble 2.4 lacks. */
  profiles?: Record<string, string>;
};

export interface AriWindow {
  start: Date | number | string;
  end: Date | number | string;
}

export type AriFailure = 'alreadyReplaced';

export interface AriProxy extends CountingProxy {
  /** The window (and optional Retry-After, in seconds) served for one certID. */
  setWindow(certId: string, window: AriWindow, retryAfterSeconds?: number): void;
  /**
   * What certIDs without their own window get; `null` restores the built-in
   * default, a window ten years ahead (so nothing renews on ARI's account).
   */
  setDefaultWindow(window: AriWindow | null, retryAfterSeconds?: number): void;
  /** The certID of every renewalInfo request, in order. */
  ariRequests(): string[];
  /**
   * The decoded JWS payload of every newOrder, in order, including those this
   * proxy refused; a resend after Pebble's badNonce counts once.
   */
  orders(): Record<string, unknown>[];
  /** Refuses the next newOrder that carries `replaces` with this ACME problem (HTTP 409). */
  failNextReplacesWith(type: AriFailure): void;
}

interface Served {
  window: AriWindow;
  retryAfterSeconds?: number;
}

/** Pebble serves its directory here. */
const DIRECTORY_PATH = '/dir';
const RENEWAL_INFO_PATH = '/renewal-info';
const PROBLEM_PREFIX = 'urn:ietf:params:acme:error:';
const YEAR_MS = 365 * 24 * 3_600_000;

const iso = (t: Date | number | string) => new Date(t).toISOString();

function json(status: number, body: unknown, headers: Record<string, string> = {}, type = 'application/json'): ProxyReply {
  return { status, headers: { 'content-type': type, 'cache-control': 'no-store', ...headers }, body: JSON.stringify(body) };
}

/** The payload of a flattened JWS ({protected, payload, signature}); {} for POST-as-GET. */
function jwsPayload(body: Buffer): Record<string, unknown> {
  const jws = JSON.parse(body.toString('utf8')) as { payload?: string };
  if (!jws.payload) return {};
  return JSON.parse(Buffer.from(jws.payload, 'base64url').toString('utf8')) as Record<string, unknown>;
}

function isBadNonce(reply: ProxyReply): boolean {
  if (reply.status !== 400) return false;
  try {
    return (JSON.parse(reply.body.toString()) as { type?: string }).type === `${PROBLEM_PREFIX}badNonce`;
  } catch {
    return false;
  }
}

export async function startAriProxy(opts: AriProxyOptions): Promise<AriProxy> {
  const windows = new Map<string, Served>();
  let fallback: Served | null = null;
  const requests: string[] = [];
  const orders: Record<string, unknown>[] = [];
  let failNext: AriFailure | null = null;
  // Learnt from Pebble's directory as it passes through; Pebble 2.4's own names as defaults.
  let newOrderPath = '/order-plz';
  let newNoncePath = '/nonce-plz';
  let baseUrl = '';

  const builtInDefault = (): Served => {
    const start = Date.now() + 10 * YEAR_MS;
    return { window: { start, end: start + 24 * 3_600_000 } };
  };

  const renewalInfo = (req: ProxyRequest): ProxyReply => {
    const certId = decodeURIComponent(req.path.slice(RENEWAL_INFO_PATH.length + 1).split('?')[0] ?? '');
    if (req.method !== 'GET') return json(405, { type: `${PROBLEM_PREFIX}malformed`, detail: 'renewalInfo takes GET' }, { allow: 'GET' }, 'application/problem+json');
    if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(certId)) {
      return json(400, { type: `${PROBLEM_PREFIX}malformed`, detail: `not an ARI certID: ${certId}` }, {}, 'application/problem+json');
    }
    requests.push(certId);
    const served = windows.get(certId) ?? fallback ?? builtInDefault();
    const headers: Record<string, string> = {};
    if (served.retryAfterSeconds !== undefined) headers['retry-after'] = String(served.retryAfterSeconds);
    return json(200, { suggestedWindow: { start: iso(served.window.start), end: iso(served.window.end) } }, headers);
  };

  const directory = async (forward: () => Promise<ProxyReply>): Promise<ProxyReply> => {
    const up = await forward();
    if (up.status !== 200) return up;
    const dir = JSON.parse(up.body.toString()) as Record<string, unknown>;
    if (typeof dir.newOrder === 'string') newOrderPath = new URL(dir.newOrder).pathname;
    if (typeof dir.newNonce === 'string') newNoncePath = new URL(dir.newNonce).pathname;
    const meta = opts.profiles ? { ...(dir.meta as object | undefined), profiles: opts.profiles } : dir.meta;
    return { ...up, body: JSON.stringify({ ...dir, meta, renewalInfo: `${baseUrl}${RENEWAL_INFO_PATH}` }) };
  };

  const newOrder = async (req: ProxyRequest, forward: (o?: Partial<ProxyRequest>) => Promise<ProxyReply>): Promise<ProxyReply> => {
    const payload = jwsPayload(req.body);
    if (!failNext || typeof payload.replaces !== 'string') {
      const answer = await forward();
      // Pebble refuses some nonces on purpose (PEBBLE_WFE_NONCEREJECT) and the
      // client resends the same order; count the order once.
      if (!isBadNonce(answer)) orders.push(payload);
      return answer;
    }
    orders.push(payload);
    const type = failNext;
    failNext = null;
    // The refused request never reaches Pebble, so hand the client a nonce Pebble will accept.
    const nonce = await forward({ method: 'HEAD', path: newNoncePath, body: Buffer.alloc(0) });
    const replayNonce = nonce.headers['replay-nonce'];
    if (typeof replayNonce !== 'string') throw new Error(`no Replay-Nonce from ${newNoncePath} (HTTP ${nonce.status})`);
    return json(409, {
      type: `${PROBLEM_PREFIX}${type}`,
      detail: `certificate ${payload.replaces} has already been replaced (ari-proxy)`,
      status: 409,
    }, { 'replay-nonce': replayNonce }, 'application/problem+json');
  };

  const proxy = await startCountingProxy({
    ...opts,
    handle: async (req, forward) => {
      const path = req.path.split('?')[0] ?? req.path;
      if (path.startsWith(`${RENEWAL_INFO_PATH}/`)) return renewalInfo(req);
      if (req.method === 'GET' && path === DIRECTORY_PATH) return directory(forward);
      if (req.method === 'POST' && path === newOrderPath) return newOrder(req, forward);
      return forward();
    },
  });
  baseUrl = proxy.url;

  return {
    ...proxy,
    setWindow: (certId, window, retryAfterSeconds) => { windows.set(certId, { window, retryAfterSeconds }); },
    setDefaultWindow: (window, retryAfterSeconds) => { fallback = window ? { window, retryAfterSeconds } : null; },
    ariRequests: () => [...requests],
    orders: () => orders.map((o) => structuredClone(o)),
    failNextReplacesWith: (type) => { failNext = type; },
  };
}
