// Quick look at the peers: N=3 certificates each from certbot and lego, each
// against its own Pebble (httpPort = that peer's port) behind a counting proxy.
// Run: node --import tsx bench/peers-smoke.ts

import { freePort } from '../test/harness/ports.js';
import { startPebble } from '../test/harness/pebble.js';
import { startCountingProxy, type RequestCounts } from '../test/harness/counting-proxy.js';
import { runCertbot, runLego, type PeerOptions, type PeerResult } from './peers.js';

const N = 3;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

async function measurePeer(
  peer: string,
  run: (opts: PeerOptions) => Promise<PeerResult>,
): Promise<{ result: PeerResult; byPath: RequestCounts['byPath'] }> {
  const httpPort = await freePort();
  const pebble = await startPebble({ httpPort });
  try {
    const proxy = await startCountingProxy({
      target: pebble.acmeUrl,
      targetCa: pebble.ca.certPem,
      tls: await pebble.issueServerCert('proxy'),
    });
    try {
      const names = Array.from({ length: N }, (_, i) => `${peer}-${i + 1}.example.com`);
      let last: RequestCounts = { total: 0, byPath: {} };
      const result = await run({
        directoryUrl: `${proxy.url}/dir`,
        caBundlePath: pebble.caBundlePath,
        names,
        httpPort,
        counts: () => (last = proxy.counts()),
      });
      return { result, byPath: last.byPath };
    } finally {
      await proxy.close();
    }
  } finally {
    await pebble.stop();
  }
}

for (const [peer, run] of [['certbot', runCertbot], ['lego', runLego]] as const) {
  const { result, byPath } = await measurePeer(peer, run);
  console.log(
    `${peer}: median ${median(result.secondsPerCert).toFixed(2)} s/cert, ` +
    `median ${median(result.requestsPerCert)} requests/cert ` +
    `(seconds ${result.secondsPerCert.map((s) => s.toFixed(2)).join(', ')}; ` +
    `requests ${result.requestsPerCert.join(', ')})`,
  );
  if (process.env.VERBOSE) console.log(byPath);
}
