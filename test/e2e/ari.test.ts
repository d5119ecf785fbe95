// ARI (RFC 9773) end to end: Pebble 2.4 has no renewalInfo, so the daemon
// talks to it through ari-proxy.ts, which adds one and lets the test set the
// CA's suggested window per certificate. An in-process daemon with a clock
// the test moves runs the renewal loop every second.
//
// The tests run in order on one certificate lineage: each renewal makes the
// certificate the next test works with. The clock only ever moves forward by
// hours, so Pebble's fresh 5-year certificates never look old under it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { get } from 'node:https';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { freePort } from '../harness/ports.js';
import { startPebble, type PebbleHandle } from '../harness/pebble.js';
import { startAriProxy, type AriProxy } from '../harness/ari-proxy.js';
import { baseConfig } from '../harness/acmed.js';
import { parseConfig } from '../../src/config/load.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { createLogger } from '../../src/log.js';
import { ariCertId } from '../../src/renewal/ari.js';
import { waitFor as waitForCondition } from '../harness/wait.js';

const NAME = 'ari.example.com';
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

let pebble: PebbleHandle;
let proxy: AriProxy;
let dir: string;
let daemon: Daemon;
let clock = Date.now();
let logText = '';
/** The window served for the first certificate (set before the daemon starts). */
let firstWindow: { start: number; end: number };
let firstCertId: string;

const waitFor = <T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 30_000) =>
  waitForCondition(what, fn, { timeoutMs, context: () => logText.slice(-3000) });

const certPem = async () => readFile(join(dir, 'data', 'live', NAME, 'cert.pem'), 'utf8').catch(() => undefined);
const serialOf = async () => new X509Certificate((await certPem())!).serialNumber;
const ariFetches = (certId: string) => proxy.ariRequests().filter((id) => id === certId).length;
/** The ARI answer kept in the certificate's index record (index/<name> in storage). */
const indexRecord = async () => JSON.parse((await daemon.storage.get(`index/${NAME}`))!) as {
  ari: { certId: string; windowStart: string; windowEnd: string; chosenTime: string; fetchAfter: string } | null;
  backoff: unknown; renewAt: string; renewReason: string;
};
const cachedAri = async () => {
  const { ari } = await indexRecord();
  if (!ari) throw new Error('no ARI answer in the index record yet');
  return ari;
};

/** Waits until the live certificate is no longer the one with `serial`, and returns its PEM. */
async function waitForRenewal(serial: string, what: string): Promise<string> {
  return waitFor(what, async () => {
    const pem = await certPem();
    return pem && new X509Certificate(pem).serialNumber !== serial ? pem : undefined;
  });
}

/** Waits until the daemon has asked renewalInfo about `certId` at least `count` times. */
const waitForAriFetches = (certId: string, count: number, what: string) =>
  waitFor(what, async () => ariFetches(certId) >= count);

before(async () => {
  const httpPort = await freePort();
  pebble = await startPebble({ httpPort });
  proxy = await startAriProxy({ target: pebble.acmeUrl, targetCa: pebble.ca.certPem, tls: await pebble.issueServerCert('ari-proxy') });
  // The first certificate's certID is unknown until it is issued, and the
  // daemon asks about it right after, so its window is served as the default.
  firstWindow = { start: clock + HOUR, end: clock + 2 * HOUR };
  proxy.setDefaultWindow(firstWindow);
  dir = await mkdtemp(join(tmpdir(), 'acmed-ari-'));
  const config = parseConfig(stringify({
    ...baseConfig({ dir, directoryUrl: `${proxy.url}/dir`, caBundlePath: pebble.caBundlePath, httpPort }),
    certificates: [{ names: [NAME] }],
    renewal_schedule: '* * * * * *', // every second, so the test sees the loop act
  }));
  const stream = new PassThrough();
  stream.on('data', (d: Buffer) => { logText += d.toString(); });
  daemon = await Daemon.start({ config, log: createLogger('debug', stream), now: () => clock });
});

after(async () => {
  await daemon?.stop();
  await proxy?.close();
  await pebble?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('the directory served through the proxy advertises renewalInfo', async () => {
  const directory = await new Promise<Record<string, string>>((resolve, reject) => {
    get(`${proxy.url}/dir`, { ca: pebble.ca.certPem }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (s: string) => { body += s; }).on('end', () => resolve(JSON.parse(body) as Record<string, string>));
    }).on('error', reject);
  });
  assert.equal(directory.renewalInfo, `${proxy.url}/renewal-info`);
  assert.equal(directory.newOrder, `${proxy.url}/order-plz`, 'Pebble\'s own URLs point back at the proxy');
});

