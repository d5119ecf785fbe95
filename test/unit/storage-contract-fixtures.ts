// One fixture per backend for the storage contract suite. A fixture starts
// what its backend talks to and hands out empty "spaces" (a directory, a
// Redis namespace, a Consul or Vault kv_path), in which open() makes as many
// backend instances on the same store as a test needs.
//
// Which server each backend talks to:
//   memory, file  in process / a temp directory
//   redis         a real redis-server started on a free loopback port (test/harness/redis.ts)
//   consul        a real Consul when CONSUL_HTTP_ADDR is set (token: CONSUL_HTTP_TOKEN),
//                 otherwise the stand-in in test/standins/consul.ts
//   vault         a real Vault when VAULT_ADDR and VAULT_TOKEN are set (KV v2 mount:
//                 VAULT_KV_MOUNT, default "secret"), otherwise test/standins/vault.ts
//   redis-sentinel  a master, a replica and a sentinel (test/harness/redis-sentinel.ts)
//   redis-cluster   three masters with a replica each (test/harness/redis-cluster.ts)
//   etcd          a real etcd started on free loopback ports (test/harness/etcd.ts)
//   kubernetes    a real cluster when KUBECONFIG is set (its context's namespace; each
//                 space is its own object-name prefix), otherwise test/standins/kubernetes.ts

import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { createConsulStorage } from '../../src/storage/consul.js';
import { createEtcdStorage } from '../../src/storage/etcd.js';
import { createFileStorage } from '../../src/storage/file.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import { createRedisStorage } from '../../src/storage/redis.js';
import type { Storage } from '../../src/storage/storage.js';
import { createKubernetesStorage } from '../../src/storage/kubernetes.js';
import { createVaultStorage } from '../../src/storage/vault.js';
import { startEtcd } from '../harness/etcd.js';
import { startRedis } from '../harness/redis.js';
import { startRedisCluster } from '../harness/redis-cluster.js';
import { startSentinelSetup } from '../harness/redis-sentinel.js';
import { startConsulStandin } from '../standins/consul.js';
import { startKubernetesStandin } from '../standins/kubernetes.js';
import { startVaultStandin } from '../standins/vault.js';

export const TIMEOUT_MS = 1000;

export interface StoreSpace {
  /** Another backend instance on this space's store (memory: the same one). */
  open(): Storage;
}

export interface BackendFixture {
  /** Requests the store has received so far, where that can be counted. */
  ioCount?: () => Promise<number>;
  /** A new, empty space. */
  space(): Promise<StoreSpace>;
  /** Closes the instances opened so far (after each test). */
  closeOpened(): Promise<void>;
  close(): Promise<void>;
}

export interface FixtureFactory {
  name: string;
  /** What the backend talks to, for the test title. */
  target: string;
  start(): Promise<BackendFixture>;
}

const unique = () => randomBytes(4).toString('hex');

/** Tracks opened instances so each test closes its own. */
function tracked(parts: Omit<BackendFixture, 'space' | 'closeOpened'> & { space(open: (make: () => Storage) => Storage): Promise<StoreSpace> }): BackendFixture {
  let opened: Storage[] = [];
  const track = (make: () => Storage) => {
    const storage = make();
    opened.push(storage);
    return storage;
  };
  return {
    ...parts,
    space: () => parts.space(track),
    async closeOpened() {
      const closing = opened;
      opened = [];
      await Promise.all(closing.map((s) => s.close()));
    },
  };
}

const memory: FixtureFactory = {
  name: 'memory',
  target: 'in process',
  async start() {
    return tracked({
      async space() {
        const store = createMemoryStorage(); // one process, one store: every "instance" is this one
        return { open: () => store };
      },
      async close() {},
    });
  },
};

const file: FixtureFactory = {
  name: 'file',
  target: 'temp directory',
  async start() {
    const root = await mkdtemp(join(tmpdir(), 'acmed-contract-'));
    return tracked({
      async space(open) {
        const path = await mkdtemp(join(root, 'space-'));
        return { open: () => open(() => createFileStorage({ path })) };
      },
      close: () => rm(root, { recursive: true, force: true }),
    });
  },
};

const redis: FixtureFactory = {
  name: 'redis',
  target: 'redis-server on loopback',
  async start() {
    const server = await startRedis({ password: `pw-${unique()}` });
    const options = {
      host: server.host, port: server.port, auth: server.password ?? null, database: 2,
      ssl: false, ssl_verify: false, ssl_server_name: null, timeout: TIMEOUT_MS,
    };
    // Commands Redis processed, less the INFO calls made here to count them.
    const probe = new Redis({ host: server.host, port: server.port, password: server.password, lazyConnect: true });
    let probes = 0;
    return tracked({
      async ioCount() {
        const info = await probe.info('stats');
        return Number(/total_commands_processed:(\d+)/.exec(info)?.[1]) - probes++;
      },
      async space(open) {
        const namespace = `acmed-test-${unique()}:`;
        return { open: () => open(() => createRedisStorage({ ...options, namespace })) };
      },
      async close() {
        probe.disconnect();
        await server.stop();
      },
    });
  },
};

