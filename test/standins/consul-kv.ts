// The Consul stand-in's KV state: entries with CreateIndex/ModifyIndex/
// LockIndex/Flags/Session, lock-delay, and the KV verbs of the transaction
// API (set, cas, lock, unlock, get, get-tree, check-index, check-session,
// check-not-exists, delete, delete-tree, delete-cas), as Consul's KV and
// transaction API docs describe them. The /v1/kv endpoint maps onto the same
// verbs, so both paths behave alike.

export interface KvEntry {
  Key: string;
  /** Base64, or null for an empty value (as Consul returns it). */
  Value: string | null;
  Flags: number;
  CreateIndex: number;
  ModifyIndex: number;
  LockIndex: number;
  Session?: string;
}

export interface KvOp {
  Verb: string;
  Key: string;
  Value?: string | null;
  Flags?: number;
  Index?: number;
  Session?: string;
}

export type Outcome =
  | { ok: true; results: KvEntry[] }
  /** invalid: the request itself is wrong (Consul answers 500/400 rather than false). */
  | { ok: false; what: string; invalid?: boolean };

export interface TxnOutcome {
  results: KvEntry[] | null;
  errors: { OpIndex: number; What: string }[] | null;
}

export class KvStore {
  entries = new Map<string, KvEntry>();
  /** key → time (ms) until which a lock on it may not be acquired. */
  private lockDelays = new Map<string, number>();
  index = 1;

  constructor(private readonly sessionExists: (id: string) => boolean) {}

  /** All operations at one index, or none (the transaction endpoint). */
  transact(ops: KvOp[]): TxnOutcome {
    const working = new Map(this.entries); // entries are replaced, never mutated: a shallow copy is a snapshot
    const index = this.index + 1;
    const results: KvEntry[] = [];
    const errors: { OpIndex: number; What: string }[] = [];
    ops.forEach((op, i) => {
      if (errors.length) return;
      const outcome = this.apply(working, op, index);
      if (outcome.ok) results.push(...outcome.results);
      else errors.push({ OpIndex: i, What: outcome.what });
    });
    if (errors.length) return { results: null, errors };
    this.entries = working;
    this.index = index;
    return { results, errors: null };
  }

  /** One operation on its own (the /v1/kv endpoint). */
  single(op: KvOp): Outcome {
    const working = new Map(this.entries);
    const outcome = this.apply(working, op, this.index + 1);
    if (outcome.ok) {
      this.entries = working;
      this.index++;
    }
    return outcome;
  }

  withPrefix(prefix: string): KvEntry[] {
    return [...this.entries.values()].filter((e) => e.Key.startsWith(prefix)).sort((a, b) => a.Key.localeCompare(b.Key));
  }

  /** A session ended: its locks are released or deleted, and lock-delay starts. */
  invalidateSession(id: string, behavior: 'release' | 'delete', lockDelayMs: number): void {
    const working = new Map(this.entries);
    const index = this.index + 1;
    for (const entry of this.entries.values()) {
      if (entry.Session !== id) continue;
      if (behavior === 'delete') working.delete(entry.Key);
      else working.set(entry.Key, { ...entry, Session: undefined, ModifyIndex: index });
      if (lockDelayMs > 0) this.lockDelays.set(entry.Key, Date.now() + lockDelayMs);
    }
    this.entries = working;
    this.index = index;
  }

  private apply(entries: Map<string, KvEntry>, op: KvOp, index: number): Outcome {
    const key = op.Key;
    const existing = entries.get(key);
    const ok = (...results: KvEntry[]): Outcome => ({ ok: true, results });
    const fail = (what: string): Outcome => ({ ok: false, what });
    const write = (session: string | undefined, lockIncrement: number) => {
      const entry: KvEntry = {
        Key: key, Value: op.Value || null, Flags: op.Flags ?? 0,
        CreateIndex: existing?.CreateIndex ?? index, ModifyIndex: index,
        LockIndex: (existing?.LockIndex ?? 0) + lockIncrement,
        ...(session ? { Session: session } : {}),
      };
      entries.set(key, entry);
      return ok({ ...entry, Value: null }); // writes report no value
    };

    switch (op.Verb) {
      case 'set':
        return write(existing?.Session, 0); // a plain write keeps the lock
      case 'cas':
        if (op.Index === undefined) return { ok: false, what: 'cas requires an Index', invalid: true };
        if (op.Index === 0 ? existing : existing?.ModifyIndex !== op.Index) return fail(`failed to set key "${key}", index is stale`);
        return write(existing?.Session, 0);
      case 'lock': {
        if (!op.Session || !this.sessionExists(op.Session)) return { ok: false, what: `invalid session "${op.Session ?? ''}"`, invalid: true };
        if ((this.lockDelays.get(key) ?? 0) > Date.now()) return fail(`failed to lock key "${key}" due to lock delay`);
        if (existing?.Session && existing.Session !== op.Session) return fail(`failed to lock key "${key}", lock is already held`);
        return write(op.Session, existing?.Session === op.Session ? 0 : 1);
      }
      case 'unlock':
        if (!existing || existing.Session !== op.Session) return fail(`failed to unlock key "${key}", lock isn't held, or is held by another session`);
        return write(undefined, 0);
      case 'get':
        return existing ? ok({ ...existing }) : fail(`key "${key}" doesn't exist`);
      case 'get-tree':
        return ok(...[...entries.values()].filter((e) => e.Key.startsWith(key)));
      case 'check-index':
        if (!existing) return fail(`key "${key}" doesn't exist`);
        return existing.ModifyIndex === op.Index ? ok() : fail(`current modify index ${existing.ModifyIndex} != ${op.Index}`);
      case 'check-session':
        return existing?.Session && existing.Session === op.Session ? ok() : fail(`failed to check session: key "${key}" is not locked by session "${op.Session}"`);
      case 'check-not-exists':
        return existing ? fail(`key "${key}" exists`) : ok();
      case 'delete':
        entries.delete(key);
        return ok();
      case 'delete-tree':
        for (const k of [...entries.keys()]) if (k.startsWith(key)) entries.delete(k);
        return ok();
      case 'delete-cas':
        if (!existing || existing.ModifyIndex !== op.Index) return fail(`failed to delete key "${key}", index is stale`);
        entries.delete(key);
        return ok();
      default:
        return { ok: false, what: `unknown KV verb "${op.Verb}"`, invalid: true };
    }
  }
}
