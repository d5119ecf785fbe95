// Raw bytes to an HTTP server (TCP or unix socket), for requests no HTTP
// client would send: what comes back is the status of the first response
// line, or how the connection ended without one.
import net from 'node:net';

export type RawTarget = { port: number; host?: string } | { path: string };
export type RawAnswer = number | 'closed' | 'timeout';

export function rawRequest(target: RawTarget, bytes: Buffer | string, timeoutMs = 15_000): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const socket = 'path' in target ? net.connect(target.path) : net.connect(target.port, target.host ?? '127.0.0.1');
    let head = '';
    let settled = false;
    const done = (answer: RawAnswer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => done('timeout'), timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      head += chunk.toString('latin1');
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      if (status) done(Number(status[1]));
      else if (head.length > 64) done('closed');
    });
    socket.on('error', () => done('closed'));
    socket.on('close', () => done('closed'));
    // A server may answer (413, 431) and close before it has read everything: that is not our error.
    socket.write(bytes, () => socket.end());
  });
}

/**
 * A client that sends `prefix` at once, then `bytes` one at a time,
 * `intervalMs` apart, and reports when the server closed the connection (or
 * that it never did, by `giveUpMs`) and the status it answered, if any.
 */
export interface SlowClient {
  /** Settles once the connection is open (or failed to open). */
  connected: Promise<void>;
  result: Promise<{ closedAfterMs: number | null; answer: number | null }>;
}

export function slowClient(target: RawTarget, prefix: string, bytes: string, intervalMs: number, giveUpMs: number): SlowClient {
  const started = Date.now();
  const socket = 'path' in target ? net.connect(target.path) : net.connect(target.port, target.host ?? '127.0.0.1');
  const connected = new Promise<void>((resolve) => {
    socket.once('connect', () => resolve());
    socket.once('error', () => resolve());
  });
  const result = new Promise<{ closedAfterMs: number | null; answer: number | null }>((resolve) => {
    let i = 0;
    let head = '';
    socket.write(prefix);
    const drip = setInterval(() => {
      if (i < bytes.length && socket.writable) socket.write(bytes[i++]);
    }, intervalMs);
    const finish = (closedAfterMs: number | null) => {
      clearInterval(drip);
      clearTimeout(giveUp);
      socket.destroy();
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      resolve({ closedAfterMs, answer: status ? Number(status[1]) : null });
    };
    const giveUp = setTimeout(() => finish(null), giveUpMs);
    socket.on('data', (chunk: Buffer) => { head += chunk.toString('latin1'); });
    socket.on('error', () => {});
    socket.on('close', () => finish(Date.now() - started));
  });
  return { connected, result };
}
