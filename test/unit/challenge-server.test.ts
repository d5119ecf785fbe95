// The http-01 responder on loopback: what it answers, what it refuses, and
// how it treats clients that misbehave.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { ChallengeServer } from '../../src/challenge/server.js';
import { ChallengeTokens, isValidToken } from '../../src/challenge/tokens.js';
import { createLogger } from '../../src/log.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import type { Storage } from '../../src/storage/storage.js';

const PREFIX = '/.well-known/acme-challenge/';
const log = createLogger('silent');

function newToken(): string {
  return randomBytes(32).toString('base64url');
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(address: string, method: string, path: string): Promise<Reply> {
  const colon = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: address.slice(0, colon), port: Number(address.slice(colon + 1)), method, path, agent: false,
      headers: { host: 'a.example.com' },
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.setTimeout(5_000, () => req.destroy(new Error('no answer within 5 s')));
    req.on('error', reject);
    req.end();
  });
}

interface RawResult {
  data: string;
  closed: boolean;
}

/**
 * Sends raw bytes and collects what comes back until the server closes the
 * connection, or until `limitMs` (a generous safety bound, not a measurement).
 */
function raw(address: string, payload: string, limitMs = 5_000): Promise<RawResult> {
  const colon = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(address.slice(colon + 1)), address.slice(0, colon));
    let data = '';
    const limit = setTimeout(() => {
      socket.destroy();
      resolve({ data, closed: false });
    }, limitMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(payload));
    socket.on('data', (chunk: string) => { data += chunk; });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // a reset after the server hung up still counts as closed
      if (err.code !== 'ECONNRESET' && err.code !== 'EPIPE') {
        clearTimeout(limit);
        reject(err);
      }
    });
    socket.on('close', () => {
      clearTimeout(limit);
      resolve({ data, closed: true });
    });
  });
}

