// External account binding against Pebble in EAB-required mode: acmed
// registers with eab_kid / eab_hmac_key, never logs the HMAC key, and without
// them gets a clear error instead of an account.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../harness/ports.js';
import { startPebble } from '../harness/pebble.js';
import { baseConfig, startAcmed } from '../harness/acmed.js';

test('EAB-required CA: registers with the binding, and refuses clearly without it', { timeout: 60_000 }, async (t) => {
  const httpPort = await freePort();
  const hmacKey = randomBytes(32).toString('base64url');
  const pebble = await startPebble({ httpPort, eab: { 'kid-acmed': hmacKey } });
  t.after(() => pebble.stop());

  const dir = await mkdtemp(join(tmpdir(), 'acmed-eab-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const base = baseConfig({ dir, directoryUrl: pebble.directoryUrl, caBundlePath: pebble.caBundlePath, httpPort });

  const without = await startAcmed(base, dir);
  const refused = await without.cli(['issue', 'eab.example.com']);
  await without.stop();
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /^acmed: ACME order failed: externalAccountRequired/);

  const withEab = await startAcmed({ ...base, eab_kid: 'kid-acmed', eab_hmac_key: hmacKey }, dir);
  t.after(() => withEab.stop());
  const issued = await withEab.cli(['issue', 'eab.example.com']);
  assert.equal(issued.code, 0, issued.stderr);
  assert.ok(existsSync(join(withEab.storagePath, 'live', 'eab.example.com', 'fullchain.pem')));
  assert.ok(!withEab.logs().includes(hmacKey), 'the HMAC key must never reach the log');
  assert.match(withEab.logs(), /registered ACME account/);
});
