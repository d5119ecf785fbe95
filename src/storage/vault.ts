/**
 * Vault KV v2 storage (node-vault). kv_path's first segment is the KV v2
 * mount and the rest a folder inside it, as Kong reads it: "acme" is mount
 * acme; "secret/acme" is mount secret, folder acme.
 *
 * State: one secret per key at <folder>/state/<key>, fields value and
 * expires_at (ms since the epoch; KV v2 has no per-secret TTL, so an expired
 * secret reads as absent). add() writes with check-and-set (options.cas: 0,
 * or the version of the expired secret it replaces), so one caller wins.
 * list() does not read values, so it may name keys whose TTL has passed.
 *
 * Certificates: one secret <folder>/certs/<name> with fields fullchain,
 * privkey, cert, chain, not_after, written in one request, so Vault Agent
 * never renders a new fullchain with an old key.
 *
 * Lists use GET ?list=true rather than the LIST verb, which proxies and
 * Node's own HTTP parser refuse; Vault documents both.
 */
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import NodeVault from 'node-vault';
import type { Config } from '../config/schema.js';
import { nameSegment, namesOfSegments } from './name-segment.js';
import { fromFields, toFields } from './certificate-fields.js';
import { StorageError } from './errors.js';
import { assertValidKey } from './keys.js';
import { assertValidPrefix } from './list-prefix.js';
import { remoteCall } from './remote-call.js';
import type { Storage } from './storage.js';
import { createVaultAuth } from './vault-auth.js';

export type VaultStorageOptions = Config['storage_config']['vault'];

interface Secret {
  /** Null when the latest version was deleted but the key's metadata remains. */
  data: Record<string, unknown> | null;
  version: number;
}

interface VaultFailure {
  message?: string;
  response?: { statusCode?: number; body?: { data?: { metadata?: { version?: number } } } };
}

const statusOf = (err: unknown) => (err as VaultFailure).response?.statusCode;

