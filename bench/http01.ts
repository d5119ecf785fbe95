// http-01 responder throughput: acmed's ChallengeServer answering a published
// token, next to nginx serving the same key authorization as a static file,
// both on one worker in a process of its own (Node is single-threaded; nginx
// gets worker_processes 1), loaded by wrk -t1 -c50 over loopback.
//
// Runs alternate between the two servers (acmed, nginx, nginx, acmed, ...), so
// a machine that gets busier or quieter during the bench weighs on both; each
// number is the median of RUNS runs. Every run must have no non-2xx answer and
// no socket error, and a checked run per server (a wrk Lua script comparing
// every body with the key authorization, same load) must find no wrong answer:
// otherwise the bench throws. acmed's hit counter must match the answers.
//
// Standalone: `node --import tsx bench/http01.ts` prints a table; bench/run.ts
// imports benchHttp01(). BENCH_TINY=1: one 1 s run each, for CI; it checks the
// answers but times nothing.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { ChallengeServer } from '../src/challenge/server.js';
import { ChallengeTokens } from '../src/challenge/tokens.js';
import { createLogger } from '../src/log.js';
import { freePort } from '../test/harness/ports.js';
import { median } from './stats.js';
import { markdownTable, type BenchRow } from './table.js';

const run = promisify(execFile);
const TOKEN = 'bench_token_0123456789abcdefghijklmnop';
const KEY_AUTHORIZATION = `${TOKEN}.thumbprint_0123456789abcdefghijklmnopqrstu`;
const PATH = `/.well-known/acme-challenge/${TOKEN}`;
const TINY = Boolean(process.env.BENCH_TINY);
const RUNS = TINY ? 1 : 3;
const SECONDS = TINY ? 1 : 5;
const CONNECTIONS = 50;
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');

interface WrkRun {
  requestsPerSecond: number;
  p99Ms: number;
  requests: number;
  /** Server CPU (user + system) per answered request, when /proc tells. */
  cpuUsPerRequest?: number;
}

interface Responder {
  name: string;
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/** wrk's answer, or a throw when any answer was not a 2xx or a socket failed. */
async function wrk(url: string, seconds: number, script?: string): Promise<{ run: WrkRun; stdout: string }> {
  const args = ['-t', '1', '-c', String(CONNECTIONS), '-d', `${seconds}s`, '--latency'];
  if (script) args.push('-s', script);
  args.push(url);
  if (script) args.push('--', KEY_AUTHORIZATION);
  const { stdout } = await run('wrk', args, { timeout: (seconds + 30) * 1000 });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]);
  const requests = Number(/(\d+) requests in/.exec(stdout)?.[1]);
  const p99 = /^\s+99%\s+([\d.]+)(us|ms|s)$/m.exec(stdout);
  const scale = { us: 0.001, ms: 1, s: 1000 } as const;
  if (!rps || !requests || !p99) throw new Error(`cannot read wrk output:\n${stdout}`);
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(stdout);
  if (non2xx) throw new Error(`${url}: ${non2xx[1]} answers were not 2xx under load:\n${stdout}`);
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  if (errors && errors.slice(1).some((n) => Number(n) > 0)) throw new Error(`${url}: socket errors under load:\n${stdout}`);
  return { run: { requestsPerSecond: rps, p99Ms: Number(p99[1]) * scale[p99[2] as keyof typeof scale], requests }, stdout };
}

/** user + system CPU ticks of a process (Linux), or undefined. */
async function cpuTicks(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]); // utime, stime: fields 14 and 15 of stat(5)
  } catch {
    return undefined;
  }
}

async function timedRun(responder: Responder): Promise<WrkRun> {
  const before = await cpuTicks(responder.pid);
  const { run: result } = await wrk(responder.url, SECONDS);
  const after = await cpuTicks(responder.pid);
  // USER_HZ is 100 on every Linux this runs on: a tick is 10 ms.
  if (before !== undefined && after !== undefined) result.cpuUsPerRequest = ((after - before) * 10_000) / result.requests;
  return result;
}

/**
 * One run under the same load with every answer's status and body checked by
 * a wrk Lua script; returns how many answers wrk saw.
 */
async function checkedRun(responder: Responder, script: string): Promise<number> {
  const { stdout } = await wrk(responder.url, TINY ? 1 : 2, script);
  const check = /^CHECK good=(\d+) bad=(\d+)$/m.exec(stdout);
  if (!check) throw new Error(`${responder.name}: the check script reported nothing:\n${stdout}`);
  if (Number(check[2]) > 0 || Number(check[1]) === 0) {
    throw new Error(`${responder.name}: ${check[2]} of ${Number(check[1]) + Number(check[2])} answers under load were not the key authorization`);
  }
  return Number(check[1]);
}

