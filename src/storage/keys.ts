/**
 * Storage key helpers. Key segments are checked here once, so no backend can
 * be steered outside its namespace (or its directory) by a crafted name.
 */
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

/** The key names acmed uses, in one place so backends and callers agree. */
export const keys = {
  accountKey: 'account/key.pem',
  /** A rollover's new key, stored before the CA is asked and promoted once it accepts. */
  accountKeyNext: 'account/key.next.pem',
  accountUrl: 'account/url',
  /** ZeroSSL's external account binding, obtained with account_email (acme/zerossl-eab.ts). */
  zeroSslEab: 'account/zerossl-eab.json',
  lockPrefix: 'locks/',
  accountLock: 'locks/account',
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
