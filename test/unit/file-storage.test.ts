// File storage: the five state verbs, the certbot-style live/ tree, atomic
// swaps a terminator can rely on, and refusal of hostile names.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { lstat, mkdir, mkdtemp, open, readdir, readFile, readlink, realpath, rm, stat, statfs, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createFileStorage, liveTarget, UNREADABLE_LOCK_GRACE_MS } from '../../src/storage/file.js';
import { isStoreFault } from '../../src/storage/errors.js';
import { makeCertificate } from './storage-contract-cert.js';
import { InvalidKeyError } from '../../src/storage/keys.js';
import { InvalidHostnameError } from '../../src/hostname.js';
import { tempPathFor, writeFileAtomic } from '../../src/storage/atomic-write.js';
import type { CertificateBundle } from '../../src/storage/storage.js';
import { mountTmpfs, type Tmpfs } from '../harness/tmpfs.js';

const run = promisify(execFile);

interface KeyPair {
  cert: string;
  key: string;
}

/** A self-signed P-256 certificate for `names` from the openssl binary. */
async function selfSigned(dir: string, tag: string, names: string[]): Promise<KeyPair> {
  const keyFile = join(dir, `${tag}.key.pem`);
  const certFile = join(dir, `${tag}.cert.pem`);
  await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-days', '30', '-subj', `/CN=${names[0]}`,
    '-addext', `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}`,
  ]);
  return { cert: await readFile(certFile, 'utf8'), key: await readFile(keyFile, 'utf8') };
}

function bundleOf(name: string, leaf: KeyPair, intermediate: KeyPair): CertificateBundle {
  return {
    name,
    names: [name],
    cert: leaf.cert,
    chain: intermediate.cert,
    fullchain: leaf.cert + intermediate.cert,
    privkey: leaf.key,
    notBefore: '',
    notAfter: '',
  };
}

/** Every path under dir, relative, depth first. */
async function walk(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(join(dir, rel), { withFileTypes: true })) {
    const path = rel ? `${rel}/${entry.name}` : entry.name;
    out.push(path);
    if (entry.isDirectory()) out.push(...await walk(dir, path));
  }
  return out;
}

function pairMatches(fullchain: string, privkey: string): boolean {
  return new X509Certificate(fullchain).checkPrivateKey(createPrivateKey(privkey));
}

let work: string;
let counter = 0;
/** A fresh storage root (not yet created on disk). */
function freshRoot(): string {
  return join(work, `store-${++counter}`);
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'acmed-file-storage-'));
});
after(() => rm(work, { recursive: true, force: true }));

