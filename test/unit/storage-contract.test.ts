// The storage contract suite: the same tests (storage-contract-cases.ts) run
// once per backend — memory, file, redis (single, sentinel, cluster), consul, vault, etcd, kubernetes — followed by the
// tests only one backend has (storage-contract-<backend>.ts).
//
// Servers: redis and etcd run against a real redis-server / etcd the harness
// starts on free loopback ports. consul and vault run against a real server when
// CONSUL_HTTP_ADDR (+ CONSUL_HTTP_TOKEN) / VAULT_ADDR + VAULT_TOKEN (+
// VAULT_KV_MOUNT, default "secret") are set, otherwise against the in-repo
// stand-ins (test/standins/); tests that need a stand-in's hooks are skipped
// against a real server. See storage-contract-fixtures.ts.

import { after, afterEach, before, describe } from 'node:test';
import { contractCases } from './storage-contract-cases.js';
import { consulSpecificTests } from './storage-contract-consul.js';
import { etcdSpecificTests } from './storage-contract-etcd.js';
import { type BackendFixture, fixtures } from './storage-contract-fixtures.js';
import { kubernetesSpecificTests } from './storage-contract-kubernetes.js';
import { redisSpecificTests } from './storage-contract-redis.js';
import { replicatedRedisTests } from './storage-contract-redis-replicated.js';
import { vaultSpecificTests } from './storage-contract-vault.js';

for (const factory of fixtures) {
  describe(`storage contract: ${factory.name} (${factory.target})`, () => {
    let fixture: BackendFixture;
    before(async () => {
      fixture = await factory.start();
    });
    afterEach(() => fixture.closeOpened());
    after(() => fixture.close());
    contractCases(() => fixture);
  });
}

describe('redis backend', redisSpecificTests);
describe('redis backend: sentinel and cluster', replicatedRedisTests);
describe('consul backend', consulSpecificTests);
describe('vault backend', vaultSpecificTests);
describe('etcd backend', etcdSpecificTests);
describe('kubernetes backend', kubernetesSpecificTests);
