// On-demand issuance at the port-80 server: acmed's real challenge server on
// loopback, a real HTTP server as ask_url, the config as the schema parses
// it, a clock the test moves, and the jobs it would queue recorded.
import assert from 'node:assert/strict';
import http from 'node:http';
import { connect } from 'node:net';
import { test } from 'node:test';
import { OnDemand, type HostStanding } from '../../src/challenge/on-demand.js';
import { ChallengeServer } from '../../src/challenge/server.js';
import { ChallengeTokens } from '../../src/challenge/tokens.js';
import type { OnDemandResult } from '../../src/admin/metrics.js';
import { parseConfig } from '../../src/config/load.js';
import type { ManagedCertificate } from '../../src/config/managed.js';
import { createLogger } from '../../src/log.js';

const log = createLogger('silent');
const HOUR = 3_600_000;

async function setUp(t: { after: (fn: () => unknown) => void }, yaml: string, standing: (name: string) => HostStanding = () => 'none', domains = '["*.example.com"]') {
  const config = parseConfig(`account_email: ops@example.com\ntos_accepted: true\ndomains: ${domains}\ncertificates: [{names: [www.example.org]}]\n${yaml}`);
  let now = Date.parse('2026-06-01T00:00:00Z');
  const submitted: ManagedCertificate[] = [];
  const counts = new Map<OnDemandResult, number>();
  const onDemand = new OnDemand({
    config: () => config, log, now: () => now, standing, askTimeoutMs: 300,
    submit: async (cert) => { submitted.push(cert); },
    observe: (result) => counts.set(result, (counts.get(result) ?? 0) + 1),
  });
  const tokens = new ChallengeTokens();
  await tokens.publish('token-token-token-1', 'token-token-token-1.key');
  const server = new ChallengeServer({
    tokens, log, redirectHttps: () => config.challenge.redirect_https, onOther: (host) => onDemand.notice(host),
  });
  t.after(() => server.close());
  await server.listen(['127.0.0.1:0']);
  const port = Number(server.boundAddresses()[0]!.split(':')[1]);
  /** One raw request with the Host header given (or none), answered before it returns. */
  const request = async (host: string | undefined, path = '/'): Promise<{ status: number; location?: string }> => {
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      let text = '';
      socket.on('data', (d) => { text += d.toString('latin1'); });
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
      socket.end(`GET ${path} HTTP/1.1\r\n${host === undefined ? '' : `Host: ${host}\r\n`}Connection: close\r\n\r\n`);
    });
    await onDemand.idle();
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]);
    return { status, location: /\r\nlocation: ([^\r]*)\r\n/i.exec(answer)?.[1] };
  };
  return { request, submitted, counts, onDemand, advance: (ms: number) => { now += ms; } };
}

test('off by default: a request for an allowed host is a 404 and starts nothing', async (t) => {
  const { request, submitted, counts } = await setUp(t, '');
  assert.equal((await request('new.example.com')).status, 404);
  assert.deepEqual(submitted, []);
  assert.equal(counts.size, 0);
});

test('a host matching domains with no certificate is queued once; the request is answered 404 or 301 per redirect_https', async (t) => {
  const { request, submitted, counts } = await setUp(t, 'on_demand: {enabled: true}\n');
  assert.equal((await request('New.Example.com:80')).status, 404);
  assert.deepEqual(submitted, [{ name: 'new.example.com', names: ['new.example.com'] }]);
  assert.equal(counts.get('started'), 1);

  const redirecting = await setUp(t, 'on_demand: {enabled: true}\nchallenge: {redirect_https: true}\n');
  const answer = await redirecting.request('b.example.com', '/shop?item=1');
  assert.deepEqual(answer, { status: 301, location: 'https://b.example.com/shop?item=1' });
  assert.deepEqual(redirecting.submitted.map((c) => c.name), ['b.example.com']);
});

test('an IP address Host ("[v6]:port", "v4:port") listed in domains is queued under its canonical spelling with http-01; others are not', async (t) => {
  const { request, submitted, counts } = await setUp(t, 'on_demand: {enabled: true}\nchallenge: {redirect_https: true}\n', () => 'none', '["*.example.com", "192.0.2.10", "2001:db8::10"]');
  assert.deepEqual(await request('[2001:DB8:0::10]:80'), { status: 301, location: 'https://[2001:db8::10]/' });
  assert.deepEqual(await request('192.0.2.10:8080'), { status: 301, location: 'https://192.0.2.10/' });
  for (const host of ['192.0.2.11', '[2001:db8::11]', '2001:db8::10', '[::ffff:192.0.2.10]', '0300.0.2.10']) await request(host);
  assert.deepEqual(submitted, [
    { name: '2001:db8::10', names: ['2001:db8::10'], challenge: 'http-01' },
    { name: '192.0.2.10', names: ['192.0.2.10'], challenge: 'http-01' },
  ]);
  assert.equal(counts.get('not_allowed'), 5);
});

test('the http-01 path is untouched: a challenge request is answered and never looked at by on-demand', async (t) => {
  const { request, submitted, counts } = await setUp(t, 'on_demand: {enabled: true}\nchallenge: {redirect_https: true}\n');
  assert.equal((await request('c.example.com', '/.well-known/acme-challenge/token-token-token-1')).status, 200);
  assert.equal((await request('c.example.com', '/.well-known/acme-challenge/unknown-token-xyz')).status, 404);
  assert.deepEqual(submitted, []);
  assert.equal(counts.size, 0);
});

