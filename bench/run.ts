// `npm run bench`: every measure of issue 8 in one run, printed as one
// markdown table (acmed, the peer measured in the same run, the ratio, the
// target). See bench/README.md for how to read it.
//
//   single certificate   acmed issue (a new CLI process) vs certbot and lego, each on its own Pebble
//   bulk                 300 POST /acme at once vs certbot x10 processes (bench/bulk.ts)
//   scale                10k / 100k synthetic certificates: pass, start-up, /metrics, list, RSS (bench/scale.ts)
//   http-01              acmed's responder vs nginx, wrk (bench/http01.ts)
//
// BENCH_TINY=1 runs every part at a tiny size so CI keeps it working; CI
// times nothing and no target is judged then.
import { performance } from 'node:perf_hooks';
import { freePort } from '../test/harness/ports.js';
import { startPebble } from '../test/harness/pebble.js';
import { startCountingProxy } from '../test/harness/counting-proxy.js';
import { runAcmed } from './acmed.js';
import { benchBulk } from './bulk.js';
import { benchHttp01 } from './http01.js';
import { runCertbot, runLego, type PeerOptions, type PeerResult } from './peers.js';
import { benchScale } from './scale.js';
import { median } from './stats.js';
import { markdownTable, type BenchRow } from './table.js';

const TINY = process.env.BENCH_TINY === '1';
const SINGLE = Number(process.env.BENCH_N ?? (TINY ? 1 : 5));
const BULK_HOSTS = TINY ? 10 : 300;
const SCALE = TINY ? { small: 200, large: 1_000 } : { small: 10_000, large: 100_000 };

async function singleCertificates(tool: string, run: (opts: PeerOptions) => Promise<PeerResult>): Promise<PeerResult> {
  const httpPort = await freePort();
  const pebble = await startPebble({ httpPort });
  try {
    const proxy = await startCountingProxy({ target: pebble.acmeUrl, targetCa: pebble.ca.certPem, tls: await pebble.issueServerCert('proxy') });
    try {
      const names = Array.from({ length: SINGLE }, (_, i) => `${tool}-${i + 1}.example.com`);
      return await run({ directoryUrl: `${proxy.url}/dir`, caBundlePath: pebble.caBundlePath, names, httpPort, counts: proxy.counts });
    } finally {
      await proxy.close();
    }
  } finally {
    await pebble.stop();
  }
}

async function singleRows(): Promise<BenchRow[]> {
  const results = new Map<string, PeerResult>();
  for (const [tool, run] of [['acmed', runAcmed], ['certbot', runCertbot], ['lego', runLego]] as const) {
    process.stderr.write(`bench: ${tool}, ${SINGLE} single certificates...\n`);
    results.set(tool, await singleCertificates(tool, run));
  }
  const seconds = (tool: string) => median(results.get(tool)!.secondsPerCert);
  const requests = (tool: string) => median(results.get(tool)!.requestsPerCert);
  return [
    {
      measure: 'one certificate via `acmed issue`, new CLI process (s, median)', acmed: seconds('acmed'), digits: 3,
      peer: { name: 'certbot', value: seconds('certbot') },
      note: `lego ${seconds('lego').toFixed(3)} s; ${SINGLE} each, one process per certificate, Pebble VA no-sleep, 5% nonce rejection`,
    },
    {
      measure: 'ACME requests per certificate, one at a time (median)', acmed: requests('acmed'), digits: 1,
      peer: { name: 'certbot', value: requests('certbot') },
      note: `lego ${requests('lego').toFixed(1)}`,
    },
  ];
}

const started = performance.now();
const rows: BenchRow[] = [];
rows.push(...await singleRows());
process.stderr.write(`bench: bulk, ${BULK_HOSTS} hosts at once...\n`);
rows.push(...await benchBulk({ hosts: BULK_HOSTS }));
rows.push(...await benchScale(SCALE));
process.stderr.write('bench: http-01 responder vs nginx...\n');
rows.push(...await benchHttp01());

// Tiny sizes prove the bench runs; they measure nothing worth judging.
const shown: BenchRow[] = TINY ? rows.map(({ target: _target, ...row }) => row) : rows;
console.log(`\n${markdownTable(shown)}\n`);
const missed = shown.filter((r) => r.target && !r.target.met);
console.log(`${TINY ? 'BENCH_TINY: sizes too small to judge any target' : missed.length === 0 ? 'every target met' : `missed: ${missed.map((r) => r.measure).join('; ')}`} (${((performance.now() - started) / 60_000).toFixed(1)} min)`);
