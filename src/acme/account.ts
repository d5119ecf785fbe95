/**
 * The ACME account: an ECDSA P-256 key made on first start and an account URL
 * registered once per CA directory. Both live in storage, so a restart (or a
 * second instance) reuses them with no extra request. Each CA has an account
 * of its own, at the keys accountKeysFor names.
 */
import { crypto as acmeCrypto } from 'acme-client';
import { accountKeysFor, keys, legacyAccountKeys, type AccountKeys } from '../storage/keys.js';
import { withLock } from '../storage/lock.js';
import type { Storage } from '../storage/storage.js';

export interface StoredAccountUrl {
  directoryUrl: string;
  url: string;
  /** When acmed registered it; absent in records of earlier versions. */
  registeredAt?: string;
}

/**
 * A CA's account keys. The legacy keys belong to the CA their URL record
 * names (whatever its place in api_uri now, so reordering the list moves no
 * account); while none is registered there, to the first CA.
 */
export async function accountKeysOf(storage: Storage, directoryUrl: string, firstCa: string): Promise<AccountKeys> {
  const legacy = await readAccountRecord(storage, keys.accountUrl);
  return accountKeysFor(directoryUrl, legacy?.directoryUrl ?? firstCa);
}

const LEGACY = legacyAccountKeys;

export async function loadOrCreateAccountKey(storage: Storage, account = LEGACY): Promise<string> {
  const existing = await storage.get(account.key);
  if (existing) return existing;
  return withLock(storage, account.lock, async () => {
    const raced = await storage.get(account.key);
    if (raced) return raced;
    const key = (await acmeCrypto.createPrivateEcdsaKey('P-256')).toString();
    await storage.set(account.key, key);
    return key;
  });
}

export async function loadAccountUrl(storage: Storage, directoryUrl: string, account = LEGACY): Promise<string | null> {
  return (await loadAccountRecord(storage, directoryUrl, account))?.url ?? null;
}

export async function loadAccountRecord(storage: Storage, directoryUrl: string, account = LEGACY): Promise<StoredAccountUrl | null> {
  const stored = await readAccountRecord(storage, account.url);
  return stored?.directoryUrl === directoryUrl ? stored : null;
}

async function readAccountRecord(storage: Storage, key: string): Promise<StoredAccountUrl | null> {
  const raw = await storage.get(key);
  if (!raw) return null;
  try {
    const stored = JSON.parse(raw) as StoredAccountUrl;
    return typeof stored.directoryUrl === 'string' ? stored : null;
  } catch {
    return null;
  }
}

export async function saveAccountUrl(storage: Storage, directoryUrl: string, url: string, account = LEGACY): Promise<void> {
  await storage.set(account.url, JSON.stringify({ directoryUrl, url, registeredAt: new Date().toISOString() } satisfies StoredAccountUrl));
}
