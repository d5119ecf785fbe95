/**
 * The deploy hook: an operator's command run after each new certificate
 * (reload nginx, push to a load balancer). It gets certbot's variables so
 * existing certbot deploy hooks work unchanged. It is bounded by a timeout,
 * its failure is logged and reported, never retried in a loop, and never
 * undoes the certificate that was just written.
 */
import { runBounded } from '../bounded-process.js';
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

export async function runDeployHook(input: DeployHookInput, log: Logger): Promise<DeployHookRun> {
  const ran = await runBounded('/bin/sh', ['-c', input.command], {
    env: {
      ...process.env,
      RENEWED_LINEAGE: input.lineage,
      RENEWED_DOMAINS: input.names.join(' '),
      ACMED_HOST: input.host,
      ACMED_NOT_AFTER: input.notAfter,
    },
    timeoutMs: input.timeoutMs,
    outputTailBytes: OUTPUT_TAIL_BYTES,
    killGraceMs: 2_000,
  });
  const run: DeployHookRun = {
    ok: !ran.spawnError && !ran.timedOut && ran.exitCode === 0,
    exitCode: ran.exitCode,
    signal: ran.signal,
    timedOut: ran.timedOut,
    durationMs: ran.durationMs,
    output: ran.spawnError ? ran.spawnError.message : ran.output.trim(),
  };
  const fields = { host: input.host, exitCode: run.exitCode, signal: run.signal, timedOut: run.timedOut, ms: run.durationMs, output: run.output };
  if (run.ok) log.info(fields, 'deploy hook succeeded');
  else log.error(fields, 'deploy hook failed; the new certificate stays in place');
  return run;
}
