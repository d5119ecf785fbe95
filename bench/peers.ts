// Runs certbot and lego (Debian packages) as peers for comparison: each
// certificate is one fresh process, timed from spawn to exit, with the ACME
// requests it made read from a counting proxy before and after.
//
// Assumption: Pebble's httpPort equals the peer's http-01 port. The simplest
// arrangement is one Pebble (and one counting proxy) per peer, started with
// httpPort = that peer's port.

import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

export interface PeerOptions {
  /** ACME directory URL, normally the counting proxy's /dir. */
  directoryUrl: string;
  /** PEM bundle trusted for the directory's TLS cert. */
  caBundlePath: string;
  /** One single-name certificate per entry. */
  names: string[];
  /** Port the peer's standalone http-01 server binds on 127.0.0.1. */
  httpPort: number;
  /** Request counter, read before and after each certificate. */
  counts: () => { total: number };
  /** Keep state and certificates here; default is a temp dir removed afterwards. */
  workDir?: string;
}

export interface PeerResult {
  secondsPerCert: number[];
  requestsPerCert: number[];
  /** Where each certificate chain was written (only useful with workDir). */
  certPaths: string[];
}

const EMAIL = 'x@example.com';

function runProcess(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.setEncoding('utf8').on('data', (s: string) => { out += s; });
    child.stderr.setEncoding('utf8').on('data', (s: string) => { out += s; });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${cmd} ${args.join(' ')} failed (${code ?? signal}):\n${out}`));
    });
  });
}

// Loopback must never go through an ambient HTTP proxy.
function peerEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  return { ...process.env, NO_PROXY: '127.0.0.1,localhost', no_proxy: '127.0.0.1,localhost', ...extra };
}

async function measure(
  opts: PeerOptions,
  issue: (name: string) => Promise<string>,
): Promise<PeerResult> {
  const result: PeerResult = { secondsPerCert: [], requestsPerCert: [], certPaths: [] };
  for (const name of opts.names) {
    const before = opts.counts().total;
    const t0 = performance.now();
    result.certPaths.push(await issue(name));
    result.secondsPerCert.push((performance.now() - t0) / 1000);
    result.requestsPerCert.push(opts.counts().total - before);
  }
  return result;
}

async function withWorkDir<T>(workDir: string | undefined, prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = workDir ?? await mkdtemp(join(tmpdir(), prefix));
  await mkdir(dir, { recursive: true });
  try {
    return await fn(dir);
  } finally {
    if (workDir === undefined) await rm(dir, { recursive: true, force: true });
  }
}

/** certbot standalone; the account is registered first (`certbot register`), not counted. */
export function runCertbot(opts: PeerOptions): Promise<PeerResult> {
  return withWorkDir(opts.workDir, 'acmed-certbot-', async (dir) => {
    const env = peerEnv({ REQUESTS_CA_BUNDLE: opts.caBundlePath });
    const common = [
      '--non-interactive', '--agree-tos', '-m', EMAIL, '--no-eff-email',
      '--server', opts.directoryUrl,
      '--config-dir', join(dir, 'config'), '--work-dir', join(dir, 'work'), '--logs-dir', join(dir, 'logs'),
    ];
    await runProcess('certbot', ['register', ...common], env);
    return measure(opts, async (name) => {
      await runProcess('certbot', [
        'certonly', ...common,
        '--standalone', '--http-01-port', String(opts.httpPort), '--http-01-address', '127.0.0.1',
        '--key-type', 'ecdsa', '-d', name,
      ], env);
      return join(dir, 'config', 'live', name, 'fullchain.pem');
    });
  });
}

/**
 * lego with its built-in http-01 server. lego has no register-only command,
 * so a warm-up certificate for `warmup.<first name>` creates the account; it is
 * not counted.
 */
export function runLego(opts: PeerOptions): Promise<PeerResult> {
  return withWorkDir(opts.workDir, 'acmed-lego-', async (dir) => {
    const env = peerEnv({ LEGO_CA_CERTIFICATES: opts.caBundlePath });
    const issue = async (name: string): Promise<string> => {
      await runProcess('lego', [
        '--server', opts.directoryUrl, '--email', EMAIL, '--accept-tos', '--path', dir,
        '--http', '--http.port', `127.0.0.1:${opts.httpPort}`,
        '--domains', name, '--key-type', 'ec256', 'run',
      ], env);
      return join(dir, 'certificates', `${name}.crt`);
    };
    await issue(`warmup.${opts.names[0] ?? 'lego.example.com'}`);
    return measure(opts, issue);
  });
}
