// acmed at 10,000 and 100,000 stored certificates: a store is filled with
// synthetic certificates (bench/seed.ts, one seeding process per core), then
// a real daemon (`bin/acmed run`) is started on it and measured as an
// operator meets it: start-up to sd_notify READY, a renewal pass (PATCH
// /acme?wait=true, what `acmed renew` sends), GET /metrics, `acmed list
// --json` as a new CLI process, and the daemon's RSS (idle, at N, peak during
// the listing). The CA is unreachable on purpose: nothing here may need it.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { request } from 'node:http';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { adminRequest } from '../src/cli/admin-client.js';
import { ACMED_BIN, runCli } from '../test/harness/acmed.js';
import { freePort } from '../test/harness/ports.js';
import { canMount, mountTmpfs } from '../test/harness/tmpfs.js';
import { startRedis } from '../test/harness/redis.js';
import { startConsulStandin } from '../test/standins/consul.js';
import { startVaultStandin } from '../test/standins/vault.js';
import { BENCH_DOMAIN } from './seed.js';
import type { BenchRow } from './table.js';
import { median } from './stats.js';

const SEED_WORKER = fileURLToPath(new URL('./seed-worker.ts', import.meta.url));
/** Repetitions of each timed request; the median is reported. */
const REPEATS = 3;

/** file storage lives in the run's own directory; the others take their `storage_config.<kind>` block. */
export type ScaleStorage = { kind: 'file' } | { kind: 'redis' | 'consul' | 'vault'; config: Record<string, unknown> };

export interface ScaleResult {
  storage: string;
  certificates: number;
  seedSeconds: number;
  /** Spawn to sd_notify READY. */
  startupSeconds: number;
  /** Spawn to the admin socket's first answer. */
  adminAnswersSeconds: number;
  /** Spawn to the end of the background check of every stored certificate against the index. */
  indexCheckedSeconds: number;
  /** Median of REPEATS renewal passes over the index (none due). */
  passSeconds: number;
  metricsSeconds: number;
  metricsBytes: number;
  listSeconds: number;
  listRows: number;
  rssAfterStartMb: number;
  /** Highest RSS while `acmed list --json` ran. */
  rssPeakDuringListMb: number;
}

interface Daemon {
  child: ChildProcess;
  socket: string;
  configPath: string;
  readyAt: Promise<number>;
  adminAt: number;
  startedAt: number;
  logs: () => string;
  stop(): Promise<void>;
}