describe('state verbs', () => {
  test('get of a missing key is null; set then get round-trips', async () => {
    const storage = createFileStorage({ path: freshRoot() });
    assert.equal(await storage.get('account/url'), null);
    await storage.set('account/url', 'https://ca.example/acct/1');
    assert.equal(await storage.get('account/url'), 'https://ca.example/acct/1');
    await storage.set('account/url', 'https://ca.example/acct/2');
    assert.equal(await storage.get('account/url'), 'https://ca.example/acct/2');
  });

  test('values are stored under state/<key> with mode 0600', async () => {
    const root = freshRoot();
    const storage = createFileStorage({ path: root });
    await storage.set('account/key.pem', 'secret');
    const info = await stat(join(root, 'state', 'account', 'key.pem'));
    assert.equal(info.mode & 0o777, 0o600);
    assert.equal((await stat(join(root, 'state', 'account'))).mode & 0o777, 0o700);
  });

  test('values that look like the TTL marker or hold newlines round-trip', async () => {
    const storage = createFileStorage({ path: freshRoot() });
    const value = '{"a":1}\n#acmed-ttl 0\nline three\n';
    await storage.set('records/x.example.com.json', value);
    assert.equal(await storage.get('records/x.example.com.json'), value);
    await storage.set('records/y.example.com.json', value, { ttlMs: 60_000 });
    assert.equal(await storage.get('records/y.example.com.json'), value);
  });

  test('delete removes a key, and deleting a missing key is fine', async () => {
    const storage = createFileStorage({ path: freshRoot() });
    await storage.set('challenges/abc', 'v');
    await storage.delete('challenges/abc');
    assert.equal(await storage.get('challenges/abc'), null);
    await storage.delete('challenges/never-set');
  });

  test('list returns keys under a prefix, across directories', async () => {
    const storage = createFileStorage({ path: freshRoot() });
    assert.deepEqual(await storage.list('locks/'), []);
    await storage.set('locks/a.example.com', '1');
    await storage.set('locks/b.example.com', '2');
    await storage.set('records/a.example.com.json', '{}');
    await storage.set('account/key.pem', 'k');
    assert.deepEqual((await storage.list('locks/')).sort(), ['locks/a.example.com', 'locks/b.example.com']);
    assert.deepEqual((await storage.list('')).sort(), [
      'account/key.pem', 'locks/a.example.com', 'locks/b.example.com', 'records/a.example.com.json',
    ]);
    await storage.delete('locks/a.example.com');
    assert.deepEqual(await storage.list('locks/'), ['locks/b.example.com']);
  });

  test('a set with a TTL expires on the injected clock', async () => {
    let now = 1_000_000;
    const storage = createFileStorage({ path: freshRoot(), now: () => now });
    await storage.set('locks/a.example.com', 'owner', { ttlMs: 500 });
    now += 499;
    assert.equal(await storage.get('locks/a.example.com'), 'owner');
    now += 1;
    assert.equal(await storage.get('locks/a.example.com'), null);
  });
});

describe('add (the lock primitive)', () => {
  test('add sets an absent key and refuses a present one', async () => {
    const storage = createFileStorage({ path: freshRoot(), now: () => 5_000 });
    assert.equal(await storage.add('locks/a.example.com', 'first', 1_000), true);
    assert.equal(await storage.add('locks/a.example.com', 'second', 1_000), false);
    assert.equal(await storage.get('locks/a.example.com'), 'first');
    // a key set without TTL never expires, so add keeps refusing
    await storage.set('locks/b.example.com', 'forever');
    assert.equal(await storage.add('locks/b.example.com', 'other', 1_000), false);
  });

  test('20 concurrent adds: exactly one wins, and its value is stored', async () => {
    const storage = createFileStorage({ path: freshRoot() });
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => storage.add('locks/race.example.com', `owner-${i}`, 60_000)),
    );
    assert.equal(results.filter(Boolean).length, 1);
    const winner = results.indexOf(true);
    assert.equal(await storage.get('locks/race.example.com'), `owner-${winner}`);
  });

  test('an expired entry can be re-added; a live one cannot', async () => {
    let now = 10_000;
    const storage = createFileStorage({ path: freshRoot(), now: () => now });
    assert.equal(await storage.add('locks/a.example.com', 'dead-holder', 1_000), true);
    now += 999;
    assert.equal(await storage.add('locks/a.example.com', 'too-early', 1_000), false);
    assert.equal(await storage.get('locks/a.example.com'), 'dead-holder');
    now += 1;
    assert.equal(await storage.add('locks/a.example.com', 'next-holder', 1_000), true);
    assert.equal(await storage.get('locks/a.example.com'), 'next-holder');
  });

  test('20 staggered adds racing for an expired entry: exactly one wins, every round', async () => {
    let now = 10_000;
    const storage = createFileStorage({ path: freshRoot(), now: () => now });
    assert.equal(await storage.add('locks/expired.example.com', 'old', 1_000), true);
    for (let round = 0; round < 8; round++) {
      now += 2_000; // the entry from the round before (or 'old') has expired
      const results = await Promise.all(Array.from({ length: 20 }, async (_, i) => {
        // start the contenders a few event-loop turns apart, so their
        // read-remove-create steps interleave instead of running in lockstep
        for (let turn = 0; turn < (i * 7 + round) % 5; turn++) await new Promise((r) => setImmediate(r));
        return storage.add('locks/expired.example.com', `r${round}-${i}`, 1_000);
      }));
      assert.equal(results.filter(Boolean).length, 1, `round ${round}: ${results.filter(Boolean).length} winners`);
      assert.equal(await storage.get('locks/expired.example.com'), `r${round}-${results.indexOf(true)}`);
    }
  });
});

