// A three-member etcd loses its leader in the middle of a run of orders: the
// remaining two elect a new one, and acmed (given all three endpoints, never
// restarted) keeps serving the http-01 token it holds, issues again, and
// loses no certificate (test/harness/failover-run.ts). The test reports how
// long issuance paused.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { createEtcdStorage } from '../../src/storage/etcd.js';
import { type EtcdCluster, startEtcdCluster } from '../harness/etcd.js';
import { failoverRun } from '../harness/failover-run.js';
import { freePort } from '../harness/ports.js';
import { startPebble, type PebbleHandle } from '../harness/pebble.js';
import { waitFor } from '../harness/wait.js';
import { startBlackhole, type Blackhole } from '../harness/blackhole.js';

const PREFIX = 'acmed-failover/';
const BLACKHOLE_ADDRESS = '127.0.0.5';

let dir: string;
let httpPort: number;
let pebble: PebbleHandle;
let etcdCluster: EtcdCluster;
let blackhole: Blackhole | undefined;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'acmed-etcd-failover-'));
  httpPort = await freePort();
  [pebble, etcdCluster] = await Promise.all([startPebble({ httpPort }), startEtcdCluster(3)]);
  blackhole = await startBlackhole(BLACKHOLE_ADDRESS, httpPort);
});

after(async () => {
  blackhole?.close();
  await Promise.all([pebble?.stop(), etcdCluster?.stop()]);
  await rm(dir, { recursive: true, force: true });
});

test('etcd: the leader of three members is killed during a run of orders; acmed goes on once the other two elect a new one', async (t) => {
  const etcd = { endpoints: etcdCluster.endpoints, prefix: PREFIX, username: null, password: null, tls: { ca: null, cert: null, key: null }, timeout: 2000 };
  const reader = createEtcdStorage(etcd);
  const raw = new Etcd3({ hosts: etcdCluster.endpoints });
  t.after(async () => {
    await reader.close();
    raw.close();
  });
  let killed = -1;
  await failoverRun(t, {
    label: 'etcd', dir, pebble, httpPort, blackholeAddress: BLACKHOLE_ADDRESS, reader,
    storage: { storage: 'etcd', storage_config: { etcd } },
    async readCertificate(name) {
      const dirKey = `${PREFIX}certs/${name}/`;
      const files = await raw.getAll().prefix(dirKey).strings();
      if (Object.keys(files).length === 0) return null;
      return { cert: files[`${dirKey}cert.pem`], chain: files[`${dirKey}chain.pem`], fullchain: files[`${dirKey}fullchain.pem`], privkey: files[`${dirKey}privkey.pem`] };
    },
    async kill() {
      killed = await waitFor('a leader', async () => {
        const i = await etcdCluster.leader();
        return i >= 0 ? i + 1 : false; // 0 would read as "not yet"
      }) - 1;
      await etcdCluster.kill(killed);
    },
    async promoted() {
      await waitFor('the two left to elect a leader', async () => (await etcdCluster.leader()) >= 0, { timeoutMs: 30_000 });
    },
    async stillDown() {
      return (await etcdCluster.leader()) < 0;
    },
  });
  assert.ok(killed >= 0);
});
