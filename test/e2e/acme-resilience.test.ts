// The ACME engine against a real Pebble, driven directly (no daemon), through
// proxies that misbehave on purpose: orders survive dropped connections and a
// 5xx, end at once on a failed validation, resume after an abort, and count
// only their own requests when they overlap.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { Writable } from 'node:stream';
import { AcmeEngine, type AcmeEngineOptions, type IssuedCertificate, type PendingOrder } from '../../src/acme/client.js';
import { AcmeNetworkError, AcmeOrderInvalidError, AcmeProblemError, isCaFault } from '../../src/acme/errors.js';
import { ChallengeServer } from '../../src/challenge/server.js';
import { ChallengeTokens } from '../../src/challenge/tokens.js';
import { createLogger } from '../../src/log.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import { startChaosProxy } from '../harness/chaos-proxy.js';
import { startAcmeStandinProxy, type AcmeStandinProxy } from '../harness/acme-standin-proxy.js';
import { freePort } from '../harness/ports.js';
import { startPebble, type PebbleHandle } from '../harness/pebble.js';

let pebble: PebbleHandle;
let standin: AcmeStandinProxy;
let tokens: ChallengeTokens;
let challengeServer: ChallengeServer;
const engines: AcmeEngine[] = [];

type LogLine = Record<string, unknown> & { msg: string; level: number };

/** An engine with its own memory storage and a log kept in memory (debug and up). */
async function startEngine(directoryUrl: string, opts: Partial<AcmeEngineOptions> = {}) {
  const lines: LogLine[] = [];
  const sink = new Writable({ write(chunk, _enc, done) { lines.push(JSON.parse(String(chunk))); done(); } });
  const engine = await AcmeEngine.create({
    directoryUrl,
    email: 'ops@example.com',
    caBundle: pebble.ca.certPem,
    storage: createMemoryStorage(),
    log: createLogger('debug', sink),
    ...opts,
  });
  engines.push(engine);
  return { engine, lines };
}

function issue(engine: AcmeEngine, name: string, extra: Partial<Parameters<AcmeEngine['issue']>[0]> = {}): Promise<IssuedCertificate> {
  return engine.issue({ names: [name], keyType: 'ecc', ...extra }, tokens);
}

function assertKeyMatches(issued: IssuedCertificate, privkey = issued.privkey): void {
  assert.ok(new X509Certificate(issued.cert).checkPrivateKey(createPrivateKey(privkey)), 'the certificate must match the private key');
}

before(async () => {
  const httpPort = await freePort();
  // No nonce rejection: request counts are exact.
  pebble = await startPebble({ httpPort, nonceReject: 0 });
  standin = await startAcmeStandinProxy({ target: pebble.acmeUrl, targetCa: pebble.ca.certPem, tls: await pebble.issueServerCert('standin') });
  tokens = new ChallengeTokens();
  challengeServer = new ChallengeServer({ tokens, log: createLogger('silent') });
  await challengeServer.listen([`127.0.0.1:${httpPort}`]);
});

after(async () => {
  for (const engine of engines) engine.close();
  await challengeServer?.close();
  await standin?.close();
  await pebble?.stop();
});