describe('hostile keys and names', () => {
  const badKeys = ['../x', 'a/../../b', 'locks/../../etc/passwd', '/etc/passwd', 'a//b', 'a/', '', '.hidden', 'a/./b',
    'ключ', 'bücher', 'a\0b', 'a b', 'locks/x.tmp', 'a\\..\\b'];

  test('every verb refuses hostile keys before touching the file system', async () => {
    const root = freshRoot();
    const storage = createFileStorage({ path: root });
    for (const key of badKeys) {
      await assert.rejects(storage.get(key), InvalidKeyError, `get ${JSON.stringify(key)}`);
      await assert.rejects(storage.set(key, 'v'), InvalidKeyError, `set ${JSON.stringify(key)}`);
      await assert.rejects(storage.add(key, 'v', 1_000), InvalidKeyError, `add ${JSON.stringify(key)}`);
      await assert.rejects(storage.delete(key), InvalidKeyError, `delete ${JSON.stringify(key)}`);
    }
    await assert.rejects(stat(root), { code: 'ENOENT' });
    await assert.rejects(stat(join(work, 'x')), { code: 'ENOENT' });
  });

  test('certificate verbs refuse hostile names before touching the file system', async () => {
    const root = freshRoot();
    const storage = createFileStorage({ path: root });
    const pair = { cert: 'CERT PEM', key: 'KEY PEM' };
    for (const name of ['../x', 'a/../../b', '../../etc', 'a/b.example.com', 'bücher.example', '.', '*.example.com']) {
      await assert.rejects(storage.putCertificate(bundleOf(name, pair, pair)), InvalidHostnameError, `put ${name}`);
      await assert.rejects(storage.getCertificate(name), InvalidHostnameError, `get ${name}`);
      assert.throws(() => storage.location(name), InvalidHostnameError);
    }
    await assert.rejects(stat(root), { code: 'ENOENT' });
  });
});

