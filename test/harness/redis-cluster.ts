// A Redis Cluster for the tests (Debian redis-server + redis-cli): three
// masters with one replica each, on free loopback ports (data and cluster
// bus ports both picked free, so nothing needs port+10000), formed with
// `redis-cli --cluster create ... --cluster-replicas 1 --cluster-yes`. A node
// timeout of 1 s lets a test kill a master and watch its replica take over.

import { execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort } from './ports.js';
import { launch, redisServerInstalled, terminate } from './redis.js';
import { type Address, until } from './redis-sentinel.js';

const run = promisify(execFile);

export interface ClusterSetup {
  nodes: Address[];
  password: string;
  /** Masters as the cluster sees them now. */
  masters(): Promise<Address[]>;
  /** SIGKILLs the master that serves key's slot; returns its address. */
  killMasterOf(key: string): Promise<Address>;
  /** Waits until every live node says cluster_state:ok and key's slot is served by a master other than `old`. */
  waitForPromotion(key: string, old: Address, timeoutMs?: number): Promise<Address>;
  stop(): Promise<void>;
}

export async function startRedisCluster(opts: { password?: string } = {}): Promise<ClusterSetup> {
  if (!redisServerInstalled()) throw new Error('redis-server not found: apt-get install -y redis-server redis-tools');
  const password = opts.password ?? 'cluster-pw';
  const dir = await mkdtemp(join(tmpdir(), 'acmed-cluster-redis-'));
  const children = new Map<number, ChildProcess>();
  const stop = async () => {
    await Promise.all([...children.values()].map(terminate));
    await rm(dir, { recursive: true, force: true });
  };
  const ports: number[] = [];
  const nodeClient = (port: number) => {
    const c = new Redis({ host: '127.0.0.1', port, password, lazyConnect: true, maxRetriesPerRequest: 1 });
    c.on('error', () => {});
    return c;
  };
  const ask = async <T>(port: number, fn: (c: Redis) => Promise<T>) => {
    const c = nodeClient(port);
    try {
      await c.connect();
      return await fn(c);
    } finally {
      c.disconnect();
    }
  };
  const live = () => ports.filter((p) => children.get(p)?.exitCode === null && children.get(p)?.signalCode === null);
  /** The master serving key's slot, as a live node answers CLUSTER SHARDS / SLOTS. */
  const masterOf = async (key: string): Promise<Address> => {
    const slot = Number(await ask(live()[0], (c) => c.call('CLUSTER', 'KEYSLOT', key)));
    const ranges = await ask(live()[0], (c) => c.call('CLUSTER', 'SLOTS')) as [number, number, [string, number, string]][];
    const range = ranges.find(([from, to]) => slot >= from && slot <= to);
    if (!range) throw new Error(`slot ${slot} is not served`);
    return { host: range[2][0], port: Number(range[2][1]) };
  };

  try {
    for (let i = 0; i < 6; i++) {
      const [port, busPort] = [await freePort(), await freePort()];
      ports.push(port);
      children.set(port, await launch([
        '--port', String(port), '--cluster-port', String(busPort), '--bind', '127.0.0.1', '--dir', dir,
        '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '1000',
        '--dbfilename', `dump-${port}.rdb`, '--save', '', '--appendonly', 'no',
        '--requirepass', password, '--masterauth', password,
      ]));
    }
    await run('redis-cli', ['-a', password, '--no-auth-warning', '--cluster', 'create',
      ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '1', '--cluster-yes'], { timeout: 60_000 });
    await until('every node to say cluster_state:ok', async () => {
      const states = await Promise.all(ports.map((p) => ask(p, (c) => c.call('CLUSTER', 'INFO')) as Promise<string>));
      return states.every((s) => s.includes('cluster_state:ok'));
    }, 30_000);
    // Every replica has synced, so killing a master now loses nothing already written.
    await until('every replica to sync', async () => {
      const infos = await Promise.all(ports.map((p) => ask(p, (c) => c.info('replication'))));
      return infos.every((info) => info.includes('role:master') || info.includes('master_link_status:up'));
    }, 30_000);
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    nodes: ports.map((port) => ({ host: '127.0.0.1', port })),
    password,
    async masters() {
      const ranges = await ask(live()[0], (c) => c.call('CLUSTER', 'SLOTS')) as [number, number, [string, number, string]][];
      return ranges.map((r) => ({ host: r[2][0], port: Number(r[2][1]) }));
    },
    async killMasterOf(key) {
      const master = await masterOf(key);
      await terminate(children.get(master.port)!);
      return master;
    },
    async waitForPromotion(key, old, timeoutMs = 30_000) {
      let now: Address = old;
      await until('a replica to take over the killed master\'s slots', async () => {
        const states = await Promise.all(live().map((p) => ask(p, (c) => c.call('CLUSTER', 'INFO')) as Promise<string>));
        if (!states.every((s) => s.includes('cluster_state:ok'))) return false;
        now = await masterOf(key);
        return now.port !== old.port;
      }, timeoutMs);
      return now;
    },
    stop,
  };
}
