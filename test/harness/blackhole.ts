// A TCP server that accepts connections and never answers: where a test
// sends the CA's validation so an order hangs (and its lock stays held).
import net from 'node:net';

export interface Blackhole {
  /** Drops every connection it holds and stops listening. */
  close(): void;
}

export async function startBlackhole(host: string, port: number): Promise<Blackhole> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return {
    close() {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}
