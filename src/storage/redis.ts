/**
 * Redis storage (ioredis). State lives at <namespace>state/<key> with Redis's
 * own TTLs; each certificate is one hash at <namespace>certs/<name> with the
 * fields fullchain, privkey, cert, chain, not_after, replaced in one MULTI, so
 * a reader (OpenResty: HMGET key fullchain privkey) never sees a new
 * fullchain with an old key. The namespace is prepended as is, as Kong does:
 * write "acmed:" to get "acmed:state/…".
 *
 * When Redis is down or stalls, every call fails within the timeout with a
 * StorageError; ioredis keeps reconnecting in the background, so the backend
 * recovers by itself once Redis is back.
 */
import { Redis, type RedisOptions } from 'ioredis';
import type { Config } from '../config/schema.js';
import { normalizeHostname } from '../hostname.js';
import { fromFields, toFields } from './certificate-fields.js';
import { StorageError, StorageTimeoutError } from './errors.js';
import { assertValidKey } from './keys.js';
import { assertValidPrefix } from './list-prefix.js';
import { remoteCall } from './remote-call.js';
import type { Storage } from './storage.js';

type TopologyKeys = 'sentinels' | 'sentinel_master' | 'sentinel_password' | 'cluster_nodes';

export type RedisStorageOptions = Omit<Config['storage_config']['redis'], TopologyKeys> & Partial<Pick<Config['storage_config']['redis'], TopologyKeys>> & {
  /** Per-call deadline in ms; the config has no key for it yet. Default 2000. */
  timeout?: number;
  /** Roots (PEM) trusted instead of Node's defaults when ssl_verify is on; the config has no key for it yet. */
  ca?: string;
};

// Owner-checked lock release and heartbeat: the check and the write must be
// one step, or a holder whose lock just expired could remove its successor's.
const COMPARE_AND_DELETE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;
const COMPARE_AND_EXTEND = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;

const SCAN_COUNT = 1000;

