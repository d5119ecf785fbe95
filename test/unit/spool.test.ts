// The certificate spool: certificates the CA issued but the store refused are
// held in memory at once and in 0600 files that survive a restart, newest per
// name, until released; a spool whose directory fails keeps them in memory,
// and nothing of a bundle ever reaches the log.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../src/log.js';
import { CertificateSpool } from '../../src/storage/spool.js';
import type { CertificateBundle } from '../../src/storage/storage.js';
import { mountTmpfs, type Tmpfs } from '../harness/tmpfs.js';


function capturedLog() {
  const raw: string[] = [];
  const log = createLogger('debug', { write: (line: string) => void raw.push(line) });
  return { log, raw, messages: () => raw.map((line) => String(JSON.parse(line).msg)) };
}

const SECRET = 'MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg-this-is-the-secret-part';

function bundle(name: string, notAfter: string, tag = notAfter): CertificateBundle {
  return {
    name,
    names: [name, `www.${name}`],
    cert: `-----BEGIN CERTIFICATE-----\nleaf ${tag}\n-----END CERTIFICATE-----\n`,
    chain: '-----BEGIN CERTIFICATE-----\nintermediate\n-----END CERTIFICATE-----\n',
    fullchain: `-----BEGIN CERTIFICATE-----\nleaf ${tag}\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nintermediate\n-----END CERTIFICATE-----\n`,
    privkey: `-----BEGIN PRIVATE KEY-----\n${SECRET} ${tag}\n-----END PRIVATE KEY-----\n`,
    notBefore: '2025-01-01T00:00:00.000Z',
    notAfter,
  };
}

const MARCH = '2025-03-01T00:00:00.000Z';
const APRIL = '2025-04-01T00:00:00.000Z';
const MAY = '2025-05-01T00:00:00.000Z';

let work: string;
let counter = 0;
const freshDir = () => join(work, `spool-${++counter}`, 'nested');

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'acmed-spool-'));
});
after(() => rm(work, { recursive: true, force: true }));

describe('CertificateSpool', () => {
  test('holds at once, writes 0600 files in a 0700 directory, and survives a re-open', async () => {
    const dir = freshDir();
    const { log, raw } = capturedLog();
    const spool = await CertificateSpool.open(dir, { log });
    assert.deepEqual(spool.held(), []);
    const held = spool.hold(bundle('a.example.com', APRIL));
    assert.deepEqual(spool.get('a.example.com'), bundle('a.example.com', APRIL), 'in memory before the file is written');
    await held;
    await spool.hold(bundle('b.example.com', MAY));

    assert.equal((await stat(dir)).mode & 0o777, 0o700);
    assert.deepEqual((await readdir(dir)).sort(), ['a.example.com.json', 'b.example.com.json']);
    for (const file of await readdir(dir)) assert.equal((await stat(join(dir, file))).mode & 0o777, 0o600, file);

    const reopened = await CertificateSpool.open(dir, { log });
    assert.deepEqual(reopened.held(), [bundle('a.example.com', APRIL), bundle('b.example.com', MAY)]);
    assert.deepEqual(reopened.get('A.Example.COM.'), bundle('a.example.com', APRIL), 'looked up by normalized name');
    assert.equal(reopened.get('c.example.com'), undefined);
    assert.ok(raw.join('\n').includes('waiting in the spool'));
    assert.ok(!raw.join('\n').includes(SECRET), 'no key in the log');
  });

  test('a bundle with an RSA certificate beside the primary one survives a re-open whole', async () => {
    const dir = freshDir();
    const { log } = capturedLog();
    const { name: _n, names: _ns, ...rsa } = bundle('d.example.com', MARCH, 'rsa');
    const dual = { ...bundle('d.example.com', APRIL), rsa };
    await (await CertificateSpool.open(dir, { log })).hold(dual);
    const reopened = await CertificateSpool.open(dir, { log });
    assert.deepEqual(reopened.get('d.example.com'), dual);
  });

  test('a newer bundle for a name replaces an older one; an older one does not replace a newer', async () => {
    const dir = freshDir();
    const { log } = capturedLog();
    const spool = await CertificateSpool.open(dir, { log });
    await spool.hold(bundle('a.example.com', APRIL));
    await spool.hold(bundle('a.example.com', MAY));
    assert.equal(spool.get('a.example.com')?.notAfter, MAY);
    await spool.hold(bundle('a.example.com', MARCH));
    assert.equal(spool.get('a.example.com')?.notAfter, MAY);
    assert.equal(spool.held().length, 1);
    const reopened = await CertificateSpool.open(dir, { log });
    assert.equal(reopened.get('a.example.com')?.notAfter, MAY, 'the file holds the newest too');
  });

  test('release drops the held bundle only when what was stored is it (or newer)', async () => {
    const dir = freshDir();
    const { log } = capturedLog();
    const spool = await CertificateSpool.open(dir, { log });
    await spool.hold(bundle('a.example.com', MAY));
    await spool.release('a.example.com', APRIL); // an older certificate was stored: ours is still needed
    assert.equal(spool.get('a.example.com')?.notAfter, MAY);
    await spool.release('a.example.com', MAY);
    assert.equal(spool.get('a.example.com'), undefined);
    assert.deepEqual(await readdir(dir), []);

    await spool.hold(bundle('b.example.com', APRIL));
    await spool.release('b.example.com', MAY); // something newer is stored: ours is obsolete
    assert.equal(spool.get('b.example.com'), undefined);

    await spool.hold(bundle('c.example.com', APRIL));
    await spool.release('c.example.com');
    assert.deepEqual(spool.held(), []);
    await spool.release('never-held.example.com', MAY);
    assert.deepEqual((await CertificateSpool.open(dir, { log })).held(), []);
  });

  test('hold and release in quick succession leave the file matching memory', async () => {
    const dir = freshDir();
    const { log } = capturedLog();
    const spool = await CertificateSpool.open(dir, { log });
    await Promise.all([
      spool.hold(bundle('a.example.com', APRIL)),
      spool.release('a.example.com', APRIL),
      spool.hold(bundle('a.example.com', MAY)),
    ]);
    assert.equal(spool.get('a.example.com')?.notAfter, MAY);
    assert.equal((await CertificateSpool.open(dir, { log })).get('a.example.com')?.notAfter, MAY);
  });

  test('open removes temp files a crashed write left (they may hold keys) and leaves foreign files alone', async () => {
    const dir = freshDir();
    const { log, messages, raw } = capturedLog();
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, '.a.example.com.json.0123456789ab.tmp'), JSON.stringify(bundle('a.example.com', APRIL)).slice(0, 100));
    await writeFile(join(dir, 'b.example.com.json'), `{"privkey": "${SECRET}", "torn`);
    await writeFile(join(dir, 'README'), 'hand-made');
    const spool = await CertificateSpool.open(dir, { log });
    assert.deepEqual(spool.held(), []);
    assert.deepEqual((await readdir(dir)).sort(), ['README', 'b.example.com.json']);
    assert.ok(messages().includes('not a spooled certificate; left in place'));
    assert.ok(!raw.join('\n').includes(SECRET), 'an unreadable file\'s content is not logged');
  });

  test('a directory that cannot be created: logged, and bundles are held in memory only', async () => {
    const blocker = join(work, `blocker-${++counter}`);
    await writeFile(blocker, 'a file where a directory should go');
    const { log, messages, raw } = capturedLog();
    const spool = await CertificateSpool.open(join(blocker, 'spool'), { log });
    assert.ok(messages().some((m) => m.includes('held in memory only')));
    await spool.hold(bundle('a.example.com', APRIL));
    assert.deepEqual(spool.held(), [bundle('a.example.com', APRIL)]);
    await spool.release('a.example.com', APRIL);
    assert.deepEqual(spool.held(), []);
    assert.ok(!raw.join('\n').includes(SECRET));
  });
});

