// A stand-in in front of Pebble for CA behaviour Pebble will not show on
// request, built on the counting proxy's `handle` hook like ari-proxy.ts:
//
// - failNext(): answer the next request(s) matching a method and path with an
//   error of the test's choosing (a 500 on finalize, a 503 on the directory)
//   without passing them on, as a CA with a bad node behind its load
//   balancer would; the request never reaches Pebble.
// - delayNext(): hold the next matching request(s) for a while before passing
//   them on: a slow endpoint, so a test can make requests overlap.
// - failChallenge(): for one name, keep the http-01 challenge pending at the
//   CA (the client's answer is acknowledged but never passed on, so Pebble
//   never validates) and show an `error` on it in every authorization
//   response: what a CA that keeps retrying a failed validation reports.
//
// Everything else goes to Pebble unchanged (Host kept, so Pebble's URLs keep
// pointing here), and every request is counted by path. Requests this proxy
// answers itself carry a fresh Replay-Nonce from Pebble, as a CA's would.

import {
  startCountingProxy, type CountingProxy, type CountingProxyOptions, type ProxyReply, type ProxyRequest,
} from './counting-proxy.js';

export type AcmeStandinOptions = Omit<CountingProxyOptions, 'handle'>;

export interface StandinProblem {
  /** Short ("serverInternal") or full ("urn:ietf:params:acme:error:serverInternal") ACME problem type. */
  type: string;
  detail?: string;
  status?: number;
}

export interface RequestMatch {
  /** GET, HEAD, POST; any when unset. */
  method?: string;
  /** A path prefix ("/finalize-order/") or a pattern, tested against the path without query. */
  path: string | RegExp;
}

export interface StandinReply {
  status: number;
  problem: StandinProblem;
  /** Retry-After header value, e.g. "2". */
  retryAfter?: string;
}

export interface AnsweredRequest {
  method: string;
  path: string;
  status: number;
}

export interface AcmeStandinProxy extends CountingProxy {
  /** Answers the next `times` (default 1) matching requests with this error instead of passing them on. */
  failNext(match: RequestMatch, reply: StandinReply, times?: number): void;
  /** Holds the next `times` (default 1) matching requests for ms before passing them on. */
  delayNext(match: RequestMatch, ms: number, times?: number): void;
  /** Holds name's http-01 challenge pending at the CA, showing `problem` as its error. */
  failChallenge(name: string, problem: StandinProblem): void;
  /** Forgets every failNext() and delayNext() not used up yet, so nothing leaks into the next test. */
  clearPending(): void;
  /** Every request this proxy answered itself, in order. */
  answered(): AnsweredRequest[];
  /** Resource paths learnt from Pebble's directory (newOrder, newAccount, newNonce, ...). */
  resourcePaths(): Record<string, string>;
}

const DIRECTORY_PATH = '/dir';
const PROBLEM_PREFIX = 'urn:ietf:params:acme:error:';

interface PendingFailure extends RequestMatch, StandinReply {
  left: number;
}

interface PendingDelay extends RequestMatch {
  ms: number;
  left: number;
}

interface HeldChallenge {
  name: string;
  problem: StandinProblem;
  body: Record<string, unknown>;
  authzUrl: string;
  /** The client has answered it; from then on authorizations show the error. */
  answered: boolean;
}

function fullType(type: string): string {
  return type.includes(':') ? type : `${PROBLEM_PREFIX}${type}`;
}

function matches(match: RequestMatch, req: ProxyRequest, path: string): boolean {
  if (match.method && match.method.toUpperCase() !== req.method) return false;
  return typeof match.path === 'string' ? path.startsWith(match.path) : match.path.test(path);
}

function parseJson(body: Buffer | string): unknown {
  try {
    return JSON.parse(body.toString());
  } catch {
    return undefined;
  }
}