/** Seeds `count` certificates into a fresh store of the given kind and measures a daemon on it. */
export async function measureAtScale(storage: ScaleStorage, count: number): Promise<ScaleResult> {
  const dir = await mkdtemp(join(tmpdir(), 'acmed-bench-scale-'));
  // Seeding is faster without fsync; the measures read the page cache either way.
  const dataDir = join(dir, 'data');
  await mkdir(dataDir);
  const tmpfs = storage.kind === 'file' && canMount() ? await mountTmpfs(dataDir, 6 * 1024 * 1024) : undefined;
  try {
    const configPath = await writeConfig(dir, storage);
    const seedStarted = performance.now();
    await seed(configPath, count);
    const seedSeconds = (performance.now() - seedStarted) / 1000;
    const daemon = await startDaemon(dir, configPath);
    try {
      const readyAt = await daemon.readyAt;
      // The once-per-start work (index checked against every PEM) runs in the
      // background; the steady-state measures below start once it is done.
      const checkedAt = await indexCheckedAt(daemon);
      const rssAfterStartMb = rssMb(daemon.child.pid!);
      const passSeconds = median(await repeat(async () => {
        const resp = await adminRequest<{ data: { checked: number; not_due: number } }>({ kind: 'socket', path: daemon.socket }, 'PATCH', '/acme?wait=true', {});
        if (resp.status !== 200 || resp.body.data.checked !== count || resp.body.data.not_due !== count) {
          throw new Error(`renewal pass at ${count} answered ${resp.status}: ${JSON.stringify(resp.body).slice(0, 300)}`);
        }
      }));
      let metricsBytes = 0;
      const metricsSeconds = median(await repeat(async () => {
        const { status, body } = await rawAdminGet(daemon.socket, '/metrics');
        if (status !== 200) throw new Error(`/metrics answered ${status}`);
        metricsBytes = body.length;
      }));
      let listRows = 0;
      let rssPeakDuringListMb = 0;
      const listSeconds = median(await repeat(async () => {
        const peak = watchPeakRss(daemon.child.pid!);
        const { code, stdout, stderr } = await runCli(['list', '--json', '--socket', daemon.socket]);
        rssPeakDuringListMb = Math.max(rssPeakDuringListMb, peak.stop());
        if (code !== 0) throw new Error(`acmed list --json failed: ${stderr}`);
        listRows = (JSON.parse(stdout) as unknown[]).length;
      }));
      if (listRows !== count) throw new Error(`acmed list --json returned ${listRows} rows, expected ${count}`);
      return {
        storage: storage.kind, certificates: count, seedSeconds,
        startupSeconds: (readyAt - daemon.startedAt) / 1000,
        indexCheckedSeconds: (checkedAt - daemon.startedAt) / 1000,
        adminAnswersSeconds: (daemon.adminAt - daemon.startedAt) / 1000,
        passSeconds, metricsSeconds, metricsBytes, listSeconds, listRows, rssAfterStartMb, rssPeakDuringListMb,
      };
    } finally {
      await daemon.stop();
    }
  } finally {
    await tmpfs?.unmount().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  }
}

