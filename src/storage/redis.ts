/**
 * Redis storage (ioredis), on one server, behind Redis Sentinel, or on a
 * Redis Cluster. State lives at <namespace>state/<key> with Redis's own TTLs;
 * each certificate is one hash at <namespace>certs/<name> with the fields
 * fullchain, privkey, cert, chain, not_after, replaced by one script, so a
 * reader (OpenResty: HMGET key fullchain privkey) never sees a new fullchain
 * with an old key. The namespace is prepended as is, as Kong does: write
 * "acmed:" to get "acmed:state/…".
 *
 * Cluster: whatever must change together is one key (a certificate's hash; a
 * lock, whose owner check and change are one script over that one key), so
 * it lives in one hash slot by construction and the key names are the same
 * in every mode. Listing walks every master.
 *
 * Sentinel and Cluster fail over to a replica, and Redis replicates
 * asynchronously: a certificate the master acknowledged but had not passed on
 * would be lost with it. So there, while the master has a replica connected,
 * a certificate counts as stored only once a replica has it too (WAIT);
 * otherwise the write fails and the issuer keeps the certificate in its
 * spool until a later write is confirmed.
 *
 * When Redis is down or stalls, every call fails within the timeout with a
 * StorageError; ioredis keeps reconnecting in the background (asking the
 * sentinels for the current master, or refreshing the cluster's slots), so
 * the backend recovers by itself once Redis is back.
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { Config } from '../config/schema.js';
import { nameSegment, namesOfSegments } from './name-segment.js';
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
// A certificate's hash replaced whole: one key, one step (a script, so a WAIT can follow it on the same node).
const REPLACE_HASH = `redis.call('DEL', KEYS[1]) return redis.call('HSET', KEYS[1], unpack(ARGV))`;
/** How long a certificate write waits for a replica to confirm it (Sentinel, Cluster). */
const REPLICA_WAIT_MAX_MS = 1000;

const SCAN_COUNT = 1000;

export function createRedisStorage(opts: RedisStorageOptions): Storage {
  const timeoutMs = opts.timeout ?? 2000;
  const where = describeTarget(opts);
  const statePrefix = `${opts.namespace}state/`;
  const certPrefix = `${opts.namespace}certs/`;
  const replicated = Boolean(opts.sentinels || opts.cluster_nodes);
  const replicaWaitMs = Math.min(REPLICA_WAIT_MAX_MS, Math.floor(timeoutMs / 2));
  let lastConnectionError: Error | undefined;

  const client: Redis | Cluster = opts.cluster_nodes
    ? new Cluster(opts.cluster_nodes, clusterOptions(opts, timeoutMs))
    : new Redis(clientOptions(opts, timeoutMs));
  // ioredis reports connection trouble as 'error' events; without a listener
  // they would be printed as unhandled. The failing call carries the message.
  const noteError = (err: Error) => {
    lastConnectionError = err;
  };
  client.on('error', noteError);
  client.on('node error', noteError);
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
  const certKey = (name: string) => certPrefix + nameSegment(name);

  /** The servers that hold keys: every master of a cluster, else the one client. */
  const holders = async (): Promise<Redis[]> => {
    if (!(client instanceof Cluster)) return [client];
    // The node list is empty until the client has connected and loaded the slot map; a PING does both.
    if (client.status !== 'ready') await client.ping();
    return client.nodes('master');
  };

  const scan = (pattern: string) =>
    call('scan', async () => {
      const found: string[] = [];
      for (const node of await holders()) {
        let cursor = '0';
        do {
          const [next, batch] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT);
          found.push(...batch);
          cursor = next;
        } while (cursor !== '0');
      }
      return [...new Set(found)]; // SCAN may return a key more than once
    });

  /** Values of keys that may sit in different slots: MGET needs one slot on a cluster. */
  const getMany = (keys: string[]) =>
    client instanceof Cluster ? Promise.all(keys.map((k) => client.get(k))) : client.mget(keys);

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
      const seen = new Set<string>(); // SCAN may return a key more than once
      for (const node of await call('scan', holders)) {
        let cursor = '0';
        do {
          const [next, found] = await call('scan', () => node.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT));
          cursor = next;
          const fresh = found.filter((k) => !seen.has(k));
          fresh.forEach((k) => seen.add(k));
          if (fresh.length === 0) continue;
          const values = await call('mget', () => getMany(fresh));
          const batch: [string, string][] = [];
          fresh.forEach((k, i) => {
            if (values[i] !== null) batch.push([k.slice(statePrefix.length), values[i]!]);
          });
          onBatch(batch);
        } while (cursor !== '0');
      }
    },

    async putCertificate(bundle) {
      const k = certKey(bundle.name);
      const fields = Object.entries(toFields(bundle)).flat();
      // A pipeline goes to one node (the one serving k), so its INFO and WAIT ask the node that took the write.
      const pipeline = client.pipeline().eval(REPLACE_HASH, 1, k, ...fields);
      if (replicated) pipeline.info('replication');
      const results = await call('putCertificate', () => pipeline.exec());
      const failed = results?.find(([err]) => err)?.[0];
      if (!results || failed) throw new StorageError(`${where}: putCertificate failed: ${failed?.message ?? 'pipeline aborted'}`);
      // A master with no replica connected (the last one left after a failover) has nobody to wait
      // for: waiting would fail every write until a replica is back, for no gain.
      if (!replicated || connectedReplicas(results[1][1] as string) === 0) return;
      const acks = await call('putCertificate', async () => {
        const confirmed = await client.pipeline().exists(k).wait(1, replicaWaitMs).exec();
        const waitFailed = confirmed?.find(([err]) => err)?.[0];
        if (!confirmed || waitFailed) throw waitFailed ?? new Error('pipeline aborted');
        return confirmed[1][1] as number;
      });
      if (acks === 0) {
        throw new StorageError(`${where}: putCertificate ${bundle.name}: no replica confirmed the write within ${replicaWaitMs} ms, so a failover could lose it`);
      }
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
      return `${where}${opts.cluster_nodes ? '' : ` db ${opts.database}`}, hash "${certKey(name)}" (fields fullchain, privkey)`;
    },

    async listCertificates() {
      const keys = await scan(`${escapeGlob(certPrefix)}*`);
      return namesOfSegments(keys.map((k) => k.slice(certPrefix.length)));
    },

    async close() {
      if (client.status === 'ready') await call('quit', () => client.quit()).catch(() => {});
      client.disconnect();
    },
  };
}

