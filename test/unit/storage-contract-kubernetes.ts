// Kubernetes-only storage tests. They run against the stand-in, always: they
// read its objects, take it away, and check its answers to a wrong token and
// to stale resourceVersions.

import assert from 'node:assert/strict';
import { after, afterEach, before, it } from 'node:test';
import { createKubernetesStorage } from '../../src/storage/kubernetes.js';
import type { Storage } from '../../src/storage/storage.js';
import { type KubernetesStandin, startKubernetesStandin } from '../standins/kubernetes.js';
import { rejectsWithin } from './storage-contract-util.js';

const LEASES = { group: 'coordination.k8s.io', version: 'v1', resource: 'leases', kind: 'Lease', namespaced: true };
const SECRETS = { group: '', version: 'v1', resource: 'secrets', kind: 'Secret', namespaced: true };

export function kubernetesSpecificTests(): void {
  let standin: KubernetesStandin;
  let kubeconfig: string;
  let opened: Storage[] = [];
  let spaces = 0;
  const open = (timeout = 1000) => {
    const storage = createKubernetesStorage({ kubeconfig, namespace: null, prefix: `k${spaces}`, timeout });
    opened.push(storage);
    return storage;
  };

  before(async () => {
    standin = await startKubernetesStandin();
    kubeconfig = await standin.kubeconfig('acmed');
  });
  afterEach(async () => {
    await Promise.all(opened.map((s) => s.close()));
    opened = [];
    spaces++;
  });
  after(() => standin.close());

  it('a lock is a Lease held by the owner token; state is an Opaque Secret; both name their key', async () => {
    const storage = open();
    assert.equal(await storage.add('locks/a.example.com', 'host/1/abc', 30_000), true);
    await storage.set('challenges/Tok_en-1', 'proof');
    const [lease] = standin.store.list(LEASES, 'acmed', `acmed.io/store=k${spaces}`);
    assert.equal((lease.spec as { holderIdentity: string }).holderIdentity, 'host/1/abc');
    assert.equal((lease.spec as { leaseDurationSeconds: number }).leaseDurationSeconds, 30);
    assert.match((lease.spec as { renewTime: string }).renewTime, /\.\d{6}Z$/, 'a MicroTime');
    assert.equal(lease.metadata.annotations?.['acmed.io/key'], 'locks/a.example.com');
    const [secret] = standin.store.list(SECRETS, 'acmed', `acmed.io/store=k${spaces},acmed.io/kind=state`);
    assert.equal(secret.type, 'Opaque');
    assert.equal(Buffer.from((secret.data as { value: string }).value, 'base64').toString(), 'proof');
    assert.equal(secret.metadata.annotations?.['acmed.io/key'], 'challenges/Tok_en-1');
  });

  it('a takeover races on resourceVersion: of two instances replacing one expired lock, one wins', async () => {
    const [a, b] = [open(), open()];
    assert.equal(await a.add('locks/race.example.com', 'dead', 50), true);
    await new Promise((r) => setTimeout(r, 100));
    const results = await Promise.all([a.add('locks/race.example.com', 'one', 30_000), b.add('locks/race.example.com', 'two', 30_000)]);
    assert.deepEqual(results.filter(Boolean).length, 1, String(results));
    assert.ok(standin.requests.some((r) => r.startsWith('PUT /apis/coordination.k8s.io/v1/namespaces/acmed/leases/')));
  });

  it('a stale resourceVersion gets 409 Conflict, a create of an existing name 409 AlreadyExists (the stand-in, as the API reference says)', async () => {
    const storage = open();
    await storage.set('records/x', 'v1');
    const [secret] = standin.store.list(SECRETS, 'acmed', `acmed.io/store=k${spaces}`);
    const name = secret.metadata.name!;
    const stale = { ...secret, metadata: { ...secret.metadata, resourceVersion: '1' } };
    assert.throws(() => standin.store.replace(SECRETS, 'acmed', name, stale), { code: 409, reason: 'Conflict' });
    assert.throws(() => standin.store.create(SECRETS, 'acmed', { metadata: { name } }), { code: 409, reason: 'AlreadyExists' });
    assert.throws(() => standin.store.remove(SECRETS, 'acmed', name, { resourceVersion: '1' }), { code: 409, reason: 'Conflict' });
    assert.equal(await storage.get('records/x'), 'v1');
  });

  it('a wrong token: 401 from the API server, a STORAGE_ERROR that says so and carries no secret', async () => {
    const { writeFile, readFile } = await import('node:fs/promises');
    const bad = `${kubeconfig}.bad`;
    await writeFile(bad, (await readFile(kubeconfig, 'utf8')).replace(standin.token, 'not-the-token'));
    const storage = createKubernetesStorage({ kubeconfig: bad, namespace: null, prefix: 'bad', timeout: 1000 });
    opened.push(storage);
    const err = await rejectsWithin(storage.get('records/x'), 2000);
    assert.equal(err.code, 'STORAGE_ERROR');
    assert.match(err.message, /^kubernetes https:\/\/127\.0\.0\.1:\d+ namespace acmed: get failed: HTTP 401: Unauthorized$/);
    assert.doesNotMatch(err.message, /not-the-token/);
  });

  it('an API server that is away: calls fail within the timeout, and work again when it is back', async () => {
    const storage = open(1000);
    await storage.set('records/away', 'v');
    await standin.goAway();
    try {
      const err = await rejectsWithin(storage.get('records/away'), 1500);
      assert.match(err.code ?? '', /^STORAGE_(ERROR|TIMEOUT)$/);
    } finally {
      await standin.comeBack();
    }
    assert.equal(await storage.get('records/away'), 'v');
  });
}
