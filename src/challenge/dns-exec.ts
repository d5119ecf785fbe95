/**
 * The exec provider: runs an operator's program for any DNS API, with lego's
 * exec convention: `<command> present <fqdn.> <value>` and
 * `<command> cleanup <fqdn.> <value>` (record name with its trailing dot).
 * Arguments go to the program as argv, never through a shell, so no name can
 * inject a command. Each run is bounded by dns.exec.timeout_seconds, after
 * which the program is killed with its whole process group (a script's
 * children too); a non-zero exit is an error that carries its output's tail.
 */
import { runBounded } from '../bounded-process.js';
import type { DnsProvider, TxtRecord } from './dns-provider.js';

export interface ExecOptions {
  command: string;
  timeout_seconds: number;
}

export class DnsHookError extends Error {
  readonly code = 'DNS_HOOK_FAILED';
}

const OUTPUT_TAIL_BYTES = 2048;

export class ExecProvider implements DnsProvider {
  readonly kind = 'exec';

  constructor(private readonly opts: ExecOptions) {}

  present(record: TxtRecord): Promise<void> {
    return this.run('present', record);
  }

  cleanup(record: TxtRecord): Promise<void> {
    return this.run('cleanup', record);
  }

  private async run(action: 'present' | 'cleanup', record: TxtRecord): Promise<void> {
    const { command, timeout_seconds: timeoutSeconds } = this.opts;
    const ran = await runBounded(command, [action, `${record.fqdn}.`, record.value], {
      env: { ...process.env, ACMED_DNS_ZONE: record.zone },
      timeoutMs: timeoutSeconds * 1000,
      outputTailBytes: OUTPUT_TAIL_BYTES,
    });
    if (ran.spawnError) throw new DnsHookError(`cannot run dns.exec.command ${command}: ${ran.spawnError.message}`);
    if (ran.timedOut) {
      throw new DnsHookError(`dns.exec.command ${command} ${action} ${record.fqdn}. did not finish within ${timeoutSeconds} s and was killed${tail(ran.output)}`);
    }
    if (ran.exitCode !== 0) {
      throw new DnsHookError(`dns.exec.command ${command} ${action} ${record.fqdn}. ${ran.exitCode !== null ? `exited with ${ran.exitCode}` : `was killed by ${ran.signal}`}${tail(ran.output)}`);
    }
  }
}

function tail(output: string): string {
  const trimmed = output.trim();
  return trimmed ? `: ${trimmed}` : '';
}
