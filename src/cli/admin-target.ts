/**
 * Which daemon a client command talks to, and how:
 * - `--admin-url https://host:port` (or $ACMED_ADMIN_URL): a daemon's TCP
 *   listener, with `--token-file` ($ACMED_TOKEN_FILE) and/or a client
 *   certificate `--cert/--key` ($ACMED_CLIENT_CERT/$ACMED_CLIENT_KEY), and
 *   `--cacert` ($ACMED_CACERT) to trust its certificate;
 * - else `--socket PATH`;
 * - else `admin.socket` of the config file (`--config`, $ACMED_CONFIG, or
 *   /etc/acmed/acmed.yaml). A config named by flag or variable must be
 *   readable and valid YAML: a typo in a path must never reach another
 *   daemon through the default socket. Only the default file may be absent.
 */
import { existsSync, readFileSync } from 'node:fs';
import { DEFAULT_CONFIG_PATH, resolveConfigPath } from '../config/path.js';
import { ConfigError, parseYaml, readConfigTextSync } from '../config/yaml-source.js';
import { CliError } from './errors.js';

const DEFAULT_SOCKET = '/run/acmed/admin.sock';

export interface TargetFlags {
  socket?: string;
  config?: string;
  adminUrl?: string;
  tokenFile?: string;
  cert?: string;
  key?: string;
  cacert?: string;
}

export type AdminTarget =
  | { kind: 'socket'; path: string }
  | { kind: 'url'; url: URL; token?: string; cert?: Buffer; key?: Buffer; ca?: Buffer };

export function describeTarget(target: AdminTarget): string {
  return target.kind === 'socket' ? target.path : target.url.origin;
}

export function resolveAdminTarget(flags: TargetFlags, env: NodeJS.ProcessEnv = process.env): AdminTarget {
  const adminUrl = flags.adminUrl ?? env.ACMED_ADMIN_URL;
  if (adminUrl) return urlTarget(adminUrl, flags, env);
  if (flags.socket) return { kind: 'socket', path: flags.socket };
  return { kind: 'socket', path: socketFromConfig(flags.config, env) };
}

function urlTarget(adminUrl: string, flags: TargetFlags, env: NodeJS.ProcessEnv): AdminTarget {
  let url: URL;
  try {
    url = new URL(adminUrl);
  } catch {
    throw new CliError(`--admin-url ${JSON.stringify(adminUrl)} is not a URL (expected https://host:port)`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new CliError(`--admin-url must be https:// (or http:// on a trusted network), not ${url.protocol}`);
  const tokenFile = flags.tokenFile ?? env.ACMED_TOKEN_FILE;
  const certFile = flags.cert ?? env.ACMED_CLIENT_CERT;
  const keyFile = flags.key ?? env.ACMED_CLIENT_KEY;
  const caFile = flags.cacert ?? env.ACMED_CACERT;
  if (Boolean(certFile) !== Boolean(keyFile)) throw new CliError('--cert and --key go together');
  if (!tokenFile && !certFile) throw new CliError('--admin-url needs a credential: --token-file, or --cert and --key');
  return {
    kind: 'url',
    url,
    token: tokenFile ? readLocal(tokenFile, '--token-file').toString('utf8').trim() : undefined,
    cert: certFile ? readLocal(certFile, '--cert') : undefined,
    key: keyFile ? readLocal(keyFile, '--key') : undefined,
    ca: caFile ? readLocal(caFile, '--cacert') : undefined,
  };
}

function readLocal(file: string, flag: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new CliError(`cannot read ${flag} ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (err as Error).message}`);
  }
}

function socketFromConfig(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  const file = resolveConfigPath(flag, env);
  if (file === DEFAULT_CONFIG_PATH && !existsSync(file)) return DEFAULT_SOCKET;
  try {
    const socket = (parseYaml(readConfigTextSync(file), file).doc.toJS() as { admin?: { socket?: unknown } } | null)?.admin?.socket;
    return typeof socket === 'string' && socket !== '' ? socket : DEFAULT_SOCKET;
  } catch (err) {
    throw configProblem(err);
  }
}

function configProblem(err: unknown): unknown {
  return err instanceof ConfigError ? new CliError(err.lines().join('\n')) : err;
}
