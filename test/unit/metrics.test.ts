// GET /metrics from the in-memory index: aggregates always, per-certificate
// series only while metrics.per_certificate is on; counters that count; and
// the whole exposition through promtool's own checker.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { createMetrics } from '../../src/admin/metrics.js';
import type { DeployHooks } from '../../src/daemon/deploy-hooks.js';
import type { Issuer } from '../../src/daemon/issuer.js';
import { createLogger } from '../../src/log.js';
import { CaBackoffs } from '../../src/renewal/ca-backoffs.js';
import { missingRecord, type IndexRecord } from '../../src/renewal/index-record.js';
import { CertificateIndex } from '../../src/renewal/index.js';
import type { StoreHealth } from '../../src/storage/health.js';
import { createMemoryStorage } from '../../src/storage/memory.js';

const DAY = 86_400_000;
const now = Date.parse('2026-06-01T00:00:00Z');

function stored(name: string, daysLeft: number, extra: Partial<IndexRecord> = {}): IndexRecord {
  return {
    ...missingRecord(name, [name], new Date(now)),
    notBefore: new Date(now - 30 * DAY).toISOString(), notAfter: new Date(now + daysLeft * DAY).toISOString(),
    serial: `s-${name}`, issuer: 'CN=test', renewAt: new Date(now + (daysLeft - 30) * DAY).toISOString(), renewReason: 'lifetime-fraction', ...extra,
  };
}

async function setUp(perCertificate: boolean, queued: string[] = [], stats = { hits: 0, misses: 0 }) {
  const index = new CertificateIndex({ storage: createMemoryStorage(), log: createLogger('silent'), now: () => now, policy: () => ({ renewThresholdDays: null }) });
  await index.put(stored('a.example.com', 60));
  await index.put(stored('b.example.com', 10));
  await index.put(stored('c.example.com', -2));
  await index.put(missingRecord('d.example.com', ['d.example.com'], new Date(now)));
  await index.put(stored('e.example.com', 40, { backoff: { failures: 2, until: new Date(now + DAY).toISOString(), lastError: 'x', lastKind: 'dns', lastFailureAt: new Date(now).toISOString() } }));
  const issuer = new EventEmitter();
  const metrics = createMetrics({
    issuer: issuer as unknown as Issuer, hooks: new EventEmitter() as unknown as DeployHooks, index, ca: new CaBackoffs(() => ['https://ca.test/dir'], { now: () => now }),
    queue: { pending: queued, running: [] }, now: () => now, perCertificate: () => perCertificate,
    challengeStats: () => stats, storageHealth: () => ({ up: true, writable: true } as StoreHealth),
  });
  return { registry: metrics, index, issuer };
}

const scrape = async (perCertificate: boolean, queued: string[] = []) => (await setUp(perCertificate, queued)).registry.metrics();

test('certificates are counted by state, and their days to expiry form a histogram', async () => {
  const text = await scrape(true, ['a.example.com']);
  for (const [state, count] of [['valid', 1], ['expired', 1], ['missing', 1], ['renewing', 1], ['failed', 1]] as const) {
    assert.match(text, new RegExp(`^acmed_certificates\\{state="${state}"\\} ${count}$`, 'm'), state);
  }
  assert.match(text, /^acmed_certificate_expiry_seconds_bucket\{le="0"\} 1$/m, 'the expired one');
  assert.match(text, /^acmed_certificate_expiry_seconds_bucket\{le="1209600"\} 2$/m);
  assert.match(text, /^acmed_certificate_expiry_seconds_bucket\{le="3888000"\} 3$/m);
  assert.match(text, /^acmed_certificate_expiry_seconds_bucket\{le="\+Inf"\} 4$/m, 'the missing one has no expiry');
  assert.match(text, /^acmed_certificate_expiry_seconds_count 4$/m);
  assert.match(text, new RegExp(`^acmed_certificate_expiration_timestamp_seconds\\{name="b.example.com"\\} ${(now + 10 * DAY) / 1000}$`, 'm'));
  assert.match(text, new RegExp(`^acmed_certificate_renewal_timestamp_seconds\\{name="b.example.com"\\} ${(now - 20 * DAY) / 1000}$`, 'm'));
});

