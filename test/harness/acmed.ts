// Runs acmed as a user would: `bin/acmed run --config F` as a child process,
// and the CLI as fresh processes talking to its admin socket.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';

export const ACMED_BIN = resolve(import.meta.dirname, '../../bin/acmed');

export interface AcmedHandle {
  dir: string;
  configPath: string;
  socketPath: string;
  storagePath: string;
  logs(): string;
  /** Runs `acmed <args>` as a new process; never throws for a non-zero exit. */
  cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  child: ChildProcess;
}

const running = new Set<ChildProcess>();
process.on('exit', () => running.forEach((c) => c.kill('SIGKILL')));

export async function writeAcmedConfig(dir: string, config: Record<string, unknown>): Promise<string> {
  const path = join(dir, 'acmed.yaml');
  await writeFile(path, stringify(config));
  return path;
}

export function baseConfig(opts: { dir: string; directoryUrl: string; caBundlePath: string; httpPort: number }): Record<string, unknown> {
  return {
    account_email: 'ops@example.com',
    tos_accepted: true,
    api_uri: opts.directoryUrl,
    ca_bundle: opts.caBundlePath,
    domains: ['*.example.com', 'example.com', '*.example.org'],
    challenge: { listen: [`127.0.0.1:${opts.httpPort}`] },
    admin: { socket: join(opts.dir, 'admin.sock') },
    storage: 'file',
    storage_config: { file: { path: join(opts.dir, 'data') } },
    spool_dir: join(opts.dir, 'spool'),
    log_level: 'debug',
  };
}

export async function startAcmed(config: Record<string, unknown>, dir?: string): Promise<AcmedHandle> {
  const workDir = dir ?? await mkdtemp(join(tmpdir(), 'acmed-test-'));
  const configPath = await writeAcmedConfig(workDir, config);
  const socketPath = (config.admin as { socket: string }).socket;
  const storagePath = ((config.storage_config as { file?: { path: string } } | undefined)?.file?.path) ?? '';
  const child = spawn(process.execPath, [ACMED_BIN, 'run', '--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let output = '';
  child.stdout!.on('data', (d: Buffer) => { output += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { output += d.toString(); });
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => { running.delete(child); res(code); }));

  // Ready once the admin socket answers (the log level may hide the start line).
  for (let i = 0; !(await socketAnswers(socketPath)); i++) {
    if (child.exitCode !== null || i > 200) throw new Error(`acmed did not start:\n${output}`);
    await sleep(50);
  }
  return {
    dir: workDir,
    configPath,
    socketPath,
    storagePath,
    child,
    logs: () => output,
    cli: (args) => runCli([...args, '--socket', socketPath]),
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null) child.kill(signal);
      return exited;
    },
  };
}

function socketAnswers(path: string): Promise<boolean> {
  return new Promise((res) => {
    const socket = connect(path);
    socket.once('connect', () => { socket.destroy(); res(true); });
    socket.once('error', () => res(false));
  });
}

export function runCli(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [ACMED_BIN, ...args], { env, timeout: 120_000, maxBuffer: 1024 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      res({ code, stdout, stderr });
    });
  });
}

export async function removeDir(dir: string): Promise<void> {
  if (existsSync(dir)) await rm(dir, { recursive: true, force: true });
}

/** An admin request over a unix socket, as the CLI sends it; the answer's JSON (or its text when it is not JSON). */
export function adminPost(socketPath: string, path: string, body: unknown, method = 'POST'): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method, path, agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { text += d; });
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode!, body: JSON.parse(text) });
        } catch {
          resolve({ status: res.statusCode!, body: text });
        }
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}