describe('certificates', () => {
  let pairs: KeyPair[];
  let intermediate: KeyPair;
  const NAME = 'www.example.com';

  before(async () => {
    const dir = join(work, 'pems');
    await mkdir(dir);
    intermediate = await selfSigned(dir, 'intermediate', ['intermediate.example.net']);
    pairs = await Promise.all(Array.from({ length: 20 }, (_, i) => selfSigned(dir, `leaf-${i}`, [NAME, 'example.com'])));
    for (const pair of pairs) assert.ok(pairMatches(pair.cert, pair.key));
    assert.ok(!pairMatches(pairs[0].cert, pairs[1].key), 'distinct pairs must not match each other');
  });

  test('getCertificate of a name never stored is null', async () => {
    const storage = createFileStorage({ path: freshRoot() });
    assert.equal(await storage.getCertificate('missing.example.com'), null);
    assert.deepEqual(await storage.listCertificates(), []);
  });

  test('putCertificate writes the certbot layout with tight modes', async () => {
    const root = freshRoot();
    const storage = createFileStorage({ path: root });
    await storage.putCertificate(bundleOf(NAME, pairs[0], intermediate));

    const live = join(root, 'live', NAME);
    assert.ok((await lstat(live)).isSymbolicLink(), 'live/<name> is a symlink');
    assert.match(await readlink(live), new RegExp(`^\\.\\./archive/${NAME.replace(/\./g, '\\.')}/[^/]+$`));
    assert.equal(await liveTarget(root, NAME), await readlink(live));

    assert.equal(await readFile(join(live, 'cert.pem'), 'utf8'), pairs[0].cert);
    assert.equal(await readFile(join(live, 'chain.pem'), 'utf8'), intermediate.cert);
    assert.equal(await readFile(join(live, 'fullchain.pem'), 'utf8'), pairs[0].cert + intermediate.cert);
    assert.equal(await readFile(join(live, 'privkey.pem'), 'utf8'), pairs[0].key);

    assert.equal((await stat(join(live, 'privkey.pem'))).mode & 0o777, 0o600);
    for (const file of ['cert', 'chain', 'fullchain']) {
      assert.equal((await stat(join(live, `${file}.pem`))).mode & 0o077 & 0o022, 0, `${file}.pem not group/world-writable`);
    }
    const version = await realpath(live);
    for (const dir of [join(root, 'live'), join(root, 'archive'), join(root, 'archive', NAME), version]) {
      assert.equal((await stat(dir)).mode & 0o777, 0o700, dir);
    }
    assert.equal(storage.location(NAME), `${join(root, 'live', NAME)}/`);
    assert.deepEqual(await storage.listCertificates(), [NAME]);
  });

  test('getCertificate parses the stored PEMs', async () => {
    const storage = createFileStorage({ path: freshRoot() });
    await storage.putCertificate(bundleOf('WWW.Example.com', pairs[1], intermediate));
    const got = await storage.getCertificate('www.example.com.');
    assert.ok(got);
    assert.equal(got.name, NAME);
    assert.deepEqual(got.names.sort(), ['example.com', NAME]);
    assert.equal(got.cert, pairs[1].cert);
    assert.equal(got.chain, intermediate.cert);
    assert.equal(got.privkey, pairs[1].key);
    const x509 = new X509Certificate(pairs[1].cert);
    assert.equal(got.notBefore, new Date(x509.validFrom).toISOString());
    assert.equal(got.notAfter, new Date(x509.validTo).toISOString());
    assert.ok(Date.parse(got.notAfter) > Date.parse(got.notBefore));
  });

  test('a reader never sees fullchain and privkey from two different writes', async () => {
    const root = freshRoot();
    const storage = createFileStorage({ path: root });
    const live = join(root, 'live', NAME);
    const bundles = pairs.map((pair) => bundleOf(NAME, pair, intermediate));
    const indexOf = (fullchain: string, privkey: string) => {
      const i = bundles.findIndex((b) => b.fullchain === fullchain);
      return i >= 0 && bundles[i].privkey === privkey ? i : -1;
    };

    let writing = true;
    const seen = new Set<number>();
    const mixed: string[] = [];
    let reads = 0;

    // A terminator-style reader: resolve live/<name> once, then read both files from it.
    const fsReader = async () => {
      while (writing) {
        let dir: string;
        try {
          dir = await realpath(live);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
            await new Promise((r) => setImmediate(r)); // nothing written yet
            continue;
          }
          throw err;
        }
        let fullchain: string;
        let privkey: string;
        try {
          fullchain = await readFile(join(dir, 'fullchain.pem'), 'utf8');
          privkey = await readFile(join(dir, 'privkey.pem'), 'utf8');
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // that version was pruned; look again
          throw err;
        }
        reads++;
        const i = indexOf(fullchain, privkey);
        if (i < 0 || !pairMatches(fullchain, privkey)) mixed.push(`fs read of ${dir}`);
        else seen.add(i);
      }
    };
    // acmed's own reader.
    const apiReader = async () => {
      while (writing) {
        const got = await storage.getCertificate(NAME);
        if (!got) {
          await new Promise((r) => setImmediate(r));
          continue;
        }
        reads++;
        const i = indexOf(got.fullchain, got.privkey);
        if (i < 0 || got.cert !== bundles[i].cert || !pairMatches(got.fullchain, got.privkey)) mixed.push('getCertificate');
        else seen.add(i);
      }
    };

    const readers = [fsReader(), fsReader(), apiReader()];
    try {
      for (const bundle of bundles) await storage.putCertificate(bundle);
    } finally {
      writing = false;
      await Promise.all(readers);
    }

    assert.deepEqual(mixed, []);
    assert.ok(reads > 0, 'the readers read something');
    assert.ok(seen.size >= 2, `readers saw ${seen.size} distinct versions`);
    // the last write is what is live now
    const last = await storage.getCertificate(NAME);
    assert.equal(last?.privkey, pairs[19].key);
    assert.equal(await readFile(join(live, 'fullchain.pem'), 'utf8'), bundles[19].fullchain);

    // no staging files anywhere, and old versions are pruned
    const all = await walk(root);
    assert.deepEqual(all.filter((p) => p.endsWith('.tmp') || p.includes('.tmp')), []);
    const versions = (await readdir(join(root, 'archive', NAME))).filter((v) => !v.startsWith('adopted-'));
    assert.ok(versions.length >= 1 && versions.length <= 3, `versions kept: ${versions.length}`);
    assert.ok(versions.includes((await readlink(live)).split('/').pop()!), 'the live version is kept');
  });

  test('a pre-existing real directory at live/<name> is moved aside, not destroyed', async () => {
    const root = freshRoot();
    const live = join(root, 'live', NAME);
    await mkdir(live, { recursive: true });
    await writeFile(join(live, 'fullchain.pem'), 'OLD FULLCHAIN FROM CERTBOT\n');
    await writeFile(join(live, 'README'), 'hand-made\n');

    const storage = createFileStorage({ path: root });
    await storage.putCertificate(bundleOf(NAME, pairs[2], intermediate));

    assert.ok((await lstat(live)).isSymbolicLink());
    assert.equal(await readFile(join(live, 'privkey.pem'), 'utf8'), pairs[2].key);
    const adopted = (await readdir(join(root, 'archive', NAME))).filter((v) => v.startsWith('adopted-'));
    assert.equal(adopted.length, 1);
    const aside = join(root, 'archive', NAME, adopted[0]);
    assert.equal(await readFile(join(aside, 'fullchain.pem'), 'utf8'), 'OLD FULLCHAIN FROM CERTBOT\n');
    assert.equal(await readFile(join(aside, 'README'), 'utf8'), 'hand-made\n');

    // later writes prune old versions but keep what was adopted
    for (const pair of pairs.slice(3, 8)) await storage.putCertificate(bundleOf(NAME, pair, intermediate));
    assert.equal(await readFile(join(aside, 'README'), 'utf8'), 'hand-made\n');
  });

  test('several certificates are listed by name', async () => {
    const storage = createFileStorage({ path: freshRoot() });
    await storage.putCertificate(bundleOf('a.example.com', pairs[0], intermediate));
    await storage.putCertificate(bundleOf('b.example.com', pairs[1], intermediate));
    assert.deepEqual((await storage.listCertificates()).sort(), ['a.example.com', 'b.example.com']);
    assert.equal((await storage.getCertificate('b.example.com'))?.privkey, pairs[1].key);
  });
});

