// Starts Debian's etcd (apt-get install -y etcd-server) as a one-member
// cluster on free loopback ports with its own data directory, for the storage
// tests and the cluster e2e test. The package's own service (port 2379, if
// the machine started it) is never used. kill()/restart() play a store that
// goes down and comes back with its data; pause()/resume() one that hangs.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

export interface EtcdServerOptions {
  /** Serve https only, with this certificate; clients must show one signed by caPath when clientCertAuth is set. */
  tls?: { certPath: string; keyPath: string; caPath: string; clientCertAuth?: boolean };
}

export interface EtcdServer {
  /** The client URL, http(s)://127.0.0.1:<port>. */
  endpoint: string;
  /** Requests the server's gRPC services have received (its /metrics; plain http only). */
  requests(): Promise<number>;
  stop(): Promise<void>;
  kill(): Promise<void>;
  restart(): Promise<void>;
  pause(): void;
  resume(): void;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export function etcdInstalled(): boolean {
  try {
    execFileSync('etcd', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export async function startEtcd(opts: EtcdServerOptions = {}): Promise<EtcdServer> {
  if (!etcdInstalled()) throw new Error('etcd not found: apt-get install -y etcd-server');
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const dir = await mkdtemp(join(tmpdir(), 'acmed-etcd-'));
  const endpoint = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const args = [
    '--name', 'acmed-test', '--data-dir', join(dir, 'data'),
    '--listen-client-urls', endpoint, '--advertise-client-urls', endpoint,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `acmed-test=${peer}`, '--initial-cluster-state', 'new',
    // Small machine, short test: fsync stalls must not read as a lost leader.
    '--heartbeat-interval', '100', '--election-timeout', '1000', '--log-level', 'info', '--logger', 'zap',
    ...(opts.tls
      ? ['--cert-file', opts.tls.certPath, '--key-file', opts.tls.keyPath,
          ...(opts.tls.clientCertAuth ? ['--client-cert-auth', '--trusted-ca-file', opts.tls.caPath] : [])]
      : []),
  ];
  let child = await launch(args);
  return {
    endpoint,
    async requests() {
      const text = await (await fetch(`${endpoint}/metrics`)).text();
      let total = 0;
      for (const match of text.matchAll(/^grpc_server_started_total\{[^}]*\} (\d+)/gm)) total += Number(match[1]);
      return total;
    },
    async stop() {
      await terminate(child);
      await rm(dir, { recursive: true, force: true });
    },
    kill: () => terminate(child),
    async restart() {
      await terminate(child);
      child = await launch(args);
    },
    pause() {
      child.kill('SIGSTOP');
    },
    resume() {
      child.kill('SIGCONT');
    },
  };
}

async function launch(args: string[]): Promise<ChildProcess> {
  // ETCD_* variables from the environment would override the flags.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ETCD')));
  const child = spawn('etcd', args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`etcd not ready after 20 s:\n${output.slice(-4000)}`)), 20_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (/ready to serve client requests|serving client traffic/.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`etcd exited (${code}):\n${output.slice(-4000)}`));
    });
  });
  // Keep draining, or a full pipe would block etcd.
  child.stdout?.removeAllListeners('data').resume();
  child.stderr?.removeAllListeners('data').resume();
  return child;
}

function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGCONT');
    child.kill('SIGKILL');
  });
}

export interface EtcdCluster {
  /** Client URLs of the members, in order. */
  endpoints: string[];
  /** Index of the member that says it leads, among those alive; -1 while none does. */
  leader(): Promise<number>;
  /** SIGKILLs member i. */
  kill(i: number): Promise<void>;
  stop(): Promise<void>;
}

/** A three-member (or `size`) etcd cluster on loopback: losing one member leaves a majority. */
export async function startEtcdCluster(size = 3): Promise<EtcdCluster> {
  if (!etcdInstalled()) throw new Error('etcd not found: apt-get install -y etcd-server');
  const dir = await mkdtemp(join(tmpdir(), 'acmed-etcd-cluster-'));
  const members: { name: string; client: string; peer: string }[] = [];
  for (let i = 0; i < size; i++) {
    members.push({ name: `m${i}`, client: `http://127.0.0.1:${await freePort()}`, peer: `http://127.0.0.1:${await freePort()}` });
  }
  const initialCluster = members.map((m) => `${m.name}=${m.peer}`).join(',');
  const children: ChildProcess[] = [];
  const stop = async () => {
    await Promise.all(children.map(terminate));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    // Started together: each waits for the others to elect a leader before it serves clients.
    children.push(...await Promise.all(members.map((m) => launch([
      '--name', m.name, '--data-dir', join(dir, m.name),
      '--listen-client-urls', m.client, '--advertise-client-urls', m.client,
      '--listen-peer-urls', m.peer, '--initial-advertise-peer-urls', m.peer,
      '--initial-cluster', initialCluster, '--initial-cluster-state', 'new', '--initial-cluster-token', 'acmed-test',
      '--heartbeat-interval', '100', '--election-timeout', '1000', '--log-level', 'info', '--logger', 'zap',
    ]))));
  } catch (err) {
    await stop();
    throw err;
  }
  const alive = (i: number) => children[i].exitCode === null && children[i].signalCode === null;
  return {
    endpoints: members.map((m) => m.client),
    async leader() {
      for (const [i, m] of members.entries()) {
        if (!alive(i)) continue;
        const text = await fetch(`${m.client}/metrics`).then((r) => r.text(), () => '');
        if (/^etcd_server_is_leader 1$/m.test(text)) return i;
      }
      return -1;
    },
    kill: (i) => terminate(children[i]),
    stop,
  };
}