test('a second scrape reports the index as it is then, not an accumulation', async () => {
  const { registry, index } = await setUp(true);
  assert.match(await registry.metrics(), /^acmed_certificate_expiry_seconds_count 4$/m);
  await index.remove('a.example.com');
  const second = await registry.metrics();
  assert.match(second, /^acmed_certificate_expiry_seconds_count 3$/m);
  assert.match(second, /^acmed_certificates\{state="valid"\} 1$/m);
  assert.doesNotMatch(second, /name="a.example.com"/);
});

test('metrics.per_certificate: false drops the per-certificate series and keeps the aggregates', async () => {
  const text = await scrape(false);
  assert.doesNotMatch(text, /name="/);
  assert.match(text, /^acmed_certificates\{state="valid"\} 2$/m);
  assert.match(text, /^acmed_certificate_expiry_seconds_count 4$/m);
});

test('the exposition stays well-formed text format with the per-certificate series appended', async () => {
  const text = await scrape(true);
  const families = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const type = /^# TYPE (\w+) (counter|gauge|histogram|summary)$/.exec(line);
    if (type) {
      families.set(type[1], (families.get(type[1]) ?? 0) + 1);
      continue;
    }
    if (line.startsWith('# HELP ')) continue;
    assert.match(line, /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*",?)*\})? ([-+]?[0-9.e+-]+|[-+]?Inf|NaN|Nan)$/, line);
  }
  assert.ok([...families.values()].every((n) => n === 1), 'each family declared once');
  assert.equal(families.get('acmed_certificate_expiration_timestamp_seconds'), 1);
});

/** Runs `promtool check metrics` on the text: its lint fails on wrong types, suffixes, duplicate families. */
function promtoolCheck(text: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = execFile('promtool', ['check', 'metrics'], (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, output: `${stdout}${stderr}` });
    });
    child.stdin!.end(text);
  });
}

function failedEvent(name: string, kind: string, blame: 'host' | 'ca' | 'store', ordered: boolean, code?: string) {
  return { type: 'failed', name, names: [name], error: Object.assign(new Error('x'), code ? { code } : {}), kind, blame, ordered };
}

test('promtool check metrics passes the whole exposition, counters and per-certificate series included', async () => {
  const { registry, issuer } = await setUp(true, [], { hits: 3, misses: 1 });
  registry.observeAcmeRequest({ action: 'new_order', method: 'POST', status: '201', seconds: 0.02 });
  registry.observeAcmeRequest({ action: 'get_directory', method: 'GET', status: 'error', seconds: 1 });
  registry.observeOnDemand('started');
  issuer.emit('outcome', failedEvent('e.example.com', 'unauthorized', 'host', true));
  issuer.emit('fallback', { from: 'https://a.test/dir', to: 'https://b.test/dir', error: new Error('down'), skipped: false });
  const text = await registry.metrics();
  assert.match(text, /^acmed_ca_fallbacks_total\{from="https:\/\/a\.test\/dir",to="https:\/\/b\.test\/dir"\} 1$/m);
  const { code, output } = await promtoolCheck(text);
  assert.equal(output, '');
  assert.equal(code, 0);
  // The checker really reads the text: a counter without _total is refused.
  const bad = await promtoolCheck('# HELP x_count x\n# TYPE x_count counter\nx_count 1\n');
  assert.notEqual(bad.code, 0);
  assert.match(bad.output, /_total/);
});

