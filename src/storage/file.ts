/**
 * File storage, the embedded default. acmed's own state lives under
 * <path>/state/<key>; certificates are written certbot-style so existing
 * nginx configs work: <path>/live/<name>/{cert,chain,fullchain,privkey}.pem,
 * plus {cert,chain,fullchain,privkey}-rsa.pem for an RSA certificate kept
 * beside the primary one, in the same version directory.
 *
 * live/<name> is a symlink to archive/<name>/<version>/, swapped with one
 * rename, so a reader never sees a new fullchain beside an old key. A version
 * that cannot be written in full (a full or read-only disk) is removed again,
 * and live/<name> keeps pointing at the last complete one.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, type Dirent } from 'node:fs';
import { lstat, readdir, readFile, readlink, realpath, rename, rm, stat, statfs, symlink } from 'node:fs/promises';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { dirname, join, resolve } from 'node:path';
import { nameSegment, namesOfSegments } from './name-segment.js';
import { ensureDir, fsyncDir, tempPathFor, writeFileAtomic, writeNewFile } from './atomic-write.js';
import { fromFields, pemEntries, RSA_PEM_FIELDS } from './certificate-fields.js';
import { assertValidKey } from './keys.js';
import { assertValidPrefix } from './list-prefix.js';
import type { CertificateBundle, Storage } from './storage.js';

/** Values written with a TTL start with this line; PEM and JSON never do. */
const TTL_MARK = '#acmed-ttl ';
const TTL_HEADER = /^#acmed-ttl (\d+)\n/;
/**
 * How old an empty or torn lock record must be before add() replaces it. A
 * record is empty for a moment between another add()'s create and its write;
 * one that stays so was left by a write that failed (a full disk, a crash).
 */
export const UNREADABLE_LOCK_GRACE_MS = 5_000;
const VERSIONS_KEPT = 3;
/** scan() reads synchronously for at most this long before letting the event loop run. */
const SCAN_SLICE_MS = 8;
const PEM_FILES = ['cert', 'chain', 'fullchain', 'privkey'] as const;

/**
 * add() calls per state file, chained. O_EXCL alone makes a fresh add
 * exclusive, but taking over an expired entry is read, remove, create: two
 * callers that both saw it expired could each remove the other's new file
 * and both win. Serializing them in-process closes that; the store is not
 * shared between processes (shared: false).
 */
const addQueues = new Map<string, Promise<unknown>>();

function serialized<T>(file: string, fn: () => Promise<T>): Promise<T> {
  const run = (addQueues.get(file) ?? Promise.resolve()).then(fn);
  const tail = run.catch(() => {});
  addQueues.set(file, tail);
  void tail.then(() => {
    if (addQueues.get(file) === tail) addQueues.delete(file);
  });
  return run;
}

/** A state file's value and expiry; null when its TTL header is torn (a write cut short). */
function parseStateFile(text: string): { value: string; expiresAt: number } | null {
  if (!text.startsWith(TTL_MARK)) return { value: text, expiresAt: Infinity };
  const header = TTL_HEADER.exec(text);
  return header ? { value: text.slice(header[0].length), expiresAt: Number(header[1]) } : null;
}

/** Lock records always carry a TTL header, so an empty file or a cut-off header is a failed write. */
function isTornLockRecord(text: string): boolean {
  return TTL_MARK.startsWith(text) || parseStateFile(text) === null;
}

export interface FileStorageOptions {
  path: string;
  /** Also write combined.pem (fullchain + key), the single file HAProxy reads. */
  haproxyPem?: boolean;
  /** Several instances share this directory (a network file system): publish tokens here. */
  shared?: boolean;
  now?: () => number;
}

