// GET /metrics from the in-memory index: aggregates always, per-certificate
// series only while metrics.per_certificate is on.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { createMetrics } from '../../src/admin/metrics.js';
import type { DeployHooks } from '../../src/daemon/deploy-hooks.js';
import type { Issuer } from '../../src/daemon/issuer.js';
import { createLogger } from '../../src/log.js';
import { CaBackoff } from '../../src/renewal/ca-backoff.js';
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

async function setUp(perCertificate: boolean, queued: string[] = []) {
  const index = new CertificateIndex({ storage: createMemoryStorage(), log: createLogger('silent'), now: () => now, policy: () => ({ renewThresholdDays: null }) });
  await index.put(stored('a.example.com', 60));
  await index.put(stored('b.example.com', 10));
  await index.put(stored('c.example.com', -2));
  await index.put(missingRecord('d.example.com', ['d.example.com'], new Date(now)));
  await index.put(stored('e.example.com', 40, { backoff: { failures: 2, until: new Date(now + DAY).toISOString(), lastError: 'x', lastKind: 'dns', lastFailureAt: new Date(now).toISOString() } }));
  const metrics = createMetrics({
    issuer: new EventEmitter() as unknown as Issuer, hooks: new EventEmitter() as unknown as DeployHooks, index, ca: new CaBackoff({ now: () => now }),
    queue: { pending: queued, running: [] }, now: () => now, perCertificate: () => perCertificate,
    acmeRequests: () => 0, challengeStats: () => ({ hits: 0, misses: 0 }), storageHealth: () => ({ up: true, writable: true } as StoreHealth),
  });
  return { registry: metrics, index };
}

const scrape = async (perCertificate: boolean, queued: string[] = []) => (await setUp(perCertificate, queued)).registry.metrics();

test('certificates are counted by state, and their days to expiry form a histogram', async () => {
  const text = await scrape(true, ['a.example.com']);
  for (const [state, count] of [['valid', 1], ['expired', 1], ['missing', 1], ['renewing', 1], ['failed', 1]] as const) {
    assert.match(text, new RegExp(`^acmed_certificates\\{state="${state}"\\} ${count}$`, 'm'), state);
  }
  assert.match(text, /^acmed_certificate_expiry_days_bucket\{le="0"\} 1$/m, 'the expired one');
  assert.match(text, /^acmed_certificate_expiry_days_bucket\{le="14"\} 2$/m);
  assert.match(text, /^acmed_certificate_expiry_days_bucket\{le="45"\} 3$/m);
  assert.match(text, /^acmed_certificate_expiry_days_bucket\{le="\+Inf"\} 4$/m, 'the missing one has no expiry');
  assert.match(text, /^acmed_certificate_expiry_days_count 4$/m);
  assert.match(text, /^acmed_certificate_not_after_seconds\{name="b.example.com"\} \d+/m);
  assert.match(text, /^acmed_certificate_renew_at_seconds\{name="b.example.com"\} \d+/m);
});

test('a second scrape reports the index as it is then, not an accumulation', async () => {
  const { registry, index } = await setUp(true);
  assert.match(await registry.metrics(), /^acmed_certificate_expiry_days_count 4$/m);
  await index.remove('a.example.com');
  const second = await registry.metrics();
  assert.match(second, /^acmed_certificate_expiry_days_count 3$/m);
  assert.match(second, /^acmed_certificates\{state="valid"\} 1$/m);
  assert.doesNotMatch(second, /name="a.example.com"/);
});

test('metrics.per_certificate: false drops the per-certificate series and keeps the aggregates', async () => {
  const text = await scrape(false);
  assert.doesNotMatch(text, /name="/);
  assert.match(text, /^acmed_certificates\{state="valid"\} 2$/m);
  assert.match(text, /^acmed_certificate_expiry_days_count 4$/m);
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
  assert.equal(families.get('acmed_certificate_not_after_seconds'), 1);
});