describe('dropped connections', () => {
  /** Waits for every order (none left running into the next test), then fails on the first error. */
  async function settleAll(orders: Promise<IssuedCertificate>[]): Promise<IssuedCertificate[]> {
    const results = await Promise.allSettled(orders);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    return results.map((r) => (r as PromiseFulfilledResult<IssuedCertificate>).value);
  }

  test('orders succeed through a proxy that drops every third connection and resets open ones', { timeout: 120_000 }, async () => {
    // Idle connections are closed after 10 ms, so nearly every request opens
    // a new connection and meets the drop schedule. Dropping every third
    // (rather than a random share) keeps the run repeatable: one order at a
    // time, a request never meets more than two failures in a row.
    const chaos = await startChaosProxy({ target: pebble.acmeUrl, idleCloseMs: 10 });
    try {
      const { engine, lines } = await startEngine(`${chaos.url}/dir`);
      const start = engine.requestCount;
      const issued: IssuedCertificate[] = [];
      chaos.setDrop({ every: 3 }, 'at-once');
      for (const n of ['c1', 'c2', 'c3', 'c4']) issued.push(await issue(engine, `${n}.chaos.example.com`));
      chaos.setDrop({ every: 3 }, 'after-first-bytes');
      for (const n of ['c5', 'c6', 'c7', 'c8']) issued.push(await issue(engine, `${n}.chaos.example.com`));
      const sequential = chaos.stats();

      // Overlapping orders, and twice every open connection reset under
      // them, whatever request is in flight (a finalize the CA took whose
      // answer is lost, a challenge answered twice).
      chaos.setDrop(null);
      const resets = [setTimeout(() => chaos.resetAll(), 60), setTimeout(() => chaos.resetAll(), 600)];
      try {
        issued.push(...await settleAll(['c9', 'c10', 'c11', 'c12', 'c13', 'c14'].map((n) => issue(engine, `${n}.chaos.example.com`))));
      } finally {
        resets.forEach(clearTimeout);
      }
      const stats = chaos.stats();
      const requests = issued.map((c) => c.requests);
      const retries = lines.filter((l) => l.msg === 'retrying ACME request');
      console.log(`chaos: ${issued.length} orders ok; ${stats.connections} connections, ${stats.dropped} dropped, `
        + `${stats.reset} reset, ${stats.idleClosed} idle-closed; ${retries.length} retries; requests per order: ${requests.join(' ')}`);

      assert.equal(issued.length, 14);
      for (const cert of issued) assertKeyMatches(cert);
      assert.ok(sequential.dropped >= 10 && sequential.dropped >= sequential.connections / 4,
        `${sequential.dropped} of ${sequential.connections} connections dropped`);
      assert.ok(retries.length >= sequential.dropped, `${retries.length} retries for ${sequential.dropped} drops`);
      for (const retry of retries) {
        assert.equal(retry.level, 20);
        assert.match(String(retry.path), /^\/[\w-]+/);
        assert.equal(typeof retry.reason, 'string');
      }
      // Overlapping orders report only their own requests, which add up to the engine's total.
      assert.ok(requests.every((n) => n >= 7 && n < 40), requests.join(' '));
      assert.equal(requests.reduce((a, b) => a + b, 0), engine.requestCount - start);
    } finally {
      await chaos.close();
    }
  });

  test('without retries the same proxy fails orders (so the test above could fail)', { timeout: 60_000 }, async () => {
    const chaos = await startChaosProxy({ target: pebble.acmeUrl, idleCloseMs: 10 });
    try {
      const { engine } = await startEngine(`${chaos.url}/dir`, { retryDelaysMs: [] });
      chaos.setDrop({ every: 3 }, 'at-once');
      const results: PromiseSettledResult<IssuedCertificate>[] = [];
      for (const n of ['n1', 'n2', 'n3']) results.push(...await Promise.allSettled([issue(engine, `${n}.noretry.example.com`)]));
      const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      assert.ok(failed.length >= 1, `no order failed; ${chaos.stats().dropped} drops`);
      for (const f of failed) {
        assert.ok(f.reason instanceof AcmeNetworkError, String(f.reason));
        assert.equal(isCaFault(f.reason), true);
      }
    } finally {
      await chaos.close();
    }
  });

  test('a CA that refuses every connection fails the order as a CA fault after the retries; it works again once back', { timeout: 60_000 }, async () => {
    const chaos = await startChaosProxy({ target: pebble.acmeUrl });
    try {
      const { engine, lines } = await startEngine(`${chaos.url}/dir`, { retryDelaysMs: [20, 20, 20] });
      await chaos.refuse();
      const err = await issue(engine, 'refused.example.com').then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof AcmeNetworkError, String(err));
      assert.match(err.message, /ECONNREFUSED/);
      assert.equal(isCaFault(err), true);
      // The fault schedule (three retries) for the refused connections; the
      // kept-alive connection refuse() reset may take one more, at once.
      const retries = lines.filter((l) => l.msg === 'retrying ACME request');
      assert.equal(retries.filter((l) => /ECONNREFUSED/.test(String(l.reason))).length, 3);
      for (const other of retries.filter((l) => !/ECONNREFUSED/.test(String(l.reason)))) {
        assert.match(String(other.reason), /on a kept-alive connection/);
        assert.equal(other.delayMs, 0);
      }
      await chaos.accept();
      assertKeyMatches(await issue(engine, 'refused.example.com'));
    } finally {
      await chaos.close();
    }
  });
});

