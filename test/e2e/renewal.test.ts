// The renewal loop, backoff and deploy hook, end to end against Pebble with
// an in-process daemon whose clock the test moves (Pebble's certificates
// last 5 years; nobody waits for that).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../harness/ports.js';
import { startPebble, type PebbleHandle } from '../harness/pebble.js';
import { baseConfig } from '../harness/acmed.js';
import { parseConfig } from '../../src/config/load.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { createLogger } from '../../src/log.js';
import { stringify } from 'yaml';
import { waitFor as waitForCondition } from '../harness/wait.js';

let pebble: PebbleHandle;
let dir: string;
let daemon: Daemon;
let clock = Date.now();
let logText = '';
let hookLog: string;

const waitFor = <T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 30_000) =>
  waitForCondition(what, fn, { timeoutMs, context: () => logText.slice(-3000) });

const certOf = async (name: string) => readFile(join(dir, 'data', 'live', name, 'cert.pem'), 'utf8').catch(() => undefined);
const hookRuns = async () => (await readFile(hookLog, 'utf8').catch(() => '')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, string>);

before(async () => {
  const httpPort = await freePort();
  pebble = await startPebble({ httpPort });
  dir = await mkdtemp(join(tmpdir(), 'acmed-renewal-'));
  hookLog = join(dir, 'hook.log');
  const hook = join(dir, 'hook.sh');
  await writeFile(hook, `#!/bin/sh\nprintf '{"lineage":"%s","domains":"%s","host":"%s","notAfter":"%s"}\\n' "$RENEWED_LINEAGE" "$RENEWED_DOMAINS" "$ACMED_HOST" "$ACMED_NOT_AFTER" >> ${hookLog}\n`, { mode: 0o755 });
  // fail.example.com resolves to an address where nothing answers http-01.
  await pebble.addA('fail.example.com', ['127.0.0.9']);
  const config = parseConfig(stringify({
    ...baseConfig({ dir, directoryUrl: pebble.directoryUrl, caBundlePath: pebble.caBundlePath, httpPort }),
    domains: ['*.example.com'],
    certificates: [{ names: ['renew.example.com', 'www.renew.example.com'] }, { names: ['fail.example.com'] }, { names: ['ok.example.com'] }],
    renewal_schedule: '* * * * * *', // every second, so the test sees the loop act
    deploy_hook: hook,
    haproxy_pem: true,
    fail_backoff_minutes: 10,
  }));
  const stream = new PassThrough();
  stream.on('data', (d: Buffer) => { logText += d.toString(); });
  daemon = await Daemon.start({ config, log: createLogger('debug', stream), now: () => clock });
});

after(async () => {
  await daemon?.stop();
  await pebble?.stop();
  await rm(dir, { recursive: true, force: true });
});

test('configured certificates are issued at start and the deploy hook gets certbot\'s variables', async () => {
  await waitFor('renew.example.com', () => certOf('renew.example.com'));
  await waitFor('ok.example.com', () => certOf('ok.example.com'));
  const runs = await waitFor('hook runs', async () => ((await hookRuns()).length >= 2 ? hookRuns() : undefined));
  const run = runs.find((r) => r.host === 'renew.example.com');
  assert.ok(run, JSON.stringify(runs));
  assert.equal(run.lineage, join(dir, 'data', 'live', 'renew.example.com'));
  assert.equal(run.domains, 'renew.example.com www.renew.example.com');
  const cert = new X509Certificate(await certOf('renew.example.com') as string);
  assert.equal(new Date(run.notAfter).getTime(), new Date(cert.validTo).getTime());
  const live = join(dir, 'data', 'live', 'renew.example.com');
  const combined = await readFile(join(live, 'combined.pem'), 'utf8');
  assert.equal(combined, await readFile(join(live, 'fullchain.pem'), 'utf8') + await readFile(join(live, 'privkey.pem'), 'utf8'));
});

test('a failing host backs off, does not block the healthy ones, and is refused until --force', async () => {
  const status = await waitFor('fail.example.com in backoff', async () => {
    const rows = daemon.certificates().rows;
    const row = rows.find((r) => r.host === 'fail.example.com');
    return row?.status === 'failed' ? row : undefined;
  }, 60_000);
  assert.equal(status.failures, 1);
  assert.match(status.last_error ?? '', /fail\.example\.com/);
  const until = Date.parse(status.backoff_until!);
  assert.ok(Math.abs(until - (clock + 10 * 60_000)) < 60_000, `backoff ${status.backoff_until} should be ~10 min after the failure`);
  assert.ok(await certOf('ok.example.com'), 'the healthy certificate is issued despite the failing one');

  await assert.rejects(daemon.issue('fail.example.com'), /failure backoff .* next try after/);
  // --force tries again (and fails again, doubling the wait).
  await assert.rejects(daemon.issue('fail.example.com', true));
  // The backoff lives in the certificate's index record, in storage.
  const raw = await waitFor('the second failure in the index record', async () => {
    const record = JSON.parse((await daemon.storage.get('index/fail.example.com'))!).backoff;
    return record?.failures === 2 ? record : undefined;
  });
  assert.ok(Math.abs(Date.parse(raw.until) - (clock + 20 * 60_000)) < 60_000);
});

test('the loop renews a certificate once the clock nears its expiry, and runs the hook again', async () => {
  const before = new X509Certificate((await certOf('renew.example.com'))!);
  const hooksBefore = (await hookRuns()).filter((r) => r.host === 'renew.example.com').length;
  // The loop has run meanwhile and found nothing due.
  await sleep(1500);
  assert.equal(new X509Certificate((await certOf('renew.example.com'))!).serialNumber, before.serialNumber);

  clock = new Date(before.validTo).getTime() - 20 * 24 * 3_600_000; // 20 days left of 5 years: past 1/20
  const renewed = await waitFor('renewal by the loop', async () => {
    const cert = new X509Certificate((await certOf('renew.example.com'))!);
    if (cert.serialNumber === before.serialNumber) return undefined;
    // Back to the CA's time at once: under the moved clock the new certificate looks old too.
    clock = Date.now();
    return cert;
  });
  assert.ok(new Date(renewed.validTo) > new Date(before.validTo));
  const hooks = await waitFor('hook after renewal', async () => {
    const runs = (await hookRuns()).filter((r) => r.host === 'renew.example.com');
    return runs.length > hooksBefore ? runs : undefined;
  });
  assert.equal(new Date(hooks.at(-1)!.notAfter).getTime(), new Date(renewed.validTo).getTime());
  // The new certificate is young: the next runs leave it alone.
  await sleep(2500);
  assert.equal(new X509Certificate((await certOf('renew.example.com'))!).serialNumber, renewed.serialNumber);
});