test('the daemon asks renewalInfo by the RFC 9773 certID, and the ARI window decides when to renew', async () => {
  const pem = (await waitFor('the first certificate', certPem))!;
  const certId = ariCertId(pem);
  firstCertId = certId;
  await waitForAriFetches(certId, 1, 'renewalInfo for the first certificate');
  assert.deepEqual([...new Set(proxy.ariRequests())], [certId], 'only this certificate was asked about');
  // Pin its window and serve far-future windows to whatever comes next.
  proxy.setWindow(certId, firstWindow);
  proxy.setDefaultWindow(null);

  const cached = await waitFor('the cached ARI answer', () => cachedAri().catch(() => undefined));
  assert.equal(cached.certId, certId);
  assert.equal(Date.parse(cached.windowStart), firstWindow.start);
  assert.equal(Date.parse(cached.windowEnd), firstWindow.end);
  const chosen = Date.parse(cached.chosenTime);
  assert.ok(chosen >= firstWindow.start && chosen < firstWindow.end, `chosen time ${cached.chosenTime} lies in the window`);
  // Due at the time chosen in the window, not with 1/3 of the 5-year lifetime left.
  await waitFor('the renewer to plan the chosen time', async () => daemon.renewer.renewAt(NAME)?.getTime() === chosen);
  assert.equal((await indexRecord()).renewReason, 'ari');

  const serial = new X509Certificate(pem).serialNumber;
  clock = chosen - MINUTE;
  await sleep(2500); // two or three passes
  assert.equal(await serialOf(), serial, 'nothing renews before the chosen time');

  const fetched = ariFetches(certId);
  clock = firstWindow.end + MINUTE;
  await waitForRenewal(serial, 'renewal once the clock passes the window');
  assert.equal(ariFetches(certId), fetched, 'the cached answer (no Retry-After: 6 hours) was used, not fetched again');
  assert.match(logText, /certificate issued/);
});

test('the renewal order names the replaced certificate in "replaces"', async () => {
  const orders = proxy.orders();
  assert.equal(orders.length, 2, JSON.stringify(orders));
  const [first, renewal] = orders;
  assert.equal(first!.replaces, undefined, 'the first order replaces nothing');
  assert.equal(renewal!.replaces, firstCertId);
  assert.deepEqual(renewal!.identifiers, [{ type: 'dns', value: NAME }]);
});

test('on "alreadyReplaced" the daemon orders again without "replaces" and the renewal succeeds', async () => {
  const pem = (await certPem())!;
  const certId = ariCertId(pem);
  await waitForAriFetches(certId, 1, 'renewalInfo for the second certificate');
  // The default far-future window came without Retry-After: cached for 6 hours.
  const cached = await waitFor('the cached answer for the second certificate', async () => {
    const record = await cachedAri().catch(() => undefined);
    if (!record) return undefined;
    return record.certId === certId ? record : undefined;
  });
  assert.equal(Date.parse(cached.fetchAfter), clock + 6 * HOUR);

  // A window that is already over when the daemon next asks: renew at once.
  proxy.setWindow(certId, { start: clock + 5 * HOUR, end: clock + 6 * HOUR });
  proxy.failNextReplacesWith('alreadyReplaced');
  const ordersBefore = proxy.orders().length;
  clock += 6 * HOUR + MINUTE;
  await waitForRenewal(new X509Certificate(pem).serialNumber, 'renewal after alreadyReplaced');

  const orders = proxy.orders().slice(ordersBefore);
  assert.equal(orders.length, 2, JSON.stringify(orders));
  assert.equal(orders[0]!.replaces, certId, 'first try names the old certificate');
  assert.equal('replaces' in orders[1]!, false, 'the retry leaves "replaces" out');
  assert.deepEqual(orders[1]!.identifiers, orders[0]!.identifiers);
  assert.match(logText, /CA says the certificate was already replaced; ordering without/);
  assert.equal((await indexRecord()).backoff, null, 'the refusal is not recorded as a failure');
});

test('Retry-After on renewalInfo is honoured: no re-fetch on every pass, a re-fetch once it has passed', async () => {
  const pem = (await certPem())!;
  const certId = ariCertId(pem);
  const serial = new X509Certificate(pem).serialNumber;
  await waitForAriFetches(certId, 1, 'renewalInfo for the third certificate');
  await waitFor('the cached answer for the third certificate', async () => (await cachedAri().catch(() => undefined))?.certId === certId);
  proxy.setWindow(certId, { start: clock + 3 * 365 * 24 * HOUR, end: clock + 3 * 365 * 24 * HOUR + HOUR }, 3600);

  // Past the 6-hour default of the first answer: asked again, now told to wait an hour.
  clock += 6 * HOUR + MINUTE;
  await waitForAriFetches(certId, 2, 'a second renewalInfo request after the cached answer ran out');
  const askedAt = clock;
  await waitFor('the cache to take the Retry-After', async () => Date.parse((await cachedAri().catch(() => undefined))?.fetchAfter ?? '') === askedAt + HOUR);

  await sleep(3500); // three or four passes with the clock standing still
  assert.equal(ariFetches(certId), 2, 'no re-fetch while Retry-After runs');

  clock += 30 * MINUTE;
  await sleep(2500);
  assert.equal(ariFetches(certId), 2, 'still none halfway through');

  clock = askedAt + HOUR + MINUTE;
  await waitForAriFetches(certId, 3, 'a re-fetch once Retry-After has passed');
  await sleep(2500);
  assert.equal(ariFetches(certId), 3, 'and then none again for another hour');
  assert.equal(await serialOf(), serial, 'the far-future window renews nothing');
});
