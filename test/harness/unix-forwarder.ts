// A loopback TCP port that forwards each connection to a unix socket, so a
// client that speaks only TCP (Prometheus) can reach acmed's admin socket.
// Byte for byte: nothing is parsed or changed on the way.
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface Forwarder {
  port: number;
  close(): Promise<void>;
}

export async function forwardTcpToUnix(socketPath: string): Promise<Forwarder> {
  const open = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(socketPath);
    for (const s of [client, upstream]) {
      open.add(s);
      s.on('close', () => open.delete(s));
      s.on('error', () => { client.destroy(); upstream.destroy(); });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('forwarder: unexpected address');
  return {
    port: address.port,
    close: () => new Promise((resolve) => {
      for (const s of open) s.destroy();
      server.close(() => resolve());
    }),
  };
}