/** RSS of a daemon with no certificate at all, after it has settled. */
export async function idleRssMb(): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'acmed-bench-idle-'));
  try {
    const daemon = await startDaemon(dir, await writeConfig(dir, { kind: 'file' }));
    try {
      await daemon.readyAt;
      await sleep(1000);
      return rssMb(daemon.child.pid!);
    } finally {
      await daemon.stop();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function writeConfig(dir: string, storage: ScaleStorage): Promise<string> {
  const storageConfig = storage.kind === 'file'
    ? { storage: 'file', storage_config: { file: { path: join(dir, 'data') } } }
    // A generous call timeout: the seeders load the store (and, for the stand-ins, the bench's own
    // process) far past what a daemon does; nothing is timed by it.
    : { storage: storage.kind, storage_config: { [storage.kind]: { timeout: 30_000, ...storage.config } } };
  const config = {
    account_email: 'ops@example.com',
    tos_accepted: true,
    // Nothing listens here: every measure must work without the CA.
    api_uri: 'https://127.0.0.1:9/dir',
    domains: [`*.${BENCH_DOMAIN}`],
    challenge: { listen: [`127.0.0.1:${await freePort()}`] },
    admin: { socket: join(dir, 'admin.sock') },
    spool_dir: join(dir, 'spool'),
    log_level: 'warn',
    ...storageConfig,
  };
  const path = join(dir, 'acmed.yaml');
  await writeFile(path, stringify(config));
  return path;
}

/** One seeding process per core, each writing its share. */
async function seed(configPath: string, count: number): Promise<void> {
  const workers = Math.max(1, Math.min(availableParallelism(), 4));
  const share = Math.ceil(count / workers);
  await Promise.all(Array.from({ length: workers }, (_, w) => {
    const from = w * share;
    const n = Math.max(0, Math.min(share, count - from));
    return n === 0 ? Promise.resolve() : runToEnd(process.execPath, ['--import', 'tsx', SEED_WORKER, configPath, String(from), String(n)]);
  }));
}

function runToEnd(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    let err = '';
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr.setEncoding('utf8').on('data', (s: string) => { err += s; });
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${args.join(' ')} exited ${code}: ${err}`))));
  });
}

/**
 * Starts `bin/acmed run` with NOTIFY_SOCKET set and a `systemd-notify` shim
 * first in PATH that records when READY was sent, as systemd would see it.
 */
async function startDaemon(dir: string, configPath: string): Promise<Daemon> {
  const shimDir = join(dir, 'shim');
  const readyFile = join(dir, 'ready');
  await mkdir(shimDir, { recursive: true });
  await writeFile(join(shimDir, 'systemd-notify'), `#!/bin/sh\nfor a in "$@"; do [ "$a" = "--ready" ] && date +%s%3N >> '${readyFile}'; done\nexit 0\n`);
  await chmod(join(shimDir, 'systemd-notify'), 0o755);
  const socket = join(dir, 'admin.sock');
  const startedAt = Date.now();
  const child = spawn(process.execPath, [ACMED_BIN, 'run', '--config', configPath], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PATH: `${shimDir}:${process.env.PATH}`, NOTIFY_SOCKET: join(dir, 'notify.sock') },
  });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => { output += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { output += d.toString(); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 120_000;
  while ((await adminRequest({ kind: 'socket', path: socket }, 'GET', '/healthz').catch(() => null)) === null) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`acmed did not start:\n${output}`);
    await sleep(10);
  }
  const adminAt = Date.now();
  const readyAt = (async () => {
    for (;;) {
      const text = await readFile(readyFile, 'utf8').catch(() => '');
      if (text) return Number(text.trim().split('\n')[0]);
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`acmed never sent READY:\n${output}`);
      await sleep(10);
    }
  })();
  return {
    child, socket, configPath, readyAt, adminAt, startedAt, logs: () => output,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

async function indexCheckedAt(daemon: Daemon): Promise<number> {
  const deadline = Date.now() + 15 * 60_000;
  for (;;) {
    const resp = await adminRequest<{ checks: { scheduler: { index_checked_at: string | null } } }>({ kind: 'socket', path: daemon.socket }, 'GET', '/healthz');
    if (resp.body.checks?.scheduler?.index_checked_at) return Date.now();
    if (Date.now() > deadline) throw new Error(`the index was not checked against storage within 15 minutes:\n${daemon.logs().slice(-2000)}`);
    await sleep(200);
  }
}

async function repeat(fn: () => Promise<void>): Promise<number[]> {
  const seconds: number[] = [];
  for (let i = 0; i < REPEATS; i++) {
    const started = performance.now();
    await fn();
    seconds.push((performance.now() - started) / 1000);
  }
  return seconds;
}

function rawAdminGet(socketPath: string, path: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'GET' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

function rssMb(pid: number): number {
  return statusField(pid, 'VmRSS') / 1024;
}

function statusField(pid: number, field: string): number {
  // Read synchronously: the sampler runs on a timer and must see the value of that moment.
  let text = '';
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return 0; // the process has exited
  }
  return Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0);
}

/** Samples a process's RSS every 20 ms until stopped; returns the highest, in MB. */
function watchPeakRss(pid: number): { stop(): number } {
  let peak = rssMb(pid);
  const timer = setInterval(() => {
    peak = Math.max(peak, rssMb(pid));
  }, 20);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, rssMb(pid));
    },
  };
}

