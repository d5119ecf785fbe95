/**
 * The acmed command line. Client commands talk to the running daemon over the
 * admin API (its socket, or `--admin-url`); only `run` and `check-config`
 * load the daemon's modules, so `acmed issue` starts in a few tens of
 * milliseconds.
 */
import { Command } from 'commander';
import type { CertificateStatus, DaemonSummary, PassSummary } from '../admin/wire.js';
import { adminRequest, expectOk } from './admin-client.js';
import { resolveAdminTarget, type TargetFlags } from './admin-target.js';
import { CliError } from './errors.js';
import { formatFields, formatPass, formatStatus, formatSummary } from './format.js';
import { issueCertificate } from './issue.js';
import { listCertificates, type ListFlags } from './list.js';
import { VERSION } from '../version.js';

interface ClientFlags extends TargetFlags {
  json?: boolean;
}

const program = new Command('acmed')
  .description('ACME certificate daemon: issues and renews certificates, answers http-01, writes PEMs to storage')
  .version(VERSION)
  .showHelpAfterError('(see acmed --help)')
  .configureOutput({ outputError: (text, write) => write(text.replace(/^error: /, 'acmed: ')) });

/** A usage mistake prints the error and one hint line, not the whole help. */
function command(name: string, description: string): Command {
  return program.command(name).description(description).showHelpAfterError(`(see acmed ${name} --help)`);
}

function clientCommand(name: string, description: string): Command {
  return withClientOptions(command(name, description));
}

/** How a client command finds its daemon (see admin-target.ts), and --json. */
function withClientOptions(cmd: Command): Command {
  return cmd
    .option('--socket <path>', 'admin socket of the running daemon')
    .option('--config <file>', 'config file to find admin.socket in (default: $ACMED_CONFIG or /etc/acmed/acmed.yaml)')
    .option('--admin-url <url>', 'a daemon\'s TCP admin listener, https://host:port (default: $ACMED_ADMIN_URL)')
    .option('--token-file <file>', 'bearer token for --admin-url (default: $ACMED_TOKEN_FILE)')
    .option('--cert <file>', 'client certificate for --admin-url (default: $ACMED_CLIENT_CERT)')
    .option('--key <file>', 'its private key (default: $ACMED_CLIENT_KEY)')
    .option('--cacert <file>', 'CA that signed the daemon\'s certificate (default: $ACMED_CACERT)')
    .option('--json', 'machine-readable output');
}

command('run', 'run the daemon in the foreground')
  .option('--config <file>', 'config file (default: $ACMED_CONFIG or /etc/acmed/acmed.yaml)')
  .action(async (flags: { config?: string }) => {
    const { runDaemon } = await import('./run.js');
    await runDaemon(flags.config);
  });

command('check-config', 'validate the config file; print each problem as file:line:col')
  .option('--config <file>', 'config file (default: $ACMED_CONFIG or /etc/acmed/acmed.yaml)')
  .option('--online', 'also ask the CA: fetch api_uri\'s directory and check what only it can tell (profiles)')
  .action(async (flags: { config?: string; online?: boolean }) => {
    const { checkConfig } = await import('./run.js');
    process.exitCode = await checkConfig(flags.config, { online: flags.online });
  });

clientCommand('issue', 'issue a certificate for <host> now (waits for it); with --force, renew even if valid')
  .argument('<host>')
  .option('--force', 'order a new certificate even when a valid one is stored')
  .option('--check-only', 'order nothing: check that http://<host>/.well-known/acme-challenge/ reaches this acmed (Kong\'s test_http_challenge_flow)')
  .action(async (host: string, flags: ClientFlags & { force?: boolean; checkOnly?: boolean }) => {
    if (flags.checkOnly) {
      const { data } = expectOk(await adminRequest<{ data: { detail: string } }>(resolveAdminTarget(flags), 'POST', '/acme', { host, test_http_challenge_flow: true }));
      print(flags, data, `ok: ${data.detail}`);
      return;
    }
    await issueCertificate(resolveAdminTarget(flags), host, flags);
  });

clientCommand('renew', 'renew what is due now (all certificates, or the one for <host>); waits for the result')
  .argument('[host]')
  .option('--force', 'renew even what is not due, and ignore failure backoff')
  .option('--issue', 'order <host> even if it has no certificate yet')
  .action(async (host: string | undefined, flags: ClientFlags & { force?: boolean; issue?: boolean }) => {
    const resp = await adminRequest<{ data: PassSummary }>(resolveAdminTarget(flags), 'PATCH', '/acme?wait=true',
      { host, force: flags.force ?? false, issue: flags.issue ?? false });
    const { data } = expectOk(resp);
    print(flags, data, formatPass(data));
    if (data.failed.length > 0 || (host && data.backed_off.length > 0)) process.exitCode = 1;
  });

