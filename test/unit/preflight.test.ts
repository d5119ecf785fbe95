// The http-01 preflight against real servers on loopback: acmed's own
// challenge server (alone, and another instance on a shared store), an acmed
// that does not share the store, a foreign web server, a port nobody listens
// on, a server that never answers, and a DNS server that is not there.
import assert from 'node:assert/strict';
import http from 'node:http';
import { createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { probeHttpChallenge } from '../../src/challenge/preflight.js';
import { ChallengeServer } from '../../src/challenge/server.js';
import { ChallengeTokens } from '../../src/challenge/tokens.js';
import { createLogger } from '../../src/log.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import type { Storage } from '../../src/storage/storage.js';
import { freePort } from '../harness/ports.js';

const log = createLogger('silent');

async function acmedResponder(t: { after: (fn: () => unknown) => void }, tokens: ChallengeTokens): Promise<number> {
  const server = new ChallengeServer({ tokens, log });
  t.after(() => server.close());
  await server.listen(['127.0.0.1:0']);
  return Number(server.boundAddresses()[0]!.split(':')[1]);
}

test('the probe reaches acmed\'s challenge server; the probe token is withdrawn afterwards', async (t) => {
  const tokens = new ChallengeTokens(createMemoryStorage());
  const port = await acmedResponder(t, tokens);
  const result = await probeHttpChallenge('localhost', { tokens, port, resolver: null });
  assert.equal(result.reached, 'acmed', result.detail);
  assert.equal(result.ok, true);
  assert.equal(result.status, null);
  assert.match(result.url, new RegExp(`^http://localhost:${port}/\\.well-known/acme-challenge/[A-Za-z0-9_-]{32}$`));
  assert.equal(tokens.size, 0, 'withdrawn');
  assert.equal(tokens.stats.hits, 1, 'answered by this instance');
});

test('another instance on a shared store answers the probe too', async (t) => {
  const shared: Storage = { ...createMemoryStorage(), shared: true };
  const port = await acmedResponder(t, new ChallengeTokens(shared));
  const result = await probeHttpChallenge('localhost', { tokens: new ChallengeTokens(shared), port, resolver: null });
  assert.equal(result.reached, 'acmed', result.detail);
});

test('an acmed that does not share the store: a 404, named as such', async (t) => {
  const port = await acmedResponder(t, new ChallengeTokens(createMemoryStorage()));
  const result = await probeHttpChallenge('localhost', { tokens: new ChallengeTokens(createMemoryStorage()), port, resolver: null });
  assert.equal(result.ok, false);
  assert.equal(result.reached, 'other_server');
  assert.equal(result.status, 404);
  assert.match(result.detail, /answered 404 for the probe token: another acmed that does not share this one's store, or another server/);
});

test('a foreign web server is reported with its status, Server header and what it said', async (t) => {
  const server = http.createServer((req, res) => {
    if (req.url!.startsWith('/.well-known/')) {
      res.writeHead(200, { server: 'nginx/1.22.1', 'content-type': 'text/html' });
      res.end('<h1>Welcome to nginx!</h1>');
    } else {
      res.writeHead(500).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const port = (server.address() as { port: number }).port;
  const result = await probeHttpChallenge('localhost', { tokens: new ChallengeTokens(), port, resolver: null });
  assert.equal(result.reached, 'other_server');
  assert.equal(result.server, 'nginx/1.22.1');
  assert.match(result.detail, /a server calling itself "nginx\/1\.22\.1" at 127\.0\.0\.1:\d+ answered HTTP 200 "<h1>Welcome to nginx!<\/h1>" instead of the probe's key authorization/);

  const redirecting = http.createServer((_req, res) => res.writeHead(301, { location: 'https://localhost/' }).end());
  await new Promise<void>((resolve) => redirecting.listen(0, '127.0.0.1', resolve));
  t.after(() => redirecting.close());
  const redirected = await probeHttpChallenge('localhost', {
    tokens: new ChallengeTokens(), port: (redirecting.address() as { port: number }).port, resolver: null,
  });
  assert.equal(redirected.reached, 'other_server');
  assert.match(redirected.detail, /redirected the challenge path to https:\/\/localhost\//);
});

test('nothing listening: connection failed; a server that never answers: timeout', async (t) => {
  const closed = await probeHttpChallenge('localhost', { tokens: new ChallengeTokens(), port: await freePort(), resolver: null });
  assert.equal(closed.reached, 'connection_failed');
  assert.match(closed.detail, /^cannot connect to 127\.0\.0\.1:\d+ \(ECONNREFUSED\)$/);

  const held = new Set<Socket>();
  const silent = createServer((socket) => held.add(socket));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const s of held) s.destroy();
    silent.close();
  });
  const port = (silent.address() as { port: number }).port;
  const tokens = new ChallengeTokens();
  const result = await probeHttpChallenge('localhost', { tokens, port, resolver: null, timeoutMs: 300 });
  assert.equal(result.reached, 'timeout');
  assert.equal(result.detail, `no answer from 127.0.0.1:${port} within 300 ms`);
  assert.equal(tokens.size, 0, 'withdrawn after a failure too');
});

test('a name that does not resolve, or a DNS server that does not answer: dns_failure, and nothing published', async () => {
  const tokens = new ChallengeTokens();
  const missing = await probeHttpChallenge('no-such-name.invalid', { tokens, port: 80, resolver: null });
  assert.equal(missing.reached, 'dns_failure');
  assert.match(missing.detail, /^no-such-name\.invalid does not resolve \((ENOTFOUND|EAI_AGAIN)\)$/);
  const dnsPort = await freePort();
  const silentDns = await probeHttpChallenge('a.example.com', { tokens, port: 80, resolver: `127.0.0.1:${dnsPort}`, timeoutMs: 500 });
  assert.equal(silentDns.reached, 'dns_failure');
  assert.match(silentDns.detail, new RegExp(`^a\\.example\\.com does not resolve \\(\\w+ from 127\\.0\\.0\\.1:${dnsPort}\\)$`));
  assert.equal(tokens.stats.hits + tokens.stats.misses, 0);
});
