// The RFC 2136 provider and TSIG signing against a real BIND 9: BIND checks
// our MAC (a wrong one is refused) and signs its answer, which we check.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBind, type BindHandle } from '../harness/bind.js';
import { CHALLENGE_TTL_SECONDS, DnsUpdateError, Rfc2136Provider } from '../../src/challenge/dns-rfc2136.js';
import { parseTsigSecret, signMessage, verifyAnswer } from '../../src/challenge/tsig.js';
import { exchangeTcp, parseServer, query } from '../../src/challenge/dns-transport.js';
import { updateMessage } from '../../src/challenge/dns-rfc2136.js';

let dir: string;
const binds: BindHandle[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'acmed-rfc2136-'));
});

after(async () => {
  await Promise.all(binds.map((b) => b.stop()));
  await rm(dir, { recursive: true, force: true });
});

async function bindWith(algorithm: 'hmac-sha256' | 'hmac-sha384' | 'hmac-sha512'): Promise<BindHandle> {
  const bind = await startBind({ algorithm, zones: [{ name: 'example.com' }] });
  binds.push(bind);
  return bind;
}

for (const algorithm of ['hmac-sha256', 'hmac-sha384', 'hmac-sha512'] as const) {
  test(`${algorithm}: adds two values at one name and removes exactly each`, async () => {
    const bind = await bindWith(algorithm);
    const provider = await Rfc2136Provider.create({
      server: bind.address, tsig_key_name: bind.keyName, tsig_algorithm: algorithm, tsig_secret_file: bind.keyFilePath,
    });
    const apex = { fqdn: '_acme-challenge.example.com', zone: 'example.com', value: 'apex-value' };
    const wildcard = { ...apex, value: 'wildcard-value' };
    await provider.present(apex);
    await provider.present(wildcard);
    assert.deepEqual((await bind.txt(apex.fqdn)).sort(), ['apex-value', 'wildcard-value']);
    const answer = await query(parseServer(bind.address), apex.fqdn, 'TXT');
    assert.deepEqual(answer.answers!.map((a) => (a as { ttl?: number }).ttl), [CHALLENGE_TTL_SECONDS, CHALLENGE_TTL_SECONDS], 'a short TTL');
    await provider.cleanup(apex);
    assert.deepEqual(await bind.txt(apex.fqdn), ['wildcard-value']);
    await provider.cleanup(apex); // again: not there any more, still fine
    await provider.cleanup(wildcard);
    assert.deepEqual(await bind.txt(apex.fqdn), []);
  });
}

test('a wrong secret, an unknown key name and a zone the server does not serve are refused, naming server and rcode', async () => {
  const bind = await bindWith('hmac-sha256');
  const wrongSecret = join(dir, 'wrong.key');
  await writeFile(wrongSecret, `${Buffer.alloc(32, 1).toString('base64')}\n`);
  const record = { fqdn: '_acme-challenge.example.com', zone: 'example.com', value: 'v' };
  const base = { server: bind.address, tsig_key_name: bind.keyName, tsig_algorithm: 'hmac-sha256' as const, tsig_secret_file: bind.keyFilePath };

  const wrong = await Rfc2136Provider.create({ ...base, tsig_secret_file: wrongSecret });
  await assert.rejects(wrong.present(record), (err: Error) => {
    assert.ok(err instanceof DnsUpdateError);
    assert.equal(err.message, `DNS server ${bind.address} refused the update of add TXT _acme-challenge.example.com in zone example.com: NOTAUTH (TSIG error BADSIG)`);
    assert.ok(!err.message.includes(Buffer.alloc(32, 1).toString('base64')));
    return true;
  });
  const unknownKey = await Rfc2136Provider.create({ ...base, tsig_key_name: 'nobody' });
  await assert.rejects(unknownKey.present(record), /NOTAUTH \(TSIG error BADKEY\)/);
  const right = await Rfc2136Provider.create(base);
  await assert.rejects(right.present({ ...record, fqdn: '_acme-challenge.example.org', zone: 'example.org' }), (err: Error) => {
    assert.ok(err instanceof DnsUpdateError);
    assert.match(err.message, new RegExp(`^DNS server ${bind.address.replace(/\./g, '\\.')} refused .*: (NOTAUTH|REFUSED)`));
    return true;
  });
  assert.deepEqual(await bind.txt(record.fqdn), []);
});

test('BIND\'s signed answer verifies; the same answer fails against another request MAC or key', async () => {
  const bind = await bindWith('hmac-sha256');
  const key = { name: bind.keyName, algorithm: 'hmac-sha256' as const, secret: Buffer.from(bind.secret, 'base64') };
  // An update with an empty update section: a no-op BIND still answers, signed.
  const id = 4242;
  const message = updateMessage(id, 'example.com', Buffer.alloc(0));
  message.writeUInt16BE(0, 8);
  const { signed, mac } = signMessage(message, key);
  const answer = await exchangeTcp(parseServer(bind.address), signed, id);
  assert.equal(answer.readUInt16BE(2) & 0xf, 0, 'NOERROR');
  assert.deepEqual(verifyAnswer(answer, mac, key), { error: 0, verified: true, unsigned: false });
  assert.equal(verifyAnswer(answer, Buffer.alloc(mac.length), key).verified, false);
  assert.equal(verifyAnswer(answer, mac, { ...key, secret: Buffer.alloc(32) }).verified, false);
  const tampered = Buffer.from(answer);
  tampered.writeUInt16BE(tampered.readUInt16BE(2) | 0x0400, 2); // flip a header flag the MAC covers
  assert.equal(verifyAnswer(tampered, mac, key).verified, false);
});

test('the secret file: tsig-keygen output or bare base64; a mismatched algorithm or garbage is refused', async () => {
  const bind = await bindWith('hmac-sha512');
  const text = await (await import('node:fs/promises')).readFile(bind.keyFilePath, 'utf8');
  assert.deepEqual(parseTsigSecret(text, 'hmac-sha512', 'k'), Buffer.from(bind.secret, 'base64'));
  assert.deepEqual(parseTsigSecret(`${bind.secret}\n`, 'hmac-sha512', 'k'), Buffer.from(bind.secret, 'base64'));
  assert.throws(() => parseTsigSecret(text, 'hmac-sha256', '/etc/acmed/tsig.key'), /\/etc\/acmed\/tsig\.key holds a hmac-sha512 key but dns\.rfc2136\.tsig_algorithm is hmac-sha256/);
  assert.throws(() => parseTsigSecret('not base64!', 'hmac-sha256', 'k'), /holds no base64 TSIG secret/);
  await assert.rejects(Rfc2136Provider.create({
    server: bind.address, tsig_key_name: 'x', tsig_algorithm: 'hmac-sha256', tsig_secret_file: join(dir, 'missing.key'),
  }), /cannot read dns\.rfc2136\.tsig_secret_file .*missing\.key: ENOENT/);
});
