// acme-client's private members that src/acme/acme-client-hooks.ts replaces
// or calls. acme-client is pinned to the exact version they were written
// for; when an upgrade renames, removes or reshapes one of them, this test
// fails with the member's name instead of orders failing at 3 a.m.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { Client, crypto as acmeCrypto } from 'acme-client';

const ROOT = resolve(import.meta.dirname, '..', '..');
const require = createRequire(import.meta.url);

test('acme-client is pinned to the exact version the hooks were written for', async () => {
  const ours = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  const installed = JSON.parse(await readFile(require.resolve('acme-client/package.json'), 'utf8')) as { version: string };
  assert.match(ours.dependencies['acme-client'], /^\d+\.\d+\.\d+$/, 'an exact version, not a range');
  assert.equal(installed.version, ours.dependencies['acme-client']);
});

test('every private member the hooks use is there, with the shape they expect', async () => {
  const key = await acmeCrypto.createPrivateEcdsaKey('P-256');
  const client = new Client({ directoryUrl: 'https://ca.invalid/dir', accountKey: key, accountUrl: 'https://ca.invalid/acct/1' }) as unknown as {
    http: Record<string, unknown>; api: Record<string, unknown>;
  };
  const members: [object, string, number | 'property'][] = [
    // [object, member, declared parameter count (Function.length) or 'property']
    [client.http, 'request', 2],
    [client.http, 'getNonce', 0],
    [client.http, 'signedRequest', 2],
    [client.http, 'getResourceUrl', 1],
    [client.http, 'getDirectory', 0],
    [client.http, 'getJwk', 0],
    [client.http, 'accountKey', 'property'],
    [client.http, 'directoryUrl', 'property'],
    [client.api, 'accountUrl', 'property'],
    [client.api, 'apiRequest', 1],
    [client.api, 'createAccount', 1],
    [client.api, 'updateAccount', 1],
    [client.api, 'updateAccountKey', 1],
  ];
  for (const [object, name, shape] of members) {
    const value = (object as Record<string, unknown>)[name];
    if (shape === 'property') {
      assert.notEqual(value, undefined, `acme-client member ${name} is gone`);
    } else {
      assert.equal(typeof value, 'function', `acme-client method ${name} is gone`);
      assert.ok((value as (...args: unknown[]) => unknown).length >= shape, `acme-client method ${name} takes fewer parameters than before`);
    }
  }
  assert.equal(client.api.accountUrl, 'https://ca.invalid/acct/1');

  // The signer the key change borrows: acme-client/src/http.js, building a JWS with no request.
  const HttpClient = require('acme-client/src/http.js') as new (url: string, key: Buffer) => { createSignedBody(url: string, payload: unknown): { protected: string; payload: string; signature: string } };
  const body = new HttpClient('https://ca.invalid/dir', key).createSignedBody('https://ca.invalid/key-change', { account: 'x' });
  const header = JSON.parse(Buffer.from(body.protected, 'base64url').toString()) as { alg: string; jwk?: { crv: string }; url: string };
  assert.equal(header.alg, 'ES256');
  assert.equal(header.jwk?.crv, 'P-256', 'the inner key-change JWS carries the new key\'s JWK');
  assert.equal(header.url, 'https://ca.invalid/key-change');
  assert.deepEqual(JSON.parse(Buffer.from(body.payload, 'base64url').toString()), { account: 'x' });
});
