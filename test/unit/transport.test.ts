// The ACME HTTP transport against a local node http server: parsing, nonce
// harvesting, typed errors, timeouts, and no retries of its own.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Transport } from '../../src/acme/transport.js';
import { NoncePool } from '../../src/acme/nonce-pool.js';
import { AcmeNetworkError, AcmeProblemError, errorKind } from '../../src/acme/errors.js';
import { freePort } from '../harness/ports.js';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void;

const hits = new Map<string, number>();
const bodies = new Map<string, { body: string; headers: http.IncomingHttpHeaders; method: string }>();
const routes = new Map<string, Handler>();
let server: http.Server;
let base: string;

function route(path: string, handler: Handler): string {
  routes.set(path, handler);
  return `${base}${path}`;
}

before(async () => {
  server = http.createServer((req, res) => {
    const path = req.url ?? '';
    hits.set(path, (hits.get(path) ?? 0) + 1);
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => { body += chunk; });
    req.on('end', () => {
      bodies.set(path, { body, headers: req.headers, method: req.method ?? '' });
      const handler = routes.get(path);
      if (handler) handler(req, res, body);
      else res.writeHead(404).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

function newTransport(timeoutMs = 5_000) {
  const nonces = new NoncePool();
  const transport = new Transport({ nonces, timeoutMs, userAgent: 'acmed-test' });
  return { nonces, transport };
}

describe('successful responses', () => {
  test('200 JSON is parsed and its Replay-Nonce goes into the pool', async (t) => {
    const { nonces, transport } = newTransport();
    t.after(() => transport.close());
    const url = route('/directory', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'replay-nonce': 'nonce-dir-1' });
      res.end(JSON.stringify({ newNonce: `${base}/new-nonce`, meta: { termsOfService: 'https://tos' } }));
    });
    const resp = await transport.request(url, 'get');
    assert.equal(resp.status, 200);
    assert.deepEqual(resp.data, { newNonce: `${base}/new-nonce`, meta: { termsOfService: 'https://tos' } });
    assert.equal(nonces.size, 1);
    assert.equal(nonces.take(), 'nonce-dir-1');
    assert.equal(transport.requestCount, 1);
    assert.equal(hits.get('/directory'), 1);
    assert.equal(bodies.get('/directory')?.method, 'GET');
    assert.equal(bodies.get('/directory')?.headers['user-agent'], 'acmed-test');
  });

  test('a POST sends its data as application/jose+json', async (t) => {
    const { nonces, transport } = newTransport();
    t.after(() => transport.close());
    const url = route('/new-order', (_req, res) => {
      res.writeHead(201, { 'content-type': 'application/json', 'replay-nonce': 'nonce-order', location: `${base}/order/1` });
      res.end('{"status":"pending"}');
    });
    const jws = { protected: 'p', payload: 'q', signature: 's' };
    const resp = await transport.request(url, 'post', { data: jws });
    assert.equal(resp.status, 201);
    assert.deepEqual(resp.data, { status: 'pending' });
    assert.equal(resp.headers.location, `${base}/order/1`);
    const seen = bodies.get('/new-order');
    assert.equal(seen?.method, 'POST');
    assert.equal(seen?.headers['content-type'], 'application/jose+json');
    assert.deepEqual(JSON.parse(seen?.body ?? ''), jws);
    assert.equal(nonces.take(), 'nonce-order');
  });

  test('a non-JSON body (a PEM chain) is returned as text', async (t) => {
    const { transport } = newTransport();
    t.after(() => transport.close());
    const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    const url = route('/cert/1', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/pem-certificate-chain' });
      res.end(pem);
    });
    const resp = await transport.request(url, 'POST', { data: {} });
    assert.equal(resp.data, pem);
  });

  test('a response without Replay-Nonce adds nothing to the pool', async (t) => {
    const { nonces, transport } = newTransport();
    t.after(() => transport.close());
    const url = route('/no-nonce', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
    await transport.request(url, 'GET');
    assert.equal(nonces.size, 0);
  });
});

describe('error responses', () => {
  test('429 problem+json with Retry-After: 7 is a rateLimited AcmeProblemError, without retries', async (t) => {
    const { nonces, transport } = newTransport();
    t.after(() => transport.close());
    const url = route('/rate-limited', (_req, res) => {
      res.writeHead(429, { 'content-type': 'application/problem+json', 'retry-after': '7', 'replay-nonce': 'nonce-429' });
      res.end(JSON.stringify({ type: 'urn:ietf:params:acme:error:rateLimited', detail: 'too many certificates', status: 429 }));
    });
    await assert.rejects(transport.request(url, 'POST', { data: {} }), (err: unknown) => {
      assert.ok(err instanceof AcmeProblemError, `got ${String(err)}`);
      assert.equal(err.problemType, 'rateLimited');
      assert.equal(err.retryAfterMs, 7_000);
      assert.equal(err.httpStatus, 429);
      assert.equal(err.url, url);
      assert.equal(err.code, 'ACME_PROBLEM');
      assert.match(err.message, /rateLimited \(HTTP 429\): too many certificates/);
      assert.equal(errorKind(err), 'rateLimited');
      return true;
    });
    assert.equal(hits.get('/rate-limited'), 1);
    // the nonce of an ordinary error is still good to use
    assert.equal(nonces.take(), 'nonce-429');
  });

  test('500 with an HTML body is a serverInternal AcmeProblemError, not a TypeError', async (t) => {
    const { transport } = newTransport();
    t.after(() => transport.close());
    const html = `<html><body><h1>502 Bad Gateway</h1>${'x'.repeat(1000)}</body></html>`;
    const url = route('/html-500', (_req, res) => {
      res.writeHead(500, { 'content-type': 'text/html' });
      res.end(html);
    });
    await assert.rejects(transport.request(url, 'GET'), (err: unknown) => {
      assert.ok(err instanceof AcmeProblemError, `got ${String(err)}`);
      assert.equal(err.problemType, 'serverInternal');
      assert.equal(err.httpStatus, 500);
      assert.equal(err.retryAfterMs, undefined);
      assert.ok(err.problem.detail?.startsWith('<html>'));
      assert.ok((err.problem.detail?.length ?? 0) <= 200, 'the detail is cut short');
      return true;
    });
    assert.equal(hits.get('/html-500'), 1);
  });

  test('a JSON content-type with a broken body still yields a problem from the status', async (t) => {
    const { transport } = newTransport();
    t.after(() => transport.close());
    const url = route('/broken-json-503', (_req, res) => {
      res.writeHead(503, { 'content-type': 'application/problem+json', 'retry-after': '120' });
      res.end('{"type": "urn:ietf:para');
    });
    await assert.rejects(transport.request(url, 'GET'), (err: unknown) => {
      assert.ok(err instanceof AcmeProblemError);
      assert.equal(err.problemType, 'serverInternal');
      assert.equal(err.retryAfterMs, 120_000);
      return true;
    });
  });

  test('a 4xx without a problem document is an httpError', async (t) => {
    const { transport } = newTransport();
    t.after(() => transport.close());
    await assert.rejects(transport.request(`${base}/nothing-here`, 'GET'), (err: unknown) => {
      assert.ok(err instanceof AcmeProblemError);
      assert.equal(err.problemType, 'httpError');
      assert.equal(err.httpStatus, 404);
      return true;
    });
  });

  test('badNonce is returned, not thrown, and its nonce is not pooled', async (t) => {
    const { nonces, transport } = newTransport();
    t.after(() => transport.close());
    const url = route('/bad-nonce', (_req, res) => {
      res.writeHead(400, { 'content-type': 'application/problem+json', 'replay-nonce': 'nonce-for-the-resend' });
      res.end(JSON.stringify({ type: 'urn:ietf:params:acme:error:badNonce', detail: 'JWS has an invalid anti-replay nonce' }));
    });
    const resp = await transport.request(url, 'POST', { data: {} });
    assert.equal(resp.status, 400);
    assert.equal(resp.data.type, 'urn:ietf:params:acme:error:badNonce');
    assert.equal(resp.headers['replay-nonce'], 'nonce-for-the-resend');
    assert.equal(nonces.size, 0);
    assert.equal(hits.get('/bad-nonce'), 1);
  });
});

describe('network failures', () => {
  test('a refused port is an AcmeNetworkError', async (t) => {
    const { transport } = newTransport();
    t.after(() => transport.close());
    const port = await freePort();
    await assert.rejects(transport.request(`http://127.0.0.1:${port}/directory`, 'GET'), (err: unknown) => {
      assert.ok(err instanceof AcmeNetworkError, `got ${String(err)}`);
      assert.equal(err.code, 'ACME_NETWORK');
      assert.match(err.message, /ECONNREFUSED/);
      assert.equal(errorKind(err), 'network');
      return true;
    });
  });

  test('a server that never answers is an AcmeNetworkError after timeoutMs, asked once', async (t) => {
    const { transport } = newTransport(300);
    t.after(() => transport.close());
    const url = route('/black-hole', () => { /* never answers */ });
    const started = performance.now();
    await assert.rejects(transport.request(url, 'GET'), (err: unknown) => {
      assert.ok(err instanceof AcmeNetworkError, `got ${String(err)}`);
      assert.match(err.message, /ETIMEDOUT|timed out/);
      return true;
    });
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 250, `gave up after ${elapsed.toFixed(0)} ms, before the 300 ms timeout`);
    assert.ok(elapsed < 10_000, `gave up only after ${elapsed.toFixed(0)} ms`);
    assert.equal(hits.get('/black-hole'), 1);
  });

  test('a connection cut mid-response is an AcmeNetworkError', async (t) => {
    const { transport } = newTransport();
    t.after(() => transport.close());
    const url = route('/cut', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
      res.write('{"status":');
      setTimeout(() => res.socket?.destroy(), 20);
    });
    await assert.rejects(transport.request(url, 'GET'), AcmeNetworkError);
    assert.equal(hits.get('/cut'), 1);
  });
});

