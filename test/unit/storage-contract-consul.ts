// Consul-only storage tests. They run against the stand-in, always: they use
// its hooks (expire sessions, stall) and check its ACL answers.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, it } from 'node:test';
import { createConsulStorage, type ConsulStorageOptions } from '../../src/storage/consul.js';
import type { CertificateBundle, Storage } from '../../src/storage/storage.js';
import { freePort } from '../harness/ports.js';
import { type ConsulStandin, startConsulStandin } from '../standins/consul.js';
import { makeCertificate } from './storage-contract-cert.js';
import { TIMEOUT_MS } from './storage-contract-fixtures.js';
import { rejectsWithin, assertTimesOutAndRecovers } from './storage-contract-util.js';

const TOKEN = 'consul-specific-token';

export function consulSpecificTests(): void {
  let standin: ConsulStandin;
  let bundle: CertificateBundle;
  let opened: Storage[] = [];
  let spaces = 0;
  const open = (overrides: Partial<ConsulStorageOptions> = {}) => {
    const storage = createConsulStorage({
      host: standin.host, port: standin.port, token: TOKEN, kv_path: `acme/t${spaces}`, timeout: TIMEOUT_MS, https: false, ...overrides,
    });
    opened.push(storage);
    return storage;
  };
  const fetchStandin = (path: string, token?: string) =>
    fetch(`${standin.url}${path}`, { headers: token ? { 'X-Consul-Token': token } : {} });

  before(async () => {
    standin = await startConsulStandin({ token: TOKEN });
    const dir = await mkdtemp(join(tmpdir(), 'acmed-consul-specific-'));
    bundle = await makeCertificate(dir, ['shop.example.com']);
    await rm(dir, { recursive: true, force: true });
  });
  afterEach(async () => {
    await Promise.all(opened.map((s) => s.close()));
    opened = [];
    spaces++;
  });
  after(() => standin.close());

  it('the stand-in rejects a missing or wrong token with 403, and the backend says so', async () => {
    const missing = await fetchStandin('/v1/kv/acme?recurse');
    assert.equal(missing.status, 403);
    assert.match(await missing.text(), /Permission denied/);
    const wrong = await fetchStandin('/v1/kv/acme?recurse', 'not-the-token');
    assert.equal(wrong.status, 403);
    assert.equal(await wrong.text(), 'ACL not found');

    const storage = open({ token: 'not-the-token' });
    const err = await rejectsWithin(storage.get('records/x.json'), TIMEOUT_MS);
    assert.equal(err.code, 'STORAGE_ERROR');
    assert.match(err.message, /^consul http:\/\/127\.0\.0\.1:\d+: get failed: .*ACL not found/);
    await assert.rejects(storage.add('locks/x.example.com', 't', 1000), /ACL not found/);
    await assert.rejects(storage.putCertificate(bundle), /ACL not found/);
  });

  it('writes <kv_path>/certs/<name>/{fullchain,privkey}.pem in one transaction, for consul-template', async () => {
    const storage = open({ kv_path: 'acme' });
    await storage.putCertificate(bundle);
    const raw = async (file: string) => {
      const res = await fetchStandin(`/v1/kv/acme/certs/shop.example.com/${file}?raw`, TOKEN);
      assert.equal(res.status, 200, file);
      return res.text();
    };
    assert.equal(await raw('fullchain.pem'), bundle.fullchain);
    assert.equal(await raw('privkey.pem'), bundle.privkey);
    assert.equal(await raw('cert.pem'), bundle.cert);
    // One transaction commits at one index: the pair can only change together.
    const entries = standin.kv.withPrefix('acme/certs/shop.example.com/');
    assert.equal(entries.length, 4);
    assert.equal(new Set(entries.map((e) => e.ModifyIndex)).size, 1);
    assert.match(storage.location('shop.example.com'), /acme\/certs\/shop\.example\.com\//);
  });

  it('locks are held by the instance\'s session; when it dies, Consul deletes them and others take over at once', async () => {
    const holder = open();
    const other = open();
    assert.equal(await holder.add('locks/a.example.com', 'holder', 60_000), true);
    const entry = standin.kv.withPrefix(`acme/t${spaces}/state/locks/a.example.com`)[0];
    assert.ok(entry?.Session, 'the lock key carries a session');
    assert.equal(await other.add('locks/a.example.com', 'other', 60_000), false);
    standin.expireSessions(); // the holder stopped renewing: its TTL ran out
    assert.equal(standin.kv.withPrefix(`acme/t${spaces}/state/locks/`).length, 0, 'behavior "delete" removed the lock');
    assert.equal(await other.add('locks/a.example.com', 'other', 60_000), true, 'no lock-delay stands in the way');
  });

  it('close() ends the session, which frees the instance\'s locks', async () => {
    const holder = open();
    const other = open();
    assert.equal(await holder.add('locks/b.example.com', 'holder', 60_000), true);
    await holder.close();
    assert.equal(await other.add('locks/b.example.com', 'other', 60_000), true);
  });

  it('a session Consul dropped is replaced on the next add', async () => {
    const storage = open();
    assert.equal(await storage.add('locks/c.example.com', 'one', 60_000), true);
    standin.expireSessions();
    assert.equal(await storage.add('locks/d.example.com', 'two', 60_000), true);
    assert.equal(standin.sessionCount(), 1);
  });

  it('a Consul that hangs or is down: calls fail within the timeout and recover', async () => {
    await assertTimesOutAndRecovers(open(), standin, TIMEOUT_MS);

    const nowhere = open({ port: await freePort() });
    const err = await rejectsWithin(nowhere.get('records/x.json'), TIMEOUT_MS + 500);
    assert.equal(err.code, 'STORAGE_ERROR');
    assert.match(err.message, /ECONNREFUSED/);
  });
}
