/**
 * The ACME account: an ECDSA P-256 key made on first start and an account URL
 * registered once per CA directory. Both live in storage, so a restart (or a
 * second instance) reuses them with no extra request.
 */
import { crypto as acmeCrypto } from 'acme-client';
import { keys } from '../storage/keys.js';
import { withLock } from '../storage/lock.js';
import type { Storage } from '../storage/storage.js';

export interface StoredAccountUrl {
  directoryUrl: string;
  url: string;
  /** When acmed registered it; absent in records of earlier versions. */
  registeredAt?: string;
}

export async function loadOrCreateAccountKey(storage: Storage): Promise<string> {
  const existing = await storage.get(keys.accountKey);
  if (existing) return existing;
  return withLock(storage, keys.accountLock, async () => {
    const raced = await storage.get(keys.accountKey);
    if (raced) return raced;
    const key = (await acmeCrypto.createPrivateEcdsaKey('P-256')).toString();
    await storage.set(keys.accountKey, key);
    return key;
  });
}

export async function loadAccountUrl(storage: Storage, directoryUrl: string): Promise<string | null> {
  return (await loadAccountRecord(storage, directoryUrl))?.url ?? null;
}

export async function loadAccountRecord(storage: Storage, directoryUrl: string): Promise<StoredAccountUrl | null> {
  const raw = await storage.get(keys.accountUrl);
  if (!raw) return null;
  try {
    const stored = JSON.parse(raw) as StoredAccountUrl;
    return stored.directoryUrl === directoryUrl ? stored : null;
  } catch {
    return null;
  }
}

export async function saveAccountUrl(storage: Storage, directoryUrl: string, url: string): Promise<void> {
  await storage.set(keys.accountUrl, JSON.stringify({ directoryUrl, url, registeredAt: new Date().toISOString() } satisfies StoredAccountUrl));
}
