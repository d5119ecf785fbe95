// http-01 responder throughput: acmed's ChallengeServer answering a published
// token, next to nginx serving the same key authorization as a static file,
// both on one worker (Node is single-threaded; nginx gets worker_processes 1),
// loaded by wrk over loopback. Runs are bounded (3 x 5 s each).
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { ChallengeServer } from '../src/challenge/server.js';
import { ChallengeTokens } from '../src/challenge/tokens.js';
import { createLogger } from '../src/log.js';
import { freePort } from '../test/harness/ports.js';
import { median } from './stats.js';

const run = promisify(execFile);
const TOKEN = 'bench_token_0123456789abcdefghijklmnop';
const KEY_AUTHORIZATION = `${TOKEN}.thumbprint_0123456789abcdefghijklmnopqrstu`;
const RUNS = 3;

interface WrkResult {
  requestsPerSecond: number;
  p99Ms: number;
}

async function wrk(url: string): Promise<WrkResult> {
  const { stdout } = await run('wrk', ['-t', '1', '-c', '50', '-d', '5s', '--latency', url], { timeout: 30_000 });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]);
  const p99 = /^\s+99%\s+([\d.]+)(us|ms|s)$/m.exec(stdout);
  const scale = { us: 0.001, ms: 1, s: 1000 } as const;
  if (!rps || !p99) throw new Error(`cannot read wrk output:\n${stdout}`);
  return { requestsPerSecond: rps, p99Ms: Number(p99[1]) * scale[p99[2] as keyof typeof scale] };
}

async function measure(url: string): Promise<WrkResult> {
  const results: WrkResult[] = [];
  for (let i = 0; i < RUNS; i++) results.push(await wrk(url));
  return { requestsPerSecond: median(results.map((r) => r.requestsPerSecond)), p99Ms: median(results.map((r) => r.p99Ms)) };
}

async function acmedResponder(): Promise<WrkResult> {
  const tokens = new ChallengeTokens();
  await tokens.publish(TOKEN, KEY_AUTHORIZATION);
  const server = new ChallengeServer({ tokens, log: createLogger('silent', new PassThrough()) });
  await server.listen(['127.0.0.1:0']);
  try {
    return await measure(`http://${server.boundAddresses()[0]}/.well-known/acme-challenge/${TOKEN}`);
  } finally {
    await server.close();
  }
}

async function nginxResponder(): Promise<WrkResult> {
  const dir = await mkdtemp(join(tmpdir(), 'acmed-bench-nginx-'));
  const port = await freePort();
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
  const nginx = spawn('nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir], { stdio: 'ignore' });
  try {
    await sleep(500);
    return await measure(`http://127.0.0.1:${port}/.well-known/acme-challenge/${TOKEN}`);
  } finally {
    nginx.kill('SIGQUIT');
    await new Promise((resolve) => nginx.once('exit', resolve));
    await rm(dir, { recursive: true, force: true });
  }
}

async function benchHttp01(): Promise<void> {
  const acmed = await acmedResponder();
  const nginx = await nginxResponder();
  console.log(`\nhttp-01 responder, one worker each, wrk -t1 -c50, median of ${RUNS} x 5 s\n`);
  console.log('server    req/s      p99 ms   vs nginx');
  for (const [name, r] of [['acmed', acmed], ['nginx', nginx]] as const) {
    console.log([
      name.padEnd(8),
      r.requestsPerSecond.toFixed(0).padStart(7),
      r.p99Ms.toFixed(2).padStart(10),
      `${(r.requestsPerSecond / nginx.requestsPerSecond).toFixed(2)}x`.padStart(10),
    ].join(' '));
  }
}

await benchHttp01();