export function createVaultStorage(opts: VaultStorageOptions): Storage {
  const endpoint = `${opts.https ? 'https' : 'http'}://${opts.host}:${opts.port}`;
  const where = `vault ${endpoint}`;
  const [mount = '', ...folderParts] = opts.kv_path.split('/').filter(Boolean);
  if (!mount) throw new StorageError('vault: storage_config.vault.kv_path must name the KV v2 mount, e.g. "secret/acme"');
  const under = (path: string) => [...folderParts, path].join('/');
  const dataPath = (path: string) => `${mount}/data/${under(path)}`;
  const metadataPath = (path: string) => `${mount}/metadata/${under(path)}`;

  // Own agents: tls_verify and tls_server_name apply, and close() can end the sockets.
  const httpAgent = new HttpAgent({ keepAlive: true });
  const httpsAgent = new HttpsAgent({
    keepAlive: true, rejectUnauthorized: opts.tls_verify, servername: opts.tls_server_name ?? undefined,
  });
  const client = NodeVault({
    endpoint, apiVersion: 'v1', noCustomHTTPVerbs: true,
    requestOptions: { timeout: opts.timeout, httpAgent, httpsAgent },
  });
  const auth = createVaultAuth(client, opts, where);

  /** One bounded call; a refused token from a login is replaced once. */
  const call = <T>(op: string, work: () => Promise<T>) =>
    remoteCall(where, op, opts.timeout, async () => {
      await auth.ready();
      const token = client.token;
      try {
        return await work();
      } catch (err) {
        if (statusOf(err) !== 403 || !auth.canLogInAgain) throw err;
        auth.drop(token);
        await auth.ready();
        return work();
      }
    });

  const readSecret = async (path: string): Promise<Secret | null> => {
    try {
      const body = await client.read(dataPath(path));
      return { data: body.data.data ?? null, version: body.data.metadata.version };
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
      const version = (err as VaultFailure).response?.body?.data?.metadata?.version;
      return version ? { data: null, version } : null;
    }
  };

  /** False when check-and-set refused the write (someone else wrote first). */
  const writeSecret = async (path: string, data: Record<string, unknown>, cas?: number): Promise<boolean> => {
    try {
      await client.write(dataPath(path), cas === undefined ? { data } : { options: { cas }, data });
      return true;
    } catch (err) {
      if (statusOf(err) === 400 && /check-and-set/.test((err as Error).message)) return false;
      throw err;
    }
  };

  const listFolder = async (path: string): Promise<string[]> => {
    try {
      return (await client.list(metadataPath(path))).data.keys ?? [];
    } catch (err) {
      if (statusOf(err) === 404) return [];
      throw err;
    }
  };

  const statePath = (key: string) => {
    assertValidKey(key);
    return `state/${key}`;
  };
  const certPath = (name: string) => `certs/${nameSegment(name)}`;
  const live = (secret: Secret | null): secret is Secret & { data: Record<string, unknown> } =>
    !!secret?.data && (typeof secret.data.expires_at !== 'number' || secret.data.expires_at > Date.now());
  const stateFields = (value: string, ttlMs?: number) => (ttlMs ? { value, expires_at: Date.now() + ttlMs } : { value });

  return {
    kind: 'vault',
    shared: true,

    async get(key) {
      const path = statePath(key);
      const secret = await call('get', () => readSecret(path));
      return live(secret) ? String(secret.data.value ?? '') : null;
    },

    async set(key, value, setOpts) {
      const path = statePath(key);
      await call('set', () => writeSecret(path, stateFields(value, setOpts?.ttlMs)));
    },

    async add(key, value, ttlMs) {
      const path = statePath(key);
      return call('add', async () => {
        const current = await readSecret(path);
        if (live(current)) return false;
        return writeSecret(path, stateFields(value, ttlMs), current?.version ?? 0);
      });
    },

    async delete(key) {
      const path = statePath(key);
      await call('delete', async () => {
        try {
          await client.delete(metadataPath(path)); // all versions and metadata, so cas 0 works again
        } catch (err) {
          if (statusOf(err) !== 404) throw err;
        }
      });
    },

    async compareAndDelete(key, value) {
      const path = statePath(key);
      // KV v2 has no conditional delete: replace the value, by check-and-set,
      // with one that has already expired, which reads as absent.
      return call('compareAndDelete', async () => {
        const current = await readSecret(path);
        if (!live(current) || current.data.value !== value) return false;
        return writeSecret(path, { value: '', expires_at: 1 }, current.version);
      });
    },

    async compareAndExtend(key, value, ttlMs) {
      const path = statePath(key);
      return call('compareAndExtend', async () => {
        const current = await readSecret(path);
        if (!live(current) || current.data.value !== value) return false;
        return writeSecret(path, stateFields(value, ttlMs), current.version);
      });
    },

    async list(prefix) {
      assertValidPrefix(prefix);
      // LIST shows one folder level ("a", "sub/"); walk down the folders the prefix can reach.
      const walk = async (folder: string): Promise<string[]> => {
        const found: string[] = [];
        for (const entry of await listFolder(`state/${folder}`)) {
          const key = folder + entry;
          if (!key.endsWith('/')) {
            if (key.startsWith(prefix)) found.push(key);
          } else if (key.startsWith(prefix) || prefix.startsWith(key)) {
            found.push(...(await walk(key)));
          }
        }
        return found;
      };
      return call('list', () => walk(prefix.slice(0, prefix.lastIndexOf('/') + 1)));
    },

    async putCertificate(bundle) {
      const path = certPath(bundle.name);
      await call('putCertificate', () => writeSecret(path, { ...toFields(bundle) }));
    },

    async deleteCertificate(name) {
      const path = certPath(name);
      await call('deleteCertificate', async () => {
        try {
          await client.delete(metadataPath(path));
        } catch (err) {
          if (statusOf(err) !== 404) throw err;
        }
      });
    },

    async getCertificate(name) {
      const path = certPath(name);
      const secret = await call('getCertificate', () => readSecret(path));
      return secret?.data ? fromFields(name, secret.data) : null;
    },

    location(name) {
      return `vault ${opts.host}:${opts.port} KV v2 secret ${mount}/data/${under(certPath(name))} (fields fullchain, privkey)`;
    },

    async listCertificates() {
      const entries = await call('listCertificates', () => listFolder('certs/'));
      return namesOfSegments(entries.filter((entry) => !entry.endsWith('/')));
    },

    async close() {
      httpAgent.destroy();
      httpsAgent.destroy();
    },
  };
}