describe('CertificateSpool on a real tmpfs', () => {
  let mountPoint: string;
  let tmpfs: Tmpfs | undefined;

  before(async () => {
    mountPoint = await mkdtemp(join(tmpdir(), 'acmed-spool-tmpfs-'));
    tmpfs = await mountTmpfs(mountPoint, 128);
  });
  after(async () => {
    if (!mountPoint) return;
    await tmpfs?.unmount();
    await rm(mountPoint, { recursive: true, force: true });
  });

  test('a full disk: hold logs and keeps the bundle in memory; the next hold after space is freed writes both', async () => {
    const dir = join(mountPoint, 'spool-full');
    const { log, messages, raw } = capturedLog();
    const spool = await CertificateSpool.open(dir, { log });
    const filler = join(mountPoint, 'filler');
    const handle = await open(filler, 'w');
    try {
      for (;;) await handle.write(Buffer.alloc(64 * 1024, 1));
    } catch (err) {
      assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
    } finally {
      await handle.close();
    }
    try {
      await spool.hold(bundle('a.example.com', APRIL)); // does not throw
      assert.deepEqual(spool.get('a.example.com'), bundle('a.example.com', APRIL));
      assert.ok(messages().includes('cannot write a certificate to the spool; it is held in memory only'));
      assert.deepEqual(await readdir(dir), [], 'no torn or temp file left');
    } finally {
      await rm(filler);
    }
    await spool.hold(bundle('b.example.com', MAY));
    assert.deepEqual((await readdir(dir)).sort(), ['a.example.com.json', 'b.example.com.json']);
    assert.equal(JSON.parse(await readFile(join(dir, 'a.example.com.json'), 'utf8')).notAfter, APRIL);
    assert.ok(!raw.join('\n').includes(SECRET));
  });

  test('a read-only disk: an existing spool is still loaded, a new one is memory only, and hold never throws', async () => {
    const dir = join(mountPoint, 'spool-ro');
    const { log } = capturedLog();
    await (await CertificateSpool.open(dir, { log })).hold(bundle('a.example.com', APRIL));
    await tmpfs!.readOnly();
    try {
      const { log: roLog, messages } = capturedLog();
      const existing = await CertificateSpool.open(dir, { log: roLog });
      assert.deepEqual(existing.held(), [bundle('a.example.com', APRIL)]);
      await existing.hold(bundle('b.example.com', MAY));
      assert.equal(existing.held().length, 2);
      assert.ok(messages().includes('cannot write a certificate to the spool; it is held in memory only'));

      const { log: newLog, messages: newMessages } = capturedLog();
      const fresh = await CertificateSpool.open(join(mountPoint, 'never-made', 'spool'), { log: newLog });
      assert.ok(newMessages().some((m) => m.includes('held in memory only')));
      await fresh.hold(bundle('c.example.com', MAY));
      assert.equal(fresh.get('c.example.com')?.notAfter, MAY);
    } finally {
      await tmpfs!.writable();
    }
  });
});
