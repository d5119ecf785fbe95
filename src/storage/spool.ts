/**
 * Certificates the CA issued but the store refused (down, full, read-only).
 * A certificate is never thrown away because the store or the disk failed:
 * asking the CA again costs rate limit, and may not work in time. The spool
 * holds each one in memory at once and in a local directory that survives a
 * restart, until the issuer has stored it and releases it.
 *
 * Files hold private keys: the directory is 0700, each file 0600, and neither
 * a bundle nor a file's content is ever logged (only names and paths).
 */
import { chmod, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { normalizeHostname } from '../hostname.js';
import { nameSegment } from './name-segment.js';
import type { Logger } from '../log.js';
import { ensureDir, writeFileAtomic } from './atomic-write.js';
import type { CertificateBundle } from './storage.js';

const BUNDLE_FIELDS = ['name', 'cert', 'chain', 'fullchain', 'privkey', 'notBefore', 'notAfter'] as const;
const VARIANT_FIELDS = ['cert', 'chain', 'fullchain', 'privkey', 'notBefore', 'notAfter'] as const;

/** The bundle in a spool file, or null when the file is not one (never echoing the content). */
function parseBundle(text: string): CertificateBundle | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const record = value as Record<string, unknown>;
  if (BUNDLE_FIELDS.some((field) => typeof record[field] !== 'string')) return null;
  if (!Array.isArray(record.names) || !record.names.every((n) => typeof n === 'string')) return null;
  const bundle = {} as Record<string, unknown>;
  for (const field of BUNDLE_FIELDS) bundle[field] = record[field];
  bundle.names = [...record.names];
  // The RSA certificate kept beside the primary one is held with it, or the bundle is not one.
  if (record.rsa !== undefined) {
    const rsa = record.rsa as Record<string, unknown> | null;
    if (typeof rsa !== 'object' || rsa === null || VARIANT_FIELDS.some((field) => typeof rsa[field] !== 'string')) return null;
    bundle.rsa = Object.fromEntries(VARIANT_FIELDS.map((field) => [field, rsa[field]]));
  }
  return bundle as unknown as CertificateBundle;
}

/** Where a bundle is held: its normalized name, or null for a name that may not become a file name. */
function spoolName(name: string): string | null {
  try {
    return normalizeHostname(name);
  } catch {
    return null;
  }
}

/** True when a expires later than b. An unreadable date is never later. */
const expiresLater = (a: { notAfter: string }, b: { notAfter: string }) => Date.parse(a.notAfter) > Date.parse(b.notAfter);

export class CertificateSpool {
  private readonly bundles = new Map<string, CertificateBundle>();
  /** Per name, the chain of file writes and removals, so they land in the order the memory changed. */
  private readonly fileOps = new Map<string, Promise<void>>();
  /** Names held in memory whose file could not be written (a full disk): tried again on the next hold. */
  private readonly unwritten = new Set<string>();

  private constructor(private readonly dir: string | null, private readonly log: Logger) {}

  /** Loads what an earlier run left. A dir that cannot be created is logged, and the spool keeps bundles in memory only. */
  static async open(dir: string, opts: { log: Logger }): Promise<CertificateSpool> {
    const { log } = opts;
    try {
      await ensureDir(dir);
    } catch (err) {
      log.error({ dir, err: (err as Error).message },
        'the certificate spool directory cannot be created; certificates the store refuses are held in memory only');
      return new CertificateSpool(null, log);
    }
    // An existing directory may be wider; a read-only one is still worth reading.
    await chmod(dir, 0o700).catch((err: Error) => log.warn({ dir, err: err.message }, 'cannot set the certificate spool directory to 0700'));
    const spool = new CertificateSpool(dir, log);
    await spool.load(dir);
    return spool;
  }

  /** Holds bundle: in memory at once, then in a 0600 file. A failing file write is logged, never thrown. */
  async hold(bundle: CertificateBundle): Promise<void> {
    const name = spoolName(bundle.name) ?? bundle.name;
    if (!this.keepNewest(name, bundle)) return;
    await Promise.all([name, ...[...this.unwritten].filter((other) => other !== name)].map((n) => this.syncFile(n)));
  }

  /** Everything held, newest per name. */
  held(): CertificateBundle[] {
    return [...this.bundles.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, bundle]) => copyOf(bundle));
  }

  get(name: string): CertificateBundle | undefined {
    const bundle = this.bundles.get(spoolName(name) ?? name);
    return bundle && copyOf(bundle);
  }

  /**
   * Drops the bundle held for name once it is stored. With notAfter (of what
   * was stored), only when the held one expires no later: a newer bundle that
   * arrived meanwhile stays until it is stored too.
   */
  async release(name: string, notAfter?: string): Promise<void> {
    const key = spoolName(name) ?? name;
    const held = this.bundles.get(key);
    if (!held) return;
    if (notAfter !== undefined && held.notAfter !== notAfter && !(Date.parse(held.notAfter) <= Date.parse(notAfter))) return;
    this.bundles.delete(key);
    await this.syncFile(key);
  }

  private keepNewest(name: string, bundle: CertificateBundle): boolean {
    const current = this.bundles.get(name);
    if (current && expiresLater(current, bundle)) return false;
    this.bundles.set(name, copyOf(bundle));
    return true;
  }

  private async load(dir: string): Promise<void> {
    let entries: string[];
    try {
      entries = await readdir(dir);
    } catch (err) {
      this.log.error({ dir, err: (err as Error).message }, 'cannot read the certificate spool directory');
      return;
    }
    for (const entry of entries) {
      const path = join(dir, entry);
      if (entry.startsWith('.') && entry.endsWith('.tmp')) {
        // A write an earlier run did not finish: it may hold a key, and its complete twin (if any) is beside it.
        await rm(path, { force: true }).catch(() => {});
        continue;
      }
      if (!entry.endsWith('.json')) continue;
      const bundle = await readFile(path, 'utf8').then(parseBundle, () => null);
      const name = bundle && spoolName(bundle.name);
      if (!bundle || !name) {
        this.log.warn({ file: path }, 'not a spooled certificate; left in place');
        continue;
      }
      this.keepNewest(name, bundle);
    }
    if (this.bundles.size > 0) {
      this.log.warn({ names: [...this.bundles.keys()] }, 'certificates an earlier run could not store are waiting in the spool');
    }
  }

  /** Makes the file for name match memory: written when a bundle is held, removed when not. */
  private syncFile(name: string): Promise<void> {
    const run = (this.fileOps.get(name) ?? Promise.resolve()).then(() => this.writeFile(name));
    this.fileOps.set(name, run);
    void run.then(() => {
      if (this.fileOps.get(name) === run) this.fileOps.delete(name);
    });
    return run;
  }

  private async writeFile(name: string): Promise<void> {
    if (!this.dir) return;
    const bundle = this.bundles.get(name);
    if (spoolName(name) !== name) {
      if (bundle) this.log.error({ name }, 'a certificate with an invalid name is held in memory only');
      return;
    }
    const path = join(this.dir, `${nameSegment(name)}.json`);
    try {
      if (bundle) await writeFileAtomic(path, JSON.stringify(bundle), 0o600);
      else await rm(path, { force: true });
      this.unwritten.delete(name);
    } catch (err) {
      if (bundle) this.unwritten.add(name);
      this.log.error({ name, file: path, err: (err as Error).message }, bundle
        ? 'cannot write a certificate to the spool; it is held in memory only'
        : 'cannot remove a stored certificate from the spool');
    }
  }
}

function copyOf(bundle: CertificateBundle): CertificateBundle {
  return { ...bundle, names: [...bundle.names] };
}