describe('atomic-write', () => {
  test('writeFileAtomic replaces the target, with the mode, leaving no temp file', async () => {
    const dir = join(work, 'atomic');
    const target = join(dir, 'nested', 'value.txt');
    await writeFileAtomic(target, 'one');
    await writeFileAtomic(target, 'two', 0o640);
    assert.equal(await readFile(target, 'utf8'), 'two');
    assert.equal((await stat(target)).mode & 0o777, 0o640);
    assert.equal((await stat(join(dir, 'nested'))).mode & 0o777, 0o700);
    assert.deepEqual(await readdir(join(dir, 'nested')), ['value.txt']);
  });

  test('temp paths are hidden siblings ending in .tmp, and unique', () => {
    const a = tempPathFor('/x/live/example.com');
    const b = tempPathFor('/x/live/example.com');
    assert.match(a, /^\/x\/live\/\.example\.com\.[0-9a-f]+\.tmp$/);
    assert.notEqual(a, b);
  });

  test('a failed write removes its temp file', async () => {
    const dir = join(work, 'atomic-fail');
    await mkdir(join(dir, 'target-is-a-dir'), { recursive: true });
    await writeFile(join(dir, 'target-is-a-dir', 'occupant'), 'x');
    // renaming a file over a non-empty directory fails
    await assert.rejects(writeFileAtomic(join(dir, 'target-is-a-dir'), 'data'));
    assert.deepEqual((await readdir(dir)).sort(), ['target-is-a-dir']);
  });
});

