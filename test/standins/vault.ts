// A Vault stand-in for the storage tests (no Vault server can be installed
// here). It implements exactly the HTTP API the vault backend uses, as Vault's
// API docs describe it:
//   POST /v1/auth/<path>/login                 kubernetes auth: {role, jwt} → auth.client_token
//   GET  /v1/<mount>/data/<path>               latest version, 404 when absent
//   POST /v1/<mount>/data/<path>               {data, options: {cas}}; 400 on a cas mismatch
//   GET  /v1/<mount>/metadata/<folder>?list=true   keys, folders with "/"; 404 when empty
//   DELETE /v1/<mount>/metadata/<path>         all versions and metadata
// Every request but login needs X-Vault-Token (a root token, or one a login
// issued); anything else gets 403 {"errors":["permission denied"]}.
// The LIST verb is not served: Node's HTTP parser does not know it, and the
// backend uses the documented GET ?list=true form.

import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { parseBool, type Request, sendEmpty, sendJson, startHttpStandin, type StandinServer } from './http-server.js';
import { KvV2Mount } from './vault-kv.js';

export interface KubernetesRole {
  /** Auth mount path, e.g. "kubernetes" or "k8s-prod". */
  path: string;
  role: string;
  /** The service-account JWT this role accepts. */
  jwt: string;
}

export interface VaultStandinOptions {
  rootToken?: string;
  /** KV v2 mounts. Default: secret, acme. */
  mounts?: string[];
  kubernetes?: KubernetesRole[];
}

export interface VaultStandin extends StandinServer {
  rootToken: string;
  /** Every kubernetes login attempt, in order. */
  logins: { path: string; role: string; jwt: string }[];
  /** Tokens issued by logins stop working, as when they expire. */
  revokeIssuedTokens(): void;
  mount(name: string): KvV2Mount;
}

const errors = (res: ServerResponse, status: number, ...messages: string[]) => sendJson(res, status, { errors: messages });

export async function startVaultStandin(opts: VaultStandinOptions = {}): Promise<VaultStandin> {
  const rootToken = opts.rootToken ?? `hvs.${randomBytes(12).toString('hex')}`;
  const mounts = new Map((opts.mounts ?? ['secret', 'acme']).map((name) => [name, new KvV2Mount()]));
  const issued = new Set<string>();
  const logins: VaultStandin['logins'] = [];

  const login = (req: Request, res: ServerResponse, path: string) => {
    const roles = (opts.kubernetes ?? []).filter((r) => r.path === path);
    if (roles.length === 0) return errors(res, 404, `no handler for route "auth/${path}/login". route entry not found.`);
    const body = JSON.parse(req.body.toString() || '{}');
    logins.push({ path, role: body.role, jwt: body.jwt });
    if (!body.role) return errors(res, 400, 'missing role');
    if (!body.jwt) return errors(res, 400, 'missing jwt');
    const role = roles.find((r) => r.role === body.role);
    if (!role) return errors(res, 400, `invalid role name "${body.role}"`);
    if (role.jwt !== body.jwt) return errors(res, 403, 'permission denied');
    const token = `hvs.${randomBytes(12).toString('hex')}`;
    issued.add(token);
    return sendJson(res, 200, {
      request_id: randomBytes(8).toString('hex'), lease_id: '', renewable: false, lease_duration: 0, data: null, wrap_info: null, warnings: null,
      auth: {
        client_token: token, accessor: randomBytes(8).toString('hex'), policies: ['default', 'acmed'], token_policies: ['default', 'acmed'],
        metadata: { role: role.role, service_account_name: 'acmed', service_account_namespace: 'default' },
        lease_duration: 3600, renewable: true, entity_id: '', token_type: 'service', orphan: true,
      },
    });
  };

  const kv = (req: Request, res: ServerResponse, mount: KvV2Mount, kind: string, path: string) => {
    if (kind === 'data' && req.method === 'GET') {
      const found = mount.read(path);
      return found ? sendJson(res, 200, { data: found }) : errors(res, 404);
    }
    if (kind === 'data' && (req.method === 'POST' || req.method === 'PUT')) {
      const body = JSON.parse(req.body.toString() || '{}');
      if (!body.data || typeof body.data !== 'object') return errors(res, 400, 'no data provided');
      const cas = body.options?.cas;
      const outcome = mount.write(path, body.data, cas === undefined ? undefined : Number(cas));
      return outcome.ok ? sendJson(res, 200, { data: outcome.meta }) : errors(res, 400, outcome.error);
    }
    if (kind === 'metadata' && req.method === 'GET' && parseBool(req.url.searchParams.get('list'))) {
      const keys = mount.list(path);
      return keys.length ? sendJson(res, 200, { data: { keys } }) : errors(res, 404);
    }
    if (kind === 'metadata' && req.method === 'DELETE') {
      mount.deleteMetadata(path);
      return sendEmpty(res, 204);
    }
    return errors(res, 405, 'unsupported operation');
  };

  const server = await startHttpStandin((req, res) => {
    const path = decodeURIComponent(req.url.pathname);
    const auth = /^\/v1\/auth\/(.+)\/login$/.exec(path);
    if (auth && (req.method === 'POST' || req.method === 'PUT')) return login(req, res, auth[1]);
    const token = (req.headers['x-vault-token'] as string | undefined) ?? /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (!token || (token !== rootToken && !issued.has(token))) return errors(res, 403, 'permission denied');
    const route = /^\/v1\/([^/]+)\/(data|metadata)\/(.*)$/.exec(path);
    const mount = route && mounts.get(route[1]);
    if (!route || !mount) return errors(res, 404, `no handler for route "${path.slice(4)}". route entry not found.`);
    return kv(req, res, mount, route[2], route[3]);
  });

  return Object.assign(server, {
    rootToken,
    logins,
    revokeIssuedTokens: () => issued.clear(),
    mount: (name: string) => {
      const mount = mounts.get(name);
      if (!mount) throw new Error(`stand-in has no mount ${name}`);
      return mount;
    },
  });
}
