// Several CAs (api_uri as a list) against two real Pebbles, each its own CA:
// orders go to the first; a requester fault there does not fall back; with
// the first stopped, acmed issues through the second (its own account, a warn
// line, a counted fallback, `show` names it); once the first answers again,
// a renewal goes back to it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort } from '../harness/ports.js';
import { startPebble, type PebbleHandle } from '../harness/pebble.js';
import { baseConfig, startAcmed, type AcmedHandle } from '../harness/acmed.js';
import { waitFor } from '../harness/wait.js';
import { parseConfig } from '../../src/config/load.js';
import { createStorage, type Storage } from '../../src/storage/index.js';
import { accountKeysFor, keys } from '../../src/storage/keys.js';

let first: PebbleHandle;
let second: PebbleHandle;
let dir: string;
let acmed: AcmedHandle;
let storage: Storage;

before(async () => {
  const httpPort = await freePort();
  // Both validate against acmed's one http-01 listener.
  [first, second] = await Promise.all([startPebble({ httpPort, nonceReject: 0 }), startPebble({ httpPort, nonceReject: 0 })]);
  dir = await mkdtemp(join(tmpdir(), 'acmed-cafallback-'));
  // One ca_bundle that trusts both Pebbles' HTTPS.
  const bundle = join(dir, 'both-cas.pem');
  await writeFile(bundle, (await readFile(first.caBundlePath, 'utf8')) + (await readFile(second.caBundlePath, 'utf8')));
  const config = {
    ...baseConfig({ dir, directoryUrl: first.directoryUrl, caBundlePath: bundle, httpPort }),
    api_uri: [first.directoryUrl, second.directoryUrl],
  };
  acmed = await startAcmed(config, dir);
  storage = await createStorage(parseConfig(stringify(config)));
});

after(async () => {
  await storage?.close();
  await acmed?.stop();
  await Promise.all([first?.stop(), second?.stop()]);
  await rm(dir, { recursive: true, force: true });
});

async function json<T>(args: string[]): Promise<T> {
  const r = await acmed.cli([...args, '--json']);
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}\n${acmed.logs().slice(-3000)}`);
  return JSON.parse(r.stdout) as T;
}

function metrics(): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get({ socketPath: acmed.socketPath, path: '/metrics' }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve(text));
    }).on('error', reject);
  });
}

type Row = { host: string; ca: string | null; serial_number: string };
type Summary = { cas: { url: string; up: boolean }[] };

test('both CAs up: the first issues, and show says so', async () => {
  const issued = await json<{ ca: string }>(['issue', 'one.example.com']);
  assert.equal(issued.ca, first.directoryUrl);
  assert.equal((await json<Row>(['show', 'one.example.com'])).ca, first.directoryUrl);
  const listed = await json<{ data: Row[] } | Row[]>(['list']);
  const rows = Array.isArray(listed) ? listed : listed.data;
  assert.equal(rows.find((r) => r.host === 'one.example.com')?.ca, first.directoryUrl);
  assert.equal(second.ordersAdded(), 0);
});

test('a requester fault at the first CA (failed validation) fails at once: the second CA gets no order', async () => {
  // The first CA validates bad.example.com at an address where nothing answers.
  await first.clearA('bad.example.com');
  await first.addA('bad.example.com', ['127.0.0.9']);
  const ordersAtFirst = first.ordersAdded();
  const r = await acmed.cli(['issue', 'bad.example.com']);
  assert.equal(r.code, 1, r.stdout);
  assert.equal(first.ordersAdded(), ordersAtFirst + 1);
  assert.equal(second.ordersAdded(), 0, 'no fallback for the requester\'s fault');
  assert.doesNotMatch(acmed.logs(), /falling back to the next CA/);
});

test('the first CA stopped: issued through the second, with its own account, logged, counted and shown', async () => {
  await first.kill();
  const issued = await json<{ ca: string }>(['issue', 'two.example.com']);
  assert.equal(issued.ca, second.directoryUrl);
  assert.equal((await json<Row>(['show', 'two.example.com'])).ca, second.directoryUrl);
  assert.equal(second.ordersAdded(), 1);

  const line = acmed.logs().split('\n').find((l) => l.includes('falling back to the next CA'));
  assert.ok(line, 'a fallback line in the log');
  const entry = JSON.parse(line) as { level: number; from: string; to: string; reason: string };
  assert.equal(entry.level, 40, 'at warn');
  assert.equal(entry.from, first.directoryUrl);
  assert.equal(entry.to, second.directoryUrl);
  assert.ok(entry.reason.length > 0);
  assert.match(await metrics(), new RegExp(`acmed_ca_fallbacks_total\\{from="${first.directoryUrl}",to="${second.directoryUrl}"\\} 1\\b`));

  // Two accounts: the first CA's at the legacy keys, the second's under its own prefix.
  const legacy = JSON.parse((await storage.get(keys.accountUrl))!) as { directoryUrl: string; url: string };
  const own = JSON.parse((await storage.get(accountKeysFor(second.directoryUrl, first.directoryUrl).url))!) as { directoryUrl: string; url: string };
  assert.equal(legacy.directoryUrl, first.directoryUrl);
  assert.equal(own.directoryUrl, second.directoryUrl);
  assert.notEqual(await storage.get(accountKeysFor(second.directoryUrl, first.directoryUrl).key), await storage.get(keys.accountKey));
  const shown = await json<{ url: string; ca: string }>(['account', 'show', '--ca', second.directoryUrl]);
  assert.equal(shown.ca, second.directoryUrl);
  assert.equal(shown.url, own.url);
  const unknown = await acmed.cli(['account', 'show', '--ca', 'https://elsewhere.test/dir']);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /https:\/\/elsewhere\.test\/dir is not one of the CAs in api_uri/);

  const summary = await json<Summary>(['status']);
  assert.deepEqual(summary.cas.map((c) => [c.url, c.up]), [[first.directoryUrl, false], [second.directoryUrl, true]]);
});

test('the first CA answers again: a renewal goes back to it', async () => {
  await first.start(); // same port; it has forgotten acmed's account, which acmed registers again
  // The daemon probes the first CA when its backoff ends (2 s doubling): wait for that, not for a clock.
  await waitFor('the first CA to be up again', async () => (await json<Summary>(['status'])).cas[0]?.up, {
    timeoutMs: 45_000, intervalMs: 250, context: () => acmed.logs().slice(-2000),
  });
  const before = second.ordersAdded();
  const renewed = await json<{ ca: string }>(['issue', 'two.example.com', '--force']);
  assert.equal(renewed.ca, first.directoryUrl);
  assert.equal((await json<Row>(['show', 'two.example.com'])).ca, first.directoryUrl);
  assert.equal(second.ordersAdded(), before, 'the second CA was not asked');
});