describe('answers published tokens', () => {
  const tokens = new ChallengeTokens();
  const server = new ChallengeServer({ tokens, log, headersTimeoutMs: 300, requestTimeoutMs: 1_000 });
  let address: string;
  const token = newToken();
  const keyAuthorization = `${token}.thumbprint-${randomBytes(8).toString('hex')}`;

  before(async () => {
    await server.listen(['127.0.0.1:0']);
    [address] = server.boundAddresses();
    await tokens.publish(token, keyAuthorization);
  });
  after(() => server.close());

  test('boundAddresses reports the real port', () => {
    assert.equal(server.boundAddresses().length, 1);
    assert.match(address, /^127\.0\.0\.1:\d+$/);
    assert.notEqual(address, '127.0.0.1:0');
  });

  test('GET returns the key authorization as text/plain', async () => {
    const reply = await request(address, 'GET', `${PREFIX}${token}`);
    assert.equal(reply.status, 200);
    assert.equal(reply.body, keyAuthorization);
    assert.match(String(reply.headers['content-type']), /^text\/plain/);
    assert.equal(Number(reply.headers['content-length']), Buffer.byteLength(keyAuthorization));
    assert.equal(reply.headers['cache-control'], 'no-store');
  });

  test('HEAD returns 200 and the headers, without a body', async () => {
    const reply = await request(address, 'HEAD', `${PREFIX}${token}`);
    assert.equal(reply.status, 200);
    assert.equal(reply.body, '');
    assert.match(String(reply.headers['content-type']), /^text\/plain/);
    assert.equal(Number(reply.headers['content-length']), Buffer.byteLength(keyAuthorization));
  });

  test('HEAD sends no body bytes on the wire either', async () => {
    const result = await raw(address, `HEAD ${PREFIX}${token} HTTP/1.1\r\nHost: a.example.com\r\nConnection: close\r\n\r\n`);
    assert.match(result.data, /^HTTP\/1\.1 200 /);
    assert.ok(result.data.endsWith('\r\n\r\n'), JSON.stringify(result.data));
    assert.ok(!result.data.includes(keyAuthorization));
  });

  test('a query string does not hide the token', async () => {
    const reply = await request(address, 'GET', `${PREFIX}${token}?via=ca`);
    assert.equal(reply.status, 200);
    assert.equal(reply.body, keyAuthorization);
  });

  const notFound: [string, string, string][] = [
    ['an unknown token', 'GET', `${PREFIX}${'x'.repeat(43)}`],
    ['a dot-dot path', 'GET', `${PREFIX}../../../etc/passwd`],
    ['a dot-dot path ending in the token', 'GET', `${PREFIX}../${token}`],
    ['percent-encoded dots', 'GET', `${PREFIX}%2e%2e%2f%2e%2e%2fetc%2fpasswd`],
    ['a percent-encoded token', 'GET', `${PREFIX}${encodeURIComponent(`${token}/`)}`],
    ['a token that is too short', 'GET', `${PREFIX}abc`],
    ['a token with a slash', 'GET', `${PREFIX}${token}/x`],
    ['the bare prefix', 'GET', PREFIX],
    ['the prefix glued to the token', 'GET', `/.well-known/acme-challenge${token}`],
    ['the root', 'GET', '/'],
    ['another path', 'GET', '/favicon.ico'],
    ['the token under another path', 'GET', `/other/${token}`],
    ['POST to the token path', 'POST', `${PREFIX}${token}`],
    ['PUT to the token path', 'PUT', `${PREFIX}${token}`],
    ['DELETE to the token path', 'DELETE', `${PREFIX}${token}`],
    ['OPTIONS to the token path', 'OPTIONS', `${PREFIX}${token}`],
  ];
  for (const [what, method, path] of notFound) {
    test(`404 for ${what}`, async () => {
      const reply = await request(address, method, path);
      assert.equal(reply.status, 404);
      assert.match(reply.body, /^Not found/);
      assert.ok(!reply.body.includes(keyAuthorization));
    });
  }

  test('a withdrawn token is 404, and another token stays served', async () => {
    const gone = newToken();
    const stays = newToken();
    await tokens.publish(gone, `${gone}.ka`);
    await tokens.publish(stays, `${stays}.ka`);
    assert.equal((await request(address, 'GET', `${PREFIX}${gone}`)).status, 200);
    await tokens.withdraw(gone);
    const reply = await request(address, 'GET', `${PREFIX}${gone}`);
    assert.equal(reply.status, 404);
    assert.match(reply.body, /^Not found/);
    assert.equal((await request(address, 'GET', `${PREFIX}${stays}`)).body, `${stays}.ka`);
    await tokens.withdraw(stays);
  });

  test('malformed HTTP gets a 400 and the connection is closed', async () => {
    const result = await raw(address, 'THIS IS NOT HTTP\r\n\r\n');
    assert.equal(result.closed, true);
    assert.match(result.data, /^HTTP\/1\.1 400 /);
  });

  test('an oversized header gets an error status and the connection is closed', async () => {
    const result = await raw(address, `GET ${PREFIX}${token} HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(16 * 1024)}\r\n\r\n`);
    assert.equal(result.closed, true);
    assert.match(result.data, /^HTTP\/1\.1 4\d\d /);
    assert.ok(!result.data.includes(keyAuthorization));
  });

  test('a client that sends half a request line and stops is disconnected', async () => {
    // headersTimeoutMs is 300; 5 s is only a safety bound for a busy machine
    const result = await raw(address, 'GET /.well-known/acme-chal', 5_000);
    assert.equal(result.closed, true, 'the server should have closed the slow connection');
    assert.ok(!result.data.includes('200 OK'));
  });

  test('a client that stops in the middle of its headers is disconnected', async () => {
    const result = await raw(address, `GET ${PREFIX}${token} HTTP/1.1\r\nHost: a.example.com\r\n`, 5_000);
    assert.equal(result.closed, true);
    assert.ok(!result.data.includes(keyAuthorization));
  });
});

describe('listen', () => {
  test('listen() with a new address list closes the old listener and keeps tokens', async (t) => {
    const tokens = new ChallengeTokens();
    const server = new ChallengeServer({ tokens, log });
    t.after(() => server.close());
    const token = newToken();
    await tokens.publish(token, `${token}.ka`);

    await server.listen(['127.0.0.1:0']);
    const [first] = server.boundAddresses();
    assert.equal((await request(first, 'GET', `${PREFIX}${token}`)).status, 200);

    // the same list again keeps the same listener
    await server.listen(['127.0.0.1:0']);
    assert.deepEqual(server.boundAddresses(), [first]);

    await server.listen(['127.0.0.2:0']);
    const bound = server.boundAddresses();
    assert.equal(bound.length, 1);
    assert.match(bound[0], /^127\.0\.0\.2:\d+$/);
    await assert.rejects(request(first, 'GET', `${PREFIX}${token}`), { code: 'ECONNREFUSED' });
    const reply = await request(bound[0], 'GET', `${PREFIX}${token}`);
    assert.equal(reply.status, 200);
    assert.equal(reply.body, `${token}.ka`);
  });

  test('listening on several addresses serves the same tokens on each', async (t) => {
    const tokens = new ChallengeTokens();
    const server = new ChallengeServer({ tokens, log });
    t.after(() => server.close());
    const token = newToken();
    await tokens.publish(token, `${token}.ka`);
    await server.listen(['127.0.0.1:0', '127.0.0.3:0']);
    const bound = server.boundAddresses();
    assert.equal(bound.length, 2);
    for (const address of bound) assert.equal((await request(address, 'GET', `${PREFIX}${token}`)).body, `${token}.ka`);
  });

  test('a port in use is an error from listen()', async (t) => {
    const first = new ChallengeServer({ tokens: new ChallengeTokens(), log });
    t.after(() => first.close());
    await first.listen(['127.0.0.1:0']);
    const second = new ChallengeServer({ tokens: new ChallengeTokens(), log });
    t.after(() => second.close());
    await assert.rejects(second.listen(first.boundAddresses()), { code: 'EADDRINUSE' });
  });

  test('close() stops answering', async () => {
    const server = new ChallengeServer({ tokens: new ChallengeTokens(), log });
    await server.listen(['127.0.0.1:0']);
    const [address] = server.boundAddresses();
    await server.close();
    assert.deepEqual(server.boundAddresses(), []);
    await assert.rejects(request(address, 'GET', '/'), { code: 'ECONNREFUSED' });
  });
});

