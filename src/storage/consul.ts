/**
 * Consul KV storage. State lives at <kv_path>/state/<key>. Consul KV has no
 * per-key TTL, so a TTL is kept in the entry's Flags as its expiry time (ms
 * since the epoch, 0 = none) and an expired entry reads as absent.
 *
 * Certificates live at <kv_path>/certs/<name>/{fullchain,privkey,cert,chain}.pem,
 * written in one KV transaction (PUT /v1/txn), so consul-template never
 * renders a new fullchain beside an old key.
 *
 * add() is the lock primitive: one transaction creates the key only if it is
 * absent (cas, index 0) and locks it with this instance's session (see
 * consul-session.ts), so Consul deletes the lock if the instance dies.
 *
 * The token needs key_prefix "<kv_path>/" write and session_prefix "" write.
 */
import { hostname } from 'node:os';
import Consul from 'consul';
import type { Config } from '../config/schema.js';
import { nameSegment, namesOfSegments } from './name-segment.js';
import { fromFields, pemEntries, RSA_PEM_FIELDS } from './certificate-fields.js';
import { ConsulSession } from './consul-session.js';
import { StorageError } from './errors.js';
import { assertValidKey } from './keys.js';
import { assertValidPrefix } from './list-prefix.js';
import { remoteCall } from './remote-call.js';
import type { Storage } from './storage.js';

export type ConsulStorageOptions = Config['storage_config']['consul'] & {
  /** TTL of this instance's session: how long a dead instance's locks outlive it. Default 15. */
  sessionTtlSeconds?: number;
};

interface Entry {
  Key: string;
  Value: string | null;
  Flags: number;
  ModifyIndex: number;
  Session?: string;
}

type TxnOp = { KV: { Verb: string; Key: string; Value?: string; Flags?: number; Index?: number; Session?: string } };

const ADD_ATTEMPTS = 3;

