// `npm run bench`: acmed, certbot and lego each issue N single-name
// certificates against their own local Pebble (PEBBLE_VA_NOSLEEP=1, Pebble's
// default 5% nonce rejection) behind a counting proxy, in the same run. Prints
// seconds per certificate (a fresh process each) and ACME requests per
// certificate. N from BENCH_N (default 10). Then the http-01 responder's
// throughput next to nginx (bench/http01.ts; BENCH_SKIP_HTTP01=1 skips it).
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freePort } from '../test/harness/ports.js';
import { startPebble } from '../test/harness/pebble.js';
import { startCountingProxy } from '../test/harness/counting-proxy.js';
import { runCertbot, runLego, type PeerOptions, type PeerResult } from './peers.js';
import { runAcmed } from './acmed.js';
import { mean, median, percentile } from './stats.js';

const N = Number(process.env.BENCH_N ?? 10);
const tools: [string, (opts: PeerOptions) => Promise<PeerResult>][] = [
  ['acmed', runAcmed],
  ['certbot', runCertbot],
  ['lego', runLego],
];

async function measure(tool: string, run: (opts: PeerOptions) => Promise<PeerResult>): Promise<PeerResult> {
  const httpPort = await freePort();
  const pebble = await startPebble({ httpPort });
  try {
    const proxy = await startCountingProxy({ target: pebble.acmeUrl, targetCa: pebble.ca.certPem, tls: await pebble.issueServerCert('proxy') });
    try {
      const names = Array.from({ length: N }, (_, i) => `${tool}-${i + 1}.example.com`);
      return await run({ directoryUrl: `${proxy.url}/dir`, caBundlePath: pebble.caBundlePath, names, httpPort, counts: proxy.counts });
    } finally {
      await proxy.close();
    }
  } finally {
    await pebble.stop();
  }
}

const results = new Map<string, PeerResult>();
for (const [tool, run] of tools) {
  process.stderr.write(`bench: ${tool} x${N}...\n`);
  results.set(tool, await measure(tool, run));
}

const acmedMedian = median(results.get('acmed')!.secondsPerCert);
console.log(`\nIssue ${N} single-name certificates, one process per certificate, local Pebble (VA no-sleep, 5% nonce rejection)\n`);
console.log('tool      median s/cert  p90 s/cert  vs acmed  median req/cert  mean req/cert');
for (const [tool, r] of results) {
  const m = median(r.secondsPerCert);
  console.log([
    tool.padEnd(9),
    m.toFixed(3).padStart(13),
    percentile(r.secondsPerCert, 90).toFixed(3).padStart(11),
    `${(m / acmedMedian).toFixed(1)}x`.padStart(9),
    String(median(r.requestsPerCert)).padStart(16),
    mean(r.requestsPerCert).toFixed(2).padStart(14),
  ].join(' '));
}

// A process of its own, so nothing left over from the issuance runs shares its event loop.
if (!process.env.BENCH_SKIP_HTTP01) {
  execFileSync(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./http01.ts', import.meta.url))], { stdio: 'inherit' });
}
