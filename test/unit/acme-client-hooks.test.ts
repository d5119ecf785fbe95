// acme-client with our hooks against a small fake CA on loopback: a signed
// request that loses its connection is sent again signed with a fresh nonce,
// unsigned GETs are retried too, overlapping orders count only their own
// requests, an abort ends a request mid-flight with the signal's reason,
// each retry is logged at debug with the path and reason, and the account key
// is parsed once rather than for every signature.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, KeyObject, verify } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { Client, crypto as acmeCrypto } from 'acme-client';
import { installHooks, type ClientInternals } from '../../src/acme/acme-client-hooks.js';
import { AcmeProblemError } from '../../src/acme/errors.js';
import { NoncePool } from '../../src/acme/nonce-pool.js';
import { runInOrderScope, type OrderScope } from '../../src/acme/order-scope.js';
import { Transport } from '../../src/acme/transport.js';
import { createLogger } from '../../src/log.js';

let server: http.Server;
let base: string;
let nonceCounter = 0;
/** Per path: how many upcoming requests to answer by dropping the connection / with a 503. */
const dropNext = new Map<string, number>();
const fail503Next = new Map<string, number>();
/** The JWS protected header of every signed request, by path. */
const signedHeaders = new Map<string, { nonce: string; kid?: string }[]>();
/** Requests received per path, answered or dropped. */
const hits = new Map<string, number>();

function take(map: Map<string, number>, path: string): boolean {
  const left = map.get(path) ?? 0;
  if (left <= 0) return false;
  map.set(path, left - 1);
  return true;
}