export async function startAcmeStandinProxy(opts: AcmeStandinOptions): Promise<AcmeStandinProxy> {
  const failures: PendingFailure[] = [];
  const delays: PendingDelay[] = [];
  const failedNames = new Map<string, StandinProblem>();
  /** Challenge path -> what to answer for it instead of Pebble. */
  const held = new Map<string, HeldChallenge>();
  const answeredLog: AnsweredRequest[] = [];
  const resources: Record<string, string> = { newNonce: '/nonce-plz' };

  const freshNonce = async (forward: (o?: Partial<ProxyRequest>) => Promise<ProxyReply>): Promise<Record<string, string>> => {
    const reply = await forward({ method: 'HEAD', path: resources.newNonce, body: Buffer.alloc(0) });
    const nonce = reply.headers['replay-nonce'];
    return typeof nonce === 'string' ? { 'replay-nonce': nonce } : {};
  };

  const answer = (req: ProxyRequest, path: string, reply: ProxyReply): ProxyReply => {
    answeredLog.push({ method: req.method, path, status: reply.status });
    return reply;
  };

  /** Learns resource paths from the directory as it passes through. */
  const directory = async (forward: () => Promise<ProxyReply>): Promise<ProxyReply> => {
    const up = await forward();
    const dir = parseJson(up.body);
    if (up.status === 200 && dir && typeof dir === 'object') {
      for (const [name, url] of Object.entries(dir as Record<string, unknown>)) {
        if (typeof url === 'string' && url.startsWith('http')) resources[name] = new URL(url).pathname;
      }
    }
    return up;
  };

  /** Rewrites an authorization for a failed name: its http-01 challenge stays pending, with the error. */
  const rewriteAuthorization = (reply: ProxyReply, authzPath: string): ProxyReply => {
    const authz = parseJson(reply.body) as { identifier?: { value?: string }; challenges?: Record<string, unknown>[] } | undefined;
    const name = authz?.identifier?.value;
    const problem = name === undefined ? undefined : failedNames.get(name);
    if (!authz?.challenges || name === undefined || !problem) return reply;
    for (const challenge of authz.challenges) {
      if (challenge.type !== 'http-01' || typeof challenge.url !== 'string') continue;
      const challengePath = new URL(challenge.url).pathname;
      const known = held.get(challengePath);
      if (!known) {
        const body = { type: challenge.type, url: challenge.url, token: challenge.token, status: 'pending' };
        held.set(challengePath, { name, problem, body, authzUrl: new URL(authzPath, challenge.url).href, answered: false });
      }
      // Like a CA: the error appears once validation was attempted, i.e. after the answer.
      if (known?.answered) challenge.error = { ...problem, type: fullType(problem.type) };
      challenge.status = 'pending';
    }
    return { ...reply, body: JSON.stringify(authz) };
  };

  const proxy = await startCountingProxy({
    ...opts,
    handle: async (req, forward) => {
      const path = req.path.split('?')[0] ?? req.path;
      const delay = delays.find((d) => d.left > 0 && matches(d, req, path));
      if (delay) {
        delay.left--;
        await new Promise((resolve) => setTimeout(resolve, delay.ms));
      }
      const failure = failures.find((f) => f.left > 0 && matches(f, req, path));
      if (failure) {
        failure.left--;
        const problem = { ...failure.problem, type: fullType(failure.problem.type), status: failure.problem.status ?? failure.status };
        return answer(req, path, {
          status: failure.status,
          headers: {
            'content-type': 'application/problem+json',
            ...(req.method === 'HEAD' ? {} : await freshNonce(forward)),
            ...(failure.retryAfter ? { 'retry-after': failure.retryAfter } : {}),
          },
          body: JSON.stringify(problem),
        });
      }
      if (req.method === 'GET' && path === DIRECTORY_PATH) return directory(forward);
      const heldChallenge = req.method === 'POST' ? held.get(path) : undefined;
      if (heldChallenge) {
        heldChallenge.answered = true;
        // Acknowledge the answer, keep it from Pebble: the challenge stays pending there.
        return answer(req, path, {
          status: 200,
          headers: {
            'content-type': 'application/json',
            link: `<${heldChallenge.authzUrl}>;rel="up"`,
            ...(await freshNonce(forward)),
          },
          body: JSON.stringify(heldChallenge.body),
        });
      }
      const reply = await forward();
      if (failedNames.size > 0 && req.method === 'POST' && reply.status === 200) return rewriteAuthorization(reply, path);
      return reply;
    },
  });

  return {
    ...proxy,
    failNext: (match, reply, times = 1) => { failures.push({ ...match, ...reply, left: times }); },
    delayNext: (match, ms, times = 1) => { delays.push({ ...match, ms, left: times }); },
    failChallenge: (name, problem) => { failedNames.set(name, problem); },
    clearPending: () => {
      failures.length = 0;
      delays.length = 0;
    },
    answered: () => answeredLog.map((a) => ({ ...a })),
    resourcePaths: () => ({ ...resources }),
  };
}