/** Replicas a master's INFO replication lists as connected. */
function connectedReplicas(info: string): number {
  return Number(/^connected_slaves:(\d+)/m.exec(info)?.[1] ?? 0);
}

/** How errors name the store: the one server, the sentinels' master, or the cluster's seed nodes. */
function describeTarget(opts: RedisStorageOptions): string {
  const list = (nodes: { host: string; port: number }[]) => nodes.map((n) => `${n.host}:${n.port}`).join(',');
  if (opts.sentinels) return `redis sentinel master "${opts.sentinel_master}" via ${list(opts.sentinels)}`;
  if (opts.cluster_nodes) return `redis cluster ${list(opts.cluster_nodes)}`;
  return `redis ${opts.host}:${opts.port}`;
}

function tlsOptions(opts: RedisStorageOptions): RedisOptions['tls'] {
  // Node checks the certificate against servername when it is given, else host.
  return opts.ssl
    ? { rejectUnauthorized: opts.ssl_verify, servername: opts.ssl_server_name ?? undefined, ...(opts.ca ? { ca: opts.ca } : {}) }
    : undefined;
}

/** Per connection, in every mode. */
function connectionOptions(opts: RedisStorageOptions, timeoutMs: number) {
  return {
    password: opts.auth ?? undefined,
    tls: tlsOptions(opts),
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    // Fail a call after one failed reconnect instead of queueing it for long;
    // reconnecting itself never stops, so the backend heals when Redis returns.
    maxRetriesPerRequest: 1,
  };
}

function clientOptions(opts: RedisStorageOptions, timeoutMs: number): RedisOptions {
  const retryStrategy = (times: number) => Math.min(times * 100, 2000);
  return {
    ...connectionOptions(opts, timeoutMs),
    db: opts.database,
    lazyConnect: true, // creating the backend does no I/O; the first call connects
    retryStrategy,
    ...(opts.sentinels
      ? {
          sentinels: opts.sentinels,
          name: opts.sentinel_master ?? undefined,
          sentinelPassword: opts.sentinel_password ?? undefined,
          role: 'master' as const,
          // Hear of a failover from the sentinels at once, instead of when the old master's socket dies.
          failoverDetector: true,
          sentinelRetryStrategy: retryStrategy,
          enableTLSForSentinelMode: opts.ssl,
          sentinelTLS: tlsOptions(opts),
        }
      : { host: opts.host, port: opts.port }),
  };
}

function clusterOptions(opts: RedisStorageOptions, timeoutMs: number): ClusterOptions {
  return {
    redisOptions: connectionOptions(opts, timeoutMs),
    lazyConnect: true,
    scaleReads: 'master', // a replica may lag: a lock must be read where it was written
    clusterRetryStrategy: (times) => Math.min(times * 100, 2000),
    // While a master is failing over, its slots answer CLUSTERDOWN or move: retry soon, within the call's timeout.
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    retryDelayOnTryAgain: 100,
    slotsRefreshTimeout: timeoutMs,
  };
}

/** Redis SCAN MATCH treats these as glob syntax; a namespace may contain them. */
function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}
