/**
 * Storage key helpers. Key segments are checked here once, so no backend can
 * be steered outside its namespace (or its directory) by a crafted name.
 */
import { createHash } from 'node:crypto';
import { nameSegment } from './name-segment.js';

// A segment may start with "-": ACME challenge tokens are base64url and one in
// 64 starts with it. A leading "." (".", "..", hidden files) stays refused.
const SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}$/;

export class InvalidKeyError extends Error {
  readonly code = 'INVALID_STORAGE_KEY';
}

export function assertValidKey(key: string): void {
  const segments = key.split('/');
  for (const segment of segments) {
    if (!SEGMENT.test(segment) || segment === '..' || segment.endsWith('.tmp')) {
      throw new InvalidKeyError(`invalid storage key ${JSON.stringify(key)}`);
    }
  }
}

/** One CA's ACME account in storage: its key, a rollover's staged key, its URL record, and the lock over them. */
export interface AccountKeys {
  key: string;
  keyNext: string;
  url: string;
  lock: string;
}

/** The account keys of acmed before several CAs, kept for the CA they were registered with. */
export const legacyAccountKeys: AccountKeys = { key: 'account/key.pem', keyNext: 'account/key.next.pem', url: 'account/url', lock: 'locks/account' };

/** A short, storage-safe name for a CA, from its directory URL. */
export function caStorageId(directoryUrl: string): string {
  return createHash('sha256').update(directoryUrl).digest('hex').slice(0, 16);
}

/**
 * Where a CA's account lives. The keys acmed used before it knew several
 * CAs (`account/…`) belong to one CA, legacyOwner, so an existing
 * deployment keeps its account with no migration; every other CA has its
 * own under `account/ca/<caStorageId>/`.
 */
export function accountKeysFor(directoryUrl: string, legacyOwner: string): AccountKeys {
  if (directoryUrl === legacyOwner) return legacyAccountKeys;
  const id = caStorageId(directoryUrl);
  return { key: `account/ca/${id}/key.pem`, keyNext: `account/ca/${id}/key.next.pem`, url: `account/ca/${id}/url`, lock: `locks/account-${id}` };
}

/** The key names acmed uses, in one place so backends and callers agree. */
export const keys = {
  /** The legacy account (accountKeysFor): its key, a rollover's staged key (promoted once the CA accepts), its URL. */
  accountKey: legacyAccountKeys.key,
  accountKeyNext: legacyAccountKeys.keyNext,
  accountUrl: legacyAccountKeys.url,
  /** ZeroSSL's external account binding, obtained with account_email (acme/zerossl-eab.ts). */
  zeroSslEab: 'account/zerossl-eab.json',
  lockPrefix: 'locks/',
  accountLock: legacyAccountKeys.lock,
  lock: (name: string) => `locks/${nameSegment(name)}`,
  challengePrefix: 'challenges/',
  challenge: (token: string) => `challenges/${token}`,
  /** Legacy per-host backoff records; folded into the index record on load. */
  backoffPrefix: 'backoff/',
  backoff: (name: string) => `backoff/${nameSegment(name)}`,
  /** Legacy per-host ARI cache; folded into the index record on load. */
  ariPrefix: 'ari/',
  ari: (name: string) => `ari/${nameSegment(name)}.json`,
  indexPrefix: 'index/',
  index: (name: string) => `index/${nameSegment(name)}`,
  /** dns-01 TXT records placed and not yet removed, so a crashed run's are removed at the next start. */
  dnsRecordPrefix: 'dns-records/',
  dnsRecord: (id: string) => `dns-records/${id}`,
  /** The private key of an order placed and not finished yet, to resume it after a crash. */
  order: (name: string) => `orders/${nameSegment(name)}`,
};