const CHECK_SCRIPT = `
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) expected = args[1]; good = 0; bad = 0 end
function response(status, headers, body)
  if status == 200 and body == expected then good = good + 1 else bad = bad + 1 end
end
function done(summary, latency, requests)
  local g, b = 0, 0
  for _, t in ipairs(threads) do g = g + t:get("good"); b = b + t:get("bad") end
  io.write(string.format("CHECK good=%d bad=%d\\n", g, b))
end
`;

/** acmed's responder in a process of its own, like nginx's worker. */
async function startAcmed(): Promise<Responder & { stats(): Promise<{ hits: number; misses: number }> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--serve'], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const first = await Promise.race([lines.next(), once(child, 'exit').then(() => ({ value: undefined }))]);
  if (typeof first.value !== 'string') throw new Error('the acmed responder did not start');
  const { address } = JSON.parse(first.value) as { address: string };
  let stats: { hits: number; misses: number } | undefined;
  const stop = async () => {
    if (child.exitCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const last = await lines.next();
    if (typeof last.value === 'string') stats = JSON.parse(last.value) as { hits: number; misses: number };
    await exited;
  };
  return {
    name: 'acmed',
    url: `http://${address}${PATH}`,
    pid: child.pid!,
    stop,
    async stats() {
      await stop();
      if (!stats) throw new Error('the acmed responder did not report its counters');
      return stats;
    },
  };
}

/** The child side of startAcmed(): serve until SIGTERM, then print the counters. */
async function serve(): Promise<void> {
  const tokens = new ChallengeTokens();
  await tokens.publish(TOKEN, KEY_AUTHORIZATION);
  const server = new ChallengeServer({ tokens, log: createLogger('silent', new PassThrough()) });
  await server.listen(['127.0.0.1:0']);
  process.stdout.write(`${JSON.stringify({ address: server.boundAddresses()[0] })}\n`);
  await once(process, 'SIGTERM');
  await server.close();
  process.stdout.write(`${JSON.stringify(tokens.stats)}\n`);
}

async function startNginx(dir: string): Promise<Responder> {
  const port = await freePort();
  // nginx started as root runs its worker as nobody, which must reach the file
  // (mkdtemp makes the directory 0700: the worker would answer 403 to all).
  await chmod(dir, 0o755);
  await mkdir(join(dir, 'www', '.well-known', 'acme-challenge'), { recursive: true });
  await writeFile(join(dir, 'www', '.well-known', 'acme-challenge', TOKEN), KEY_AUTHORIZATION);
  await writeFile(join(dir, 'nginx.conf'), `
daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp;
  proxy_temp_path ${dir}/tmp;
  fastcgi_temp_path ${dir}/tmp;
  uwsgi_temp_path ${dir}/tmp;
  scgi_temp_path ${dir}/tmp;
  server {
    listen 127.0.0.1:${port};
    location /.well-known/acme-challenge/ { root ${dir}/www; default_type text/plain; }
  }
}
`);
  const nginx: ChildProcess = spawn('nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir], { stdio: 'ignore' });
  const stop = async () => {
    if (nginx.exitCode !== null) return;
    const exited = once(nginx, 'exit');
    nginx.kill('SIGQUIT');
    await exited;
  };
  try {
    let worker: number | undefined;
    for (let i = 0; i < 50 && worker === undefined; i++) {
      await sleep(100);
      if (nginx.exitCode !== null) throw new Error(`nginx exited (${nginx.exitCode}); see ${dir}/error.log`);
      // The worker, the process that answers, is the master's only child.
      worker = Number((await run('pgrep', ['-P', String(nginx.pid)]).catch(() => ({ stdout: '' }))).stdout.trim().split('\n')[0]) || undefined;
    }
    return { name: 'nginx', url: `http://127.0.0.1:${port}${PATH}`, pid: worker ?? nginx.pid!, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

export interface Http01Result {
  acmed: WrkRun;
  nginx: WrkRun;
  runs: { acmed: WrkRun[]; nginx: WrkRun[] };
}

const summarize = (runs: WrkRun[]): WrkRun => ({
  requestsPerSecond: median(runs.map((r) => r.requestsPerSecond)),
  p99Ms: median(runs.map((r) => r.p99Ms)),
  requests: runs.reduce((sum, r) => sum + r.requests, 0),
  cpuUsPerRequest: runs.every((r) => r.cpuUsPerRequest !== undefined) ? median(runs.map((r) => r.cpuUsPerRequest!)) : undefined,
});

export async function measureHttp01(): Promise<Http01Result> {
  const dir = await mkdtemp(join(tmpdir(), 'acmed-bench-http01-'));
  const script = join(dir, 'check.lua');
  await writeFile(script, CHECK_SCRIPT);
  const acmed = await startAcmed();
  try {
    const nginx = await startNginx(dir);
    try {
      const runs = { acmed: [] as WrkRun[], nginx: [] as WrkRun[] };
      // The checked runs also warm acmed's JIT up before anything is timed.
      const acmedRequests = [await checkedRun(acmed, script)];
      await checkedRun(nginx, script);
      for (let i = 0; i < RUNS; i++) {
        const order = i % 2 === 0 ? [acmed, nginx] : [nginx, acmed];
        for (const responder of order) {
          const result = await timedRun(responder);
          runs[responder.name as 'acmed' | 'nginx'].push(result);
          if (responder === acmed) acmedRequests.push(result.requests);
        }
      }
      // The counters metrics read: one hit per answer, however many at once.
      // wrk does not count the answers in flight when a run ends, at most one
      // per connection.
      const stats = await acmed.stats();
      const answered = acmedRequests.reduce((a, b) => a + b, 0);
      const inFlight = CONNECTIONS * acmedRequests.length;
      if (stats.misses !== 0 || stats.hits < answered || stats.hits > answered + inFlight) {
        throw new Error(`acmed counted ${stats.hits} hits and ${stats.misses} misses for ${answered} answers (+ up to ${inFlight} in flight)`);
      }
      return { acmed: summarize(runs.acmed), nginx: summarize(runs.nginx), runs };
    } finally {
      await nginx.stop();
    }
  } finally {
    await acmed.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

export function http01Rows(result: Http01Result): BenchRow[] {
  const { acmed, nginx } = result;
  const ratio = acmed.requestsPerSecond / nginx.requestsPerSecond;
  const cpu = acmed.cpuUsPerRequest !== undefined && nginx.cpuUsPerRequest !== undefined
    ? `; server CPU per request acmed ${acmed.cpuUsPerRequest.toFixed(1)} µs, nginx ${nginx.cpuUsPerRequest.toFixed(1)} µs`
    : '';
  const how = TINY ? 'BENCH_TINY: 1 x 1 s, not a measurement' : `median of ${RUNS} x ${SECONDS} s alternating, wrk -t1 -c${CONNECTIONS}`;
  return [
    {
      measure: 'http-01 requests/s',
      acmed: acmed.requestsPerSecond,
      peer: { name: 'nginx', value: nginx.requestsPerSecond },
      ...(TINY ? {} : { target: { text: '>= 0.6x nginx', met: ratio >= 0.6 } }),
      digits: 0,
      note: `p99 acmed ${acmed.p99Ms.toFixed(2)} ms, nginx ${nginx.p99Ms.toFixed(2)} ms${cpu}; ${how}; every answer checked`,
    },
    {
      measure: 'http-01 p99 (ms)',
      acmed: acmed.p99Ms,
      peer: { name: 'nginx', value: nginx.p99Ms },
      digits: 2,
    },
  ];
}

export async function benchHttp01(): Promise<BenchRow[]> {
  return http01Rows(await measureHttp01());
}

const entry = process.argv[1] ? pathToFileURL(resolve(process.argv[1])).href : '';
if (import.meta.url === entry) {
  if (process.argv[2] === '--serve') {
    await serve();
  } else {
    const result = await measureHttp01();
    console.log(`\nhttp-01 responder, one worker each, wrk -t1 -c${CONNECTIONS}, ${TINY ? 'BENCH_TINY' : `median of ${RUNS} x ${SECONDS} s`}\n`);
    console.log('server    req/s      p99 ms   cpu us/req   vs nginx   runs (req/s)');
    for (const name of ['acmed', 'nginx'] as const) {
      const r = result[name];
      console.log([
        name.padEnd(8),
        r.requestsPerSecond.toFixed(0).padStart(7),
        r.p99Ms.toFixed(2).padStart(10),
        (r.cpuUsPerRequest?.toFixed(1) ?? '-').padStart(12),
        `${(r.requestsPerSecond / result.nginx.requestsPerSecond).toFixed(2)}x`.padStart(10),
        `   ${result.runs[name].map((x) => x.requestsPerSecond.toFixed(0)).join(' ')}`,
      ].join(' '));
    }
    console.log(`\n${markdownTable(http01Rows(result))}`);
  }
}
