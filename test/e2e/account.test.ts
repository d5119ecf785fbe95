// The ACME account's life cycle against a real Pebble, through the CLI:
// show, a new contact, a key rollover (orders work with the new key, the old
// one is refused), and deactivation (confirmed only; the next order
// registers a new account).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as acme from 'acme-client';
import { stringify } from 'yaml';
import { freePort } from '../harness/ports.js';
import { startPebble, type PebbleHandle } from '../harness/pebble.js';
import { baseConfig, startAcmed, type AcmedHandle } from '../harness/acmed.js';
import { parseConfig } from '../../src/config/load.js';
import { createStorage, type Storage } from '../../src/storage/index.js';
import { keys } from '../../src/storage/keys.js';

let pebble: PebbleHandle;
let dir: string;
let acmed: AcmedHandle;
let storage: Storage;

before(async () => {
  const httpPort = await freePort();
  pebble = await startPebble({ httpPort });
  dir = await mkdtemp(join(tmpdir(), 'acmed-account-'));
  const config = baseConfig({ dir, directoryUrl: pebble.directoryUrl, caBundlePath: pebble.caBundlePath, httpPort });
  acmed = await startAcmed(config, dir);
  // The test reads the account key the way the daemon stores it.
  storage = await createStorage(parseConfig(stringify(config)));
  // acme-client's own HTTP stack (axios), to sign with a key the daemon no longer uses.
  acme.axios.defaults.httpsAgent = new https.Agent({ ca: await readFile(pebble.caBundlePath) });
});

after(async () => {
  await storage?.close();
  await acmed?.stop();
  await pebble?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function json<T>(args: string[]): Promise<T> {
  const r = await acmed.cli([...args, '--json']);
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

type Details = { url: string; status: string; contact: string[]; key_type: string; registered_at: string | null; ca: string };

test('account show: what the CA knows, the key type and when acmed registered it', async () => {
  await json(['issue', 'first.example.com']); // registers the account
  const shown = await json<Details>(['account', 'show']);
  assert.match(shown.url, /^https:\/\/127\.0\.0\.1:\d+\/my-account\//);
  assert.equal(shown.status, 'valid');
  assert.deepEqual(shown.contact, ['mailto:ops@example.com']);
  assert.equal(shown.key_type, 'ECDSA P-256');
  assert.equal(shown.ca, pebble.directoryUrl);
  assert.ok(shown.registered_at && Date.parse(shown.registered_at) <= Date.now());
});

test('account update --email changes the contact at the CA', async () => {
  await json(['account', 'update', '--email', 'certs@example.com']);
  assert.deepEqual((await json<Details>(['account', 'show'])).contact, ['mailto:certs@example.com']);
});

test('account rollover: the new key signs the orders; the old one is refused by the CA', async () => {
  const oldKey = (await storage.get(keys.accountKey))!;
  const before = await json<Details>(['account', 'show']);
  await json(['account', 'rollover']);
  const newKey = (await storage.get(keys.accountKey))!;
  assert.notEqual(newKey, oldKey);
  assert.equal(await storage.get(keys.accountKeyNext), null, 'the staged key was promoted');
  assert.equal((await json<Details>(['account', 'show'])).url, before.url, 'the same account');
  const issued = await json<{ issued: boolean }>(['issue', 'after-rollover.example.com']);
  assert.equal(issued.issued, true);

  const withOld = new acme.Client({ directoryUrl: pebble.directoryUrl, accountKey: oldKey, accountUrl: before.url });
  await assert.rejects(withOld.updateAccount({}), 'the CA refuses the old key');
  const withNew = new acme.Client({ directoryUrl: pebble.directoryUrl, accountKey: newKey, accountUrl: before.url });
  assert.equal((await withNew.updateAccount({})).status, 'valid');
});

test('account deactivate needs --confirm; then the next order registers a new account', async () => {
  const refused = await acmed.cli(['account', 'deactivate']);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /cannot be undone; add --confirm/);
  const old = await json<Details>(['account', 'show']);
  const done = await json<{ status: string }>(['account', 'deactivate', '--confirm']);
  assert.equal(done.status, 'deactivated');
  assert.equal(await storage.get(keys.accountUrl), null);
  const issued = await json<{ issued: boolean }>(['issue', 'after-deactivation.example.com']);
  assert.equal(issued.issued, true);
  const fresh = await json<Details>(['account', 'show']);
  assert.notEqual(fresh.url, old.url);
  assert.equal(fresh.status, 'valid');
});