export function createConsulStorage(opts: ConsulStorageOptions): Storage {
  const where = `consul ${opts.https ? 'https' : 'http'}://${opts.host}:${opts.port}`;
  const base = opts.kv_path.replace(/^\/+|\/+$/g, '');
  const stateBase = base ? `${base}/state/` : 'state/';
  const certBase = base ? `${base}/certs/` : 'certs/';
  // timeout and token go in `defaults`, which the client applies to every request.
  const consul = new Consul({
    host: opts.host,
    port: opts.port,
    secure: opts.https,
    defaults: { timeout: opts.timeout, ...(opts.token ? { token: opts.token } : {}) },
  } as ConstructorParameters<typeof Consul>[0]);
  const call = <T>(op: string, work: () => Promise<T>) => remoteCall(where, op, opts.timeout, work);
  const session = new ConsulSession({
    consul, call, ttlSeconds: opts.sessionTtlSeconds ?? 15, name: `acmed ${hostname()} pid ${process.pid}`,
  });

  const stateKey = (key: string) => {
    assertValidKey(key);
    return stateBase + key;
  };
  const certDir = (name: string) => `${certBase}${nameSegment(name)}/`;

  const readEntry = (k: string, op: string) => call(op, async () => ((await consul.kv.get({ key: k })) as Entry | undefined) ?? null);
  const expired = (entry: Entry) => entry.Flags !== 0 && entry.Flags <= Date.now();
  const expiryFlags = (ttlMs?: number) => (ttlMs ? Date.now() + ttlMs : 0);

  /** Runs a transaction; null when it committed, else Consul's reasons for rolling back. */
  const txn = (op: string, ops: TxnOp[]) =>
    call(op, async () => {
      try {
        await consul.transaction.create(ops as never);
        return null;
      } catch (err) {
        const failure = err as { statusCode?: number; response?: { body?: { Errors?: { What: string }[] } } };
        if (failure.statusCode !== 409) throw err;
        return (failure.response?.body?.Errors ?? []).map((e) => e.What);
      }
    });

  return {
    kind: 'consul',
    shared: true,

    async get(key) {
      const entry = await readEntry(stateKey(key), 'get');
      return entry && !expired(entry) ? (entry.Value ?? '') : null;
    },

    async set(key, value, setOpts) {
      const k = stateKey(key);
      await call('set', () => consul.kv.set({ key: k, value, flags: expiryFlags(setOpts?.ttlMs) }));
    },

    async add(key, value, ttlMs) {
      const k = stateKey(key);
      let reasons: string[] = [];
      for (let attempt = 0; attempt < ADD_ATTEMPTS; attempt++) {
        const entry = await readEntry(k, 'add');
        if (entry && !expired(entry)) return false;
        const sessionId = await session.id();
        const write = { Key: k, Value: Buffer.from(value).toString('base64'), Flags: expiryFlags(ttlMs) };
        const ops: TxnOp[] = [
          // An expired entry may still be locked by a dead instance's session: remove it first.
          ...(entry ? [{ KV: { Verb: 'delete-cas', Key: k, Index: entry.ModifyIndex } }] : []),
          { KV: { Verb: 'cas', ...write, Index: 0 } },
          { KV: { Verb: 'lock', ...write, Session: sessionId } },
        ];
        const rollback = await txn('add', ops);
        if (!rollback) return true;
        reasons = rollback;
        // Either another caller won (the next read sees it live) or Consul
        // no longer knows our session; a new one is made on the next try.
        const after = await readEntry(k, 'add');
        if (after && !expired(after)) return false;
        session.forget(sessionId);
      }
      throw new StorageError(`${where}: add ${key} was refused: ${reasons.join('; ') || 'transaction rolled back'}`);
    },

    async delete(key) {
      const k = stateKey(key);
      await call('delete', () => consul.kv.del({ key: k }));
    },

    async compareAndDelete(key, value) {
      const k = stateKey(key);
      const entry = await readEntry(k, 'compareAndDelete');
      if (!entry || expired(entry) || (entry.Value ?? '') !== value) return false;
      return call('compareAndDelete', () => consul.kv.del({ key: k, cas: entry.ModifyIndex }));
    },

    async compareAndExtend(key, value, ttlMs) {
      const k = stateKey(key);
      const entry = await readEntry(k, 'compareAndExtend');
      if (!entry || expired(entry) || (entry.Value ?? '') !== value) return false;
      // A set without ?acquire keeps the entry's lock session (Consul KV docs).
      return call('compareAndExtend', () =>
        consul.kv.set({ key: k, value, flags: expiryFlags(ttlMs), cas: entry.ModifyIndex }));
    },

    async list(prefix) {
      assertValidPrefix(prefix);
      const found = await call('list', () => consul.kv.get({ key: stateBase + prefix, recurse: true }));
      const entries = (Array.isArray(found) ? found : found ? [found] : []) as Entry[];
      return entries.filter((entry) => !expired(entry)).map((entry) => entry.Key.slice(stateBase.length));
    },

    async scan(prefix, onBatch) {
      assertValidPrefix(prefix);
      // One recursive read returns every value under the prefix.
      const found = await call('scan', () => consul.kv.get({ key: stateBase + prefix, recurse: true }));
      const entries = (Array.isArray(found) ? found : found ? [found] : []) as Entry[];
      onBatch(entries.filter((entry) => !expired(entry)).map((entry) => [entry.Key.slice(stateBase.length), entry.Value ?? '']));
    },

    async putCertificate(bundle) {
      const dir = certDir(bundle.name);
      const ops: TxnOp[] = pemEntries(bundle).map(([file, pem]) => ({
        KV: { Verb: 'set', Key: `${dir}${file}.pem`, Value: Buffer.from(pem).toString('base64') },
      }));
      // Same transaction: a certificate without an RSA variant leaves no earlier one behind.
      if (!bundle.rsa) for (const file of RSA_PEM_FIELDS) ops.push({ KV: { Verb: 'delete', Key: `${dir}${file}.pem` } });
      const rollback = await txn('putCertificate', ops);
      if (rollback) throw new StorageError(`${where}: putCertificate ${bundle.name} rolled back: ${rollback.join('; ')}`);
    },

    async deleteCertificate(name) {
      const dir = certDir(name);
      await call('deleteCertificate', () => consul.kv.del({ key: dir, recurse: true }));
    },

    async getCertificatePem(name) {
      const entry = await readEntry(`${certDir(name)}cert.pem`, 'getCertificatePem');
      return entry ? entry.Value ?? '' : null;
    },

    async getCertificate(name) {
      const dir = certDir(name);
      // One recursive read is served from one snapshot: the files belong together.
      const found = await call('getCertificate', () => consul.kv.get({ key: dir, recurse: true }));
      const entries = (Array.isArray(found) ? found : found ? [found] : []) as Entry[];
      const fields: Record<string, string> = {};
      for (const entry of entries) fields[entry.Key.slice(dir.length).replace(/\.pem$/, '')] = entry.Value ?? '';
      return fromFields(name, fields);
    },

    location(name) {
      return `consul ${opts.host}:${opts.port} KV ${certDir(name)}{fullchain,privkey}.pem`;
    },

    async listCertificates() {
      const keys = await call('listCertificates', async () => {
        try {
          return await consul.kv.keys({ key: certBase, separator: '/' });
        } catch (err) {
          if ((err as { statusCode?: number }).statusCode === 404) return [];
          throw err;
        }
      });
      return namesOfSegments(keys.filter((k) => k.endsWith('/')).map((k) => k.slice(certBase.length, -1)));
    },

    async close() {
      await session.destroy().catch(() => {});
      consul.destroy();
    },
  };
}