describe('5xx answers', () => {
  test('a 500 on finalize is retried inside the order', { timeout: 30_000 }, async () => {
    const { engine, lines } = await startEngine(`${standin.url}/dir`);
    const finalizePath = '/finalize-order/';
    standin.failNext({ method: 'POST', path: finalizePath }, { status: 500, problem: { type: 'serverInternal', detail: 'stand-in: finalize failed' } });
    const answeredBefore = standin.answered().length;
    const issued = await issue(engine, 'finalize-500.example.com');
    assertKeyMatches(issued);
    const answered = standin.answered().slice(answeredBefore);
    assert.deepEqual(answered.map((a) => [a.method, a.path.startsWith(finalizePath), a.status]), [['POST', true, 500]]);
    const retry = lines.find((l) => l.msg === 'retrying ACME request');
    assert.ok(retry);
    assert.ok(String(retry.path).startsWith(finalizePath));
    assert.match(String(retry.reason), /serverInternal \(HTTP 500\): stand-in: finalize failed/);
  });

  test('502s on order polls and a 503 on newOrder are retried too', { timeout: 30_000 }, async () => {
    const { engine } = await startEngine(`${standin.url}/dir`, { retryDelaysMs: [20, 50, 100] });
    const paths = standin.resourcePaths();
    standin.failNext({ method: 'POST', path: paths.newOrder! }, { status: 503, problem: { type: 'serverInternal', detail: 'down for a moment' } });
    standin.failNext({ method: 'POST', path: '/my-order/' }, { status: 502, problem: { type: 'serverInternal', detail: 'bad gateway' } }, 2);
    assertKeyMatches(await issue(engine, 'poll-502.example.com'));
  });

  test('a 5xx that outlasts the retries fails the order as a CA fault', { timeout: 30_000 }, async () => {
    const { engine } = await startEngine(`${standin.url}/dir`, { retryDelaysMs: [10, 10, 10] });
    const answeredBefore = standin.answered().length;
    standin.failNext({ method: 'POST', path: '/finalize-order/' }, { status: 500, problem: { type: 'serverInternal', detail: 'still broken' } }, 10);
    const err = await issue(engine, 'finalize-down.example.com').then(() => undefined, (e: unknown) => e);
    standin.clearPending();
    assert.ok(err instanceof AcmeProblemError, String(err));
    assert.equal(err.httpStatus, 500);
    assert.equal(isCaFault(err), true);
    assert.equal(standin.answered().length - answeredBefore, 4); // the first try and three retries
  });
});

describe('failed validation', () => {
  test('a challenge pending with an error ends the order at once, with the CA\'s problem', { timeout: 30_000 }, async () => {
    const { engine } = await startEngine(`${standin.url}/dir`);
    const name = 'fail-fast.example.com';
    standin.failChallenge(name, { type: 'connection', detail: '127.0.0.9: Connection refused', status: 400 });
    const started = Date.now();
    const err = await issue(engine, name).then(() => undefined, (e: unknown) => e);
    const ms = Date.now() - started;
    assert.ok(err instanceof AcmeOrderInvalidError, String(err));
    assert.equal(err.message, 'validation of fail-fast.example.com failed: connection (HTTP 400): 127.0.0.9: Connection refused');
    assert.equal(err.problemType, 'connection');
    assert.equal(isCaFault(err), false);
    // The poll deadline is 120 s; failing fast means about one poll.
    assert.ok(ms < 3_000, `took ${ms} ms`);
    assert.equal(tokens.size, 0, 'the challenge token is withdrawn');
    // The challenge was held at the stand-in: Pebble never validated, the order stayed pending there.
    assert.ok(standin.answered().some((a) => a.path.startsWith('/chalZ/') && a.status === 200));
  });
});

describe('request counts', () => {
  test('a single-name order takes 7 requests on a warm engine', { timeout: 60_000 }, async () => {
    const { engine } = await startEngine(`${standin.url}/dir`);
    const counts: number[] = [];
    for (let i = 0; i < 5; i++) counts.push((await issue(engine, `fast-${i}.example.com`)).requests);
    console.log(`requests per order: ${counts.join(' ')}`);
    const sorted = [...counts].sort((a, b) => a - b);
    assert.equal(sorted[2], 7, counts.join(' '));
    assert.ok(counts.every((n) => n <= 9), counts.join(' '));
  });

  test('20 overlapping orders each report their own requests, not the engine\'s total', { timeout: 60_000 }, async () => {
    const { engine } = await startEngine(`${standin.url}/dir`);
    const start = engine.requestCount;
    const issued = await Promise.all(Array.from({ length: 20 }, (_, i) => issue(engine, `overlap-${i}.example.com`)));
    const requests = issued.map((c) => c.requests);
    console.log(`overlapping: requests per order ${requests.join(' ')}; engine total ${engine.requestCount - start}`);
    assert.ok(requests.every((n) => n >= 7 && n <= 15), requests.join(' '));
    assert.equal(requests.reduce((a, b) => a + b, 0), engine.requestCount - start);
  });
});

