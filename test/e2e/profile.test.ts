// ACME profiles against a stand-in in front of Pebble (Pebble 2.4 has none):
// the directory lists `meta.profiles`; a certificate's profile is sent in its
// newOrder, one the CA does not list is reported at start and refused before
// any order, and `check-config --online` finds it at its line.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort } from '../harness/ports.js';
import { startPebble, type PebbleHandle } from '../harness/pebble.js';
import { startAriProxy, type AriProxy } from '../harness/ari-proxy.js';
import { baseConfig, runCli, startAcmed, type AcmedHandle } from '../harness/acmed.js';
import { waitFor } from '../harness/wait.js';

let pebble: PebbleHandle;
let proxy: AriProxy;
let dir: string;
let acmed: AcmedHandle;
let config: Record<string, unknown>;

before(async () => {
  const httpPort = await freePort();
  pebble = await startPebble({ httpPort });
  proxy = await startAriProxy({
    target: pebble.acmeUrl, targetCa: pebble.ca.certPem, tls: await pebble.issueServerCert('profile-proxy'),
    profiles: { classic: 'the 90-day default', shortlived: 'six days, IP addresses allowed' },
  });
  dir = await mkdtemp(join(tmpdir(), 'acmed-profile-'));
  config = {
    ...baseConfig({ dir, directoryUrl: `${proxy.url}/dir`, caBundlePath: pebble.caBundlePath, httpPort }),
    ecc_curve: 'P-384',
    certificates: [
      { names: ['short.example.com'], profile: 'shortlived', ecc_curve: 'P-256' },
      { names: ['typo.example.com'], profile: 'shortlivd' },
    ],
  };
  acmed = await startAcmed(config, dir);
});

after(async () => {
  await acmed?.stop();
  await proxy?.close();
  await pebble?.stop();
  await rm(dir, { recursive: true, force: true });
});

test('a certificate\'s profile goes into its newOrder; others carry none', async () => {
  const r = await acmed.cli(['issue', 'short.example.com']);
  assert.equal(r.code, 0, r.stderr);
  const order = proxy.orders().find((o) => JSON.stringify(o.identifiers).includes('short.example.com'));
  assert.equal(order?.profile, 'shortlived');
  const plain = await acmed.cli(['issue', 'plain.example.com']);
  assert.equal(plain.code, 0, plain.stderr);
  const other = proxy.orders().find((o) => JSON.stringify(o.identifiers).includes('plain.example.com'));
  assert.ok(other && !('profile' in other), 'no profile without one configured');
});

test('a profile the CA does not list is said at start and refused before any order', async () => {
  await waitFor('the profile error at start', () => acmed.logs().includes('the CA does not offer this profile'));
  assert.match(acmed.logs(), /"profile":"shortlivd","config_key":"certificates\.1\.profile"/);
  const ordersBefore = proxy.orders().length;
  const r = await acmed.cli(['issue', 'typo.example.com']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /offers no profile "shortlivd" \(it lists: classic, shortlived\)/);
  assert.equal(proxy.orders().length, ordersBefore, 'no newOrder for it');
});

test('check-config --online reports the unknown profile at its line; without --online the file is fine', async () => {
  const file = join(dir, 'online.yaml');
  await writeFile(file, stringify(config));
  const offline = await runCli(['check-config', '--config', file]);
  assert.equal(offline.code, 0, offline.stderr);
  const online = await runCli(['check-config', '--online', '--config', file]);
  assert.equal(online.code, 1);
  const line = stringify(config).split('\n').findIndex((l) => l.includes('shortlivd')) + 1;
  assert.match(online.stderr, new RegExp(`^${file}:${line}:\\d+: certificates\\.1\\.profile: the CA at .* offers no profile "shortlivd"`));
  assert.doesNotMatch(online.stderr, /"shortlived"/, 'the listed profile is fine');
});

test('check-config --online with several CAs reads every directory: a profile only the fallback CA lacks is a warning', async () => {
  const file = join(dir, 'online-two.yaml');
  // Pebble itself lists no profiles: as the second CA it only draws a warning.
  const two = { ...config, api_uri: [`${proxy.url}/dir`, pebble.directoryUrl], certificates: [{ names: ['short.example.com'], profile: 'shortlived' }] };
  await writeFile(file, stringify(two));
  const online = await runCli(['check-config', '--online', '--config', file]);
  assert.equal(online.code, 0, online.stderr);
  assert.match(online.stdout, new RegExp(`warning: ${file}:\\d+:\\d+: certificates\\.0\\.profile: the CA at ${pebble.directoryUrl} offers no profile "shortlived".*skip this fallback CA`));
  // A second CA that cannot be read is a problem at its entry.
  await writeFile(file, stringify({ ...two, api_uri: [`${proxy.url}/dir`, 'https://127.0.0.1:1/dir'] }));
  const down = await runCli(['check-config', '--online', '--config', file]);
  assert.equal(down.code, 1);
  assert.match(down.stderr, /api_uri: cannot read the directory of https:\/\/127\.0\.0\.1:1\/dir/);
});

test('the keys follow the settings: P-384 globally, P-256 where the certificate says so', async () => {
  const { createPrivateKey } = await import('node:crypto');
  const { readFile } = await import('node:fs/promises');
  const curve = async (name: string) => createPrivateKey(await readFile(join(acmed.storagePath, 'live', name, 'privkey.pem'))).asymmetricKeyDetails?.namedCurve;
  assert.equal(await curve('short.example.com'), 'prime256v1');
  assert.equal(await curve('plain.example.com'), 'secp384r1');
});
