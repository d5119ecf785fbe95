// A TCP proxy on 127.0.0.1 that makes a network misbehave on purpose, for
// tests of how a client copes: it drops a chosen share of new connections,
// delays them, closes idle ones, resets every open one, or refuses all.
//
// It relays bytes and never looks inside them, so TLS passes through
// untouched: a client that trusts the upstream's certificate trusts the
// proxy (Pebble's harness certificate covers 127.0.0.1, whatever the port).
// Pebble builds its URLs from the Host header, so directory, order and
// Location URLs all point back at the proxy and every later request goes
// through it too.
//
// Which connections drop is decided by their number (1, 2, 3, ... in accept
// order), never by Math.random: `{ every: 4 }` drops the 4th, 8th, ...;
// `{ fraction, seed }` draws from a seeded generator, so a run is repeatable.
//
// A keep-alive client opens few connections; `idleCloseMs` ends connections
// that sat idle (as load balancers do), so the client has to reconnect and
// meets the drop schedule again, and now and then sends on a connection that
// is closing at that moment: the classic keep-alive race (ECONNRESET). Idle
// means "the upstream spoke last": a request the upstream is still working on
// is never cut off, however short idleCloseMs is.

import net from 'node:net';
import type { AddressInfo } from 'node:net';

export type DropSchedule =
  | { every: number }
  | { fraction: number; seed: number }
  | ((connection: number) => boolean);

/**
 * How a dropped connection ends. 'at-once': reset as soon as it is accepted
 * (the client sees ECONNRESET before TLS). 'after-first-bytes': reset once
 * the client has sent something (its TLS hello), i.e. mid-handshake.
 */
export type DropMode = 'at-once' | 'after-first-bytes';

export interface ChaosProxyOptions {
  /** Upstream, e.g. https://127.0.0.1:14000 or 127.0.0.1:14000; only host and port are used. */
  target: string;
  drop?: DropSchedule | null;
  dropMode?: DropMode;
  /** Wait this long before joining a new connection to the upstream. */
  delayMs?: number;
  /** Gracefully end a connection after this long without traffic once the upstream has answered. */
  idleCloseMs?: number;
}

export interface ChaosStats {
  /** Connections accepted, dropped ones included. */
  connections: number;
  dropped: number;
  /** Connections open right now. */
  open: number;
  /** Connections ended by idleCloseMs. */
  idleClosed: number;
  /** Connections ended by resetAll(), refuse() or close(). */
  reset: number;
}

export interface ChaosProxy {
  /** The proxy's base URL, with the target's scheme (https by default). */
  url: string;
  port: number;
  stats(): ChaosStats;
  setDrop(schedule: DropSchedule | null, mode?: DropMode): void;
  setDelay(ms: number): void;
  /** Resets every open connection now (mid-request for any in flight). */
  resetAll(): void;
  /** Stops listening (new connections get ECONNREFUSED) and resets every open one. */
  refuse(): Promise<void>;
  /** Listens again on the same port after refuse(). */
  accept(): Promise<void>;
  close(): Promise<void>;
}

/** mulberry32: a tiny seeded PRNG, good enough to spread drops evenly and repeatably. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

function dropper(schedule: DropSchedule | null | undefined): (connection: number) => boolean {
  if (!schedule) return () => false;
  if (typeof schedule === 'function') return schedule;
  if ('every' in schedule) return (n) => schedule.every > 0 && n % schedule.every === 0;
  const random = seededRandom(schedule.seed);
  return () => random() < schedule.fraction;
}

/**
 * Closes a socket with a TCP reset. Node's resetAndDestroy() fails (EINVAL,
 * emitted as 'error') on a socket whose write side was already ended, and
 * then leaves the handle open: its fd lingers and the event loop spins. Such
 * a socket is destroyed plainly instead.
 */
function reset(socket: net.Socket): void {
  if (socket.writableEnded) socket.destroy();
  else socket.resetAndDestroy();
}

function parseTarget(target: string): { host: string; port: number; scheme: string } {
  const url = new URL(target.includes('://') ? target : `tcp://${target}`);
  const scheme = url.protocol === 'tcp:' ? 'https' : url.protocol.replace(':', '');
  const port = Number(url.port || (scheme === 'http' ? 80 : 443));
  return { host: url.hostname, port, scheme };
}

export async function startChaosProxy(opts: ChaosProxyOptions): Promise<ChaosProxy> {
  const upstreamAddress = parseTarget(opts.target);
  let shouldDrop = dropper(opts.drop);
  let dropMode: DropMode = opts.dropMode ?? 'at-once';
  let delayMs = opts.delayMs ?? 0;
  const stats = { connections: 0, dropped: 0, idleClosed: 0, reset: 0 };
  /** Each open client socket and its upstream (once connected). */
  const open = new Map<net.Socket, net.Socket | undefined>();

  const resetPair = (client: net.Socket): void => {
    open.get(client)?.destroy();
    reset(client);
  };

  const join = (client: net.Socket): void => {
    if (client.destroyed) return;
    const upstream = net.connect(upstreamAddress.port, upstreamAddress.host);
    open.set(client, upstream);
    client.emit('upstream', upstream);
    upstream.on('error', () => client.destroy());
    upstream.on('close', () => client.destroy());
    client.on('close', () => upstream.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  };

  const server = net.createServer({ pauseOnConnect: true }, (client) => {
    const n = ++stats.connections;
    open.set(client, undefined);
    client.on('error', () => {});
    client.on('close', () => open.delete(client));
    if (shouldDrop(n)) {
      stats.dropped++;
      if (dropMode === 'at-once') {
        reset(client);
      } else {
        client.once('data', () => reset(client));
        client.resume();
      }
      return;
    }
    if (opts.idleCloseMs) {
      let upstreamSpokeLast = false;
      client.on('data', () => { upstreamSpokeLast = false; });
      const onUpstreamData = () => { upstreamSpokeLast = true; };
      client.once('upstream', (upstream: net.Socket) => upstream.on('data', onUpstreamData));
      client.setTimeout(opts.idleCloseMs, () => {
        // A request is out and the upstream is still on it: not idle.
        if (!upstreamSpokeLast || client.writableEnded) return;
        stats.idleClosed++;
        client.end();
        open.get(client)?.end();
      });
    }
    // Bytes the client sends meanwhile wait in the paused socket.
    if (delayMs > 0) setTimeout(() => join(client), delayMs);
    else join(client);
  });

  const listen = (port: number) => new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const stopListening = () => new Promise<void>((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
    // close() waits for open connections; they are reset by the caller.
  });
  const resetAll = () => {
    for (const client of [...open.keys()]) {
      stats.reset++;
      resetPair(client);
    }
  };

  await listen(0);
  const { port } = server.address() as AddressInfo;

  return {
    url: `${upstreamAddress.scheme}://127.0.0.1:${port}`,
    port,
    stats: () => ({ ...stats, open: open.size }),
    setDrop: (schedule, mode) => {
      shouldDrop = dropper(schedule);
      if (mode) dropMode = mode;
    },
    setDelay: (ms) => { delayMs = ms; },
    resetAll,
    refuse: async () => {
      const closed = stopListening();
      resetAll();
      await closed;
    },
    accept: async () => {
      if (!server.listening) await listen(port);
    },
    close: async () => {
      const closed = stopListening();
      resetAll();
      await closed;
    },
  };
}
