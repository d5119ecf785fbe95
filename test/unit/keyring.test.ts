// Secrets at rest: the keyring seals acmed's records with AES-256-GCM, key
// ids allow rotation, and the encrypted storage wrapper leaves what the
// terminator reads (and what locks compare) in the clear.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Keyring, KeyringError } from '../../src/storage/keyring.js';
import { withEncryption } from '../../src/storage/encrypted.js';
import { createFileStorage } from '../../src/storage/file.js';
import { withLock } from '../../src/storage/lock.js';

const keyLine = (id: string) => `${id} ${randomBytes(32).toString('base64')}`;

test('seal/open round trip; the sealed value names its key and hides the plaintext', () => {
  const ring = Keyring.parse(keyLine('k1'));
  const sealed = ring.seal('-----BEGIN PRIVATE KEY-----\nsecret', 'account/key.pem');
  assert.ok(Keyring.isSealed(sealed));
  assert.match(sealed, /^acmed:enc:v1:k1:/);
  assert.ok(!sealed.includes('secret') && !sealed.includes('BEGIN'));
  assert.equal(ring.open(sealed, 'account/key.pem'), '-----BEGIN PRIVATE KEY-----\nsecret');
  assert.notEqual(ring.seal('same', 'k'), ring.seal('same', 'k'), 'a fresh nonce each time');
});

test('rotation: a new first key seals, the old one still opens', () => {
  const old = keyLine('old');
  const before = Keyring.parse(old).seal('v', 'records/a');
  const rotated = Keyring.parse(`# newest first\n${keyLine('new')}\n${old}\n`);
  assert.equal(rotated.currentId, 'new');
  assert.equal(rotated.open(before, 'records/a'), 'v');
  assert.match(rotated.seal('v', 'records/a'), /^acmed:enc:v1:new:/);
});

test('a missing key, a tampered value, or a value moved to another key name is refused', () => {
  const ring = Keyring.parse(keyLine('k1'));
  const sealed = ring.seal('value', 'backoff/a.example.com');
  assert.throws(() => Keyring.parse(keyLine('k2')).open(sealed, 'backoff/a.example.com'), /key "k1", which is not in the keyring/);
  const parts = sealed.split(':');
  const body = Buffer.from(parts.at(-1)!, 'base64url');
  body[0] ^= 1;
  parts[parts.length - 1] = body.toString('base64url');
  assert.throws(() => ring.open(parts.join(':'), 'backoff/a.example.com'), KeyringError);
  assert.throws(() => ring.open(sealed, 'backoff/b.example.com'), /failed authentication/);
});

test('bad keyring files give a clear error', async () => {
  assert.throws(() => Keyring.parse(''), /no keys/);
  assert.throws(() => Keyring.parse('k1 c2hvcnQ='), /5 bytes; AES-256 needs 32/);
  assert.throws(() => Keyring.parse('k1'), /expected "<id> <base64 key>"/);
  assert.throws(() => Keyring.parse(`${keyLine('k1')}\n${keyLine('k1')}`), /appears twice/);
  const dir = await mkdtemp(join(tmpdir(), 'acmed-keyring-'));
  try {
    const path = join(dir, 'keyring');
    await writeFile(path, keyLine('k1'));
    await chmod(path, 0o644);
    await assert.rejects(Keyring.load(path), /must not be readable by group or others/);
    await chmod(path, 0o600);
    assert.equal((await Keyring.load(path)).currentId, 'k1');
    await assert.rejects(Keyring.load(join(dir, 'missing')), /cannot read keyring_key_file .*ENOENT/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('encrypted file storage: records are sealed on disk, locks and plain old values still work', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'acmed-enc-'));
  try {
    const plain = createFileStorage({ path: dir });
    await plain.set('records/old.example.com.json', '{"written":"before encryption"}');
    const storage = withEncryption(plain, Keyring.parse(keyLine('k1')));
    await storage.set('account/key.pem', '-----BEGIN PRIVATE KEY-----\nMIG...');
    const raw = await readFile(join(dir, 'state', 'account', 'key.pem'), 'utf8');
    assert.match(raw, /^acmed:enc:v1:k1:/);
    assert.equal(await storage.get('account/key.pem'), '-----BEGIN PRIVATE KEY-----\nMIG...');
    assert.equal(await storage.get('records/old.example.com.json'), '{"written":"before encryption"}');

    const ran = await withLock(storage, 'locks/a.example.com', async () => {
      const token = await readFile(join(dir, 'state', 'locks', 'a.example.com'), 'utf8');
      assert.match(token, /[0-9a-f]{32}$/, 'lock tokens stay plain so release can compare them');
      return true;
    });
    assert.ok(ran);
    assert.deepEqual(await storage.list('locks/'), []);
    assert.equal(storage.kind, 'file');
    assert.equal(storage.location('a.example.com'), plain.location('a.example.com'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
