// Redis Sentinel for the tests (Debian redis-server + redis-sentinel): a
// master, one replica and one sentinel (quorum 1), all on free loopback ports
// with their own directories. Failover timings are short (down after 1 s) so
// a test can kill the master and watch the replica take over.

import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { freePort } from './ports.js';
import { launch, redisServerInstalled, terminate } from './redis.js';

export const SENTINEL_MASTER = 'acmed-test';

export interface Address {
  host: string;
  port: number;
}

export interface SentinelSetup {
  masterName: string;
  sentinels: Address[];
  /** The data nodes' password (acmed's `auth`). */
  password: string;
  /** The sentinel's own password (acmed's `sentinel_password`). */
  sentinelPassword: string;
  /** Where the sentinel says the master is now. */
  master(): Promise<Address>;
  /** SIGKILLs the current master; returns its address. */
  killMaster(): Promise<Address>;
  /** SIGKILLs every replica of the current master. */
  killReplicas(): Promise<void>;
  /** SIGSTOPs / SIGCONTs every replica of the current master: connected, but silent. */
  pauseReplicas(): Promise<void>;
  resumeReplicas(): Promise<void>;
  /** Waits until the sentinel names another master than `old`; returns it. */
  waitForNewMaster(old: Address, timeoutMs?: number): Promise<Address>;
  stop(): Promise<void>;
}

export async function startSentinelSetup(opts: { password?: string; sentinelPassword?: string } = {}): Promise<SentinelSetup> {
  if (!redisServerInstalled()) throw new Error('redis-server not found: apt-get install -y redis-server redis-sentinel');
  const password = opts.password ?? 'data-pw';
  const sentinelPassword = opts.sentinelPassword ?? 'sentinel-pw';
  const dir = await mkdtemp(join(tmpdir(), 'acmed-sentinel-'));
  const [masterPort, replicaPort, sentinelPort] = [await freePort(), await freePort(), await freePort()];
  const node = (port: number, extra: string[]) => launch([
    '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--dbfilename', `dump-${port}.rdb`, '--save', '', '--appendonly', 'no',
    '--requirepass', password, '--masterauth', password, ...extra,
  ]);
  const nodes = new Map<number, ChildProcess>();
  let sentinel: ChildProcess | undefined;
  const stop = async () => {
    await Promise.all([...nodes.values(), ...(sentinel ? [sentinel] : [])].map(terminate));
    await rm(dir, { recursive: true, force: true });
  };
  const ask = () => new Redis({ host: '127.0.0.1', port: sentinelPort, password: sentinelPassword, lazyConnect: true, maxRetriesPerRequest: 1 });

  try {
    nodes.set(masterPort, await node(masterPort, []));
    nodes.set(replicaPort, await node(replicaPort, ['--replicaof', '127.0.0.1', String(masterPort)]));
    await until('the replica to sync', async () => {
      const info = await withClient(new Redis({ host: '127.0.0.1', port: replicaPort, password, lazyConnect: true }), (c) => c.info('replication'));
      return /master_link_status:up/.test(info);
    });
    const conf = join(dir, 'sentinel.conf');
    await writeFile(conf, [
      `port ${sentinelPort}`, 'bind 127.0.0.1', `dir ${dir}`, `requirepass ${sentinelPassword}`,
      `sentinel monitor ${SENTINEL_MASTER} 127.0.0.1 ${masterPort} 1`,
      `sentinel auth-pass ${SENTINEL_MASTER} ${password}`,
      `sentinel down-after-milliseconds ${SENTINEL_MASTER} 1000`,
      `sentinel failover-timeout ${SENTINEL_MASTER} 5000`,
      '',
    ].join('\n'));
    sentinel = await launch([conf], /\+monitor master/, 'redis-sentinel');
    // A sentinel fails over only to a replica it has heard of, from the master's INFO (every 10 s at first).
    await until('the sentinel to know the replica', async () => {
      const replicas = await withClient(ask(), (c) => c.call('SENTINEL', 'REPLICAS', SENTINEL_MASTER)) as string[][];
      return replicas.some((fields) => fields.includes(String(replicaPort)) && !fields.join(' ').includes('disconnected'));
    }, 30_000);
  } catch (err) {
    await stop();
    throw err;
  }

  const master = async (): Promise<Address> => {
    const [host, port] = await withClient(ask(), (c) => c.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', SENTINEL_MASTER)) as [string, string];
    return { host, port: Number(port) };
  };

  const replicas = async () => {
    const current = await master();
    return [...nodes].filter(([port]) => port !== current.port).map(([, child]) => child);
  };

  return {
    masterName: SENTINEL_MASTER,
    sentinels: [{ host: '127.0.0.1', port: sentinelPort }],
    password,
    sentinelPassword,
    master,
    async killMaster() {
      const current = await master();
      const child = nodes.get(current.port);
      if (!child) throw new Error(`no node on port ${current.port}`);
      await terminate(child);
      return current;
    },
    async killReplicas() {
      await Promise.all((await replicas()).map(terminate));
    },
    async pauseReplicas() {
      for (const child of await replicas()) child.kill('SIGSTOP');
    },
    async resumeReplicas() {
      for (const child of await replicas()) child.kill('SIGCONT');
    },
    async waitForNewMaster(old, timeoutMs = 30_000) {
      let now: Address = old;
      await until('the sentinel to promote the replica', async () => {
        now = await master();
        return now.port !== old.port;
      }, timeoutMs);
      return now;
    },
    stop,
  };
}

async function withClient<T>(client: Redis, fn: (c: Redis) => Promise<T>): Promise<T> {
  client.on('error', () => {}); // the failing call says what went wrong
  try {
    await client.connect();
    return await fn(client);
  } finally {
    client.disconnect();
  }
}

/** Polls check (errors count as "not yet") until it holds or the deadline passes. */
export async function until(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      if (await check()) return;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(100);
  }
}
