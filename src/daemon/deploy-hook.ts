/**
 * The deploy hook: an operator's command run after each new certificate
 * (reload nginx, push to a load balancer). It gets certbot's variables so
 * existing certbot deploy hooks work unchanged. It is bounded by a timeout,
 * its failure is logged and reported, never retried in a loop, and never
 * undoes the certificate that was just written.
 */
import { spawn } from 'node:child_process';
import type { Logger } from '../log.js';

export interface DeployHookRun {
  ok: boolean;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  durationMs: number;
  /** The tail of what the hook printed, for the log and the status API. */
  output: string;
}

export interface DeployHookInput {
  command: string;
  timeoutMs: number;
  /** The live directory (file storage) or the backend's location of the certificate. */
  lineage: string;
  names: string[];
  host: string;
  notAfter: string;
}

const OUTPUT_TAIL_BYTES = 4096;

export function runDeployHook(input: DeployHookInput, log: Logger): Promise<DeployHookRun> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', input.command], {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group, so a timeout kills what it started too
      env: {
        ...process.env,
        RENEWED_LINEAGE: input.lineage,
        RENEWED_DOMAINS: input.names.join(' '),
        ACMED_HOST: input.host,
        ACMED_NOT_AFTER: input.notAfter,
      },
    });
    let output = '';
    const collect = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-OUTPUT_TAIL_BYTES);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid, 'SIGTERM');
      setTimeout(() => killGroup(child.pid, 'SIGKILL'), 2_000).unref();
    }, input.timeoutMs);
    const finish = (exitCode: number | null, signal: string | null, spawnError?: Error) => {
      clearTimeout(timer);
      const run: DeployHookRun = {
        ok: !spawnError && !timedOut && exitCode === 0,
        exitCode,
        signal,
        timedOut,
        durationMs: Date.now() - started,
        output: spawnError ? spawnError.message : output.trim(),
      };
      const fields = { host: input.host, exitCode, signal, timedOut, ms: run.durationMs, output: run.output };
      if (run.ok) log.info(fields, 'deploy hook succeeded');
      else log.error(fields, 'deploy hook failed; the new certificate stays in place');
      resolve(run);
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
