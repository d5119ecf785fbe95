// ZeroSSL's EAB endpoint, against a local HTTPS stand-in of that one
// endpoint (a form POST with `email`, answered with eab_kid/eab_hmac_key or
// an error): the binding is asked for once, kept in storage, and a refusal
// is one clear error.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isZeroSsl, zeroSslEab } from '../../src/acme/zerossl-eab.js';
import { createMemoryStorage } from '../../src/storage/memory.js';
import { createTestCa, issueServerCert, type TestCa } from '../harness/pebble.js';

let dir: string;
let ca: TestCa;
let server: https.Server;
let endpoint: string;
const received: { path: string; type: string | undefined; body: string }[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'acmed-zerossl-'));
  ca = await createTestCa(dir);
  const cert = await issueServerCert(ca, dir);
  server = https.createServer({ cert: cert.cert, key: cert.key }, (req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (c: string) => { body += c; });
    req.on('end', () => {
      received.push({ path: req.url!, type: req.headers['content-type'], body });
      const email = new URLSearchParams(body).get('email');
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(email === 'ops@example.com'
        ? { success: true, eab_kid: 'kid-from-zerossl', eab_hmac_key: 'aG1hYy1rZXktZnJvbS16ZXJvc3Ns' }
        : { success: false, error: { code: 2800, type: 'invalid_email' } }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = `https://127.0.0.1:${(server.address() as { port: number }).port}/acme/eab-credentials-email`;
});

after(async () => {
  server?.close();
  await rm(dir, { recursive: true, force: true });
});

test('ZeroSSL is recognised by its directory host only', () => {
  assert.equal(isZeroSsl('https://acme.zerossl.com/v2/DV90'), true);
  assert.equal(isZeroSsl('https://acme-v02.api.letsencrypt.org/directory'), false);
  assert.equal(isZeroSsl('https://acme.zerossl.com.evil.example/v2/DV90'), false);
  assert.equal(isZeroSsl('not a url'), false);
});

test('the binding is asked for with the email, once, and kept in storage', async () => {
  const storage = createMemoryStorage();
  received.length = 0;
  const first = await zeroSslEab({ email: 'ops@example.com', storage, endpoint, ca: ca.certPem });
  assert.deepEqual(first, { kid: 'kid-from-zerossl', hmacKey: 'aG1hYy1rZXktZnJvbS16ZXJvc3Ns' });
  assert.equal(received.length, 1);
  assert.equal(received[0]!.type, 'application/x-www-form-urlencoded');
  assert.equal(received[0]!.body, 'email=ops%40example.com');
  const again = await zeroSslEab({ email: 'ops@example.com', storage, endpoint, ca: ca.certPem });
  assert.deepEqual(again, first);
  assert.equal(received.length, 1, 'the stored binding is reused, not asked for again');
});

test('a refusal, or an endpoint that is not there, is one clear error and stores nothing', async () => {
  const storage = createMemoryStorage();
  await assert.rejects(zeroSslEab({ email: 'nobody@bad', storage, endpoint, ca: ca.certPem }), /ZeroSSL refused EAB credentials for nobody@bad: invalid_email \(2800\)/);
  await assert.rejects(zeroSslEab({ email: 'ops@example.com', storage, endpoint: 'https://127.0.0.1:9/x', ca: ca.certPem, timeoutMs: 2000 }), /cannot get ZeroSSL EAB credentials from https:\/\/127\.0\.0\.1:9\/x/);
  assert.equal(await storage.get('account/zerossl-eab.json'), null);
});
