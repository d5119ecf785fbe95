// The ACME account when the CA misbehaves about it, against a real Pebble,
// with the engine driven directly (no daemon): a restarted Pebble has
// forgotten every account, and the engine registers the stored key again,
// once for all the orders that notice at the same moment; a CA that refuses
// the external account binding gives one clear error that names the kid and
// never the HMAC key.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey, randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { AcmeEngine, type AcmeEngineOptions, type IssuedCertificate } from '../../src/acme/client.js';
import { loadAccountUrl } from '../../src/acme/account.js';
import { AcmeAccountError } from '../../src/acme/errors.js';
import { ChallengeServer } from '../../src/challenge/server.js';
import { ChallengeTokens } from '../../src/challenge/tokens.js';
import { createLogger } from '../../src/log.js';
import { keys } from '../../src/storage/keys.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import type { Storage } from '../../src/storage/storage.js';
import { startAcmeStandinProxy, type AcmeStandinProxy } from '../harness/acme-standin-proxy.js';
import { freePort } from '../harness/ports.js';
import { startPebble, type PebbleHandle, type PebbleOptions } from '../harness/pebble.js';

type LogLine = Record<string, unknown> & { msg: string; level: number };

const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** Pebble, a counting stand-in in front of it, and an http-01 responder on Pebble's httpPort. */
async function startCa(opts: Omit<PebbleOptions, 'httpPort'> = {}) {
  const httpPort = await freePort();
  // No nonce rejection, so a resent request never counts twice.
  const pebble = await startPebble({ httpPort, nonceReject: 0, ...opts });
  cleanups.push(() => pebble.stop());
  const standin = await startAcmeStandinProxy({ target: pebble.acmeUrl, targetCa: pebble.ca.certPem, tls: await pebble.issueServerCert('standin') });
  cleanups.push(() => standin.close());
  const tokens = new ChallengeTokens();
  const server = new ChallengeServer({ tokens, log: createLogger('silent') });
  await server.listen([`127.0.0.1:${httpPort}`]);
  cleanups.push(() => server.close());
  return { pebble, standin, tokens, directoryUrl: `${standin.url}/dir` };
}

async function startEngine(ca: { pebble: PebbleHandle; directoryUrl: string }, opts: Partial<AcmeEngineOptions> & { storage?: Storage } = {}) {
  const lines: LogLine[] = [];
  const sink = new Writable({ write(chunk, _enc, done) { lines.push(JSON.parse(String(chunk))); done(); } });
  const engine = await AcmeEngine.create({
    directoryUrl: ca.directoryUrl,
    email: 'ops@example.com',
    caBundle: ca.pebble.ca.certPem,
    storage: createMemoryStorage(),
    log: createLogger('debug', sink),
    ...opts,
  });
  cleanups.push(() => engine.close());
  return { engine, lines, text: () => lines.map((l) => JSON.stringify(l)).join('\n') };
}

function assertKeyMatches(issued: IssuedCertificate): void {
  assert.ok(new X509Certificate(issued.cert).checkPrivateKey(createPrivateKey(issued.privkey)));
}