export function createRedisStorage(opts: RedisStorageOptions): Storage {
  const timeoutMs = opts.timeout ?? 2000;
  const where = `redis ${opts.host}:${opts.port}`;
  const statePrefix = `${opts.namespace}state/`;
  const certPrefix = `${opts.namespace}certs/`;
  let lastConnectionError: Error | undefined;

  const client = new Redis(clientOptions(opts, timeoutMs));
  // ioredis reports connection trouble as 'error' events; without a listener
  // they would be printed as unhandled. The failing call carries the message.
  client.on('error', (err: Error) => {
    lastConnectionError = err;
  });
  client.on('ready', () => {
    lastConnectionError = undefined;
  });

  const call = <T>(op: string, work: () => Promise<T>) =>
    remoteCall(where, op, timeoutMs, () =>
      work().catch((err: Error) => {
        if (err.message === 'Command timed out') throw new StorageTimeoutError(`${where}: ${op} timed out after ${timeoutMs} ms`);
        // "max retries per request" or "connection is closed" say nothing useful; the socket error does.
        const generic = err.name === 'MaxRetriesPerRequestError' || /Connection is closed|Stream isn't writeable/.test(err.message);
        if (generic && lastConnectionError) {
          throw new Error(`not connected (${lastConnectionError.message})`, { cause: err });
        }
        throw err;
      }),
    );

  const stateKey = (key: string) => {
    assertValidKey(key);
    return statePrefix + key;
  };
  const certKey = (name: string) => certPrefix + normalizeHostname(name);

  const scan = (pattern: string) =>
    call('scan', async () => {
      const found: string[] = [];
      let cursor = '0';
      do {
        const [next, batch] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT);
        found.push(...batch);
        cursor = next;
      } while (cursor !== '0');
      return [...new Set(found)]; // SCAN may return a key more than once
    });

  return {
    kind: 'redis',
    shared: true,

    async get(key) {
      const k = stateKey(key);
      return call('get', () => client.get(k));
    },

    async set(key, value, setOpts) {
      const k = stateKey(key);
      const ttlMs = setOpts?.ttlMs;
      await call('set', () => (ttlMs ? client.set(k, value, 'PX', ttlMs) : client.set(k, value)));
    },

    async add(key, value, ttlMs) {
      const k = stateKey(key);
      return (await call('add', () => client.set(k, value, 'PX', ttlMs, 'NX'))) === 'OK';
    },

    async delete(key) {
      const k = stateKey(key);
      await call('delete', () => client.del(k));
    },

    async compareAndDelete(key, value) {
      const k = stateKey(key);
      return (await call('compareAndDelete', () => client.eval(COMPARE_AND_DELETE, 1, k, value))) === 1;
    },

    async compareAndExtend(key, value, ttlMs) {
      const k = stateKey(key);
      return (await call('compareAndExtend', () => client.eval(COMPARE_AND_EXTEND, 1, k, value, ttlMs))) === 1;
    },

    async list(prefix) {
      assertValidPrefix(prefix);
      const keys = await scan(`${escapeGlob(statePrefix + prefix)}*`);
      return keys.map((k) => k.slice(statePrefix.length));
    },

    async scan(prefix, onBatch) {
      assertValidPrefix(prefix);
      const pattern = `${escapeGlob(statePrefix + prefix)}*`;
      let cursor = '0';
      const seen = new Set<string>(); // SCAN may return a key more than once
      do {
        const [next, found] = await call('scan', () => client.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT));
        cursor = next;
        const fresh = found.filter((k) => !seen.has(k));
        fresh.forEach((k) => seen.add(k));
        if (fresh.length === 0) continue;
        const values = await call('mget', () => client.mget(fresh));
        const batch: [string, string][] = [];
        fresh.forEach((k, i) => {
          if (values[i] !== null) batch.push([k.slice(statePrefix.length), values[i]!]);
        });
        onBatch(batch);
      } while (cursor !== '0');
    },

    async putCertificate(bundle) {
      const k = certKey(bundle.name);
      const fields = toFields(bundle);
      const results = await call('putCertificate', () => client.multi().del(k).hset(k, fields).exec());
      const failed = results?.find(([err]) => err)?.[0];
      if (!results || failed) throw new StorageError(`${where}: putCertificate failed: ${failed?.message ?? 'transaction aborted'}`);
    },

    async deleteCertificate(name) {
      const k = certKey(name);
      await call('deleteCertificate', () => client.del(k));
    },

    async getCertificate(name) {
      const k = certKey(name);
      const fields = await call('getCertificate', () => client.hgetall(k));
      return fromFields(name, fields);
    },

    async getCertificatePem(name) {
      const k = certKey(name);
      return call('getCertificatePem', () => client.hget(k, 'cert'));
    },

    location(name) {
      return `redis ${opts.host}:${opts.port} db ${opts.database}, hash "${certKey(name)}" (fields fullchain, privkey)`;
    },

    async listCertificates() {
      const keys = await scan(`${escapeGlob(certPrefix)}*`);
      return keys.map((k) => k.slice(certPrefix.length));
    },

    async close() {
      if (client.status === 'ready') await call('quit', () => client.quit()).catch(() => {});
      client.disconnect();
    },
  };
}

function clientOptions(opts: RedisStorageOptions, timeoutMs: number): RedisOptions {
  return {
    host: opts.host,
    port: opts.port,
    password: opts.auth ?? undefined,
    db: opts.database,
    // Node checks the certificate against servername when it is given, else host.
    tls: opts.ssl
      ? { rejectUnauthorized: opts.ssl_verify, servername: opts.ssl_server_name ?? undefined, ...(opts.ca ? { ca: opts.ca } : {}) }
      : undefined,
    lazyConnect: true, // creating the backend does no I/O; the first call connects
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    // Fail a call after one failed reconnect instead of queueing it for long;
    // reconnecting itself never stops, so the backend heals when Redis returns.
    maxRetriesPerRequest: 1,
    retryStrategy: (times) => Math.min(times * 100, 2000),
  };
}

/** Redis SCAN MATCH treats these as glob syntax; a namespace may contain them. */
function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}