describe('torn lock records (a write cut short by a full disk or a crash)', () => {
  const KEY = 'locks/torn.example.com';
  const start = 1_700_000_000_000;

  /** Writes a state file by hand, as a failed add() would have left it, with its mtime at `at`. */
  async function leaveRecord(root: string, content: string, at: number): Promise<void> {
    const file = join(root, 'state', KEY);
    await mkdir(join(root, 'state', 'locks'), { recursive: true });
    await writeFile(file, content);
    await utimes(file, at / 1000, at / 1000);
  }

  for (const [label, content] of [
    ['an empty file', ''],
    ['a header cut off before its newline', '#acmed-ttl 1700000060000'],
    ['half a marker', '#acmed-t'],
    ['a header without a number', '#acmed-ttl \nowner'],
  ] as const) {
    test(`${label} blocks add() during the grace period, then is replaced`, async () => {
      let now = start;
      const root = freshRoot();
      const storage = createFileStorage({ path: root, now: () => now });
      await leaveRecord(root, content, start);

      // just created: it may be another add() between its create and its write
      assert.equal(await storage.add(KEY, 'next-holder', 60_000), false);
      now = start + UNREADABLE_LOCK_GRACE_MS - 1;
      assert.equal(await storage.add(KEY, 'next-holder', 60_000), false);
      now = start + UNREADABLE_LOCK_GRACE_MS;
      assert.equal(await storage.add(KEY, 'next-holder', 60_000), true);
      assert.equal(await storage.get(KEY), 'next-holder');
      // and the new record is a proper one: it blocks others until its TTL runs out
      assert.equal(await storage.add(KEY, 'third', 60_000), false);
    });
  }

  test('a torn TTL header reads as no value; an empty value set on purpose still reads as ""', async () => {
    const root = freshRoot();
    const storage = createFileStorage({ path: root, now: () => start });
    await leaveRecord(root, '#acmed-ttl 99', start);
    assert.equal(await storage.get(KEY), null);
    await storage.set('account/url', '');
    assert.equal(await storage.get('account/url'), '');
  });

  test('a lock set without a TTL is not mistaken for a torn one, however old', async () => {
    const root = freshRoot();
    const storage = createFileStorage({ path: root, now: () => start + 3_600_000 });
    await leaveRecord(root, 'held-for-ever', start);
    assert.equal(await storage.add(KEY, 'other', 1_000), false);
    assert.equal(await storage.get(KEY), 'held-for-ever');
  });
});

describe('freeBytes', () => {
  test('reports the free space of the storage path, before and after it exists', async () => {
    const root = freshRoot();
    const storage = createFileStorage({ path: root });
    const fs = await statfs(work);
    const before = await storage.freeBytes!();
    assert.ok(Math.abs(before - fs.bavail * fs.bsize) < 64 * 1024 * 1024, `${before} vs ${fs.bavail * fs.bsize}`);
    await storage.set('account/url', 'x');
    assert.ok((await storage.freeBytes!()) > 0);
  });
});

/**
 * Real small file systems: a tmpfs mounted here (the tests run as root). A
 * mount that fails fails the tests: a full or read-only disk is not something
 * to skip quietly.
 */