describe('tokens', () => {
  test('isValidToken accepts base64url tokens only', () => {
    assert.equal(isValidToken(newToken()), true);
    assert.equal(isValidToken('a'.repeat(16)), true);
    assert.equal(isValidToken('a'.repeat(15)), false);
    assert.equal(isValidToken('a'.repeat(257)), false);
    for (const bad of ['../aaaaaaaaaaaaaaaaa', '%2e%2eaaaaaaaaaaaaaaa', 'aaaaaaaaaaaaaaaa/b', 'aaaaaaaaaaaaaaaa+/=', 'aaaaaaaaaaaaaaaa\n']) {
      assert.equal(isValidToken(bad), false, bad);
    }
  });

  test('publish refuses a token that is not base64url', async () => {
    const tokens = new ChallengeTokens();
    await assert.rejects(tokens.publish('../../etc/passwd-xxxxxxxx', 'ka'), /base64url/);
    assert.equal(tokens.size, 0);
  });

  test('waitForFetches resolves when the token is fetched', async (t) => {
    const tokens = new ChallengeTokens();
    const server = new ChallengeServer({ tokens, log });
    t.after(() => server.close());
    await server.listen(['127.0.0.1:0']);
    const [address] = server.boundAddresses();
    const a = newToken();
    const b = newToken();
    await tokens.publish(a, `${a}.ka`);
    await tokens.publish(b, `${b}.ka`);

    let settled = false;
    // a long timeout: resolving must come from the fetches, not the timer
    const waiting = tokens.waitForFetches([a, b], 60_000).then(() => { settled = true; });
    await request(address, 'GET', `${PREFIX}${a}`);
    await new Promise((r) => setImmediate(r));
    assert.equal(settled, false, 'one of two tokens fetched is not enough');
    await request(address, 'HEAD', `${PREFIX}${b}`);
    const outcome = await Promise.race([
      waiting.then(() => 'fetched'),
      new Promise((r) => setTimeout(r, 10_000).unref()).then(() => 'stuck'),
    ]);
    assert.equal(outcome, 'fetched');
  });

  test('waitForFetches falls back to its timer when no token is held here', async () => {
    const tokens = new ChallengeTokens();
    const started = Date.now();
    await tokens.waitForFetches([newToken()], 50);
    assert.ok(Date.now() - started >= 40);
  });

  test('on a shared store, another instance answers a token published elsewhere', async (t) => {
    const shared: Storage = { ...createMemoryStorage(), shared: true };
    const publisher = new ChallengeTokens(shared);
    const answerer = new ChallengeTokens(shared);
    const server = new ChallengeServer({ tokens: answerer, log });
    t.after(() => server.close());
    await server.listen(['127.0.0.1:0']);
    const [address] = server.boundAddresses();
    const token = newToken();
    await publisher.publish(token, `${token}.ka`);
    assert.equal(await shared.get(`challenges/${token}`), `${token}.ka`);
    const reply = await request(address, 'GET', `${PREFIX}${token}`);
    assert.equal(reply.status, 200);
    assert.equal(reply.body, `${token}.ka`);
    await publisher.withdraw(token);
    assert.equal((await request(address, 'GET', `${PREFIX}${token}`)).status, 404);
  });

  test('a storage failure during lookup is a 404, not a crash', async (t) => {
    const failing: Storage = {
      ...createMemoryStorage(),
      shared: true,
      get: async () => { throw new Error('storage is down'); },
    };
    const server = new ChallengeServer({ tokens: new ChallengeTokens(failing), log });
    t.after(() => server.close());
    await server.listen(['127.0.0.1:0']);
    const [address] = server.boundAddresses();
    const reply = await request(address, 'GET', `${PREFIX}${newToken()}`);
    assert.equal(reply.status, 404);
    // and the server still answers afterwards
    assert.equal((await request(address, 'GET', '/')).status, 404);
  });
});
