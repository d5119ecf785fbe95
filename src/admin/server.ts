/**
 * The admin API listener on a unix socket, mode 0600: whoever can open it can
 * order certificates, so only acmed's own user may. A socket left behind by a
 * crashed daemon is replaced; one a live daemon answers on is not.
 */
import { mkdir, unlink } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { dirname } from 'node:path';

/** An admin request handler that is told who the caller is ("socket", "token", "cert:<identity>"). */
export type AdminHandler = (req: http.IncomingMessage, res: http.ServerResponse, caller: string) => void;

/**
 * Limits for both admin listeners: the headers within 10 s and the whole
 * request (body included) within 15 s, so a slow client cannot hold a
 * connection; the answer to a synchronous `acmed issue` may take longer.
 */
export const SERVER_LIMITS: http.ServerOptions = {
  headersTimeout: 10_000, requestTimeout: 15_000, maxHeaderSize: 16 * 1024,
  // Node checks those timeouts every 30 s by default: a slow client would outlive them by that much.
  connectionsCheckingInterval: 1_000,
};

export class SocketInUseError extends Error {
  readonly code = 'ADMIN_SOCKET_IN_USE';
}

export async function listenAdminSocket(socketPath: string, handler: AdminHandler): Promise<http.Server> {
  await mkdir(dirname(socketPath), { recursive: true, mode: 0o700 });
  if (await socketAnswers(socketPath)) {
    throw new SocketInUseError(`another acmed is already listening on ${socketPath}`);
  }
  await unlink(socketPath).catch(() => {});
  const server = http.createServer(SERVER_LIMITS, (req, res) => handler(req, res, 'socket'));
  // The umask makes the socket 0600 from the moment it exists, with no chmod window.
  const previous = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } finally {
    process.umask(previous);
  }
  return server;
}

/**
 * Stops accepting admin connections at once (and removes the socket file);
 * the returned promise settles when requests already in flight (a
 * synchronous `acmed issue`) have been answered.
 */
export function closeAdminSocket(server: http.Server, socketPath: string): Promise<void> {
  const closed = new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
  return unlink(socketPath).catch(() => {}).then(() => closed);
}

function socketAnswers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(socketPath);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
