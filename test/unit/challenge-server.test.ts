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

/** A server answering from a shared store, and a second instance's token publisher on the same store. */
async function sharedStoreServer(t: { after: (fn: () => unknown) => void }) {
  const shared: Storage = { ...createMemoryStorage(), shared: true };
  const publisher = new ChallengeTokens(shared);
  const answerer = new ChallengeTokens(shared);
  const server = new ChallengeServer({ tokens: answerer, log });
  t.after(() => server.close());
  await server.listen(['127.0.0.1:0']);
  const [address] = server.boundAddresses();
  return { shared, publisher, answerer, address };
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

  test('a Host that is an IP address (RFC 8738 §6: "v4", "v4:port", "[v6]:port") finds the token, on the fast path and on Node\'s', async () => {
    for (const host of ['127.0.0.1', `127.0.0.1:${address.split(':')[1]}`, '[::1]', '[::1]:80', '[2001:db8::1]:5002']) {
      // Whole request in one write: the fast path; split in two writes: Node's parser.
      const whole = await raw(address, `GET ${PREFIX}${token} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      assert.match(whole.data, /^HTTP\/1\.1 200 /, host);
      assert.ok(whole.data.endsWith(keyAuthorization), host);
      const reply = await new Promise<string>((resolve, reject) => {
        const socket = net.connect(Number(address.split(':')[1]), '127.0.0.1');
        let data = '';
        socket.on('data', (d) => { data += d.toString('latin1'); });
        socket.on('end', () => resolve(data));
        socket.on('error', reject);
        socket.write(`GET ${PREFIX}${token} HTTP/1.1\r\n`);
        setTimeout(() => socket.end(`Host: ${host}\r\nConnection: close\r\n\r\n`), 20);
      });
      assert.match(reply, /^HTTP\/1\.1 200 /, host);
      assert.ok(reply.endsWith(keyAuthorization), host);
    }
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
    const { shared, publisher, address } = await sharedStoreServer(t);
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

// ---- the fast path: the same bytes as Node's HTTP server, or Node's server itself ----

interface Exchange {
  data: string;
  closed: boolean;
}

/**
 * Writes each payload (gapMs apart) on one connection and collects the answer
 * until the server closes the connection, or until nothing more arrived for
 * quietMs after the last payload and at least one byte; limitMs bounds it all.
 */
function converse(address: string, payloads: (string | Buffer)[], { gapMs = 0, quietMs = 250, limitMs = 5_000 } = {}): Promise<Exchange> {
  const colon = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(address.slice(colon + 1)), address.slice(0, colon));
    let data = '';
    let sent = false;
    let quiet: NodeJS.Timeout | undefined;
    const finish = (closed: boolean) => {
      clearTimeout(limit);
      clearTimeout(quiet);
      socket.destroy();
      resolve({ data, closed });
    };
    const limit = setTimeout(() => finish(false), limitMs);
    const armQuiet = () => {
      clearTimeout(quiet);
      if (sent && data.length > 0) quiet = setTimeout(() => finish(false), quietMs);
    };
    socket.setEncoding('latin1');
    socket.on('connect', async () => {
      for (const [i, payload] of payloads.entries()) {
        if (i > 0 && gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
        if (!socket.writable) break;
        socket.write(payload);
      }
      sent = true;
      armQuiet();
    });
    socket.on('data', (chunk: string) => {
      data += chunk;
      armQuiet();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ECONNRESET' && err.code !== 'EPIPE') {
        clearTimeout(limit);
        reject(err);
      }
    });
    socket.on('close', () => finish(true));
  });
}

const withoutDate = (data: string) => data.replace(/\r\nDate: [^\r\n]*\r\n/g, '\r\nDate: -\r\n');

/** The http.Server behind a ChallengeServer's only listener (to count what reaches Node). */
function nodeServerOf(server: ChallengeServer): http.Server {
  const listeners = (server as unknown as { servers: Map<string, { server: http.Server }> }).servers;
  return [...listeners.values()][0]!.server;
}

describe('the fast path answers exactly what Node would', () => {
  const tokens = new ChallengeTokens();
  const fast = new ChallengeServer({ tokens, log, headersTimeoutMs: 300, requestTimeoutMs: 1_000 });
  const node = new ChallengeServer({ tokens, log, headersTimeoutMs: 300, requestTimeoutMs: 1_000, fastPath: false });
  let fastAddress: string;
  let nodeAddress: string;
  const token = newToken();
  const keyAuthorization = `${token}.thumbprint-${randomBytes(8).toString('hex')}`;
  const unknown = newToken();
  const get = (path: string, headers = 'Host: a.example.com\r\n', method = 'GET', version = 'HTTP/1.1') => `${method} ${path} ${version}\r\n${headers}\r\n`;

  before(async () => {
    await tokens.publish(token, keyAuthorization);
    await fast.listen(['127.0.0.1:0']);
    await node.listen(['127.0.0.1:0']);
    [fastAddress] = fast.boundAddresses();
    [nodeAddress] = node.boundAddresses();
  });
  after(() => Promise.all([fast.close(), node.close()]));

  async function bothAnswer(payloads: (string | Buffer)[], gapMs = 0): Promise<Exchange> {
    const [a, b] = await Promise.all([converse(fastAddress, payloads, { gapMs }), converse(nodeAddress, payloads, { gapMs })]);
    assert.equal(withoutDate(a.data), withoutDate(b.data), JSON.stringify(payloads).slice(0, 300));
    assert.equal(a.closed, b.closed, `closed after ${JSON.stringify(payloads).slice(0, 300)}`);
    return a;
  }

  // Plain validation requests: answered without Node's HTTP server.
  const plain: [string, string[]][] = [
    ['a GET for a published token', [get(`${PREFIX}${token}`)]],
    ['a HEAD for a published token', [get(`${PREFIX}${token}`, 'Host: a.example.com\r\n', 'HEAD')]],
    ['Connection: close', [get(`${PREFIX}${token}`, 'Host: a.example.com\r\nConnection: close\r\n')]],
    ['Connection: Keep-Alive, no blank after the colon', [get(`${PREFIX}${token}`, 'host:a.example.com\r\nConnection:Keep-Alive\r\n')]],
    ['the headers a validator sends', [get(`${PREFIX}${token}`, 'Host: a.example.com\r\nUser-Agent: Mozilla/5.0 (compatible; Let\'s Encrypt validation server; +https://www.letsencrypt.org)\r\nAccept: */*\r\nAccept-Encoding: gzip\r\nConnection: close\r\n')]],
    ['a tab and trailing blanks in a value', [get(`${PREFIX}${token}`, 'Host: a.example.com  \r\nX-Note: a\tb \r\n')]],
    ['a query string', [get(`${PREFIX}${token}?via=ca&x=/a:b@c%20d`)]],
    ['an unknown token', [get(`${PREFIX}${unknown}`)]],
    ['an unknown token, HEAD, close', [get(`${PREFIX}${unknown}`, 'Host: a\r\nConnection: close\r\n', 'HEAD')]],
    ['a token too short to be valid', [get(`${PREFIX}abc`)]],
    ['three requests one after another', [get(`${PREFIX}${token}`), get(`${PREFIX}${unknown}`), get(`${PREFIX}${token}`, 'Host: a\r\n', 'HEAD')]],
  ];

  test('plain requests: the same bytes, and Node\'s server never sees them', async () => {
    let reachedNode = 0;
    const count = () => { reachedNode++; };
    nodeServerOf(fast).on('request', count);
    try {
      await Promise.all(plain.map(async ([what, payloads]) => {
        const answer = await bothAnswer(payloads, 50);
        assert.match(answer.data, /^HTTP\/1\.1 (200|404) /, what);
      }));
    } finally {
      nodeServerOf(fast).off('request', count);
    }
    assert.equal(reachedNode, 0);
    const answer = await converse(fastAddress, [get(`${PREFIX}${token}`)]);
    assert.ok(answer.data.endsWith(`\r\n\r\n${keyAuthorization}`), answer.data);
    assert.match(answer.data, /\r\ncontent-length: \d+\r\n/);
  });

  // Anything else goes to Node's server, with the bytes already read.
  const other: [string, (string | Buffer)[]][] = [
    ['a query with a character RFC 3986 does not allow', [get(`${PREFIX}${token}?a="b"`)]],
    ['a fragment', [get(`${PREFIX}${token}#x`)]],
    ['a percent-encoded token', [get(`${PREFIX}${encodeURIComponent(`${token}/`)}`)]],
    ['a dot-dot path', [get(`${PREFIX}../${token}`)]],
    ['a token longer than any valid one', [get(`${PREFIX}${'a'.repeat(300)}`)]],
    ['HTTP/1.0', [get(`${PREFIX}${token}`, 'Host: a\r\n', 'GET', 'HTTP/1.0')]],
    ['HTTP/1.0 keep-alive', [get(`${PREFIX}${token}`, 'Host: a\r\nConnection: keep-alive\r\n', 'GET', 'HTTP/1.0')]],
    ['HTTP/1.1 without Host', [get(`${PREFIX}${token}`, 'Accept: */*\r\n')]],
    ['no headers at all', [`GET ${PREFIX}${token} HTTP/1.1\r\n\r\n`]],
    ['an empty Host', [get(`${PREFIX}${token}`, 'Host: \r\n')]],
    ['two Host headers', [get(`${PREFIX}${token}`, 'Host: a\r\nHost: b\r\n')]],
    ['two Connection headers', [get(`${PREFIX}${token}`, 'Host: a\r\nConnection: close\r\nConnection: keep-alive\r\n')]],
    ['Connection: close, keep-alive', [get(`${PREFIX}${token}`, 'Host: a\r\nConnection: close, keep-alive\r\n')]],
    ['Content-Length: 0', [get(`${PREFIX}${token}`, 'Host: a\r\nContent-Length: 0\r\n')]],
    ['a GET with a body', [`${get(`${PREFIX}${token}`, 'Host: a\r\nContent-Length: 5\r\n')}hello`]],
    ['a chunked body', [`${get(`${PREFIX}${token}`, 'Host: a\r\nTransfer-Encoding: chunked\r\n')}0\r\n\r\n`]],
    ['Expect: 100-continue', [get(`${PREFIX}${token}`, 'Host: a\r\nExpect: 100-continue\r\n')]],
    ['an Upgrade', [get(`${PREFIX}${token}`, 'Host: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n')]],
    ['a byte above 0x7f in a header', [Buffer.from(get(`${PREFIX}${token}`, 'Host: a\r\nX: caf\xe9\r\n'), 'latin1')]],
    ['DEL in a header', [get(`${PREFIX}${token}`, 'Host: a\r\nX: a\x7fb\r\n')]],
    ['NUL in the path', [get(`${PREFIX}${token}\0`)]],
    ['bare LF line ends', [`GET ${PREFIX}${token} HTTP/1.1\nHost: a\n\n`]],
    ['a blank before the colon', [get(`${PREFIX}${token}`, 'Host : a\r\n')]],
    ['a folded header', [get(`${PREFIX}${token}`, 'Host: a\r\nX: b\r\n c\r\n')]],
    ['two blanks in the request line', [`GET  ${PREFIX}${token} HTTP/1.1\r\nHost: a\r\n\r\n`]],
    ['a lower-case method', [get(`${PREFIX}${token}`, 'Host: a\r\n', 'get')]],
    ['a lower-case version', [get(`${PREFIX}${token}`, 'Host: a\r\n', 'GET', 'http/1.1')]],
    ['POST', [`${get(`${PREFIX}${token}`, 'Host: a\r\nContent-Length: 2\r\n', 'POST')}{}`]],
    ['OPTIONS', [get(`${PREFIX}${token}`, 'Host: a\r\n', 'OPTIONS')]],
    ['an absolute URL', [get(`http://a.example.com${PREFIX}${token}`)]],
    ['a CRLF before the request', [`\r\n${get(`${PREFIX}${token}`)}`]],
    ['40 headers', [get(`${PREFIX}${token}`, `Host: a\r\n${Array.from({ length: 39 }, (_, i) => `X-${i}: ${i}\r\n`).join('')}`)]],
    ['5 KB of headers', [get(`${PREFIX}${token}`, `Host: a\r\nX-Big: ${'a'.repeat(5_000)}\r\n`)]],
    ['16 KB of headers', [get(`${PREFIX}${token}`, `Host: a\r\nX-Big: ${'a'.repeat(16 * 1024)}\r\n`)]],
    ['not HTTP', ['THIS IS NOT HTTP\r\n\r\n']],
    ['two requests in one write', [get(`${PREFIX}${token}`) + get(`${PREFIX}${unknown}`)]],
    ['a request split over two writes', [`GET ${PREFIX}${token.slice(0, 10)}`, `${token.slice(10)} HTTP/1.1\r\nHost: a\r\n\r\n`]],
    ['a plain request, an odd one, a plain one', [get(`${PREFIX}${token}`), get(`${PREFIX}${token}?a="b"`), get(`${PREFIX}${token}`)]],
    ['a plain request, then garbage', [get(`${PREFIX}${token}`), 'GARBAGE\r\n\r\n']],
    ['a plain request, then HTTP/1.0 with close', [get(`${PREFIX}${token}`), get(`${PREFIX}${token}`, 'Host: a\r\n', 'GET', 'HTTP/1.0')]],
  ];
  describe('anything else is Node\'s', { concurrency: true }, () => {
    for (const [what, payloads] of other) {
      test(`Node's answer for ${what}`, async () => {
        await bothAnswer(payloads, 50);
      });
    }
  });

  test('requests with bytes changed at random: the same answers either way', async () => {
    // A fixed seed: the same 240 variations every run.
    let seed = 0x2545f491;
    const random = (n: number) => {
      seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    const base = Buffer.from(get(`${PREFIX}${token}?x=1`, 'Host: a.example.com\r\nAccept: */*\r\nConnection: keep-alive\r\n'), 'latin1');
    const bytes = [0, 9, 10, 13, 32, 0x22, 0x23, 0x25, 0x2f, 0x3a, 0x3f, 0x41, 0x61, 0x7f, 0x80, 0xff];
    const variations = Array.from({ length: 240 }, () => {
      const request = Buffer.from(base);
      for (let n = 1 + random(2); n > 0; n--) request[random(request.length)] = bytes[random(bytes.length)]!;
      return request;
    });
    for (let i = 0; i < variations.length; i += 60) {
      await Promise.all(variations.slice(i, i + 60).map((request) => bothAnswer([request])));
    }
  });

  test('a token only the shared store knows is looked up there, and counted once', async (t) => {
    const { publisher, answerer, address } = await sharedStoreServer(t);
    const elsewhere = newToken();
    await publisher.publish(elsewhere, `${elsewhere}.ka`);
    const answer = await converse(address, [get(`${PREFIX}${elsewhere}`), get(`${PREFIX}${unknown}`)], { gapMs: 50 });
    assert.match(answer.data, new RegExp(`^HTTP/1\\.1 200 OK\\r\\n[^]*\\r\\n\\r\\n${elsewhere}\\.ka` + 'HTTP/1\\.1 404 Not Found\\r\\n'));
    assert.deepEqual(answerer.stats, { hits: 1, misses: 1 });
  });
});

describe('the fast path keeps the books and the limits', () => {
  test('hits and misses are counted once per answer', async (t) => {
    const tokens = new ChallengeTokens();
    const server = new ChallengeServer({ tokens, log });
    t.after(() => server.close());
    await server.listen(['127.0.0.1:0']);
    const [address] = server.boundAddresses();
    const token = newToken();
    await tokens.publish(token, `${token}.ka`);
    const get = (path: string, method = 'GET') => `${method} ${path} HTTP/1.1\r\nHost: a\r\n\r\n`;
    await converse(address, [
      get(`${PREFIX}${token}`), get(`${PREFIX}${token}`, 'HEAD'), get(`${PREFIX}${newToken()}`), get(`${PREFIX}abc`),
      get('/favicon.ico'), // not a challenge: neither a hit nor a miss
      get(`${PREFIX}${token}?a="b"`), // Node's path
      get(`${PREFIX}../x`, 'GET'),
    ], { gapMs: 30 });
    assert.deepEqual(tokens.stats, { hits: 3, misses: 3 });
  });

  test('many clients at once each get the right answer', async (t) => {
    const tokens = new ChallengeTokens();
    const server = new ChallengeServer({ tokens, log });
    t.after(() => server.close());
    await server.listen(['127.0.0.1:0']);
    const [address] = server.boundAddresses();
    const published = Array.from({ length: 20 }, () => newToken());
    for (const token of published) await tokens.publish(token, `${token}.ka`);
    const answers = await Promise.all(published.map((token) =>
      converse(address, Array.from({ length: 5 }, () => `GET ${PREFIX}${token} HTTP/1.1\r\nHost: a\r\n\r\n`), { gapMs: 5 })));
    for (const [i, answer] of answers.entries()) {
      const bodies = answer.data.split(/HTTP\/1\.1 200 OK\r\n[^]*?\r\n\r\n/).slice(1);
      assert.deepEqual(bodies, Array(5).fill(`${published[i]}.ka`));
    }
    assert.deepEqual(tokens.stats, { hits: 100, misses: 0 });
  });

  test('a connection that sends nothing is closed after headersTimeout', async (t) => {
    const server = new ChallengeServer({ tokens: new ChallengeTokens(), log, headersTimeoutMs: 300 });
    t.after(() => server.close());
    await server.listen(['127.0.0.1:0']);
    const [address] = server.boundAddresses();
    const started = Date.now();
    const result = await raw(address, '', 5_000);
    assert.equal(result.closed, true);
    assert.equal(result.data, '');
    assert.ok(Date.now() - started >= 250);
  });

  test('close() ends idle keep-alive connections at once', async () => {
    const tokens = new ChallengeTokens();
    const server = new ChallengeServer({ tokens, log });
    await server.listen(['127.0.0.1:0']);
    const [address] = server.boundAddresses();
    const token = newToken();
    await tokens.publish(token, `${token}.ka`);
    const colon = address.lastIndexOf(':');
    const socket = net.connect(Number(address.slice(colon + 1)), address.slice(0, colon));
    const closed = new Promise((resolve) => socket.on('close', resolve));
    socket.on('error', () => {});
    socket.write(`GET ${PREFIX}${token} HTTP/1.1\r\nHost: a\r\n\r\n`);
    await new Promise((resolve) => socket.once('data', resolve));
    const started = Date.now();
    await server.close();
    await closed;
    assert.ok(Date.now() - started < 2_000, 'close() waited for the keep-alive timeout');
  });

  test('a debug log line names the host of each challenge answered', async (t) => {
    const lines: string[] = [];
    const debugLog = createLogger('debug', { write: (line: string) => { lines.push(line); } });
    const tokens = new ChallengeTokens();
    const server = new ChallengeServer({ tokens, log: debugLog });
    t.after(() => server.close());
    await server.listen(['127.0.0.1:0']);
    const [address] = server.boundAddresses();
    const token = newToken();
    await tokens.publish(token, `${token}.ka`);
    await converse(address, [`GET ${PREFIX}${token} HTTP/1.1\r\nHost: Www.Example.com\r\nConnection: close\r\n\r\n`]);
    const entries = lines.map((line) => JSON.parse(line) as { msg: string; host?: string }).filter((e) => e.msg === 'answered http-01 challenge');
    assert.deepEqual(entries.map((e) => e.host), ['Www.Example.com']);
  });
});