describe('resume', () => {
  const newOrders = () => standin.counts().byPath[standin.resourcePaths().newOrder!] ?? 0;

  test('an order aborted after it was placed is resumed without a second newOrder, with the stored key', { timeout: 30_000 }, async () => {
    const { engine } = await startEngine(`${standin.url}/dir`);
    const name = 'resume.example.com';
    const controller = new AbortController();
    const reason = new Error('lost the certificate lock');
    let placed: PendingOrder | undefined;
    await assert.rejects(issue(engine, name, {
      signal: controller.signal,
      onOrderPlaced: async (pending) => {
        placed = pending;
        controller.abort(reason);
      },
    }), (err) => err === reason);
    assert.ok(placed);
    assert.deepEqual(placed.names, [name]);
    assert.equal(placed.keyType, 'ecc');
    assert.match(placed.url, /\/my-order\//);
    assert.equal(tokens.size, 0);

    const ordersBefore = newOrders();
    let placedAgain = false;
    const issued = await issue(engine, name, { resume: placed, onOrderPlaced: async () => { placedAgain = true; } });
    assert.equal(issued.resumed, true);
    assert.equal(newOrders(), ordersBefore, 'no second newOrder');
    assert.equal(placedAgain, false);
    assert.equal(issued.privkey, placed.privkey);
    assertKeyMatches(issued, placed.privkey);
  });

  test('a valid order is resumed by downloading its certificate again', { timeout: 30_000 }, async () => {
    const { engine } = await startEngine(`${standin.url}/dir`);
    let placed: PendingOrder | undefined;
    const first = await issue(engine, 'resume-valid.example.com', { onOrderPlaced: async (p) => { placed = p; } });
    assert.equal(first.resumed, false);
    assert.ok(placed);
    const ordersBefore = newOrders();
    const again = await issue(engine, 'resume-valid.example.com', { resume: placed });
    assert.equal(again.resumed, true);
    assert.equal(again.cert, first.cert);
    assert.equal(again.privkey, first.privkey);
    assert.equal(newOrders(), ordersBefore);
    assert.ok(again.requests <= 3, `requests: ${again.requests}`);
  });

  test('an order the CA does not know, or for other names, is replaced by a new one', { timeout: 30_000 }, async () => {
    const { engine, lines } = await startEngine(`${standin.url}/dir`);
    let placed: PendingOrder | undefined;
    await issue(engine, 'resume-gone.example.com', { onOrderPlaced: async (p) => { placed = p; } });
    assert.ok(placed);

    const ordersBefore = newOrders();
    let replacement: PendingOrder | undefined;
    const gone = await issue(engine, 'resume-gone.example.com', {
      resume: { ...placed, url: `${placed.url}-gone` },
      onOrderPlaced: async (p) => { replacement = p; },
    });
    assert.equal(gone.resumed, false);
    assert.equal(newOrders(), ordersBefore + 1);
    assert.ok(replacement && replacement.url !== placed.url);
    assertKeyMatches(gone, replacement.privkey);
    assert.ok(lines.some((l) => l.msg === 'cannot resume the earlier order; placing a new one'));

    const other = await issue(engine, 'resume-other.example.com', { resume: placed });
    assert.equal(other.resumed, false);
    assert.notEqual(other.privkey, placed.privkey);
  });

  test('a failing onOrderPlaced is logged and does not fail the order', { timeout: 30_000 }, async () => {
    const { engine, lines } = await startEngine(`${standin.url}/dir`);
    const issued = await issue(engine, 'resume-store-down.example.com', { onOrderPlaced: async () => { throw new Error('storage is down'); } });
    assertKeyMatches(issued);
    const warn = lines.find((l) => l.msg === 'could not store the placed order for resume');
    assert.ok(warn);
    assert.equal(warn.level, 40);
    assert.equal(warn.err, 'storage is down');
  });
});
