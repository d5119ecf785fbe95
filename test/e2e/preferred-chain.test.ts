// preferred_chain against Pebble with an alternate root (PEBBLE_ALTERNATE_ROOTS):
// the chain whose top issuer matches is stored; an unknown name keeps the
// default chain.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../harness/ports.js';
import { startPebble, type PebbleHandle } from '../harness/pebble.js';
import { baseConfig, startAcmed, type AcmedHandle } from '../harness/acmed.js';

let pebble: PebbleHandle;
let httpPort: number;
let dir: string;
const daemons: AcmedHandle[] = [];

before(async () => {
  httpPort = await freePort();
  pebble = await startPebble({ httpPort, env: { PEBBLE_ALTERNATE_ROOTS: '1' } });
  dir = await mkdtemp(join(tmpdir(), 'acmed-chain-'));
});

after(async () => {
  for (const d of daemons) await d.stop();
  await pebble?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** The issuer CN at the top of the stored chain (what preferred_chain names). */
async function topIssuer(storagePath: string, name: string): Promise<string> {
  const chain = await readFile(join(storagePath, 'live', name, 'chain.pem'), 'utf8');
  const certs = chain.split(/(?<=-----END CERTIFICATE-----)\s*/).filter((c) => c.includes('BEGIN'));
  return /CN=([^\n]+)/.exec(new X509Certificate(certs.at(-1)!).issuer)![1];
}

async function issueWith(preferred: string | null, name: string): Promise<string> {
  const sub = await mkdtemp(join(dir, 'd-'));
  const acmed = await startAcmed({
    ...baseConfig({ dir: sub, directoryUrl: pebble.directoryUrl, caBundlePath: pebble.caBundlePath, httpPort }),
    preferred_chain: preferred,
  }, sub);
  daemons.push(acmed);
  const r = await acmed.cli(['issue', name]);
  assert.equal(r.code, 0, r.stderr);
  const top = await topIssuer(acmed.storagePath, name);
  await acmed.stop();
  return top;
}

test('the chain whose top issuer is preferred_chain is stored; an unknown one keeps the default', async () => {
  const defaultTop = await issueWith(null, 'default.example.com');
  const roots = [await pebble.rootPem(0), await pebble.rootPem(1)].map((pem) => /CN=([^\n]+)/.exec(new X509Certificate(pem).subject)![1]);
  assert.equal(roots.length, 2);
  const alternate = roots.find((cn) => cn !== defaultTop)!;
  assert.ok(alternate, `an alternate root besides ${defaultTop}: ${roots.join(', ')}`);
  assert.equal(await issueWith(alternate, 'preferred.example.com'), alternate);
  assert.equal(await issueWith('No Such Root CA', 'unknown.example.com'), defaultTop);
});