describe('on a real tmpfs that fills up or turns read-only', () => {
  let mountPoint: string;
  let tmpfs: Tmpfs | undefined;
  let pageSize: number;
  let leaf: KeyPair[];
  let intermediate: KeyPair;
  const NAME = 'full.example.com';

  before(async () => {
    mountPoint = await mkdtemp(join(tmpdir(), 'acmed-tmpfs-'));
    tmpfs = await mountTmpfs(mountPoint, 512);
    pageSize = (await statfs(mountPoint)).bsize;
    const dir = join(work, 'tmpfs-pems');
    await mkdir(dir);
    intermediate = await selfSigned(dir, 'intermediate', ['intermediate.example.net']);
    leaf = await Promise.all([0, 1, 2].map((i) => selfSigned(dir, `full-${i}`, [NAME])));
  });
  after(async () => {
    if (!mountPoint) return;
    await tmpfs?.unmount();
    await rm(mountPoint, { recursive: true, force: true });
  });

  /**
   * Fills the tmpfs so exactly `keepPages` pages stay free: reserve them,
   * fill the rest until ENOSPC, give the reserve back. Returns the undo.
   */
  async function fillDisk(keepPages: number): Promise<() => Promise<void>> {
    const reserve = join(mountPoint, 'reserve');
    const filler = join(mountPoint, 'filler');
    if (keepPages > 0) await writeFile(reserve, Buffer.alloc(keepPages * pageSize, 1));
    const handle = await open(filler, 'w');
    try {
      const chunk = Buffer.alloc(64 * 1024, 1);
      for (;;) await handle.write(chunk);
    } catch (err) {
      assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
    } finally {
      await handle.close();
    }
    await rm(reserve, { force: true });
    assert.equal((await statfs(mountPoint)).bfree, keepPages, 'pages left free');
    return () => rm(filler, { force: true });
  }

  async function versionsOf(root: string): Promise<string[]> {
    return (await readdir(join(root, 'archive', NAME))).sort();
  }

  test('a full disk: add() fails with ENOSPC and leaves no empty lock record behind', async () => {
    const root = join(mountPoint, 'add-full');
    const storage = createFileStorage({ path: root });
    await storage.set('account/url', 'https://ca.example/acct/1'); // the directories exist before the disk fills
    await mkdir(join(root, 'state', 'locks'), { recursive: true, mode: 0o700 });
    const free = await fillDisk(0);
    try {
      const err = await storage.add('locks/a.example.com', 'owner', 60_000).then(() => null, (e: unknown) => e);
      assert.equal((err as NodeJS.ErrnoException | null)?.code, 'ENOSPC');
      assert.ok(isStoreFault(err));
      assert.deepEqual(await readdir(join(root, 'state', 'locks')), [], 'no empty lock file left');
      assert.ok(await storage.freeBytes!() < pageSize);
    } finally {
      await free();
    }
    assert.equal(await storage.add('locks/a.example.com', 'owner', 60_000), true);
    assert.equal(await storage.get('locks/a.example.com'), 'owner');
    await rm(root, { recursive: true });
  });

  for (const keepPages of [0, 1, 2, 3]) {
    test(`a full disk with ${keepPages} page(s) free: putCertificate fails, live/ keeps the old complete version, no partial version stays`, async () => {
      const root = join(mountPoint, `put-full-${keepPages}`);
      const storage = createFileStorage({ path: root });
      await storage.putCertificate(bundleOf(NAME, leaf[0], intermediate));
      const oldTarget = await liveTarget(root, NAME);
      const oldVersions = await versionsOf(root);

      const free = await fillDisk(keepPages);
      try {
        await assert.rejects(storage.putCertificate(bundleOf(NAME, leaf[1], intermediate)), (err: NodeJS.ErrnoException) => {
          assert.equal(err.code, 'ENOSPC');
          assert.ok(isStoreFault(err));
          return true;
        });
        assert.equal(await liveTarget(root, NAME), oldTarget);
        assert.deepEqual(await versionsOf(root), oldVersions, 'the archive holds no partial version');
        assert.deepEqual((await readdir(join(root, 'live'))).sort(), [NAME], 'no temp link left in live/');
        const served = await storage.getCertificate(NAME);
        assert.equal(served?.privkey, leaf[0].key);
        assert.equal(served?.fullchain, leaf[0].cert + intermediate.cert);
        assert.equal(await readFile(join(root, 'live', NAME, 'privkey.pem'), 'utf8'), leaf[0].key);
      } finally {
        await free();
      }
      await storage.putCertificate(bundleOf(NAME, leaf[1], intermediate));
      assert.equal((await storage.getCertificate(NAME))?.privkey, leaf[1].key);
      assert.equal((await versionsOf(root)).length, 2);
      await rm(root, { recursive: true });
    });
  }

  test('a read-only disk: writes fail with EROFS, reads still serve the old version', async () => {
    const root = join(mountPoint, 'read-only');
    const storage = createFileStorage({ path: root });
    await storage.putCertificate(bundleOf(NAME, leaf[0], intermediate));
    await storage.set('account/url', 'https://ca.example/acct/1');
    const oldTarget = await liveTarget(root, NAME);

    await tmpfs!.readOnly();
    try {
      const writes = {
        putCertificate: () => storage.putCertificate(bundleOf(NAME, leaf[2], intermediate)),
        'add (a directory to make)': () => storage.add('locks/ro.example.com', 'owner', 60_000),
        'set (into an existing directory)': () => storage.set('account/url', 'https://ca.example/acct/2'),
      };
      for (const [what, write] of Object.entries(writes)) {
        const err = await write().then(() => null, (e: unknown) => e);
        assert.equal((err as NodeJS.ErrnoException | null)?.code, 'EROFS', what);
        assert.ok(isStoreFault(err), what);
      }
      assert.equal(await liveTarget(root, NAME), oldTarget);
      assert.equal((await storage.getCertificate(NAME))?.privkey, leaf[0].key);
      assert.equal(await storage.get('account/url'), 'https://ca.example/acct/1');
    } finally {
      await tmpfs!.writable();
    }
    assert.equal((await versionsOf(root)).length, 1, 'no version was started');
    await storage.putCertificate(bundleOf(NAME, leaf[2], intermediate));
    assert.equal((await storage.getCertificate(NAME))?.privkey, leaf[2].key);
    await rm(root, { recursive: true });
  });
});