test('hosts outside domains, configured ones, invalid and hostile Host headers never become jobs or redirects elsewhere', async (t) => {
  const { request, submitted, counts } = await setUp(t, 'on_demand: {enabled: true}\nchallenge: {redirect_https: true}\n');
  const hostile = ['evil.test', 'a.b.example.com', 'example.com', '127.0.0.1', '[::1]:80', '..', '../etc/passwd', 'a..example.com',
    `${'a'.repeat(64)}.example.com`, `${'abcdefgh.'.repeat(30)}example.com`, '%2e%2e.example.com', 'xn--bcher-kva.example.com\\', '-a.example.com', ''];
  for (const host of hostile) {
    const answer = await request(host);
    // A redirect goes to the same host on https's port: "[::1]:80" → https://[::1]/.
    assert.ok(answer.status === 404 || answer.status === 400 || (answer.status === 301 && answer.location === `https://${host.replace(/:80$/, '')}/`), `${host}: ${JSON.stringify(answer)}`);
  }
  assert.equal((await request(undefined)).status, 400, 'no Host: Node refuses it');
  assert.equal((await request('www.example.org')).status, 301, 'configured: the scheduler keeps it');
  assert.deepEqual(submitted, []);
  assert.equal(counts.get('started'), undefined);
  assert.ok(counts.get('not_allowed')! >= hostile.length - 1, JSON.stringify([...counts]));
  assert.equal(counts.get('has_certificate'), 1);
});

test('a host that has a certificate, a job, or a backoff is not queued again', async (t) => {
  const standing = new Map<string, HostStanding>([['has.example.com', 'has_certificate'], ['busy.example.com', 'pending'], ['failing.example.com', 'backed_off']]);
  const { request, submitted, counts } = await setUp(t, 'on_demand: {enabled: true}\n', (name) => standing.get(name) ?? 'none');
  for (const host of standing.keys()) await request(host);
  assert.deepEqual(submitted, []);
  assert.deepEqual([counts.get('has_certificate'), counts.get('pending'), counts.get('backed_off')], [1, 1, 1]);
});

test('at most max_per_hour new hosts in any hour (the clock is moved, not waited for)', async (t) => {
  const { request, submitted, counts, advance } = await setUp(t, 'on_demand: {enabled: true, max_per_hour: 3}\n');
  for (const host of ['h1', 'h2', 'h3', 'h4', 'h5']) await request(`${host}.example.com`);
  assert.deepEqual(submitted.map((c) => c.name), ['h1.example.com', 'h2.example.com', 'h3.example.com']);
  assert.equal(counts.get('rate_limited'), 2);
  advance(30 * 60_000);
  await request('h6.example.com');
  advance(30 * 60_000 - 1);
  await request('h7.example.com');
  assert.equal(submitted.length, 3, 'still inside the hour of the first three');
  advance(1);
  await request('h8.example.com');
  await request('h9.example.com');
  await request('h10.example.com');
  assert.deepEqual(submitted.slice(3).map((c) => c.name), ['h8.example.com', 'h9.example.com', 'h10.example.com']);
  await request('h11.example.com');
  assert.equal(submitted.length, 6);
  advance(HOUR);
  await request('h12.example.com');
  assert.equal(submitted.at(-1)!.name, 'h12.example.com');
});

test('ask_url: only a 2xx lets a host through; a refusal is remembered and gives its slot back; no answer issues nothing', async (t) => {
  const asked: string[] = [];
  const ask = http.createServer((req, res) => {
    const url = new URL(req.url!, 'http://ask');
    const domain = url.searchParams.get('domain')!;
    asked.push(`${url.pathname}?${url.searchParams}`);
    if (domain.startsWith('slow')) return; // never answers
    res.writeHead(domain.startsWith('yes') ? 204 : domain.startsWith('broken') ? 500 : 403).end();
  });
  await new Promise<void>((resolve) => ask.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    ask.closeAllConnections();
    ask.close();
  });
  const askUrl = `http://127.0.0.1:${(ask.address() as { port: number }).port}/allowed?token=abc`;
  const { request, submitted, counts } = await setUp(t, `on_demand: {enabled: true, max_per_hour: 2, ask_url: "${askUrl}"}\n`);
  await request('no.example.com');
  await request('no.example.com');
  await request('broken.example.com');
  await request('slow.example.com');
  assert.equal(submitted.length, 0);
  assert.deepEqual(asked, ['/allowed?token=abc&domain=no.example.com', '/allowed?token=abc&domain=broken.example.com', '/allowed?token=abc&domain=slow.example.com']);
  assert.deepEqual([counts.get('refused_by_ask_url'), counts.get('ask_url_failed')], [3, 1]);
  // Refusals took no slot: both of the hour's are still free.
  await request('yes1.example.com');
  await request('yes2.example.com');
  await request('yes3.example.com');
  assert.deepEqual(submitted.map((c) => c.name), ['yes1.example.com', 'yes2.example.com']);
  assert.equal(counts.get('rate_limited'), 1);
  assert.equal(asked.length, 5, 'a rate-limited host is not even asked');
});

test('visits while the index loads are looked at once it has loaded, each host once', async (t) => {
  let loading = true;
  const { request, submitted, onDemand } = await setUp(t, 'on_demand: {enabled: true}\n', () => (loading ? 'loading' : 'none'));
  await request('early.example.com');
  await request('early.example.com');
  await request('evil.example.net');
  assert.equal(submitted.length, 0, 'nothing is ordered before the index says what exists');
  loading = false;
  onDemand.indexLoaded();
  await onDemand.idle();
  assert.deepEqual(submitted.map((c) => c.name), ['early.example.com']);
});
