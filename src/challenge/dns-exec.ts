/**
 * The exec provider: runs an operator's program for any DNS API, with lego's
 * exec convention: `<command> present <fqdn.> <value>` and
 * `<command> cleanup <fqdn.> <value>` (record name with its trailing dot).
 * Arguments go to the program as argv, never through a shell, so no name can
 * inject a command. Each run is bounded by dns.exec.timeout_seconds, after
 * which the program is killed with its whole process group (a script's
 * children too); a non-zero exit is an error that carries its output's tail.
 */
import { spawn } from 'node:child_process';
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

  private run(action: 'present' | 'cleanup', record: TxtRecord): Promise<void> {
    const { command, timeout_seconds: timeoutSeconds } = this.opts;
    return new Promise((resolve, reject) => {
      const child = spawn(command, [action, `${record.fqdn}.`, record.value], {
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true, // its own process group, so a timeout kills what it started too
        env: { ...process.env, ACMED_DNS_ZONE: record.zone },
      });
      let output = '';
      const collect = (chunk: Buffer) => {
        output = (output + chunk.toString('utf8')).slice(-OUTPUT_TAIL_BYTES);
      };
      child.stdout.on('data', collect);
      child.stderr.on('data', collect);
      let settled = false;
      const settle = (err?: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve();
      };
      const timer = setTimeout(() => {
        killGroup(child.pid);
        settle(new DnsHookError(`dns.exec.command ${command} ${action} ${record.fqdn}. did not finish within ${timeoutSeconds} s and was killed${tail(output)}`));
      }, timeoutSeconds * 1000);
      child.once('error', (err) => settle(new DnsHookError(`cannot run dns.exec.command ${command}: ${err.message}`)));
      child.once('close', (code, signal) => {
        if (code === 0) settle();
        else settle(new DnsHookError(`dns.exec.command ${command} ${action} ${record.fqdn}. ${code !== null ? `exited with ${code}` : `was killed by ${signal}`}${tail(output)}`));
      });
    });
  }
}

function tail(output: string): string {
  const trimmed = output.trim();
  return trimmed ? `: ${trimmed}` : '';
}

function killGroup(pid: number | undefined): void {
  if (!pid) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}