const redisBase = { host: '127.0.0.1', port: 6379, database: 0, ssl: false, ssl_verify: false, ssl_server_name: null, timeout: TIMEOUT_MS };

const redisSentinel: FixtureFactory = {
  name: 'redis-sentinel',
  target: 'master, replica and sentinel on loopback',
  async start() {
    const setup = await startSentinelSetup();
    const options = {
      ...redisBase, auth: setup.password, sentinels: setup.sentinels,
      sentinel_master: setup.masterName, sentinel_password: setup.sentinelPassword,
    };
    return tracked({
      async space(open) {
        const namespace = `acmed-test-${unique()}:`;
        return { open: () => open(() => createRedisStorage({ ...options, namespace })) };
      },
      close: () => setup.stop(),
    });
  },
};

const redisCluster: FixtureFactory = {
  name: 'redis-cluster',
  target: '3 masters + 3 replicas on loopback',
  async start() {
    const cluster = await startRedisCluster();
    const options = { ...redisBase, auth: cluster.password, cluster_nodes: cluster.nodes.slice(0, 2) };
    return tracked({
      async space(open) {
        const namespace = `acmed-test-${unique()}:`;
        return { open: () => open(() => createRedisStorage({ ...options, namespace })) };
      },
      close: () => cluster.stop(),
    });
  },
};

const consulAddr = process.env.CONSUL_HTTP_ADDR;
const consul: FixtureFactory = {
  name: 'consul',
  target: consulAddr ? `real Consul at ${consulAddr}` : 'stand-in',
  async start() {
    const standin = consulAddr ? null : await startConsulStandin({ token: 'contract-token' });
    const address = consulAddr ? new URL(consulAddr.includes('://') ? consulAddr : `http://${consulAddr}`) : null;
    const options = {
      host: address?.hostname ?? standin!.host,
      port: Number(address?.port || standin?.port || 8500),
      https: address?.protocol === 'https:',
      token: standin ? 'contract-token' : (process.env.CONSUL_HTTP_TOKEN ?? null),
      timeout: TIMEOUT_MS,
    };
    return tracked({
      ioCount: standin ? async () => standin.requests : undefined,
      async space(open) {
        const kv_path = `acmed-test/${unique()}`;
        return { open: () => open(() => createConsulStorage({ ...options, kv_path })) };
      },
      close: async () => standin?.close(),
    });
  },
};

const vaultAddr = process.env.VAULT_ADDR && process.env.VAULT_TOKEN ? process.env.VAULT_ADDR : undefined;
const vault: FixtureFactory = {
  name: 'vault',
  target: vaultAddr ? `real Vault at ${vaultAddr}` : 'stand-in',
  async start() {
    const standin = vaultAddr ? null : await startVaultStandin();
    const address = vaultAddr ? new URL(vaultAddr) : null;
    const mount = vaultAddr ? (process.env.VAULT_KV_MOUNT ?? 'secret') : 'acme';
    const options = {
      host: address?.hostname ?? standin!.host,
      port: Number(address?.port || standin?.port || 8200),
      https: address?.protocol === 'https:',
      token: standin?.rootToken ?? process.env.VAULT_TOKEN ?? null,
      timeout: TIMEOUT_MS, tls_verify: true, tls_server_name: null,
      auth_method: 'token' as const, auth_path: null, auth_role: null, jwt_path: null,
    };
    return tracked({
      ioCount: standin ? async () => standin.requests : undefined,
      async space(open) {
        const kv_path = `${mount}/acmed-test-${unique()}`;
        return { open: () => open(() => createVaultStorage({ ...options, kv_path })) };
      },
      close: async () => standin?.close(),
    });
  },
};

const etcd: FixtureFactory = {
  name: 'etcd',
  target: 'etcd on loopback',
  async start() {
    const server = await startEtcd();
    const options = {
      endpoints: [server.endpoint], username: null, password: null,
      tls: { ca: null, cert: null, key: null }, timeout: TIMEOUT_MS,
    };
    return tracked({
      ioCount: () => server.requests(),
      async space(open) {
        const prefix = `acmed-test/${unique()}/`;
        return { open: () => open(() => createEtcdStorage({ ...options, prefix })) };
      },
      close: () => server.stop(),
    });
  },
};

const kubeconfigEnv = process.env.KUBECONFIG;
const kubernetes: FixtureFactory = {
  name: 'kubernetes',
  target: kubeconfigEnv ? `real cluster of ${kubeconfigEnv}` : 'stand-in',
  async start() {
    const standin = kubeconfigEnv ? null : await startKubernetesStandin();
    const kubeconfig = kubeconfigEnv ?? await standin!.kubeconfig('acmed');
    return tracked({
      ioCount: standin ? async () => standin.requests.length : undefined,
      async space(open) {
        const prefix = `t${unique()}`;
        return { open: () => open(() => createKubernetesStorage({ kubeconfig, namespace: null, prefix, timeout: TIMEOUT_MS * 5 })) };
      },
      close: async () => standin?.close(),
    });
  },
};

export const fixtures: FixtureFactory[] = [memory, file, redis, redisSentinel, redisCluster, consul, vault, etcd, kubernetes];
