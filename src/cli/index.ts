/**
 * The acmed command line. Client commands talk to the running daemon over the
 * admin socket; only `run` and `check-config` load the daemon's modules, so
 * `acmed issue` starts in a few tens of milliseconds.
 */
import { Command } from 'commander';
import type { CertificateStatus } from '../admin/api.js';
import type { IssueOutcome } from '../daemon/issuer.js';
import type { PassResult } from '../renewal/renewer.js';
import { adminRequest, CliError, expectOk } from './admin-client.js';
import { formatOutcome, formatPass, formatStatus } from './format.js';
import { listCertificates, type ListFlags } from './list.js';
import { resolveSocketPath } from './socket-path.js';

interface ClientFlags {
  socket?: string;
  config?: string;
  json?: boolean;
}

const program = new Command('acmed')
  .description('ACME certificate daemon: issues and renews certificates, answers http-01, writes PEMs to storage')
  .version('0.1.0')
  .showHelpAfterError();

function clientCommand(name: string, description: string): Command {
  return program.command(name).description(description)
    .option('--socket <path>', 'admin socket of the running daemon')
    .option('--config <file>', 'config file to find admin.socket in (default: $ACMED_CONFIG or /etc/acmed/acmed.yaml)')
    .option('--json', 'machine-readable output');
}

program.command('run')
  .description('run the daemon in the foreground')
  .option('--config <file>', 'config file (default: $ACMED_CONFIG or /etc/acmed/acmed.yaml)')
  .action(async (flags: { config?: string }) => {
    const { runDaemon } = await import('./run.js');
    await runDaemon(flags.config);
  });

program.command('check-config')
  .description('validate the config file; print each problem as file:line:col')
  .option('--config <file>', 'config file (default: $ACMED_CONFIG or /etc/acmed/acmed.yaml)')
  .action(async (flags: { config?: string }) => {
    const { checkConfig } = await import('./run.js');
    process.exitCode = await checkConfig(flags.config);
  });

clientCommand('issue', 'issue a certificate for <host> now (waits for it); with --force, renew even if valid')
  .argument('<host>')
  .option('--force', 'order a new certificate even when a valid one is stored')
  .option('--check-only', 'order nothing: check that http://<host>/.well-known/acme-challenge/ reaches this acmed (Kong\'s test_http_challenge_flow)')
  .action(async (host: string, flags: ClientFlags & { force?: boolean; checkOnly?: boolean }) => {
    if (flags.checkOnly) {
      const { data } = expectOk(await adminRequest<{ data: { detail: string } }>(resolveSocketPath(flags), 'POST', '/acme', { host, test_http_challenge_flow: true }));
      print(flags, data, `ok: ${data.detail}`);
      return;
    }
    const resp = await adminRequest<{ data: IssueOutcome }>(resolveSocketPath(flags), 'POST', '/acme', { host, force: flags.force ?? false });
    const { data } = expectOk(resp);
    print(flags, data, formatOutcome(data));
  });

clientCommand('renew', 'renew what is due now (all certificates, or the one for <host>); waits for the result')
  .argument('[host]')
  .option('--force', 'renew even what is not due, and ignore failure backoff')
  .action(async (host: string | undefined, flags: ClientFlags & { force?: boolean }) => {
    const resp = await adminRequest<{ data: PassResult }>(resolveSocketPath(flags), 'PATCH', '/acme?wait=true', { host, force: flags.force ?? false });
    const { data } = expectOk(resp);
    print(flags, data, formatPass(data));
    if (data.failed.length > 0 || (host && data.backedOff.length > 0)) process.exitCode = 1;
  });

clientCommand('revoke', 'revoke the certificate for <host> at the CA and remove it from storage')
  .argument('<host>')
  .option('--reason <code>', 'RFC 5280 reason: 0 unspecified, 1 keyCompromise, 4 superseded, 5 cessationOfOperation', '0')
  .action(async (host: string, flags: ClientFlags & { reason: string }) => {
    const path = `/acme/certificates/${encodeURIComponent(host)}?revoke=true&reason=${encodeURIComponent(flags.reason)}`;
    const body = expectOk(await adminRequest<{ data: { name: string; revoked: boolean } }>(resolveSocketPath(flags), 'DELETE', path));
    print(flags, body.data, (body as { message?: string }).message ?? `revoked ${body.data.name}`);
  });

clientCommand('list', 'list certificates with expiry and status, in host order')
  .option('--status <states>', 'only these states, comma-separated: valid, expired, missing, renewing, failed')
  .option('--expiring-within <duration>', 'only certificates that expire within this long: 7d, 12h, 30m (a bare number is days)')
  .action(async (flags: ClientFlags & ListFlags) => {
    await listCertificates(resolveSocketPath(flags), flags);
  });

clientCommand('show', 'show one certificate')
  .argument('<host>')
  .action(async (host: string, flags: ClientFlags) => {
    const path = `/acme/certificates/${encodeURIComponent(host)}`;
    const { data } = expectOk(await adminRequest<{ data: CertificateStatus }>(resolveSocketPath(flags), 'GET', path));
    print(flags, data, formatStatus(data));
  });

function print(flags: ClientFlags, data: unknown, human: string): void {
  process.stdout.write(`${flags.json ? JSON.stringify(data, null, 2) : human}\n`);
}

program.parseAsync(process.argv).catch((err: unknown) => {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`acmed: ${message}\n`);
  process.exitCode = err instanceof CliError ? err.exitCode : 1;
});