describe('a CA that forgot the account', () => {
  test('after a Pebble restart, concurrent orders share one re-registration with the same key', { timeout: 60_000 }, async () => {
    const ca = await startCa();
    const storage = createMemoryStorage();
    const { engine, lines } = await startEngine(ca, { storage });
    const newAccounts = () => ca.standin.counts().byPath[ca.standin.resourcePaths().newAccount!] ?? 0;
    const tokens = ca.tokens;
    const issue = (name: string) => engine.issue({ names: [name], keyType: 'ecc' }, tokens);

    const before = await issue('before.example.com');
    assert.equal(newAccounts(), 1);
    const keyBefore = await storage.get(keys.accountKey);
    const urlBefore = await loadAccountUrl(storage, ca.directoryUrl);
    assert.ok(keyBefore && urlBefore);

    await ca.pebble.kill();
    await ca.pebble.start();
    // A slow newAccount, so every order finds the account gone while the re-registration runs.
    ca.standin.delayNext({ method: 'POST', path: ca.standin.resourcePaths().newAccount! }, 500);

    const after = await Promise.all(['r1', 'r2', 'r3', 'r4'].map((n) => issue(`${n}.restart.example.com`)));
    for (const cert of after) assertKeyMatches(cert);
    assert.equal(newAccounts(), 2, 'one re-registration for all four orders');
    const urlAfter = await loadAccountUrl(storage, ca.directoryUrl);
    assert.ok(urlAfter);
    assert.notEqual(urlAfter, urlBefore);
    assert.equal(await storage.get(keys.accountKey), keyBefore, 'the account key is kept');
    // Issued by the restarted Pebble: a new intermediate.
    assert.notEqual(after[0]!.chain, before.chain);

    const warnings = lines.filter((l) => l.msg === 'ACME account unknown to the CA; registered it again');
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]!.level, 40);
    assert.equal(warnings[0]!.oldAccountUrl, urlBefore);
    assert.equal(warnings[0]!.accountUrl, urlAfter);

    // The next order uses the new account straight away.
    assertKeyMatches(await issue('later.restart.example.com'));
    assert.equal(newAccounts(), 2);

    // A second engine on the same storage (a restarted acmed) loads the new URL and registers nothing.
    const { engine: reloaded } = await startEngine(ca, { storage });
    assertKeyMatches(await reloaded.issue({ names: ['reloaded.example.com'], keyType: 'ecc' }, tokens));
    assert.equal(newAccounts(), 2);
  });

  test('a refused re-registration fails the order clearly; the next order tries again', { timeout: 60_000 }, async () => {
    const ca = await startCa();
    const storage = createMemoryStorage();
    const { engine } = await startEngine(ca, { storage });
    const issue = (name: string) => engine.issue({ names: [name], keyType: 'ecc' }, ca.tokens);
    const urlBefore = await loadAccountUrl(storage, ca.directoryUrl);

    await ca.pebble.kill();
    await ca.pebble.start();
    ca.standin.failNext({ method: 'POST', path: ca.standin.resourcePaths().newAccount! },
      { status: 400, problem: { type: 'invalidContact', detail: 'contact domain is not accepted' } });
    const err = await issue('refused.example.com').then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof AcmeAccountError, String(err));
    assert.equal(err.message, 'invalidContact (HTTP 400): contact domain is not accepted (the CA refused to register the ACME account)');
    assert.equal(await loadAccountUrl(storage, ca.directoryUrl), urlBefore);

    assertKeyMatches(await issue('retried.example.com'));
    assert.notEqual(await loadAccountUrl(storage, ca.directoryUrl), urlBefore);
  });
});

describe('external account binding', () => {
  test('a refused HMAC key gives one AcmeAccountError naming the kid, never the key; the right key works, also after a restart', { timeout: 60_000 }, async () => {
    const hmacKey = randomBytes(32).toString('base64url');
    const wrongKey = randomBytes(32).toString('base64url');
    const ca = await startCa({ eab: { 'kid-acmed': hmacKey } });
    const newAccounts = () => ca.standin.counts().byPath[ca.standin.resourcePaths().newAccount!] ?? 0;

    const lines: string[] = [];
    const sink = new Writable({ write(chunk, _enc, done) { lines.push(String(chunk)); done(); } });
    const refused = await AcmeEngine.create({
      directoryUrl: ca.directoryUrl,
      email: 'ops@example.com',
      caBundle: ca.pebble.ca.certPem,
      storage: createMemoryStorage(),
      log: createLogger('debug', sink),
      eab: { kid: 'kid-acmed', hmacKey: wrongKey },
    }).then(() => undefined, (e: unknown) => e);
    assert.ok(refused instanceof AcmeAccountError, String(refused));
    assert.equal(refused.code, 'ACME_ACCOUNT');
    assert.match(refused.message, /^the CA refused the external account binding for eab_kid "kid-acmed": \S/);
    for (const secret of [wrongKey, hmacKey]) {
      assert.ok(!refused.message.includes(secret), 'the message must not show an HMAC key');
      assert.ok(!JSON.stringify(refused).includes(secret), 'nor any field of the error');
      assert.ok(!lines.join('').includes(secret), 'nor the log');
    }
    assert.equal(newAccounts(), 1, 'a refused binding is not retried');

    const storage = createMemoryStorage();
    const { engine, text } = await startEngine(ca, { storage, eab: { kid: 'kid-acmed', hmacKey } });
    assertKeyMatches(await engine.issue({ names: ['eab.example.com'], keyType: 'ecc' }, ca.tokens));
    await ca.pebble.kill();
    await ca.pebble.start();
    assertKeyMatches(await engine.issue({ names: ['eab-restart.example.com'], keyType: 'ecc' }, ca.tokens));
    assert.equal(newAccounts(), 3);
    assert.ok(!text().includes(hmacKey));
  });
});