/** The scale part of `npm run bench`: file storage at two sizes, Redis at the larger, Consul and Vault stand-ins at the smaller. */
export async function benchScale(opts: { small: number; large: number }): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const k = (n: number) => `${n >= 1000 ? `${n / 1000}k` : n}`;
  const idle = await idleRssMb();
  process.stderr.write(`bench: file storage x${opts.small}...\n`);
  const small = await measureAtScale({ kind: 'file' }, opts.small);
  process.stderr.write(`bench: file storage x${opts.large}...\n`);
  const large = await measureAtScale({ kind: 'file' }, opts.large);
  rows.push(
    { measure: `renewal pass, ${k(small.certificates)} stored, none due, file (s)`, acmed: small.passSeconds, target: { text: '<= 1 s', met: small.passSeconds <= 1 }, digits: 3 },
    { measure: `renewal pass, ${k(large.certificates)} stored, none due, file (s)`, acmed: large.passSeconds, target: { text: '<= 1 s', met: large.passSeconds <= 1 }, digits: 3 },
    {
      measure: `start-up to sd_notify READY, ${k(large.certificates)}, file (s)`, acmed: large.startupSeconds, target: { text: '<= 3 s', met: large.startupSeconds <= 3 },
      note: `admin socket answered at ${large.adminAnswersSeconds.toFixed(2)} s; index checked against every PEM in the background by ${large.indexCheckedSeconds.toFixed(1)} s`,
    },
    {
      measure: `GET /metrics, ${k(large.certificates)} (s)`, acmed: large.metricsSeconds, target: { text: '<= 1 s', met: large.metricsSeconds <= 1 }, digits: 3,
      note: `${(large.metricsBytes / 1e6).toFixed(1)} MB with per-certificate series`,
    },
    { measure: `acmed list --json, ${k(large.certificates)} (s)`, acmed: large.listSeconds, target: { text: '<= 3 s', met: large.listSeconds <= 3 }, note: `${large.listRows} rows` },
    { measure: `daemon RSS peak during list, ${k(large.certificates)} (MB)`, acmed: large.rssPeakDuringListMb, target: { text: '< 300 MB', met: large.rssPeakDuringListMb < 300 }, digits: 0 },
    { measure: 'daemon RSS idle, no certificate (MB)', acmed: idle, digits: 0 },
    { measure: `daemon RSS at ${k(large.certificates)}, after start (MB)`, acmed: large.rssAfterStartMb, digits: 0 },
  );
  const redis = await startRedis();
  try {
    process.stderr.write(`bench: redis x${opts.large}...\n`);
    const onRedis = await measureAtScale({ kind: 'redis', config: { host: redis.host, port: redis.port, namespace: 'bench:' } }, opts.large);
    rows.push(
      { measure: `renewal pass, ${k(onRedis.certificates)}, Redis (s)`, acmed: onRedis.passSeconds, target: { text: '<= 1 s', met: onRedis.passSeconds <= 1 }, digits: 3 },
      {
        measure: `start-up to READY, ${k(onRedis.certificates)}, Redis (s)`, acmed: onRedis.startupSeconds, digits: 2,
        note: `index checked by ${onRedis.indexCheckedSeconds.toFixed(1)} s; /metrics ${onRedis.metricsSeconds.toFixed(2)} s; list ${onRedis.listSeconds.toFixed(2)} s`,
      },
    );
  } finally {
    await redis.stop();
  }
  // Consul and Vault cannot run here: their in-repo stand-ins (test/standins/) serve the same HTTP API.
  const standins = [
    { kind: 'consul' as const, start: () => startConsulStandin({ token: 'bench-token' }), kvPath: 'acmed-bench' },
    { kind: 'vault' as const, start: () => startVaultStandin({ rootToken: 'bench-token' }), kvPath: 'acme/acmed-bench' },
  ];
  for (const { kind, start, kvPath } of standins) {
    const standin = await start();
    try {
      process.stderr.write(`bench: ${kind} stand-in x${opts.small}...\n`);
      const result = await measureAtScale({ kind, config: { host: standin.host, port: standin.port, token: 'bench-token', kv_path: kvPath } }, opts.small);
      rows.push({
        measure: `renewal pass, ${k(result.certificates)}, ${kind} stand-in (s)`, acmed: result.passSeconds, digits: 3,
        note: `READY ${result.startupSeconds.toFixed(2)} s, index checked by ${result.indexCheckedSeconds.toFixed(1)} s, list ${result.listSeconds.toFixed(2)} s, seeding ${result.seedSeconds.toFixed(0)} s`,
      });
    } finally {
      await standin.close();
    }
  }
  return rows;
}