before(async () => {
  server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => { body += chunk; });
    req.on('end', () => {
      const path = req.url ?? '/';
      hits.set(path, (hits.get(path) ?? 0) + 1);
      if (take(dropNext, path)) {
        req.socket.destroy();
        return;
      }
      const nonce = `nonce-${++nonceCounter}`;
      if (take(fail503Next, path)) {
        res.writeHead(503, { 'content-type': 'application/problem+json', 'replay-nonce': nonce });
        res.end(JSON.stringify({ type: 'urn:ietf:params:acme:error:serverInternal', detail: 'node restarting' }));
        return;
      }
      if (req.method === 'POST') {
        const header = JSON.parse(Buffer.from(JSON.parse(body).protected, 'base64url').toString());
        signedHeaders.set(path, [...(signedHeaders.get(path) ?? []), header]);
      }
      if (path === '/dir') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ newNonce: `${base}/nonce`, newAccount: `${base}/acct`, newOrder: `${base}/order` }));
      } else if (path === '/nonce') {
        res.writeHead(200, { 'replay-nonce': nonce }).end();
      } else if (path === '/slow') {
        // never answers
      } else if (path === '/forbidden') {
        res.writeHead(403, { 'content-type': 'application/problem+json', 'replay-nonce': nonce });
        res.end(JSON.stringify({ type: 'urn:ietf:params:acme:error:unauthorized', detail: 'no' }));
      } else {
        res.writeHead(200, { 'content-type': 'application/json', 'replay-nonce': nonce });
        res.end(JSON.stringify({ path }));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

async function hookedClient(retryDelaysMs: number[] = [1, 1, 1]) {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({ write(chunk, _enc, done) { lines.push(JSON.parse(String(chunk))); done(); } });
  const log = createLogger('debug', sink);
  const nonces = new NoncePool();
  const transport = new Transport({ nonces, timeoutMs: 5_000 });
  const client = new Client({ directoryUrl: `${base}/dir`, accountKey: await acmeCrypto.createPrivateEcdsaKey(), accountUrl: `${base}/acct/1` });
  const internals = client as unknown as ClientInternals;
  installHooks(internals, { transport, nonces, log, retryDelaysMs });
  return { internals, transport, nonces, lines };
}

test('a signed request whose connection drops is sent again, and each retry is logged at debug with path and reason', async (t) => {
  const { internals, transport, lines } = await hookedClient();
  t.after(() => transport.close());
  dropNext.set('/drop-twice', 2);
  const resp = await internals.api.apiRequest(`${base}/drop-twice`, { hello: 1 }, [200]);
  assert.deepEqual(resp.data, { path: '/drop-twice' });
  // The server only parses requests it answers: the third attempt.
  const headers = signedHeaders.get('/drop-twice')!;
  assert.equal(headers.length, 1);
  assert.equal(headers[0]!.kid, `${base}/acct/1`);
  const retries = lines.filter((l) => l.msg === 'retrying ACME request');
  assert.equal(retries.length, 2);
  assert.equal(retries[0]!.path, '/drop-twice');
  assert.equal(retries[0]!.level, 20); // debug
  assert.match(String(retries[0]!.reason), /ECONNRESET|socket hang up/i);
});

test('every attempt of a signed request after a 503 carries a nonce not used before', async (t) => {
  const { internals, transport } = await hookedClient();
  t.after(() => transport.close());
  // The 503 path records nothing, so count attempts through a path that answers 503 and then 200.
  fail503Next.set('/busy', 2);
  const seen: string[] = [];
  const original = transport.request;
  transport.request = async (url, method, opts) => {
    if (method.toLowerCase() === 'post') {
      seen.push(JSON.parse(Buffer.from((opts?.data as { protected: string }).protected, 'base64url').toString()).nonce);
    }
    return original(url, method, opts);
  };
  await internals.api.apiRequest(`${base}/busy`, null, [200]);
  assert.equal(seen.length, 3);
  assert.equal(new Set(seen).size, 3, `nonces reused: ${seen.join(', ')}`);
});

test('unsigned GETs (directory) are retried after a 503', async (t) => {
  const { internals, transport } = await hookedClient();
  t.after(() => transport.close());
  fail503Next.set('/dir', 1);
  const dir = await internals.http.getDirectory();
  assert.equal(dir.newNonce, `${base}/nonce`);
  assert.equal(transport.requestCount, 2);
});

test('a 4xx is not retried', async (t) => {
  const { internals, transport } = await hookedClient();
  t.after(() => transport.close());
  await internals.http.getDirectory();
  const before = transport.requestCount;
  await assert.rejects(internals.api.apiRequest(`${base}/forbidden`, null, [200]),
    (err) => err instanceof AcmeProblemError && err.problemType === 'unauthorized');
  assert.equal(transport.requestCount - before, 2); // newNonce HEAD + the POST
});

test('when retries run out, the order gets the network error', async (t) => {
  const { internals, transport } = await hookedClient([1, 1]);
  t.after(() => transport.close());
  await internals.http.getDirectory();
  dropNext.set('/down', 10);
  await assert.rejects(internals.api.apiRequest(`${base}/down`, null, [200]), /cannot reach the CA/);
  dropNext.delete('/down');
});

test('a nonce fetch inside a signed request is retried by that request\'s loop, not by one of its own', async (t) => {
  const { internals, transport, nonces } = await hookedClient([1, 1, 1]);
  t.after(() => transport.close());
  await internals.http.getDirectory();
  nonces.clear();
  dropNext.set('/nonce', 100);
  const headsBefore = hits.get('/nonce') ?? 0;
  await assert.rejects(internals.api.apiRequest(`${base}/never-sent`, null, [200]), /cannot reach the CA/);
  dropNext.delete('/nonce');
  // One HEAD per attempt of the signed request (1 + 3 retries), not 4 × 4,
  // plus one: the first HEAD went out on the connection the directory fetch
  // left open, and a reset there is resent at once as a stale connection.
  assert.equal((hits.get('/nonce') ?? 0) - headsBefore, 4 + 1);
  assert.equal(hits.get('/never-sent'), undefined);
});

test('overlapping orders each count only their own requests; the transport counts all', async (t) => {
  const { internals, transport } = await hookedClient();
  t.after(() => transport.close());
  await internals.http.getDirectory();
  const a: OrderScope = { requests: 0 };
  const b: OrderScope = { requests: 0 };
  const before = transport.requestCount;
  dropNext.set('/b-1', 1);
  await Promise.all([
    runInOrderScope(a, async () => {
      for (let i = 0; i < 3; i++) await internals.api.apiRequest(`${base}/a-${i}`, null, [200]);
    }),
    runInOrderScope(b, async () => {
      for (let i = 0; i < 5; i++) await internals.api.apiRequest(`${base}/b-${i}`, null, [200]);
    }),
  ]);
  // Nonces come from the shared pool or a HEAD billed to whoever needed it; one retry in b.
  assert.ok(a.requests >= 3 && a.requests <= 6, `a: ${a.requests}`);
  assert.ok(b.requests >= 6 && b.requests <= 11, `b: ${b.requests}`);
  assert.equal(a.requests + b.requests, transport.requestCount - before);
});

test('an abort ends a request mid-flight with the signal\'s reason', async (t) => {
  const { internals, transport } = await hookedClient();
  t.after(() => transport.close());
  await internals.http.getDirectory();
  const controller = new AbortController();
  const reason = new Error('shutting down');
  const started = Date.now();
  setTimeout(() => controller.abort(reason), 50);
  await assert.rejects(
    runInOrderScope({ requests: 0, signal: controller.signal }, () => internals.api.apiRequest(`${base}/slow`, null, [200])),
    (err) => err === reason,
  );
  assert.ok(Date.now() - started < 2_000);
});

test('the account key is parsed once: requests are signed with a KeyObject, and the signatures verify', async (t) => {
  const { internals, transport } = await hookedClient();
  t.after(() => transport.close());
  assert.ok(internals.http.accountKey instanceof KeyObject);
  const bodies: { protected: string; payload: string; signature: string }[] = [];
  const original = transport.request;
  transport.request = async (url, method, opts) => {
    if (method.toLowerCase() === 'post') bodies.push(opts?.data as (typeof bodies)[number]);
    return original(url, method, opts);
  };
  await internals.api.apiRequest(`${base}/signed-1`, { a: 1 }, [200]);
  await internals.api.apiRequest(`${base}/signed-2`, null, [200]);
  assert.equal(bodies.length, 2);
  const publicKey = createPublicKey(internals.http.accountKey as KeyObject);
  for (const body of bodies) {
    assert.equal(JSON.parse(Buffer.from(body.protected, 'base64url').toString()).alg, 'ES256');
    const ok = verify('sha256', Buffer.from(`${body.protected}.${body.payload}`), { key: publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(body.signature, 'base64url'));
    assert.ok(ok, 'the JWS signature verifies with the account key');
  }
});