export function createFileStorage(opts: FileStorageOptions): Storage {
  const root = opts.path;
  const now = opts.now ?? Date.now;
  const statePath = (key: string) => {
    assertValidKey(key);
    return join(root, 'state', key);
  };

  const readValue = async (key: string): Promise<string | null> => {
    const file = statePath(key);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    const record = parseStateFile(text);
    // A torn expiry cannot be trusted to be in the future: treat it as expired.
    if (!record || record.expiresAt <= now()) return null;
    return record.value;
  };

  /** Whether add() may replace the file at key: gone, expired, or torn for longer than the grace. */
  const isReplaceable = async (file: string): Promise<boolean> => {
    let text: string;
    let mtimeMs: number;
    try {
      [text, { mtimeMs }] = await Promise.all([readFile(file, 'utf8'), stat(file)]);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
      throw err;
    }
    if (isTornLockRecord(text)) return now() - mtimeMs >= UNREADABLE_LOCK_GRACE_MS;
    return parseStateFile(text)!.expiresAt <= now();
  };

  const encode = (value: string, ttlMs?: number) => (ttlMs ? `${TTL_MARK}${now() + ttlMs}\n${value}` : value);

  return {
    kind: 'file',
    shared: opts.shared ?? false,

    get: readValue,

    async set(key, value, setOpts) {
      await writeFileAtomic(statePath(key), encode(value, setOpts?.ttlMs));
    },

    async add(key, value, ttlMs) {
      const file = statePath(key);
      return serialized(resolve(file), async () => {
        await ensureDir(dirname(file));
        for (let attempt = 0; attempt < 2; attempt++) {
          try {
            // O_EXCL create: exactly one caller wins, even across processes.
            // A write that fails after the create removes the file again.
            await writeNewFile(file, encode(value, ttlMs), 0o600);
            return true;
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
            if (!(await isReplaceable(file))) return false;
            await rm(file, { force: true }); // expired or torn: clear it and try once more
          }
        }
        return false;
      });
    },

    async delete(key) {
      await rm(statePath(key), { force: true });
    },

    // File storage serves one instance (shared: false), so check-then-act is enough here.
    async compareAndDelete(key, value) {
      if ((await readValue(key)) !== value) return false;
      await rm(statePath(key), { force: true });
      return true;
    },

    async compareAndExtend(key, value, ttlMs) {
      if ((await readValue(key)) !== value) return false;
      await writeFileAtomic(statePath(key), encode(value, ttlMs));
      return true;
    },

    async list(prefix) {
      assertValidPrefix(prefix);
      const found: string[] = [];
      // Start at the prefix's own directory: listing locks/ must not walk 100,000 index records.
      const base = prefix.slice(0, prefix.lastIndexOf('/') + 1);
      const walk = async (dir: string, rel: string) => {
        for (const entry of await entriesOf(dir)) {
          if (entry.name.startsWith('.')) continue;
          const key = rel + entry.name;
          if (entry.isDirectory()) {
            if (key.startsWith(prefix) || prefix.startsWith(`${key}/`)) await walk(join(dir, entry.name), `${key}/`);
          } else if (key.startsWith(prefix)) {
            found.push(key);
          }
        }
      };
      await walk(join(root, 'state', base), base);
      return found;
    },

    /**
     * Reads small files synchronously, in slices of a few milliseconds with
     * the event loop let run between them: one blocking read is open, read
     * and close in one go, where the promise API makes three thread-pool round
     * trips; at 100,000 index records that is 1.2 s against 5–10 s.
     */
    async scan(prefix, onBatch) {
      assertValidPrefix(prefix);
      const slash = prefix.lastIndexOf('/');
      const base = prefix.slice(0, slash + 1);
      const pending: { dir: string; rel: string }[] = [{ dir: join(root, 'state', base), rel: base }];
      let sliceStart = performance.now();
      let batch: [string, string][] = [];
      const breathe = async () => {
        if (performance.now() - sliceStart < SCAN_SLICE_MS) return;
        if (batch.length > 0) onBatch(batch);
        batch = [];
        await yieldToEventLoop();
        sliceStart = performance.now();
      };
      for (let next = pending.pop(); next; next = pending.pop()) {
        for (const entry of direntsOf(next.dir)) {
          if (entry.name.startsWith('.')) continue;
          const key = next.rel + entry.name;
          if (entry.isDirectory()) {
            if (key.startsWith(prefix) || prefix.startsWith(`${key}/`)) pending.push({ dir: join(next.dir, entry.name), rel: `${key}/` });
            continue;
          }
          if (!key.startsWith(prefix)) continue;
          const text = readIfPresent(join(next.dir, entry.name));
          const record = text === null ? null : parseStateFile(text);
          if (record && record.expiresAt > now()) batch.push([key, record.value]);
          await breathe();
        }
      }
      if (batch.length > 0) onBatch(batch);
    },

    async putCertificate(bundle) {
      const name = nameSegment(bundle.name);
      const version = `${new Date(now()).toISOString().replace(/[-:.]/g, '')}-${randomBytes(3).toString('hex')}`;
      const archiveDir = join(root, 'archive', name);
      const versionDir = join(archiveDir, version);
      const liveDir = join(root, 'live');
      const livePath = join(liveDir, name);
      const tempLink = tempPathFor(livePath);
      let adopted: string | null = null;
      try {
        await ensureDir(versionDir);
        // Both key types go into this one version, so the swap below replaces them together.
        for (const [file, pem] of pemEntries(bundle)) {
          const mode = file.startsWith('privkey') ? 0o600 : 0o644;
          await writeNewFile(join(versionDir, `${file}.pem`), pem, mode);
        }
        if (opts.haproxyPem) {
          await writeNewFile(join(versionDir, 'combined.pem'), bundle.fullchain + bundle.privkey, 0o600);
          if (bundle.rsa) await writeNewFile(join(versionDir, 'combined-rsa.pem'), bundle.rsa.fullchain + bundle.rsa.privkey, 0o600);
        }
        await fsyncDir(versionDir);
        await ensureDir(liveDir);
        await symlink(join('..', 'archive', name, version), tempLink);
        adopted = await moveAsideRealDirectory(livePath, join(archiveDir, `adopted-${version}`));
        await rename(tempLink, livePath);
      } catch (err) {
        // Nothing of this version went live: undo it, so the archive never
        // holds a partial version and live/<name> is what it was before.
        await rm(tempLink, { force: true }).catch(() => {});
        if (adopted) await rename(adopted, livePath).catch(() => {});
        await rm(versionDir, { recursive: true, force: true }).catch(() => {});
        throw err;
      }
      await fsyncDir(liveDir);
      // The new version is live; versions a failed prune leaves go on the next write.
      await pruneVersions(archiveDir, version).catch(() => {});
    },

    async deleteCertificate(name) {
      // Only the live link goes: the archive keeps the files for the record.
      const livePath = join(root, 'live', nameSegment(name));
      try {
        const entry = await lstat(livePath);
        await rm(livePath, { recursive: entry.isDirectory(), force: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    },

    async getCertificate(name) {
      const live = join(root, 'live', nameSegment(name));
      try {
        // Resolve live/<name> once, so all files come from one version
        // even if putCertificate swaps the link meanwhile; if that version is
        // pruned under us, resolve again.
        let files: Record<string, string> | undefined;
        for (let attempt = 0; !files; attempt++) {
          const dir = await realpath(live);
          try {
            files = await readVersion(dir);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 2 || (await realpath(live)) === dir) throw err;
          }
        }
        return fromFields(name, files);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw err;
      }
    },

    async getCertificatePem(name) {
      try {
        return await readFile(join(root, 'live', nameSegment(name), 'cert.pem'), 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw err;
      }
    },

    location(name) {
      return `${join(root, 'live', nameSegment(name))}/`;
    },

    async listCertificates() {
      try {
        return namesOfSegments((await readdir(join(root, 'live'))).filter((entry) => !entry.startsWith('.')));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw err;
      }
    },

    async freeBytes() {
      // The storage directory may not exist yet: ask about the nearest one that does.
      for (let dir = resolve(root); ; dir = dirname(dir)) {
        try {
          const fs = await statfs(dir);
          return fs.bavail * fs.bsize;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || dir === dirname(dir)) throw err;
        }
      }
    },

    async recover() {
      // Writes that start after this call (acmed goes on working while it
      // runs) are not leftovers. Shared (a network file system): another live
      // instance may be mid-write; only old leftovers are ours to clear.
      const olderThan = opts.shared ? now() - 10 * 60_000 : now();
      return recoverInterruptedWrites(root, olderThan);
    },

    async close() {},
  };
}

/**
 * A live/<name> that is a real directory (certbot's, or copied in by hand) is
 * kept, not clobbered. Returns where it went, or null when there was none.
 */
async function moveAsideRealDirectory(livePath: string, aside: string): Promise<string | null> {
  try {
    if (!(await lstat(livePath)).isDirectory()) return null;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  await rename(livePath, aside);
  return aside;
}

async function pruneVersions(archiveDir: string, current: string): Promise<void> {
  const versions = (await readdir(archiveDir)).filter((v) => !v.startsWith('.') && !v.startsWith('adopted-')).sort();
  const stale = versions.filter((v) => v !== current).slice(0, Math.max(0, versions.length - VERSIONS_KEPT));
  await Promise.all(stale.map((v) => rm(join(archiveDir, v), { recursive: true, force: true })));
}

/** Exposed for tests: where live/<name> points. */
export async function liveTarget(root: string, name: string): Promise<string> {
  return readlink(join(root, 'live', name));
}


/**
 * What a process killed mid-write leaves: temp files of atomic writes
 * (`.<name>.<hex>.tmp`, in state/ and live/), and certificate versions in
 * archive/ that never went live (missing a file, or newer than the live one). Neither is ever read (live/ points
 * only at complete versions), but both would pile up and the temp files may
 * hold keys. Only entries modified before `olderThan` are removed.
 */
async function recoverInterruptedWrites(root: string, olderThan: number): Promise<string[]> {
  const removed: string[] = [];
  const old = async (path: string) => ((await lstat(path).catch(() => null))?.mtimeMs ?? Infinity) < olderThan;
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await entriesOf(dir)) {
      const path = join(dir, entry.name);
      if (entry.name.startsWith('.') && entry.name.endsWith('.tmp')) {
        if (await old(path)) {
          await rm(path, { force: true, recursive: true });
          removed.push(path.slice(root.length + 1));
        }
      } else if (entry.isDirectory()) {
        await walk(path);
      }
    }
  };
  await walk(join(root, 'state'));
  await walk(join(root, 'live'));
  for (const { name } of await entriesOf(join(root, 'archive'))) {
    const liveTarget = await readlink(join(root, 'live', name)).catch(() => null);
    const archiveDir = join(root, 'archive', name);
    for (const version of await readdir(archiveDir).catch(() => [] as string[])) {
      if (version.startsWith('adopted-')) continue;
      const versionDir = join(archiveDir, version);
      const liveVersion = liveTarget?.split('/').pop() ?? null;
      if (version === liveVersion) continue;
      // Older complete versions are kept history; a newer one never went live: its write was cut short.
      const files = await readdir(versionDir).catch(() => null);
      const complete = files !== null && PEM_FILES.every((f) => files.includes(`${f}.pem`));
      if (complete && liveVersion !== null && version < liveVersion) continue;
      if (await old(versionDir)) {
        await rm(versionDir, { recursive: true, force: true });
        removed.push(versionDir.slice(root.length + 1));
      }
    }
  }
  return removed;
}

/**
 * The PEM files of one version directory by field name; the `-rsa` ones
 * only when the version has them. ENOENT when a required file is missing,
 * or when the directory went (pruned) while it was read.
 */
async function readVersion(dir: string): Promise<Record<string, string>> {
  const read = (file: string) => readFile(join(dir, `${file}.pem`), 'utf8');
  const optional = (file: string) => read(file).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
  const [required, rsa] = await Promise.all([Promise.all(PEM_FILES.map(read)), Promise.all(RSA_PEM_FIELDS.map(optional))]);
  // Versions are never changed, only removed whole: a missing -rsa file is a version without one, unless the version went.
  if (rsa.includes(null)) await stat(join(dir, 'cert.pem'));
  const files: Record<string, string> = {};
  PEM_FILES.forEach((file, i) => { files[file] = required[i]; });
  RSA_PEM_FIELDS.forEach((file, i) => { if (rsa[i] !== null) files[file] = rsa[i]!; });
  return files;
}

/** A directory's entries; none when it does not exist (yet). */
function direntsOf(dir: string): Dirent[] {
  try {
    return readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

function readIfPresent(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

async function entriesOf(dir: string) {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}
