import { createServer } from 'node:net';

// Asks the kernel for an unused port by binding to port 0. There is a small
// window before the caller binds it, which is acceptable on loopback in tests.
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error('freePort: unexpected address'));
        return;
      }
      const port = addr.port;
      srv.close(() => resolve(port));
    });
  });
}
