/**
 * File storage, the embedded default. acmed's own state lives under
 * <path>/state/<key>; certificates are written certbot-style so existing
 * nginx configs work: <path>/live/<name>/{cert,chain,fullchain,privkey}.pem.
 *
 * live/<name> is a symlink to archive/<name>/<version>/, swapped with one
 * rename, so a reader never sees a new fullchain beside an old key.
 */
import { randomBytes } from 'node:crypto';
import { lstat, readdir, readFile, readlink, realpath, rename, rm, symlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { normalizeHostname } from '../hostname.js';
import { readCertificateInfo } from '../certificate-info.js';
import { ensureDir, fsyncDir, tempPathFor, writeFileAtomic, writeSynced } from './atomic-write.js';
import { assertValidKey } from './keys.js';
import type { CertificateBundle, Storage } from './storage.js';

/** Values written with a TTL start with this line; PEM and JSON never do. */
const TTL_MARK = '#acmed-ttl ';
const VERSIONS_KEPT = 3;
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
    if (!text.startsWith(TTL_MARK)) return text;
    const newline = text.indexOf('\n');
    const expiresAt = Number(text.slice(TTL_MARK.length, newline));
    if (expiresAt <= now()) return null;
    return text.slice(newline + 1);
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
        await ensureDir(join(file, '..'));
        for (let attempt = 0; attempt < 2; attempt++) {
          try {
            // O_EXCL create: exactly one caller wins, even across processes.
            await writeSynced(file, encode(value, ttlMs), 0o600, 'wx');
            return true;
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
            if ((await readValue(key)) !== null) return false;
            await rm(file, { force: true }); // expired: clear it and try once more
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
      const found: string[] = [];
      const walk = async (dir: string, rel: string) => {
        let entries;
        try {
          entries = await readdir(dir, { withFileTypes: true });
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
          throw err;
        }
        for (const entry of entries) {
          if (entry.name.startsWith('.')) continue;
          const key = rel ? `${rel}/${entry.name}` : entry.name;
          if (entry.isDirectory()) await walk(join(dir, entry.name), key);
          else if (key.startsWith(prefix)) found.push(key);
        }
      };
      await walk(join(root, 'state'), '');
      return found;
    },

    async putCertificate(bundle) {
      const name = normalizeHostname(bundle.name);
      const version = `${new Date(now()).toISOString().replace(/[-:.]/g, '')}-${randomBytes(3).toString('hex')}`;
      const archiveDir = join(root, 'archive', name);
      const versionDir = join(archiveDir, version);
      await ensureDir(versionDir);
      for (const file of PEM_FILES) {
        const mode = file === 'privkey' ? 0o600 : 0o644;
        await writeSynced(join(versionDir, `${file}.pem`), bundle[file], mode, 'wx');
      }
      if (opts.haproxyPem) await writeSynced(join(versionDir, 'combined.pem'), bundle.fullchain + bundle.privkey, 0o600, 'wx');
      await fsyncDir(versionDir);

      const liveDir = join(root, 'live');
      const livePath = join(liveDir, name);
      await ensureDir(liveDir);
      await moveAsideRealDirectory(livePath, join(archiveDir, `adopted-${version}`));
      const tempLink = tempPathFor(livePath);
      await symlink(join('..', 'archive', name, version), tempLink);
      await rename(tempLink, livePath);
      await fsyncDir(liveDir);
      await pruneVersions(archiveDir, version);
    },

    async deleteCertificate(name) {
      // Only the live link goes: the archive keeps the files for the record.
      const livePath = join(root, 'live', normalizeHostname(name));
      try {
        const stat = await lstat(livePath);
        await rm(livePath, { recursive: stat.isDirectory(), force: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    },

    async getCertificate(name) {
      const live = join(root, 'live', normalizeHostname(name));
      try {
        // Resolve live/<name> once, so all four files come from one version
        // even if putCertificate swaps the link meanwhile; if that version is
        // pruned under us, resolve again.
        let files: string[] | undefined;
        for (let attempt = 0; !files; attempt++) {
          const dir = await realpath(live);
          try {
            files = await Promise.all(PEM_FILES.map((file) => readFile(join(dir, `${file}.pem`), 'utf8')));
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 2 || (await realpath(live)) === dir) throw err;
          }
        }
        const [cert, chain, fullchain, privkey] = files;
        const info = readCertificateInfo(cert);
        return {
          name: normalizeHostname(name), names: info.names, cert, chain, fullchain, privkey,
          notBefore: info.notBefore.toISOString(), notAfter: info.notAfter.toISOString(),
        } satisfies CertificateBundle;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw err;
      }
    },

    location(name) {
      return `${join(root, 'live', normalizeHostname(name))}/`;
    },

    async listCertificates() {
      try {
        return (await readdir(join(root, 'live'))).filter((entry) => !entry.startsWith('.'));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw err;
      }
    },

    async close() {},
  };
}

/** A live/<name> that is a real directory (certbot's, or copied in by hand) is kept, not clobbered. */
async function moveAsideRealDirectory(livePath: string, aside: string): Promise<void> {
  try {
    const stat = await lstat(livePath);
    if (stat.isDirectory()) await rename(livePath, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
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

