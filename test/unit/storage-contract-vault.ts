// Vault-only storage tests. They run against the stand-in, always: they use
// its kubernetes auth, its login record and its stall hook.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, it } from 'node:test';
import type { CertificateBundle, Storage } from '../../src/storage/storage.js';
import { createVaultStorage, type VaultStorageOptions } from '../../src/storage/vault.js';
import { startVaultStandin, type VaultStandin } from '../standins/vault.js';
import { makeCertificate } from './storage-contract-cert.js';
import { TIMEOUT_MS } from './storage-contract-fixtures.js';
import { rejectsWithin, assertTimesOutAndRecovers } from './storage-contract-util.js';

export function vaultSpecificTests(): void {
  let standin: VaultStandin;
  let dir: string;
  let jwtPath: string;
  let bundle: CertificateBundle;
  let opened: Storage[] = [];
  const open = (overrides: Partial<VaultStorageOptions> = {}) => {
    const storage = createVaultStorage({
      host: standin.host, port: standin.port, token: standin.rootToken, kv_path: 'acme', timeout: TIMEOUT_MS, https: false,
      tls_verify: true, tls_server_name: null, auth_method: 'token', auth_path: null, auth_role: null, jwt_path: null, ...overrides,
    });
    opened.push(storage);
    return storage;
  };
  const kubernetes = (overrides: Partial<VaultStorageOptions> = {}) =>
    open({ token: null, auth_method: 'kubernetes', auth_path: 'k8s-prod', auth_role: 'acmed', jwt_path: jwtPath, ...overrides });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'acmed-vault-specific-'));
    jwtPath = join(dir, 'token');
    await writeFile(jwtPath, 'service-account-jwt\n');
    standin = await startVaultStandin({
      mounts: ['acme', 'secret'],
      kubernetes: [
        { path: 'k8s-prod', role: 'acmed', jwt: 'service-account-jwt' },
        { path: 'kubernetes', role: 'acmed', jwt: 'service-account-jwt' },
      ],
    });
    bundle = await makeCertificate(dir, ['shop.example.com']);
  });
  afterEach(async () => {
    await Promise.all(opened.map((s) => s.close()));
    opened = [];
    standin.logins.length = 0;
  });
  after(async () => {
    await standin.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('kubernetes auth logs in at auth/<auth_path>/login with the role and the JWT', async () => {
    const storage = kubernetes();
    await storage.set('records/k8s.json', 'v');
    assert.equal(await storage.get('records/k8s.json'), 'v');
    assert.deepEqual(standin.logins, [{ path: 'k8s-prod', role: 'acmed', jwt: 'service-account-jwt' }]);
  });

  it('kubernetes auth without auth_path uses the "kubernetes" mount', async () => {
    await kubernetes({ auth_path: null }).get('records/x.json');
    assert.deepEqual(standin.logins.map((l) => l.path), ['kubernetes']);
  });

  it('logs in again when Vault stops accepting the token it issued', async () => {
    const storage = kubernetes();
    await storage.set('records/relogin.json', 'v');
    standin.revokeIssuedTokens();
    assert.equal(await storage.get('records/relogin.json'), 'v');
    assert.equal(standin.logins.length, 2);
  });

  it('a refused login or token is a clear error', async () => {
    const badRole = await rejectsWithin(kubernetes({ auth_role: 'nobody' }).get('records/x.json'), TIMEOUT_MS);
    assert.match(badRole.message, /kubernetes login as role "nobody" at auth\/k8s-prod failed: invalid role name/);
    const noRole = await rejectsWithin(kubernetes({ auth_role: null }).get('records/x.json'), TIMEOUT_MS);
    assert.match(noRole.message, /needs storage_config\.vault\.auth_role/);
    const badToken = await rejectsWithin(open({ token: 'hvs.wrong' }).get('records/x.json'), TIMEOUT_MS);
    assert.equal(badToken.code, 'STORAGE_ERROR');
    assert.match(badToken.message, /^vault http:\/\/127\.0\.0\.1:\d+: get failed: permission denied/);
  });

  it('writes one secret <kv_path>/certs/<name> with the fields Vault Agent templates read', async () => {
    const storage = open({ kv_path: 'secret/acmed/prod' });
    await storage.putCertificate(bundle);
    const res = await fetch(`${standin.url}/v1/secret/data/acmed/prod/certs/shop.example.com`, { headers: { 'X-Vault-Token': standin.rootToken } });
    assert.equal(res.status, 200);
    const { data } = (await res.json()) as { data: { data: Record<string, string> } };
    assert.deepEqual(Object.keys(data.data).sort(), ['cert', 'chain', 'fullchain', 'not_after', 'privkey']);
    assert.equal(data.data.fullchain, bundle.fullchain);
    assert.equal(data.data.privkey, bundle.privkey);
    assert.equal(data.data.not_after, bundle.notAfter);
    assert.match(storage.location('shop.example.com'), /secret\/data\/acmed\/prod\/certs\/shop\.example\.com/);
  });

  it('a Vault that hangs: calls fail within the timeout and recover', async () => {
    await assertTimesOutAndRecovers(open(), standin, TIMEOUT_MS);
  });
}
