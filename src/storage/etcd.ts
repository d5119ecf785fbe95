/**
 * etcd v3 storage (the etcd3 gRPC client). State lives at <prefix>state/<key>;
 * each certificate at <prefix>certs/<name>/{fullchain,privkey,cert,chain}.pem,
 * written in one transaction, so a reader (confd, a sidecar's watch) never
 * sees a new fullchain beside an old key.
 *
 * TTLs: an etcd lease cannot be shorter than the cluster's minimum (about
 * 1.5 s with default timings) and counts whole seconds, while a lock or a
 * challenge token expires to the millisecond. So every state value carries
 * its own expiry ("<ms since the epoch, 0 = never>;<value>"), and a key with
 * a TTL is also attached to a lease a little longer than that, so etcd itself
 * deletes it once nobody extends it: a lock dies with its holder's lease.
 *
 * add() is one transaction that creates the key only if it is absent (or
 * replaces an expired one at the revision that was read); compareAndExtend()
 * moves the key to a fresh lease in one transaction while its value is still
 * the holder's token, which is how the lock heartbeat keeps the lease alive.
 */
import { readFileSync } from 'node:fs';
import { circuitBreaker, ConsecutiveBreaker, handleWhen, retry } from 'cockatiel';
import { Etcd3, isRecoverableError, type IKeyValue, type IOptions, type IRequestOp } from 'etcd3';
import type { Config } from '../config/schema.js';
import { nameSegment, namesOfSegments } from './name-segment.js';
import { fromFields, pemEntries, RSA_PEM_FIELDS } from './certificate-fields.js';
import { StorageError } from './errors.js';
import { assertValidKey } from './keys.js';
import { assertValidPrefix } from './list-prefix.js';
import { remoteCall } from './remote-call.js';
import type { Storage } from './storage.js';

export type EtcdStorageOptions = Config['storage_config']['etcd'];

/** Keys per range request: a page of a list or scan. */
const PAGE = 1000;
const ADD_ATTEMPTS = 3;

interface Decoded {
  value: string;
  expiresAt: number;
}

const encode = (value: string, expiresAt: number) => Buffer.from(`${expiresAt};${value}`);

function decode(kv: IKeyValue): Decoded {
  const text = kv.value.toString();
  const cut = text.indexOf(';');
  return { expiresAt: Number(text.slice(0, cut)), value: text.slice(cut + 1) };
}

/** The first key after every key that starts with prefix (etcd's range_end for a prefix). */
function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // all keys
}

/** Whole seconds, rounded up, plus one: etcd must not delete the key before its own expiry has passed. */
const leaseSeconds = (ttlMs: number) => Math.ceil(ttlMs / 1000) + 1;

