/**
 * The TXT records this instance has placed and not yet removed, kept in
 * storage: written before the DNS update goes out and deleted after the
 * record is removed, so records a crash (or a DNS server that was down at
 * cleanup) left behind are removed at the next start. Each entry carries an
 * owner token (host/pid), so in a cluster an instance only cleans up what
 * its own earlier run placed, never a live peer's records.
 */
import { createHash } from 'node:crypto';
import { keys } from '../storage/keys.js';
import { leftByEarlierRun, newOwnerToken } from '../storage/lock-owner.js';
import type { Storage } from '../storage/storage.js';
import type { TxtRecord } from './dns-provider.js';

export interface LedgerEntry extends TxtRecord {
  provider: string;
  owner: string;
  placedAt: string;
}

/** Entries outlive any order and expire by themselves, should no run come back to clean up. */
const ENTRY_TTL_MS = 30 * 24 * 3600_000;

function entryId(record: TxtRecord): string {
  return createHash('sha256').update(`${record.fqdn}\n${record.value}`).digest('hex').slice(0, 40);
}

export class DnsRecordLedger {
  constructor(private readonly storage: Storage, private readonly owner = newOwnerToken()) {}

  async add(record: TxtRecord, provider: string): Promise<void> {
    const entry: LedgerEntry = { ...record, provider, owner: this.owner, placedAt: new Date().toISOString() };
    await this.storage.set(keys.dnsRecord(entryId(record)), JSON.stringify(entry), { ttlMs: ENTRY_TTL_MS });
  }

  async remove(record: TxtRecord): Promise<void> {
    await this.storage.delete(keys.dnsRecord(entryId(record)));
  }

  /** Entries an earlier run of this instance left (it crashed, or could not remove them). */
  async leftovers(): Promise<LedgerEntry[]> {
    const found: LedgerEntry[] = [];
    for (const key of await this.storage.list(keys.dnsRecordPrefix)) {
      const raw = await this.storage.get(key);
      if (raw === null) continue;
      let entry: LedgerEntry;
      try {
        entry = JSON.parse(raw) as LedgerEntry;
      } catch {
        continue;
      }
      if (typeof entry.owner === 'string' && leftByEarlierRun(entry.owner)) found.push(entry);
    }
    return found;
  }
}