test('a reset on a kept-alive connection before any answer is marked stale; one on a new connection is not', async () => {
  // Each connection answers its first request and resets on the next one, as
  // a server (or proxy) that closed an idle keep-alive connection does.
  const net = await import('node:net');
  const server = net.createServer((socket) => {
    let served = 0;
    socket.on('data', () => {
      if (served++ > 0) {
        socket.resetAndDestroy();
        return;
      }
      socket.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\n{}');
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const transport = new Transport({ nonces: new NoncePool(), timeoutMs: 5_000 });
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/dir`;
    assert.equal((await transport.request(url, 'get')).status, 200);
    await assert.rejects(transport.request(url, 'get'), (err) => err instanceof AcmeNetworkError && err.staleConnection);
    // The failed connection is gone from the pool: the next request opens a new one and is answered.
    assert.equal((await transport.request(url, 'get')).status, 200);
  } finally {
    transport.close();
    server.close();
  }
  // A connection reset on its first request is not stale: the server refused this very request.
  const rude = net.createServer((socket) => {
    socket.on('data', () => socket.resetAndDestroy());
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => rude.listen(0, '127.0.0.1', resolve));
  const fresh = new Transport({ nonces: new NoncePool(), timeoutMs: 5_000 });
  try {
    const url = `http://127.0.0.1:${(rude.address() as AddressInfo).port}/dir`;
    await assert.rejects(fresh.request(url, 'get'), (err) => err instanceof AcmeNetworkError && !err.staleConnection);
  } finally {
    fresh.close();
    rude.close();
  }
});