export function createEtcdStorage(opts: EtcdStorageOptions): Storage {
  const where = `etcd ${opts.endpoints.join(',')}`;
  const base = opts.prefix && !opts.prefix.endsWith('/') ? `${opts.prefix}/` : opts.prefix;
  const statePrefix = `${base}state/`;
  const certPrefix = `${base}certs/`;
  const client = new Etcd3(clientOptions(opts));
  const call = <T>(op: string, work: () => Promise<T>) => remoteCall(where, op, opts.timeout, work);

  const stateKey = (key: string) => {
    assertValidKey(key);
    return Buffer.from(statePrefix + key);
  };
  const certDir = (name: string) => `${certPrefix}${nameSegment(name)}/`;
  const live = (kv: IKeyValue | undefined, now = Date.now()) => {
    if (!kv) return null;
    const decoded = decode(kv);
    return decoded.expiresAt === 0 || decoded.expiresAt > now ? decoded : null;
  };

  const readKv = async (key: Buffer, op: string) => (await call(op, () => client.kv.range({ key }))).kvs[0];

  /** Every key-value under prefix, one page at a time, all pages read at the first page's revision. */
  const pages = async (prefix: string, op: string, keysOnly: boolean, onPage: (kvs: IKeyValue[]) => void) => {
    const end = prefixEnd(Buffer.from(prefix));
    let start = Buffer.from(prefix);
    let revision: string | undefined;
    for (;;) {
      const res = await call(op, () => client.kv.range({ key: start, range_end: end, limit: PAGE, keys_only: keysOnly, revision }));
      revision ??= res.header.revision;
      onPage(res.kvs);
      if (!res.more || res.kvs.length === 0) return;
      start = Buffer.concat([res.kvs[res.kvs.length - 1].key, Buffer.from([0])]);
    }
  };

  const grantLease = async (ttlMs: number, op: string) =>
    (await call(op, () => client.leaseClient.leaseGrant({ TTL: leaseSeconds(ttlMs), ID: 0 }))).ID;

  /** A lease nobody's key uses any more: freed now rather than when its TTL runs out. Best effort. */
  const dropLease = (id: string | undefined) => {
    if (!id || id === '0') return;
    void call('lease revoke', () => client.leaseClient.leaseRevoke({ ID: id })).catch(() => {});
  };

  const put = (key: Buffer, value: string, ttlMs: number | undefined, lease: string | undefined): IRequestOp => ({
    request_put: { key, value: encode(value, ttlMs ? Date.now() + ttlMs : 0), ...(lease ? { lease } : {}) },
  });

  /** Runs a transaction that applies ops only while key is still at the revision read (0: absent). */
  const commitIfUnchanged = async (op: string, key: Buffer, modRevision: string, ops: IRequestOp[]) => {
    const compare = modRevision === '0'
      ? { key, target: 'Create' as const, result: 'Equal' as const, create_revision: 0 }
      : { key, target: 'Mod' as const, result: 'Equal' as const, mod_revision: modRevision };
    return (await call(op, () => client.kv.txn({ compare: [compare], success: ops }))).succeeded;
  };

  return {
    kind: 'etcd',
    shared: true,

    async get(key) {
      const k = stateKey(key);
      return live(await readKv(k, 'get'))?.value ?? null;
    },

    async set(key, value, setOpts) {
      const k = stateKey(key);
      const ttlMs = setOpts?.ttlMs;
      const lease = ttlMs ? await grantLease(ttlMs, 'set') : undefined;
      const res = await call('set', () => client.kv.put({ key: k, ...put(k, value, ttlMs, lease).request_put, prev_kv: true }));
      if (res.prev_kv?.lease !== lease) dropLease(res.prev_kv?.lease);
    },

    async add(key, value, ttlMs) {
      const k = stateKey(key);
      for (let attempt = 0; attempt < ADD_ATTEMPTS; attempt++) {
        const seen = await readKv(k, 'add');
        const current = live(seen);
        if (current) return current.value === value; // a retried add that had landed is ours
        const lease = await grantLease(ttlMs, 'add');
        if (await commitIfUnchanged('add', k, seen?.mod_revision ?? '0', [put(k, value, ttlMs, lease)])) {
          dropLease(seen?.lease);
          return true;
        }
        dropLease(lease); // someone else wrote the key in between; see who
      }
      const current = live(await readKv(k, 'add'));
      if (current) return current.value === value;
      throw new StorageError(`${where}: add ${key} kept losing races with writers of an expired key`);
    },

    async delete(key) {
      const k = stateKey(key);
      const res = await call('delete', () => client.kv.deleteRange({ key: k, prev_kv: true }));
      dropLease(res.prev_kvs[0]?.lease);
    },

    async compareAndDelete(key, value) {
      const k = stateKey(key);
      const seen = await readKv(k, 'compareAndDelete');
      if (live(seen)?.value !== value) return false;
      const deleted = await commitIfUnchanged('compareAndDelete', k, seen!.mod_revision, [{ request_delete_range: { key: k } }]);
      if (deleted) dropLease(seen!.lease);
      return deleted;
    },

    async compareAndExtend(key, value, ttlMs) {
      const k = stateKey(key);
      const seen = await readKv(k, 'compareAndExtend');
      if (live(seen)?.value !== value) return false;
      const lease = await grantLease(ttlMs, 'compareAndExtend');
      const extended = await commitIfUnchanged('compareAndExtend', k, seen!.mod_revision, [put(k, value, ttlMs, lease)]);
      dropLease(extended ? seen!.lease : lease);
      return extended;
    },

    async list(prefix) {
      assertValidPrefix(prefix);
      const found: string[] = [];
      const now = Date.now();
      // Values are read too: an expired entry etcd has not deleted yet must not be listed.
      await pages(statePrefix + prefix, 'list', false, (kvs) => {
        for (const kv of kvs) if (live(kv, now)) found.push(kv.key.toString().slice(statePrefix.length));
      });
      return found;
    },

    async scan(prefix, onBatch) {
      assertValidPrefix(prefix);
      const now = Date.now();
      await pages(statePrefix + prefix, 'scan', false, (kvs) => {
        const batch: [string, string][] = [];
        for (const kv of kvs) {
          const current = live(kv, now);
          if (current) batch.push([kv.key.toString().slice(statePrefix.length), current.value]);
        }
        onBatch(batch);
      });
    },

    async putCertificate(bundle) {
      const dir = certDir(bundle.name);
      const ops: IRequestOp[] = pemEntries(bundle).map(([file, pem]) => ({ request_put: { key: Buffer.from(`${dir}${file}.pem`), value: Buffer.from(pem) } }));
      // Same transaction: a certificate without an RSA variant leaves no earlier one behind.
      if (!bundle.rsa) for (const file of RSA_PEM_FIELDS) ops.push({ request_delete_range: { key: Buffer.from(`${dir}${file}.pem`) } });
      const res = await call('putCertificate', () => client.kv.txn({ compare: [], success: ops }));
      if (!res.succeeded) throw new StorageError(`${where}: putCertificate ${bundle.name} was not applied`);
    },

    async deleteCertificate(name) {
      const dir = Buffer.from(certDir(name));
      await call('deleteCertificate', () => client.kv.deleteRange({ key: dir, range_end: prefixEnd(dir) }));
    },

    async getCertificatePem(name) {
      const kv = await readKv(Buffer.from(`${certDir(name)}cert.pem`), 'getCertificatePem');
      return kv ? kv.value.toString() : null;
    },

    async getCertificate(name) {
      const dir = certDir(name);
      const key = Buffer.from(dir);
      // One range is read at one revision: the files belong together.
      const res = await call('getCertificate', () => client.kv.range({ key, range_end: prefixEnd(key) }));
      const fields: Record<string, string> = {};
      for (const kv of res.kvs) fields[kv.key.toString().slice(dir.length).replace(/\.pem$/, '')] = kv.value.toString();
      return fromFields(name, fields);
    },

    location(name) {
      return `etcd ${opts.endpoints[0]}, keys ${certDir(name)}{fullchain,privkey}.pem`;
    },

    async listCertificates() {
      const names = new Set<string>();
      await pages(certPrefix, 'listCertificates', true, (kvs) => {
        for (const kv of kvs) names.add(kv.key.toString().slice(certPrefix.length).split('/')[0]);
      });
      return namesOfSegments(names);
    },

    async close() {
      client.close();
    },
  };
}

function clientOptions(opts: EtcdStorageOptions): IOptions {
  const tls = opts.tls;
  return {
    hosts: opts.endpoints,
    dialTimeout: opts.timeout,
    ...(opts.username && opts.password !== null ? { auth: { username: opts.username, password: opts.password } } : {}),
    ...(tls.ca || tls.cert
      ? {
          credentials: {
            rootCertificate: tls.ca ? readFileSync(tls.ca) : (undefined as unknown as Buffer), // undefined: Node's roots
            ...(tls.cert && tls.key ? { certChain: readFileSync(tls.cert), privateKey: readFileSync(tls.key) } : {}),
          },
        }
      : {}),
    // Each unary call ends by its deadline; watches (unused here) would be streams.
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + opts.timeout }),
    faultHandling: {
      // The library's default breaker waits 5 s before it tries a failed member again;
      // a restarted member should be used as soon as it answers.
      host: () => circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter: 500, breaker: new ConsecutiveBreaker(3) }),
      // One retry, on another member where there are several.
      global: retry(handleWhen(isRecoverableError), { maxAttempts: 1 }),
    },
  };
}
