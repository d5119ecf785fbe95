// The logger's redaction: secrets never reach the log stream, other fields do.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '../../src/log.js';

/** A logger writing into memory; returns the logger and the parsed lines so far. */
function capture(level = 'info') {
  const chunks: string[] = [];
  const log = createLogger(level, { write: (chunk: string) => { chunks.push(chunk); } });
  const raw = () => chunks.join('');
  const lines = () => raw().split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>);
  return { log, raw, lines };
}

const SECRET = (name: string) => `SECRET-${name}-${Math.random().toString(36).slice(2)}`;

describe('redaction', () => {
  for (const field of ['privkey', 'privateKey', 'keyAuthorization', 'token', 'eab_hmac_key', 'accountKey', 'hmacKey', 'password', 'jwt']) {
    test(`a top-level ${field} is censored, other fields stay`, () => {
      const { log, raw, lines } = capture();
      const secret = SECRET(field);
      log.info({ [field]: secret, host: 'a.example.com', attempt: 3 }, 'something happened');
      assert.ok(!raw().includes(secret), raw());
      const [line] = lines();
      assert.equal(line[field], '[redacted]');
      assert.equal(line.host, 'a.example.com');
      assert.equal(line.attempt, 3);
      assert.equal(line.msg, 'something happened');
    });
  }

  test('a secret one level down is censored: { account: { accountKey } }', () => {
    const { log, raw, lines } = capture();
    const secret = SECRET('accountKey');
    log.info({ account: { accountKey: secret, url: 'https://ca.example/acct/1' } }, 'account loaded');
    assert.ok(!raw().includes(secret));
    const account = lines()[0].account as Record<string, unknown>;
    assert.equal(account.accountKey, '[redacted]');
    assert.equal(account.url, 'https://ca.example/acct/1');
  });

  test('secrets two levels down are censored', () => {
    const { log, raw, lines } = capture();
    const token = SECRET('token');
    const keyAuthorization = SECRET('ka');
    const auth = SECRET('auth');
    log.info({
      order: { challenge: { token, keyAuthorization, type: 'http-01' } },
      storage_config: { redis: { auth, host: '127.0.0.1' } },
    }, 'order step');
    for (const secret of [token, keyAuthorization, auth]) assert.ok(!raw().includes(secret), secret);
    const line = lines()[0] as { order: { challenge: Record<string, unknown> }; storage_config: { redis: Record<string, unknown> } };
    assert.equal(line.order.challenge.type, 'http-01');
    assert.equal(line.storage_config.redis.host, '127.0.0.1');
  });

  test('secrets inside an array of objects are censored', () => {
    const { log, raw, lines } = capture();
    const secret = SECRET('privkey');
    log.info({ certificates: [{ name: 'a.example.com', privkey: secret }] }, 'list');
    assert.ok(!raw().includes(secret));
    assert.deepEqual(lines()[0].certificates, [{ name: 'a.example.com', privkey: '[redacted]' }]);
  });

  test('the authorization request header is censored', () => {
    const { log, raw } = capture();
    const secret = SECRET('bearer');
    log.info({ req: { method: 'GET', headers: { authorization: `Bearer ${secret}`, host: 'admin' } } }, 'admin request');
    assert.ok(!raw().includes(secret));
    assert.ok(raw().includes('"host":"admin"'));
  });

  test('child logger bindings are censored too', () => {
    const { log, raw, lines } = capture();
    const secret = SECRET('token');
    log.child({ token: secret, host: 'a.example.com' }).info({ step: 'publish' }, 'challenge');
    assert.ok(!raw().includes(secret));
    assert.equal(lines()[0].host, 'a.example.com');
    assert.equal(lines()[0].step, 'publish');
  });

  test('the logged object itself is not modified', () => {
    const { log } = capture();
    const secret = SECRET('privkey');
    const fields = { privkey: secret, account: { accountKey: secret } };
    log.info(fields, 'x');
    assert.equal(fields.privkey, secret);
    assert.equal(fields.account.accountKey, secret);
  });
});

describe('logger basics', () => {
  test('lines carry service, level and an ISO time', () => {
    const { log, lines } = capture();
    log.warn('careful');
    const [line] = lines();
    assert.equal(line.service, 'acmed');
    assert.equal(line.level, 40);
    assert.equal(line.msg, 'careful');
    assert.ok(!Number.isNaN(Date.parse(String(line.time))));
    assert.match(String(line.time), /^\d{4}-\d\d-\d\dT/);
  });

  test('the level filters lower ones out', () => {
    const { log, lines } = capture('warn');
    log.info('quiet');
    log.debug('quieter');
    log.error('loud');
    assert.deepEqual(lines().map((l) => l.msg), ['loud']);
  });
});