clientCommand('revoke', 'revoke the certificate for <host> at the CA and remove it from storage')
  .argument('<host>')
  .option('--reason <code>', 'RFC 5280 reason: 0 unspecified, 1 keyCompromise, 4 superseded, 5 cessationOfOperation', '0')
  .action(async (host: string, flags: ClientFlags & { reason: string }) => {
    const path = `/acme/certificates/${encodeURIComponent(host)}?revoke=true&reason=${encodeURIComponent(flags.reason)}`;
    const body = expectOk(await adminRequest<{ data: { name: string; revoked: boolean } }>(resolveAdminTarget(flags), 'DELETE', path));
    print(flags, body.data, body.message ?? `revoked ${body.data.name}`);
  });

clientCommand('list', 'list certificates with expiry and status, in host order')
  .option('--status <states>', 'only these states, comma-separated: valid, expired, missing, renewing, failed')
  .option('--expiring-within <duration>', 'only certificates that expire within this long: 7d, 12h, 30m (a bare number is days)')
  .action(async (flags: ClientFlags & ListFlags) => {
    await listCertificates(resolveAdminTarget(flags), flags);
  });

clientCommand('show', 'show one certificate')
  .argument('<host>')
  .action(async (host: string, flags: ClientFlags) => {
    const path = `/acme/certificates/${encodeURIComponent(host)}`;
    const { data } = expectOk(await adminRequest<{ data: CertificateStatus }>(resolveAdminTarget(flags), 'GET', path));
    print(flags, data, formatStatus(data));
  });

clientCommand('status', 'the daemon at a glance: version, uptime, CA and store health, certificates by state, next renewal')
  .action(async (flags: ClientFlags) => {
    const { data } = expectOk(await adminRequest<{ data: DaemonSummary }>(resolveAdminTarget(flags), 'GET', '/acme/status'));
    print(flags, data, formatSummary(data));
    if (!data.ca.up || !data.storage.up) process.exitCode = 1;
  });

const account = program.command('account').description('the ACME account: show, rollover, update, deactivate')
  .showHelpAfterError('(see acmed account --help)');

function accountCommand(name: string, description: string): Command {
  return withClientOptions(account.command(name).description(description).showHelpAfterError(`(see acmed account ${name} --help)`))
    .option('--ca <directory-url>', 'the CA whose account is meant, one of api_uri (default: the first)');
}

/** An account call's path, with the CA it is about. */
function accountPath(path: string, flags: { ca?: string }): string {
  return flags.ca ? `${path}?ca=${encodeURIComponent(flags.ca)}` : path;
}

accountCommand('show', 'the account as the CA knows it: URL, status, contact, key type, when it was registered, CA')
  .action(async (flags: ClientFlags & { ca?: string }) => {
    const { data } = expectOk(await adminRequest<{ data: Record<string, unknown> }>(resolveAdminTarget(flags), 'GET', accountPath('/acme/account', flags)));
    print(flags, data, formatFields(data));
  });

accountCommand('rollover', 'replace the account key (RFC 8555 key change); the new key is kept only once the CA has accepted it')
  .action(async (flags: ClientFlags & { ca?: string }) => {
    const body = expectOk(await adminRequest<{ data: Record<string, unknown> }>(resolveAdminTarget(flags), 'POST', accountPath('/acme/account/rollover', flags), {}));
    print(flags, body.data, `${body.message}\n${formatFields(body.data)}`);
  });

accountCommand('update', 'change the account\'s contact address at the CA')
  .requiredOption('--email <address>', 'the new contact address')
  .action(async (flags: ClientFlags & { email: string; ca?: string }) => {
    const body = expectOk(await adminRequest<{ data: Record<string, unknown> }>(resolveAdminTarget(flags), 'PATCH', accountPath('/acme/account', flags), { email: flags.email }));
    print(flags, body.data, `${body.message}\n${formatFields(body.data)}`);
  });

accountCommand('deactivate', 'deactivate the account at the CA for good (needs --confirm)')
  .option('--confirm', 'yes, deactivate it: the CA will refuse this account from now on')
  .action(async (flags: ClientFlags & { confirm?: boolean; ca?: string }) => {
    if (!flags.confirm) throw new CliError('deactivating the ACME account cannot be undone; add --confirm to do it');
    const body = expectOk(await adminRequest<{ data: Record<string, unknown> }>(resolveAdminTarget(flags), 'POST', accountPath('/acme/account/deactivate', flags), { confirm: true }));
    print(flags, body.data, `${body.message}\n${formatFields(body.data)}`);
  });

function print(flags: ClientFlags, data: unknown, human: string): void {
  process.stdout.write(`${flags.json ? JSON.stringify(data, null, 2) : human}\n`);
}

program.parseAsync(process.argv).catch((err: unknown) => {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`acmed: ${message}\n`);
  process.exitCode = err instanceof CliError ? err.exitCode : 1;
});
