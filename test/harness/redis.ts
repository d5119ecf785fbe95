// Starts Debian's redis-server (apt-get install -y redis-server) on a free
// loopback port for the storage tests: no persistence unless asked for, an
// optional password, optional TLS. kill()/restart() play a store that goes
// down and comes back on the same port (with its data when `persist` is set);
// pause()/resume() (SIGSTOP/SIGCONT) one that hangs with its connections open.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

export interface RedisServerOptions {
  password?: string;
  /** Serve TLS only, with this certificate (PEM files). */
  tls?: { certPath: string; keyPath: string; caPath: string };
  /**
   * Keep the data across kill()/restart(): an append-only file fsynced on
   * every write, so even SIGKILL loses nothing that was acknowledged.
   */
  persist?: boolean;
}

export interface RedisServer {
  host: string;
  port: number;
  password?: string;
  /** Kills the server and removes its directory. */
  stop(): Promise<void>;
  /** Kills the server; restart() brings it back. */
  kill(): Promise<void>;
  /** Starts again on the same port (killing it first if it runs): empty, or with its data when `persist` is set. */
  restart(): Promise<void>;
  pause(): void;
  resume(): void;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export function redisServerInstalled(): boolean {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export async function startRedis(opts: RedisServerOptions = {}): Promise<RedisServer> {
  if (!redisServerInstalled()) throw new Error('redis-server not found: apt-get install -y redis-server');
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'acmed-redis-'));
  const args = [
    '--bind', '127.0.0.1', '--save', '', '--dir', dir, '--daemonize', 'no', '--loglevel', 'notice',
    ...(opts.persist ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']),
    ...(opts.tls
      ? ['--port', '0', '--tls-port', String(port), '--tls-cert-file', opts.tls.certPath, '--tls-key-file', opts.tls.keyPath,
          '--tls-ca-cert-file', opts.tls.caPath, '--tls-auth-clients', 'no']
      : ['--port', String(port)]),
    ...(opts.password ? ['--requirepass', opts.password] : []),
  ];
  let child = await launch(args);

  return {
    host: '127.0.0.1',
    port,
    password: opts.password,
    async stop() {
      await terminate(child);
      await rm(dir, { recursive: true, force: true });
    },
    kill() {
      return terminate(child);
    },
    async restart() {
      await terminate(child);
      child = await launch(args);
    },
    pause() {
      child.kill('SIGSTOP');
    },
    resume() {
      child.kill('SIGCONT');
    },
  };
}

/** Runs redis-server (or redis-sentinel) with args until it says it is ready; its output is drained after that. */
export async function launch(args: string[], ready = /Ready to accept connections/, binary = 'redis-server'): Promise<ChildProcess> {
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${binary} not ready after 10 s:\n${output}`)), 10_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (ready.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${binary} exited (${code}):\n${output}`));
    });
  });
  child.stdout?.resume();
  child.stderr?.resume();
  return child;
}

export function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGCONT'); // a paused server cannot act on SIGTERM
    child.kill('SIGKILL');
  });
}