test('recover() clears what a killed write left: temp files and versions that never went live', async () => {
  const root = await mkdtemp(join(tmpdir(), 'acmed-recover-'));
  try {
    const storage = createFileStorage({ path: root });
    const bundle = await makeCertificate(root, ['r.example.com'], 'recover');
    await storage.putCertificate(bundle);
    await storage.set('orders/r.example.com', '{}');
    const liveVersion = (await liveTarget(root, 'r.example.com')).split('/').pop()!;
    // A temp file of an atomic write, a half-written newer version, a complete newer version never swapped in.
    await writeFile(join(root, 'state', 'orders', '.r.example.com.abcdef.tmp'), 'secret');
    await mkdir(join(root, 'archive', 'r.example.com', `${liveVersion}z-half`));
    await writeFile(join(root, 'archive', 'r.example.com', `${liveVersion}z-half`, 'cert.pem'), bundle.cert);
    const removed = await storage.recover!();
    assert.equal(removed.length, 2, removed.join(','));
    assert.deepEqual(await readdir(join(root, 'state', 'orders')), ['r.example.com']);
    assert.deepEqual(await readdir(join(root, 'archive', 'r.example.com')), [liveVersion]);
    assert.equal((await storage.getCertificate('r.example.com'))?.cert, bundle.cert, 'the live certificate is untouched');
    assert.deepEqual(await storage.recover!(), [], 'nothing left the second time');

    // Recovery runs beside work after start: a write begun after the call (here: stamped later) is not a leftover.
    const inFlight = join(root, 'state', 'orders', '.r.example.com.fedcba.tmp');
    await writeFile(inFlight, 'being written');
    const later = new Date(Date.now() + 60_000);
    await utimes(inFlight, later, later);
    assert.deepEqual(await storage.recover!(), []);
    assert.equal(await readFile(inFlight, 'utf8'), 'being written');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
