// GET /acme/certificates at scale: pages in host order from the index, the
// filters, the cursor, and the whole list streamed a page at a time.
import assert from 'node:assert/strict';
import http from 'node:http';
import { test } from 'node:test';
import { createAdminHandler, type AdminBackend } from '../../src/admin/api.js';
import { parseListQuery } from '../../src/admin/list-query.js';
import { parseConfig } from '../../src/config/load.js';
import { CertificateListing } from '../../src/daemon/listing.js';
import { createLogger } from '../../src/log.js';
import { missingRecord, type IndexRecord } from '../../src/renewal/index-record.js';
import { CertificateIndex } from '../../src/renewal/index.js';
import { createMemoryStorage } from '../../src/storage/memory.js';

const DAY = 86_400_000;
const now = Date.parse('2026-06-01T00:00:00Z');
const log = createLogger('silent');

function stored(name: string, daysLeft: number): IndexRecord {
  return {
    ...missingRecord(name, [name, `www.${name}`], new Date(now)),
    notBefore: new Date(now - 30 * DAY).toISOString(), notAfter: new Date(now + daysLeft * DAY).toISOString(),
    serial: `s-${name}`, issuer: 'CN=test', renewAt: new Date(now + (daysLeft - 30) * DAY).toISOString(), renewReason: 'lifetime-fraction',
  };
}

async function listingOf(count: number, configured: string[] = []) {
  const index = new CertificateIndex({ storage: createMemoryStorage(), log, now: () => now, policy: () => ({ renewThresholdDays: null }) });
  // Inserted out of order: the listing sorts.
  for (let i = count - 1; i >= 0; i--) await index.put(stored(`h${String(i).padStart(4, '0')}.example.com`, i % 2 === 0 ? 60 : -1));
  const config = parseConfig([
    'account_email: ops@example.com', 'tos_accepted: true', 'api_uri: https://ca.test/dir', 'domains: ["*.example.com"]',
    `certificates: [${configured.map((n) => `{ names: ["${n}"] }`).join(', ')}]`,
  ].join('\n'));
  const listing = new CertificateListing({ index, config: () => config, storage: { location: (n) => `/live/${n}/` }, queued: () => new Set(), now: () => now });
  return { index, listing };
}

test('pages come in host order; following `next` visits every row exactly once', async () => {
  const { listing } = await listingOf(25, ['a-configured.example.com']);
  const seen: string[] = [];
  let after: string | undefined;
  let pages = 0;
  for (;;) {
    const page = listing.page({ limit: 10, after });
    seen.push(...page.rows.map((r) => r.host));
    pages++;
    if (page.next === null) break;
    after = page.next;
  }
  assert.equal(pages, 3);
  assert.equal(seen.length, 26);
  assert.deepEqual(seen, [...seen].sort());
  assert.equal(seen[0], 'a-configured.example.com', 'a configured certificate with no record yet is listed as missing');
  assert.equal(listing.page({ limit: 1 }).rows[0].status, 'missing');
});

test('filters: status, expiring_within, invalid_only; the cursor still advances past rows that do not match', async () => {
  const { listing } = await listingOf(10);
  const expired = listing.page({ states: new Set(['expired']) }).rows;
  assert.deepEqual(expired.map((r) => r.host), ['h0001.example.com', 'h0003.example.com', 'h0005.example.com', 'h0007.example.com', 'h0009.example.com']);
  assert.equal(listing.page({ expiringWithinMs: 30 * DAY }).rows.length, 5, 'the expired ones expire within 30 days too');
  assert.equal(listing.page({ expiringWithinMs: 90 * DAY }).rows.length, 10);
  assert.equal(listing.page({ invalidOnly: true }).rows.length, 5);
  const firstTwo = listing.page({ states: new Set(['valid']), limit: 2 });
  assert.deepEqual(firstTwo.rows.map((r) => r.host), ['h0000.example.com', 'h0002.example.com']);
  assert.deepEqual(listing.page({ states: new Set(['valid']), limit: 2, after: firstTwo.next! }).rows.map((r) => r.host), ['h0004.example.com', 'h0006.example.com']);
});

test('a name added or removed after a listing shows in the next one; find() also matches a covered name', async () => {
  const { index, listing } = await listingOf(3);
  assert.equal(listing.page({}).rows.length, 3);
  await index.put(stored('b-new.example.com', 10));
  await index.remove('h0000.example.com');
  assert.deepEqual(listing.page({}).rows.map((r) => r.host), ['b-new.example.com', 'h0001.example.com', 'h0002.example.com']);
  assert.equal(listing.find('www.h0001.example.com')?.host, 'h0001.example.com');
  assert.equal(listing.find('H0002.EXAMPLE.COM')?.host, 'h0002.example.com');
  assert.equal(listing.find('nowhere.example.com'), null);
});

test('bad list parameters are a 400 that says what is accepted', () => {
  const bad = (qs: string) => assert.throws(() => parseListQuery(new URLSearchParams(qs)), (err: { status?: number; message: string }) => err.status === 400 && err.message.length > 20, qs);
  for (const qs of ['limit=0', 'limit=abc', 'limit=10001', 'limit=-1', 'status=valid,bogus', 'expiring_within=soon', 'expiring_within=7w']) bad(qs);
  assert.deepEqual(parseListQuery(new URLSearchParams('limit=50&after=x.example.com&status=valid,failed&expiring_within=12h&invalid_only=true')), {
    limit: 50, after: 'x.example.com', states: new Set(['valid', 'failed']), expiringWithinMs: 12 * 3_600_000, invalidOnly: true,
  });
  assert.equal(parseListQuery(new URLSearchParams('expiring_within=7')).expiringWithinMs, 7 * DAY, 'a bare number is days');
});

test('without limit the API streams every row (Kong\'s shape); with limit it answers one page and `next`', async () => {
  const { listing } = await listingOf(2_345);
  const backend = { certificates: (q) => listing.page(q), ca: () => ({ up: true }) } as Partial<AdminBackend> as AdminBackend;
  const handler = createAdminHandler(backend, log);
  const server = http.createServer((req, res) => handler(req, res, 'test'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const get = async (path: string) => {
    const resp = await fetch(`http://127.0.0.1:${(server.address() as { port: number }).port}${path}`);
    return { status: resp.status, body: await resp.json() as { data: { host: string }[]; next?: string | null; message?: string } };
  };
  try {
    const all = await get('/acme/certificates');
    assert.equal(all.status, 200);
    assert.equal(all.body.data.length, 2_345);
    assert.equal(new Set(all.body.data.map((r) => r.host)).size, 2_345);
    const page = await get('/acme/certificates?limit=100&status=expired');
    assert.equal(page.body.data.length, 100);
    assert.equal(page.body.next, page.body.data[99].host);
    assert.equal((await get('/acme/certificates?limit=nope')).status, 400);
  } finally {
    server.close();
  }
});
