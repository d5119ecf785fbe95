/**
 * One run of an operator's program (the deploy hook, the dns-01 exec
 * hook): in its own process group, so a timeout kills what it started too;
 * bounded by a timeout; only the tail of its output kept. Both hooks share
 * this; each decides what a failure means for it.
 */
import { spawn } from 'node:child_process';

export interface BoundedRunOptions {
  env: NodeJS.ProcessEnv;
  timeoutMs: number;
  outputTailBytes: number;
  /** SIGTERM first and SIGKILL this much later; unset: SIGKILL at once. */
  killGraceMs?: number;
}

export interface BoundedRun {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  durationMs: number;
  /** The tail of stdout and stderr together. */
  output: string;
  /** Set when the program could not be started at all. */
  spawnError?: Error;
}

export function runBounded(command: string, args: string[], opts: BoundedRunOptions): Promise<BoundedRun> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: opts.env });
    let output = '';
    const collect = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-opts.outputTailBytes);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      if (opts.killGraceMs === undefined) {
        killGroup(child.pid, 'SIGKILL');
        return;
      }
      killGroup(child.pid, 'SIGTERM');
      setTimeout(() => killGroup(child.pid, 'SIGKILL'), opts.killGraceMs).unref();
    }, opts.timeoutMs);
    const finish = (exitCode: number | null, signal: string | null, spawnError?: Error) => {
      clearTimeout(timer);
      resolve({ exitCode, signal, timedOut, durationMs: Date.now() - started, output, spawnError });
    };
    child.once('error', (err) => finish(null, null, err));
    child.once('close', (code, signal) => finish(code, signal));
  });
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}
