// Bulk issuance: `hosts` new single-name certificates requested at once
// through the admin API (`POST /acme {host}` on the admin unix socket) of one
// running acmed, against its own Pebble (PEBBLE_VA_NOSLEEP=1, Pebble's
// default 5% nonce rejection kept on) behind the counting proxy, ECDSA keys,
// the default `max_concurrent_orders`.
//
// Measured over the window from the first POST to the last answer:
// certificates/s; ACME requests per certificate (proxy total / hosts);
// acmed's and Pebble's CPU per certificate (utime + stime from
// /proc/<pid>/stat before and after); acmed's peak RSS (VmHWM); the p99 of
// the http-01 port answering an unknown token, probed from a worker thread
// all through the run. The per-order `requests` figures of the answers must
// add up to what the proxy counted in the window, or the bench throws.
//
// Peer: certbot, 10 processes at once (each its own config dir holding a
// copy of one registered account; webroot mode, one static server on the
// port Pebble validates), issuing a smaller number; certificates/s.
//
// Standalone: `node --import tsx bench/bulk.ts` (BENCH_BULK_HOSTS, default
// 300; BENCH_TINY=1: 10 hosts and 2 certbot certificates, for CI, which times
// nothing).
import { execFile, execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { baseConfig, startAcmed } from '../test/harness/acmed.js';
import { startCountingProxy, type CountingProxy } from '../test/harness/counting-proxy.js';
import { startPebble } from '../test/harness/pebble.js';
import { freePort } from '../test/harness/ports.js';
import { percentile } from './stats.js';
import { markdownTable, type BenchRow } from './table.js';

const TINY = process.env.BENCH_TINY === '1';
const CERTBOT_PROCESSES = 10;
const CERTBOT_CERTS = TINY ? 2 : 20;
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

export interface BulkResult {
  hosts: number;
  seconds: number;
  certsPerSecond: number;
  requestsPerCert: number;
  acmedCpuMsPerCert: number;
  /** Of acmed's CPU, the part in user space (the rest is the kernel's: sockets, files). */
  acmedUserShare: number;
  pebbleCpuMsPerCert: number;
  peakRssMb: number;
  /** Requests per certificate by the first segment of their path (Pebble's: order-plz, authZ, chalZ, my-order, finalize-order, certZ, nonce-plz). */
  requestsByKind: Record<string, number>;
  /** Mean time from a job's start to its answer (duration_ms), queue wait excluded. */
  meanOrderMs: number;
  http01: { p50Ms: number; p99Ms: number; maxMs: number; probes: number };
}

export async function benchBulk(opts: { hosts: number }): Promise<BenchRow[]> {
  const acmed = await bulkAcmed(opts.hosts);
  const certbot = await bulkCertbot(Math.min(CERTBOT_CERTS, opts.hosts), CERTBOT_PROCESSES);
  const size = `${acmed.hosts} hosts at once in ${acmed.seconds.toFixed(1)} s`;
  return [
    {
      measure: 'bulk issuance (certificates/s)', acmed: acmed.certsPerSecond, digits: 1,
      peer: { name: `certbot x${CERTBOT_PROCESSES} processes`, value: certbot.certsPerSecond },
      target: { text: '>= 30', met: acmed.certsPerSecond >= 30 },
      note: `${size}; certbot: ${certbot.certs} certificates${certbot.reruns ? `, ${certbot.reruns} run(s) repeated after certbot gave up on a badNonce` : ''}`,
    },
    {
      measure: 'ACME requests per certificate (bulk)', acmed: acmed.requestsPerCert,
      peer: { name: 'certbot', value: certbot.requestsPerCert },
      target: { text: '<= 8', met: acmed.requestsPerCert <= 8 },
      note: `proxy total / certificates, equal to the sum of the per-order figures; by kind: ${
        Object.entries(acmed.requestsByKind).map(([kind, n]) => `${kind} ${n.toFixed(2)}`).join(', ')}`,
    },
    {
      measure: 'acmed CPU ms per certificate (bulk)', acmed: acmed.acmedCpuMsPerCert, digits: 1,
      target: { text: '<= 25', met: acmed.acmedCpuMsPerCert <= 25 },
      note: `today ~50; utime + stime of the daemon over the window (${Math.round(acmed.acmedUserShare * 100)}% user)`,
    },
    {
      measure: 'http-01 p99 during bulk (ms)', acmed: acmed.http01.p99Ms,
      target: { text: '< 20', met: acmed.http01.p99Ms < 20 },
      note: `unknown token, ${acmed.http01.probes} probes; p50 ${acmed.http01.p50Ms.toFixed(2)} ms, max ${acmed.http01.maxMs.toFixed(1)} ms`,
    },
    { measure: 'acmed peak RSS (MB, bulk)', acmed: acmed.peakRssMb, digits: 0, note: 'VmHWM of the daemon' },
    { measure: 'Pebble CPU ms per certificate (bulk)', acmed: acmed.pebbleCpuMsPerCert, digits: 1, note: 'the CA side of the same run' },
  ];
}

/** acmed's side: one daemon, `hosts` POST /acme at once. */
export async function bulkAcmed(hosts: number, extraConfig: Record<string, unknown> = {}): Promise<BulkResult> {
  const httpPort = await freePort();
  const pebble = await startPebble({ httpPort });
  const dir = await mkdtemp(join(tmpdir(), 'acmed-bulk-'));
  let proxy: CountingProxy | undefined;
  let stopDaemon: (() => Promise<unknown>) | undefined;
  try {
    proxy = await startCountingProxy({ target: pebble.acmeUrl, targetCa: pebble.ca.certPem, tls: await pebble.issueServerCert('proxy') });
    const config: Record<string, unknown> = {
      ...baseConfig({ dir, directoryUrl: `${proxy.url}/dir`, caBundlePath: pebble.caBundlePath, httpPort }),
      log_level: 'info',
      cert_type: 'ecc',
      ...extraConfig,
    };
    const daemon = await startAcmed(config, dir);
    stopDaemon = () => daemon.stop();
    const pid = daemon.child.pid!;
    const pebblePid = pebblePidFor(httpPort);

    // The first order registers the account and opens the connections; not timed.
    const warm = await postAcme(daemon.socketPath, 'warmup.example.com');
    if (warm.status !== 201) throw new Error(`warm-up issue failed: ${warm.status} ${JSON.stringify(warm.body)}`);

    const prober = startHttp01Prober(`http://127.0.0.1:${httpPort}/.well-known/acme-challenge/no-such-token-bench`);
    await prober.ready;
    const names = Array.from({ length: hosts }, (_, i) => `bulk-${i + 1}.example.com`);
    const countsBefore = proxy.counts();
    const cpuBefore = cpuTimes(pid);
    const pebbleCpuBefore = pebblePid ? cpuSeconds(pebblePid) : 0;
    const t0 = performance.now();
    const answers = await Promise.all(names.map((name) => postAcme(daemon.socketPath, name)));
    const seconds = (performance.now() - t0) / 1000;
    const cpuAfter = cpuTimes(pid);
    const cpuUser = cpuAfter.user - cpuBefore.user;
    const cpu = cpuUser + cpuAfter.system - cpuBefore.system;
    const pebbleCpu = pebblePid ? cpuSeconds(pebblePid) - pebbleCpuBefore : NaN;
    const countsAfter = proxy.counts();
    const requests = countsAfter.total - countsBefore.total;
    const latencies = await prober.stop();
    const peakRssMb = peakRssKb(pid) / 1024;

    const failed = answers.filter((a) => a.status !== 201);
    if (failed.length > 0) {
      throw new Error(`${failed.length} of ${hosts} POST /acme failed, e.g. ${failed[0]!.status} ${JSON.stringify(failed[0]!.body)}`);
    }
    const perOrder = answers.reduce((sum, a) => sum + Number(a.body?.data?.requests ?? NaN), 0);
    if (perOrder !== requests) {
      throw new Error(`per-order request figures add up to ${perOrder}, but the proxy counted ${requests} requests in the window`);
    }
    if (latencies.length === 0) throw new Error('the http-01 prober got no answer');
    return {
      hosts,
      seconds,
      certsPerSecond: hosts / seconds,
      requestsPerCert: requests / hosts,
      acmedCpuMsPerCert: (cpu * 1000) / hosts,
      acmedUserShare: cpu > 0 ? cpuUser / cpu : NaN,
      pebbleCpuMsPerCert: (pebbleCpu * 1000) / hosts,
      peakRssMb,
      requestsByKind: perKind(countsBefore.byPath, countsAfter.byPath, hosts),
      meanOrderMs: answers.reduce((sum, a) => sum + Number(a.body?.data?.duration_ms ?? 0), 0) / hosts,
      http01: {
        p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99), maxMs: Math.max(...latencies), probes: latencies.length,
      },
    };
  } finally {
    await stopDaemon?.();
    await proxy?.close();
    await pebble.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

interface AdminAnswer {
  status: number;
  body: { message?: string; data?: { requests?: number; duration_ms?: number } } | undefined;
}

/** One POST /acme on its own connection to the admin socket. */
function postAcme(socketPath: string, host: string): Promise<AdminAnswer> {
  const payload = JSON.stringify({ host });
  return new Promise((resolvePost, reject) => {
    const req = http.request({
      socketPath, path: '/acme', method: 'POST', agent: false,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: AdminAnswer['body'];
        try {
          body = JSON.parse(text);
        } catch {
          body = { message: text };
        }
        resolvePost({ status: res.statusCode ?? 0, body });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

function perKind(before: Record<string, number>, after: Record<string, number>, hosts: number): Record<string, number> {
  const kinds: Record<string, number> = {};
  for (const [path, n] of Object.entries(after)) {
    const kind = path.split('/')[1] ?? path;
    kinds[kind] = (kinds[kind] ?? 0) + (n - (before[path] ?? 0)) / hosts;
  }
  return Object.fromEntries(Object.entries(kinds).filter(([, n]) => n > 0).map(([k, n]) => [k, Math.round(n * 1000) / 1000]));
}

/** utime and stime of a process (all its threads), in seconds. */
function cpuTimes(pid: number): { user: number; system: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(fields[11]) / CLK_TCK, system: Number(fields[12]) / CLK_TCK }; // fields 14 and 15 of proc(5)
}

function cpuSeconds(pid: number): number {
  const { user, system } = cpuTimes(pid);
  return user + system;
}

function peakRssKb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN);
}

/** The pid of the Pebble this process started (the harness does not expose it) that validates on httpPort. */
function pebblePidFor(httpPort: number): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (comm !== 'pebble' || ppid !== process.pid) continue;
      const args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      const config = JSON.parse(readFileSync(args[args.indexOf('-config') + 1]!, 'utf8')) as { pebble?: { httpPort?: number } };
      if (config.pebble?.httpPort === httpPort) return Number(entry);
    } catch {
      // gone meanwhile, or not ours
    }
  }
  return undefined;
}

/**
 * GETs url one after another (a new connection each, as a CA's validation
 * does) from a worker thread, so the bench's own busy event loop (the proxy)
 * does not add to the latencies; stop() returns them in milliseconds.
 */
function startHttp01Prober(url: string): { ready: Promise<void>; stop: () => Promise<number[]> } {
  const worker = new Worker(`
    const http = require('node:http');
    const { parentPort } = require('node:worker_threads');
    const latencies = [];
    let stopping = false;
    parentPort.on('message', () => { stopping = true; });
    const once = () => new Promise((resolve) => {
      const t0 = process.hrtime.bigint();
      const req = http.get(${JSON.stringify(url)}, { agent: false }, (res) => {
        res.resume();
        res.on('end', () => { latencies.push(Number(process.hrtime.bigint() - t0) / 1e6); resolve(); });
      });
      req.on('error', () => resolve());
    });
    (async () => {
      parentPort.postMessage('ready');
      while (!stopping) {
        await once();
        await new Promise((r) => setTimeout(r, 5));
      }
      parentPort.postMessage(latencies);
    })();
  `, { eval: true });
  const ready = new Promise<void>((resolveReady) => worker.once('message', () => resolveReady()));
  return {
    ready,
    stop: async () => {
      await ready;
      const result = new Promise<number[]>((resolveStop, reject) => {
        worker.once('message', (m: number[]) => resolveStop(m));
        worker.once('error', reject);
      });
      worker.postMessage('stop');
      const latencies = await result;
      await worker.terminate();
      return latencies;
    },
  };
}

interface CertbotBulk {
  certs: number;
  certsPerSecond: number;
  requestsPerCert: number;
  /** certbot runs that failed and were run again (their time and requests count). */
  reruns: number;
}

/**
 * certbot 2.1 resends a request once after a badNonce; a second badNonce in
 * a row (Pebble rejects 5 % of nonces, so now and then over 20 certificates)
 * ends the run with a traceback. An operator would run it again; so does
 * the bench, up to this many times per certificate.
 */
const CERTBOT_RUNS_PER_CERT = 3;

/**
 * certbot, `processes` at once: one account registered and copied into each
 * process's own config dir (certbot locks its dirs), webroot mode with one
 * static server on the port Pebble validates.
 */
export async function bulkCertbot(certs: number, processes: number): Promise<CertbotBulk> {
  const httpPort = await freePort();
  const pebble = await startPebble({ httpPort });
  const dir = await mkdtemp(join(tmpdir(), 'acmed-bulk-certbot-'));
  const webroot = join(dir, 'www');
  let proxy: CountingProxy | undefined;
  let server: http.Server | undefined;
  try {
    proxy = await startCountingProxy({ target: pebble.acmeUrl, targetCa: pebble.ca.certPem, tls: await pebble.issueServerCert('proxy') });
    server = await serveWebroot(webroot, httpPort);
    const env = { ...process.env, REQUESTS_CA_BUNDLE: pebble.caBundlePath, NO_PROXY: '127.0.0.1,localhost', no_proxy: '127.0.0.1,localhost' };
    const common = (d: string) => [
      '--non-interactive', '--agree-tos', '-m', 'x@example.com', '--no-eff-email', '--server', `${proxy!.url}/dir`,
      '--config-dir', join(d, 'config'), '--work-dir', join(d, 'work'), '--logs-dir', join(d, 'logs'),
    ];
    const first = join(dir, 'p0');
    await runCertbot(['register', ...common(first)], env);
    for (let p = 1; p < processes; p++) await cp(join(first, 'config'), join(dir, `p${p}`, 'config'), { recursive: true });

    const names = Array.from({ length: certs }, (_, i) => `certbot-bulk-${i + 1}.example.com`);
    let next = 0;
    let reruns = 0;
    const before = proxy.counts().total;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: Math.min(processes, certs) }, async (_, p) => {
      while (next < names.length) {
        const name = names[next++]!;
        const args = ['certonly', ...common(join(dir, `p${p}`)), '--webroot', '-w', webroot, '--key-type', 'ecdsa', '-d', name];
        for (let run = 1; ; run++) {
          try {
            await runCertbot(args, env);
            break;
          } catch (err) {
            if (run >= CERTBOT_RUNS_PER_CERT) throw err;
            reruns++;
          }
        }
      }
    }));
    const seconds = (performance.now() - t0) / 1000;
    return { certs, certsPerSecond: certs / seconds, requestsPerCert: (proxy.counts().total - before) / certs, reruns };
  } finally {
    if (server) await new Promise((r) => { server!.close(r); server!.closeAllConnections(); });
    await proxy?.close();
    await pebble.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

function runCertbot(args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolveRun, reject) => {
    execFile('certbot', args, { env, timeout: 120_000 }, (err, stdout, stderr) => {
      if (!err) return resolveRun();
      // certbot's own log has the traceback; its dir is removed afterwards, so the tail goes into the error.
      const logsDir = args[args.indexOf('--logs-dir') + 1];
      let log = '';
      try {
        if (logsDir) log = readFileSync(join(logsDir, 'letsencrypt.log'), 'utf8').split('\n').slice(-40).join('\n');
      } catch {
        // no log (yet, or any more)
      }
      reject(new Error(`certbot ${args[0]} failed: ${err.message}\n${stdout}${stderr}\n${log}`));
    });
  });
}

/** The http-01 files certbot's webroot plugin writes, served on 127.0.0.1:port. */
async function serveWebroot(webroot: string, port: number): Promise<http.Server> {
  await mkdir(webroot, { recursive: true });
  const server = http.createServer((req, res) => {
    const token = (req.url ?? '').split('?')[0]!.replace(/^\/\.well-known\/acme-challenge\//, '');
    if (!/^[A-Za-z0-9_-]+$/.test(token)) {
      res.writeHead(404).end();
      return;
    }
    readFile(join(webroot, '.well-known', 'acme-challenge', token)).then((body) => {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(body);
    }, () => res.writeHead(404).end());
  });
  await new Promise<void>((r, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => r());
  });
  return server;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const hosts = TINY ? 10 : Number(process.env.BENCH_BULK_HOSTS ?? 300);
  const rows = await benchBulk({ hosts });
  console.log(process.env.BENCH_JSON === '1' ? JSON.stringify(rows, null, 2) : markdownTable(rows));
}

