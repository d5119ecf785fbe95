// Counts ACME orders per certificate name for the fault suite: the counting
// proxy (counting-proxy.ts) in front of Pebble, with a `handle` hook that
// reads each newOrder's JWS payload and records its identifiers when Pebble
// created the order (HTTP 201). A newOrder that Pebble refused (a rejected
// nonce, which PEBBLE_WFE_NONCEREJECT makes common) is a request but not an
// order, so the counts stay exact under nonce rejection.
//
// hold() keeps Pebble's answers to one kind of request (say finalize) back
// for a while, so a test can break something at a known step of an order:
// Pebble has done the work, the client has not heard yet.
import { startCountingProxy, type CountingProxy } from './counting-proxy.js';
import type { PebbleHandle } from './pebble.js';

export interface OrderCountingProxy {
  /** The directory URL to give acmed as api_uri (its ca_bundle stays Pebble's test CA). */
  directoryUrl: string;
  url: string;
  /** Orders created (201), in all. */
  orders(): number;
  /** Orders created whose identifiers include this name. */
  ordersFor(name: string): number;
  /** Every order's names, in order of creation. */
  orderNames(): string[][];
  /** "name×n" for each name ordered more than once. */
  orderedMoreThanOnce(): string[];
  /** newOrder requests, answered or not (what a client sent). */
  newOrderRequests(): number;
  /** Every request through the proxy. */
  requests(): number;
  /** Requests whose path starts with prefix, so far. */
  seen(pathPrefix: string): number;
  /** Holds the answer to each request whose path starts with prefix for ms (0: stop holding). */
  hold(pathPrefix: string, ms: number): void;
  counts: CountingProxy['counts'];
  close(): Promise<void>;
}

export async function startOrderCountingProxy(pebble: PebbleHandle, opts: { name?: string } = {}): Promise<OrderCountingProxy> {
  const tls = await pebble.issueServerCert(opts.name ?? 'fault-order-proxy');
  // Pebble 2.4's path; learnt again from its directory as it passes through.
  let newOrderPath = '/order-plz';
  const created: string[][] = [];
  let newOrderRequests = 0;
  const holds = new Map<string, number>();

  const proxy = await startCountingProxy({
    target: pebble.acmeUrl,
    targetCa: pebble.ca.certPem,
    tls: { cert: tls.cert, key: tls.key },
    handle: async (req, forward) => {
      const path = req.path.split('?')[0] ?? req.path;
      const reply = await forward();
      if (req.method === 'GET' && path === '/dir' && reply.status === 200) {
        try {
          const dir = JSON.parse(reply.body.toString()) as { newOrder?: string };
          if (dir.newOrder) newOrderPath = new URL(dir.newOrder).pathname;
        } catch { /* not JSON: keep the default */ }
      }
      if (req.method === 'POST' && path === newOrderPath) {
        newOrderRequests++;
        if (reply.status === 201) created.push(orderNames(req.body));
      }
      for (const [prefix, ms] of holds) {
        if (path.startsWith(prefix)) await new Promise((resolve) => setTimeout(resolve, ms));
      }
      return reply;
    },
  });

  return {
    directoryUrl: `${proxy.url}/dir`,
    url: proxy.url,
    orders: () => created.length,
    ordersFor: (name) => created.filter((names) => names.includes(name)).length,
    orderNames: () => created.map((n) => [...n]),
    orderedMoreThanOnce: () => {
      const seen = new Map<string, number>();
      for (const names of created) for (const n of names) seen.set(n, (seen.get(n) ?? 0) + 1);
      return [...seen].filter(([, n]) => n > 1).map(([name, n]) => `${name}×${n}`);
    },
    newOrderRequests: () => newOrderRequests,
    requests: () => proxy.counts().total,
    seen: (prefix) => Object.entries(proxy.counts().byPath).filter(([p]) => p.startsWith(prefix)).reduce((s, [, n]) => s + n, 0),
    hold: (prefix, ms) => {
      if (ms > 0) holds.set(prefix, ms);
      else holds.delete(prefix);
    },
    counts: proxy.counts,
    close: proxy.close,
  };
}

/** The identifier values of a newOrder's flattened JWS payload. */
function orderNames(body: Buffer): string[] {
  try {
    const jws = JSON.parse(body.toString('utf8')) as { payload?: string };
    const payload = JSON.parse(Buffer.from(jws.payload ?? '', 'base64url').toString('utf8')) as { identifiers?: { value: string }[] };
    return (payload.identifiers ?? []).map((i) => i.value);
  } catch {
    return ['(unreadable order)'];
  }
}
