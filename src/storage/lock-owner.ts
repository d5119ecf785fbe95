/**
 * Who holds a lock. A lock's value is an owner token `<host>/<pid>/<random>`,
 * so a restarted daemon can tell its dead predecessor's locks from those of
 * other instances: without that, it would wait out the full TTL of a lock no
 * one is going to release.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { keys } from './keys.js';
import type { Storage } from './storage.js';

/**
 * Starts the random part of every token this process makes. A container
 * restart keeps pid 1, so host and pid alone cannot tell this process's
 * locks from its predecessor's.
 */
const PROCESS_MARK = randomBytes(8).toString('hex');

export interface LockOwner {
  host: string;
  pid: number;
  /** The token's random part. */
  random: string;
}

export function newOwnerToken(): string {
  return `${hostname()}/${process.pid}/${PROCESS_MARK}${randomBytes(8).toString('hex')}`;
}

/** The owner a token names, or null for a value in another format (an older acmed's plain hex). */
export function parseOwnerToken(token: string): LockOwner | null {
  const match = /^(.+)\/(\d+)\/([0-9a-f]+)$/.exec(token);
  if (!match) return null;
  return { host: match[1], pid: Number(match[2]), random: match[3] };
}

/** Signal 0 checks a pid without touching it; EPERM means it exists but is not ours. */
export function isProcessAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false; // kill(0) would ask about our own process group
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface StaleLockOptions {
  host?: string;
  pid?: number;
  isAlive?: (pid: number) => boolean;
}

/**
 * Releases locks that this host's previous run left (same host, that process
 * gone): a restarted daemon must not wait out its own dead predecessor's
 * lock. A lock with our own pid counts as left behind unless this process
 * made it (a container restart keeps pid 1). Locks of other hosts, and of live
 * processes here (another instance on the same machine), stay. Each removal is
 * a compare-and-delete, so a lock taken over meanwhile is not touched.
 * Returns the keys released.
 */
export async function releaseStaleOwnLocks(storage: Storage, opts: StaleLockOptions = {}): Promise<string[]> {
  const released: string[] = [];
  for (const key of await storage.list(keys.lockPrefix)) {
    const token = await storage.get(key);
    if (token !== null && leftByEarlierRun(token, opts) && (await storage.compareAndDelete(key, token))) released.push(key);
  }
  return released;
}

/**
 * True when an owner token was made by an earlier run on this host (same
 * host, that process gone, or our pid reused by a restart): what that run
 * left behind is ours to clean up. Other hosts' tokens, and live processes'
 * here, are not.
 */
export function leftByEarlierRun(token: string, opts: StaleLockOptions = {}): boolean {
  const owner = parseOwnerToken(token);
  if (!owner || owner.host !== (opts.host ?? hostname())) return false;
  const isAlive = opts.isAlive ?? isProcessAlive;
  const madeHere = owner.random.startsWith(PROCESS_MARK);
  return owner.pid === (opts.pid ?? process.pid) ? !madeHere : !isAlive(owner.pid);
}
