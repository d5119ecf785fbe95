/**
 * The admin API on TCP (`admin.listen`), for operating acmed from another
 * machine. The config refuses a listener without a credential; this file
 * turns the credential into a CallerPolicy: a bearer token from
 * `admin.token_file` and/or client certificates from `admin.tls.client_ca`
 * whose identity is in `allowed_subjects`. With `admin.tls.cert` the
 * listener speaks HTTPS; a client certificate from another CA, or none, is
 * refused in the handshake.
 */
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { Logger } from '../log.js';
import type { Config } from '../config/schema.js';
import { checkCaller, tokenDigest, type CallerPolicy } from './caller.js';
import { sendJson } from './http-util.js';
import { SERVER_LIMITS, type AdminHandler } from './server.js';

export class AdminCredentialError extends Error {
  readonly code = 'ADMIN_CREDENTIAL_INVALID';
}

export class AdminTcpListener {
  private policy: CallerPolicy = {};

  private constructor(private readonly server: http.Server, private listen: string, private readonly mode: ListenerMode) {}

  static async open(admin: Config['admin'], handler: AdminHandler, log: Logger): Promise<AdminTcpListener> {
    const credentials = await readCredentials(admin);
    const guarded: http.RequestListener = (req, res) => {
      const check = checkCaller(req, listener.policy);
      if (check.ok) {
        handler(req, res, check.caller);
        return;
      }
      log.warn({ caller: check.caller, method: req.method, path: req.url?.split('?')[0], status: check.status, remote: req.socket.remoteAddress }, 'admin request refused');
      sendJson(res, check.status, { message: check.message }, check.status === 401 ? { 'www-authenticate': 'Bearer' } : {});
    };
    const server = credentials.tls
      ? https.createServer({ ...SERVER_LIMITS, ...credentials.tls }, guarded)
      : http.createServer(SERVER_LIMITS, guarded);
    server.on('tlsClientError', (err: Error, socket) => {
      log.warn({ err: err.message, remote: socket.remoteAddress }, 'admin TLS handshake refused');
    });
    const listener = new AdminTcpListener(server, admin.listen!, modeOf(admin));
    listener.policy = credentials.policy;
    const [host, port] = splitListen(admin.listen!);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    if (!credentials.tls) log.warn({ listen: admin.listen }, 'admin API on plain HTTP: the bearer token crosses the network in clear; set admin.tls.cert and key');
    return listener;
  }

  /**
   * SIGHUP: the same address keeps its socket and takes the credentials read
   * again (a rotated token or certificate); another address, or a switch
   * between HTTP, HTTPS and mutual TLS (whether the handshake asks for a
   * client certificate is fixed when the server is made), needs a new
   * listener (null: reopen).
   */
  async reload(admin: Config['admin']): Promise<AdminTcpListener | null> {
    const credentials = await readCredentials(admin);
    if (admin.listen !== this.listen || modeOf(admin) !== this.mode) return null;
    if (credentials.tls) (this.server as https.Server).setSecureContext(credentials.tls);
    this.policy = credentials.policy;
    return this;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
    });
  }

  address(): string {
    const addr = this.server.address();
    return typeof addr === 'object' && addr ? `${addr.address}:${addr.port}` : this.listen;
  }
}

type ListenerMode = 'http' | 'https' | 'mutual-tls';

function modeOf(admin: Config['admin']): ListenerMode {
  if (!admin.tls.cert) return 'http';
  return admin.tls.client_ca ? 'mutual-tls' : 'https';
}

async function readCredentials(admin: Config['admin']): Promise<{ policy: CallerPolicy; tls?: https.ServerOptions }> {
  const policy: CallerPolicy = {};
  if (admin.token_file) policy.tokenDigest = tokenDigest(await readToken(admin.token_file));
  if (admin.tls.client_ca) policy.allowedSubjects = new Set(admin.tls.allowed_subjects);
  if (!admin.tls.cert || !admin.tls.key) return { policy };
  const tls: https.ServerOptions = {
    cert: await readCredential(admin.tls.cert, 'admin.tls.cert'),
    key: await readCredential(admin.tls.key, 'admin.tls.key'),
  };
  if (admin.tls.client_ca) Object.assign(tls, { ca: await readCredential(admin.tls.client_ca, 'admin.tls.client_ca'), requestCert: true, rejectUnauthorized: true });
  return { policy, tls };
}

/** The token file holds one line; its trailing newline is not part of the token. */
async function readToken(file: string): Promise<string> {
  const token = (await readCredential(file, 'admin.token_file')).toString('utf8').trim();
  if (token.length < 16) throw new AdminCredentialError(`admin.token_file ${file} holds a token of ${token.length} characters; use at least 16 (e.g. openssl rand -hex 32)`);
  return token;
}

async function readCredential(file: string, key: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new AdminCredentialError(`cannot read ${key} ${file}: ${(err as Error).message}`);
  }
}

function splitListen(listen: string): [string, number] {
  const i = listen.lastIndexOf(':');
  return [listen.slice(0, i).replace(/^\[|\]$/g, ''), Number(listen.slice(i + 1))];
}
