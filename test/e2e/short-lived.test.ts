// Short lifetimes for real: Pebble issues 30-second certificates
// (certificateValidityPeriod) and acmed must renew each one before it
// expires, by its own timer, with no daily pass and no one asking; `acmed
// show` has a renewal time right after the certificate is stored and after a
// restart.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../harness/ports.js';
import { startPebble, type PebbleHandle } from '../harness/pebble.js';
import { baseConfig, startAcmed, type AcmedHandle } from '../harness/acmed.js';
import { waitFor } from '../harness/wait.js';

const NAME = 'short.example.com';
const LIFETIME_S = 30;

let dir: string;
let pebble: PebbleHandle;
let acmed: AcmedHandle;
let config: Record<string, unknown>;

before(async () => {
  const httpPort = await freePort();
  pebble = await startPebble({ httpPort, validitySeconds: LIFETIME_S });
  dir = await mkdtemp(join(tmpdir(), 'acmed-short-'));
  config = {
    ...baseConfig({ dir, directoryUrl: pebble.directoryUrl, caBundlePath: pebble.caBundlePath, httpPort }),
    certificates: [{ names: [NAME] }],
    renewal_schedule: '0 0 1 1 *', // the daily pass never runs during the test: only the scheduler's timer can renew
  };
  acmed = await startAcmed(config, dir);
});

after(async () => {
  await acmed?.stop();
  await pebble?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const liveCert = async () => {
  const pem = await readFile(join(dir, 'data', 'live', NAME, 'cert.pem'), 'utf8').catch(() => undefined);
  return pem ? new X509Certificate(pem) : undefined;
};

test('30-second certificates are renewed before they expire, and show always has a renewal time', async () => {
  const first = await waitFor('the first certificate', liveCert, { timeoutMs: 30_000 });
  const lifetime = Date.parse(first.validTo) - Date.parse(first.validFrom);
  assert.ok(lifetime <= (LIFETIME_S + 1) * 1000, `Pebble issued a ${lifetime} ms certificate`);

  const shown = JSON.parse((await acmed.cli(['show', NAME, '--json'])).stdout) as { renew_at: string | null; not_after: string };
  assert.ok(shown.renew_at, 'a renewal time as soon as the certificate is stored');
  assert.ok(Date.parse(shown.renew_at) < Date.parse(shown.not_after));

  // Watch for two lifetimes: the live certificate must never be expired, and must change at least twice.
  const serials = new Set([first.serialNumber]);
  const deadline = Date.now() + 2 * LIFETIME_S * 1000;
  while (Date.now() < deadline) {
    const cert = (await liveCert())!;
    assert.ok(Date.parse(cert.validTo) > Date.now(), `live certificate ${cert.serialNumber} expired at ${cert.validTo}`);
    serials.add(cert.serialNumber);
    await sleep(500);
  }
  assert.ok(serials.size >= 3, `renewed ${serials.size - 1} times in ${2 * LIFETIME_S} s`);

  // After a restart the renewal time is there at once, from the index.
  await acmed.stop();
  acmed = await startAcmed(config, dir);
  const again = JSON.parse((await acmed.cli(['show', NAME, '--json'])).stdout) as { renew_at: string | null; not_after: string };
  assert.ok(again.renew_at, 'a renewal time right after a restart');
  await waitFor('a renewal after the restart', async () => {
    const cert = await liveCert();
    return cert && !serials.has(cert.serialNumber);
  }, { timeoutMs: LIFETIME_S * 1000 });
});
