// What the fault suite (test/faults/) checks in a store after the trouble:
// each certificate whole (fullchain = cert + chain, the key matches the
// certificate, the chain signs the leaf, the name is in it), nothing left
// half-written (temp files, archive versions missing a file, empty lock
// files), for file storage and for Redis.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { lstat, readdir, readFile, realpath } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { Redis } from 'ioredis';

export const PEM_FILES = ['cert', 'chain', 'fullchain', 'privkey'] as const;

export interface Bundle {
  cert: string;
  chain: string;
  fullchain: string;
  privkey: string;
}

/** Problems with one certificate's PEMs (empty list: whole and consistent). */
export function bundleProblems(name: string, bundle: Partial<Bundle>): string[] {
  const problems: string[] = [];
  for (const f of PEM_FILES) {
    if (!bundle[f]) problems.push(`${name}: ${f} is missing or empty`);
  }
  if (problems.length > 0) return problems;
  const { cert, chain, fullchain, privkey } = bundle as Bundle;
  if (fullchain !== cert + chain) problems.push(`${name}: fullchain is not cert + chain (${fullchain.length} vs ${cert.length}+${chain.length} bytes)`);
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch (err) {
    return [...problems, `${name}: cert does not parse: ${(err as Error).message}`];
  }
  const sans = (leaf.subjectAltName ?? '').split(/,\s*/);
  if (!sans.includes(`DNS:${name}`)) problems.push(`${name}: certificate is for ${leaf.subjectAltName}, not ${name}`);
  try {
    if (!leaf.checkPrivateKey(createPrivateKey(privkey))) problems.push(`${name}: privkey does not match the certificate's public key`);
  } catch (err) {
    problems.push(`${name}: privkey does not parse: ${(err as Error).message}`);
  }
  try {
    const issuer = new X509Certificate(chain);
    if (!leaf.verify(issuer.publicKey)) problems.push(`${name}: the chain's first certificate did not sign the leaf`);
  } catch (err) {
    problems.push(`${name}: chain does not parse: ${(err as Error).message}`);
  }
  return problems;
}

/** Reads live/<name>/*.pem through one resolution of the link (as a careful terminator would). */
export async function readLive(dataDir: string, name: string): Promise<Partial<Bundle> | null> {
  let dir: string;
  try {
    dir = await realpath(join(dataDir, 'live', name));
  } catch {
    return null;
  }
  const bundle: Partial<Bundle> = {};
  for (const f of PEM_FILES) {
    bundle[f] = await readFile(join(dir, `${f}.pem`), 'utf8').catch(() => undefined);
  }
  return bundle;
}

/** Problems with live/<name>; "missing" when there is no live/<name> at all. */
export async function liveProblems(dataDir: string, name: string): Promise<string[]> {
  const bundle = await readLive(dataDir, name);
  if (!bundle) return [`${name}: missing (no live/${name})`];
  return bundleProblems(name, bundle);
}

/** The names under live/ (certificates a terminator can read). */
export async function liveNames(dataDir: string): Promise<string[]> {
  try {
    return (await readdir(join(dataDir, 'live'))).filter((n) => !n.startsWith('.'));
  } catch {
    return [];
  }
}

/** How many of `names` have a whole certificate under live/. */
export async function countWholeLive(dataDir: string, names: string[]): Promise<number> {
  let whole = 0;
  for (const name of names) if ((await liveProblems(dataDir, name)).length === 0) whole++;
  return whole;
}

/** Every regular file or link under root (relative paths), without following links. */
export async function walk(root: string): Promise<{ path: string; size: number; isLink: boolean }[]> {
  const found: { path: string; size: number; isLink: boolean }[] = [];
  const visit = async (dir: string) => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) {
        await visit(full);
      } else {
        const st = await lstat(full).catch(() => null);
        if (st) found.push({ path: relative(root, full), size: st.size, isLink: st.isSymbolicLink() });
      }
    }
  };
  await visit(root);
  return found;
}

/** Temp files (`*.tmp`, hidden or not) anywhere under root. */
export async function tempFiles(root: string): Promise<string[]> {
  return (await walk(root)).filter((f) => f.path.endsWith('.tmp')).map((f) => f.path);
}

/**
 * Partial writes in a file store: an archive version without all four PEMs
 * (or with an empty one), an empty file under state/ (a lock or record
 * created but never written), a live/ link that does not resolve.
 */
export async function partialWrites(dataDir: string): Promise<string[]> {
  const problems: string[] = [];
  const archive = join(dataDir, 'archive');
  for (const name of await readdir(archive).catch(() => [] as string[])) {
    for (const version of await readdir(join(archive, name)).catch(() => [] as string[])) {
      const dir = join(archive, name, version);
      const st = await lstat(dir).catch(() => null);
      if (!st?.isDirectory()) continue;
      const files = await readdir(dir).catch(() => [] as string[]);
      for (const f of PEM_FILES) {
        if (!files.includes(`${f}.pem`)) {
          problems.push(`archive/${name}/${version} has no ${f}.pem (has: ${files.join(', ') || 'nothing'})`);
        } else if ((await lstat(join(dir, `${f}.pem`))).size === 0) {
          problems.push(`archive/${name}/${version}/${f}.pem is empty`);
        }
      }
    }
  }
  for (const f of await walk(join(dataDir, 'state'))) {
    if (f.size === 0 && !f.isLink && !f.path.endsWith('.tmp')) problems.push(`state/${f.path} is an empty file (left wedged?)`);
  }
  for (const name of await liveNames(dataDir)) {
    const target = await realpath(join(dataDir, 'live', name)).catch(() => null);
    if (!target) problems.push(`live/${name} does not resolve`);
  }
  return problems;
}

export const REDIS_CERT_FIELDS = ['cert', 'chain', 'fullchain', 'not_after', 'privkey'];

/** Problems with one certificate hash in Redis; "missing" when there is no hash. */
export async function redisCertificateProblems(redis: Redis, namespace: string, name: string): Promise<string[]> {
  const fields = await redis.hgetall(`${namespace}certs/${name}`);
  const present = Object.keys(fields).sort();
  if (present.length === 0) return [`${name}: missing (no ${namespace}certs/${name})`];
  const problems: string[] = [];
  const absent = REDIS_CERT_FIELDS.filter((f) => !present.includes(f));
  if (absent.length > 0) problems.push(`${name}: half-written hash, no ${absent.join(', ')} (has ${present.join(', ')})`);
  problems.push(...bundleProblems(name, fields as Partial<Bundle>));
  if (fields.not_after && fields.cert) {
    try {
      const leaf = new X509Certificate(fields.cert);
      if (new Date(fields.not_after).getTime() !== new Date(leaf.validTo).getTime()) {
        problems.push(`${name}: not_after ${fields.not_after} is not the certificate's ${leaf.validTo}`);
      }
    } catch { /* reported by bundleProblems */ }
  }
  return problems;
}

/** A certificate's notAfter from PEM text, in ms; NaN when it does not parse. */
export function notAfterMs(certPem: string): number {
  try {
    return new Date(new X509Certificate(certPem).validTo).getTime();
  } catch {
    return Number.NaN;
  }
}