test('the counters are counters, and the http-01 counter keeps counting across scrapes', async () => {
  const stats = { hits: 3, misses: 1 };
  const { registry } = await setUp(true, [], stats);
  registry.observeAcmeRequest({ action: 'new_order', method: 'POST', status: '201', seconds: 0.02 });
  registry.observeAcmeRequest({ action: 'new_order', method: 'POST', status: '201', seconds: 0.03 });
  const first = await registry.metrics();
  for (const name of ['acmed_acme_client_request_count_total', 'acmed_http01_requests_total', 'acmed_issuance_failures_total', 'acmed_orders_total']) {
    assert.match(first, new RegExp(`^# TYPE ${name} counter$`, 'm'), name);
  }
  assert.match(first, /^# TYPE acmed_acme_client_request_duration_seconds histogram$/m);
  assert.match(first, /^acmed_acme_client_request_count_total\{action="new_order",method="POST",status="201"\} 2$/m);
  assert.match(first, /^acmed_acme_client_request_duration_seconds_count\{action="new_order"\} 2$/m);
  assert.match(first, /^acmed_http01_requests_total\{result="hit"\} 3$/m);
  stats.hits = 10;
  stats.misses = 4;
  const second = await registry.metrics();
  assert.match(second, /^acmed_http01_requests_total\{result="hit"\} 10$/m);
  assert.match(second, /^acmed_http01_requests_total\{result="miss"\} 4$/m);
  assert.match(second, /^process_cpu_seconds_total \d/m, 'process metrics, unprefixed');
  assert.doesNotMatch(second, /^acmed_(acme_requests|http01_lookups|certificate_not_after_seconds|certificate_renew_at_seconds)\b/m);
});

test('orders_total counts orders only; refusals before ordering count as issuance failures, not orders', async () => {
  const { registry, issuer } = await setUp(true);
  issuer.emit('outcome', { type: 'skipped', name: 'e.example.com', names: ['e.example.com'], reason: 'backoff', error: new Error('backed off') });
  issuer.emit('outcome', failedEvent('e.example.com', 'internal', 'ca', false, 'CA_UNAVAILABLE'));
  issuer.emit('outcome', failedEvent('e.example.com', 'unauthorized', 'host', true));
  issuer.emit('outcome', failedEvent('e.example.com', 'unauthorized', 'host', true));
  issuer.emit('outcome', failedEvent('b.example.com', 'internal', 'store', false));
  const text = await registry.metrics();
  assert.doesNotMatch(text, /^acmed_orders_total\{result="failed",kind="internal"\}/m, 'nothing was ordered for these');
  assert.match(text, /^acmed_orders_total\{result="failed",kind="unauthorized"\} 2$/m);
  assert.match(text, /^acmed_issuance_failures_total\{name="e.example.com",reason="unauthorized"\} 2$/m);
  assert.match(text, /^acmed_issuance_failures_total\{name="e.example.com",reason="ca_unavailable"\} 1$/m);
  assert.match(text, /^acmed_issuance_failures_total\{name="b.example.com",reason="store"\} 1$/m);
});

test('ready status and backoff per certificate, as cert-manager shows readiness', async () => {
  const text = await scrape(true);
  const ready = (name: string, condition: string) => Number(new RegExp(`^acmed_certificate_ready_status\\{name="${name}",condition="${condition}"\\} (\\d)$`, 'm').exec(text)?.[1]);
  assert.equal(ready('a.example.com', 'True'), 1);
  assert.equal(ready('a.example.com', 'False'), 0);
  assert.equal(ready('c.example.com', 'True'), 0, 'expired');
  assert.equal(ready('c.example.com', 'False'), 1);
  assert.equal(ready('d.example.com', 'False'), 1, 'missing');
  assert.equal(ready('d.example.com', 'Unknown'), 0);
  assert.match(text, new RegExp(`^acmed_backoff_until_timestamp_seconds\\{name="e.example.com"\\} ${(now + DAY) / 1000}$`, 'm'));
  assert.doesNotMatch(text, /^acmed_backoff_until_timestamp_seconds\{name="a.example.com"\}/m);
});

test('metrics.per_certificate: false also hides the failure counter per name', async () => {
  const { registry, issuer } = await setUp(false);
  issuer.emit('outcome', failedEvent('e.example.com', 'unauthorized', 'host', true));
  const text = await registry.metrics();
  assert.doesNotMatch(text, /name="/);
  assert.match(text, /^acmed_orders_total\{result="failed",kind="unauthorized"\} 1$/m);
  assert.equal((await promtoolCheck(text)).code, 0);
});
