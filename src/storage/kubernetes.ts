/**
 * Kubernetes storage: acmed's state in the API server of the cluster it runs
 * in, so several replicas share the work as they would through Redis.
 *
 *   state key    Secret  <prefix>-state-<hash>   data.value; annotation acmed.io/key
 *   lock key     Lease   <prefix>-lock-<hash>    spec.holderIdentity = the owner token
 *   certificate  Secret  <prefix>-cert.<name>    kubernetes.io/tls (tls.crt, tls.key)
 *
 * all in acmed's namespace and labelled acmed.io/store=<prefix>. State and
 * lock names are hashes because keys hold characters object names may not
 * ("_", upper case); the key itself is an annotation. A TTL is the
 * annotation acmed.io/expires-at (ms since the epoch): Lease durations are
 * whole seconds and tests need less; an expired entry reads as absent.
 *
 * Every conditional write (add over an expired entry, compareAndDelete,
 * compareAndExtend) names the resourceVersion it read: the API server
 * refuses it with 409 Conflict if anyone wrote in between, which is what
 * makes a lock exclusive. A create of an existing name is 409 AlreadyExists.
 *
 * RBAC: secrets and leases get/list/create/update/delete in acmed's namespace.
 */
import { createHash } from 'node:crypto';
import { CoordinationV1Api, CoreV1Api, type V1Lease, type V1Secret, V1MicroTime } from '@kubernetes/client-node';
import type { Config } from '../config/schema.js';
import { describeApiError, loadKubeConfig, ownNamespace, statusOf } from '../kubernetes/client.js';
import { bundleFromSecret, storedCertificateSecret } from '../kubernetes/tls-secret.js';
import { normalizeHostname } from '../hostname.js';
import { nameSegment } from './name-segment.js';
import { StorageError } from './errors.js';
import { assertValidKey } from './keys.js';
import { assertValidPrefix } from './list-prefix.js';
import { remoteCall } from './remote-call.js';
import type { Storage } from './storage.js';

export type KubernetesStorageOptions = Config['storage_config']['kubernetes'] & { kubeconfig: string | null };

const LABEL_STORE = 'acmed.io/store';
const LABEL_KIND = 'acmed.io/kind';
const KEY = 'acmed.io/key';
const EXPIRES = 'acmed.io/expires-at';
const NAME = 'acmed.io/name';
const SET_ATTEMPTS = 5;

interface Entry {
  key: string;
  value: string;
  expiresAt: number | null;
  resourceVersion: string;
}

type Kind = 'state' | 'lock';

export function createKubernetesStorage(opts: KubernetesStorageOptions): Storage {
  const kc = loadKubeConfig(opts.kubeconfig);
  const namespace = opts.namespace ?? ownNamespace(kc);
  const core = kc.makeApiClient(CoreV1Api);
  const coordination = kc.makeApiClient(CoordinationV1Api);
  const where = `kubernetes ${kc.getCurrentCluster()!.server} namespace ${namespace}`;
  const prefix = opts.prefix;

  /** One API call within the timeout; 404 and 409 come back as values, anything else is a StorageError. */
  const call = <T>(op: string, work: () => Promise<T>, expected: number[] = []) =>
    remoteCall(where, op, opts.timeout, async (): Promise<T | number> => {
      try {
        return await work();
      } catch (err) {
        const code = statusOf(err);
        if (code !== undefined && expected.includes(code)) return code;
        throw new StorageError(`${where}: ${op} failed: ${describeApiError(err)}`);
      }
    });

  const kindOf = (key: string): Kind => (key.startsWith('locks/') ? 'lock' : 'state');
  const objectName = (kind: string, key: string) => `${prefix}-${kind}-${createHash('sha256').update(key).digest('hex').slice(0, 32)}`;
  const labels = (kind: string) => ({ [LABEL_STORE]: prefix, [LABEL_KIND]: kind });
  const live = (entry: Entry | null): entry is Entry => entry !== null && (entry.expiresAt === null || entry.expiresAt > Date.now());
  const annotations = (key: string, expiresAt: number | null) => ({ [KEY]: key, ...(expiresAt !== null ? { [EXPIRES]: String(expiresAt) } : {}) });

  const entryOf = (kind: Kind, object: V1Secret | V1Lease): Entry | null => {
    const meta = object.metadata ?? {};
    const key = meta.annotations?.[KEY];
    if (!key) return null;
    const expires = meta.annotations?.[EXPIRES];
    const value = kind === 'lock'
      ? (object as V1Lease).spec?.holderIdentity ?? ''
      : Buffer.from((object as V1Secret).data?.value ?? '', 'base64').toString();
    return { key, value, expiresAt: expires ? Number(expires) : null, resourceVersion: meta.resourceVersion ?? '' };
  };

  const body = (kind: Kind, key: string, value: string, expiresAt: number | null, resourceVersion?: string): V1Secret | V1Lease => {
    const metadata = { name: objectName(kind, key), namespace, labels: labels(kind), annotations: annotations(key, expiresAt), ...(resourceVersion ? { resourceVersion } : {}) };
    if (kind === 'state') return { apiVersion: 'v1', kind: 'Secret', type: 'Opaque', metadata, data: { value: Buffer.from(value).toString('base64') } };
    const now = Date.now();
    return {
      apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata,
      spec: {
        holderIdentity: value, renewTime: new V1MicroTime(now),
        // Whole seconds for the humans and tools reading the Lease; acmed goes by acmed.io/expires-at.
        ...(expiresAt !== null ? { leaseDurationSeconds: Math.max(1, Math.ceil((expiresAt - now) / 1000)) } : {}),
      },
    };
  };

  const read = async (key: string, op: string): Promise<Entry | null> => {
    const kind = kindOf(key);
    const name = objectName(kind, key);
    const found = await call(op, () => (kind === 'lock'
      ? coordination.readNamespacedLease({ name, namespace })
      : core.readNamespacedSecret({ name, namespace })), [404]);
    return typeof found === 'number' ? null : entryOf(kind, found);
  };

  /** True when created; false when the name exists (409 AlreadyExists). */
  const create = async (key: string, value: string, expiresAt: number | null, op: string): Promise<boolean> => {
    const kind = kindOf(key);
    const object = body(kind, key, value, expiresAt);
    const done = await call(op, () => (kind === 'lock'
      ? coordination.createNamespacedLease({ namespace, body: object as V1Lease })
      : core.createNamespacedSecret({ namespace, body: object as V1Secret })), [409]);
    return typeof done !== 'number';
  };

  /** True when replaced; false when someone wrote since resourceVersion (409) or it is gone (404). */
  const replace = async (key: string, value: string, expiresAt: number | null, resourceVersion: string, op: string): Promise<boolean> => {
    const kind = kindOf(key);
    const name = objectName(kind, key);
    const object = body(kind, key, value, expiresAt, resourceVersion);
    const done = await call(op, () => (kind === 'lock'
      ? coordination.replaceNamespacedLease({ name, namespace, body: object as V1Lease })
      : core.replaceNamespacedSecret({ name, namespace, body: object as V1Secret })), [404, 409]);
    return typeof done !== 'number';
  };

  /** True when deleted; with a resourceVersion, only while the object is still that version. */
  const remove = async (key: string, resourceVersion: string | null, op: string): Promise<boolean> => {
    const kind = kindOf(key);
    const name = objectName(kind, key);
    const options = resourceVersion ? { body: { preconditions: { resourceVersion } } } : {};
    const done = await call(op, () => (kind === 'lock'
      ? coordination.deleteNamespacedLease({ name, namespace, ...options })
      : core.deleteNamespacedSecret({ name, namespace, ...options })), [404, 409]);
    return typeof done !== 'number';
  };

  const entries = async (prefixOfKeys: string, op: string): Promise<Entry[]> => {
    assertValidPrefix(prefixOfKeys);
    const labelSelector = (kind: string) => `${LABEL_STORE}=${prefix},${LABEL_KIND}=${kind}`;
    const wantLocks = prefixOfKeys.startsWith('locks/') || 'locks/'.startsWith(prefixOfKeys);
    const wantState = !prefixOfKeys.startsWith('locks/');
    const [secrets, leases] = await Promise.all([
      wantState ? call(op, () => core.listNamespacedSecret({ namespace, labelSelector: labelSelector('state') })) : null,
      wantLocks ? call(op, () => coordination.listNamespacedLease({ namespace, labelSelector: labelSelector('lock') })) : null,
    ]);
    const found = [
      ...(secrets && typeof secrets !== 'number' ? secrets.items.map((s) => entryOf('state', s)) : []),
      ...(leases && typeof leases !== 'number' ? leases.items.map((l) => entryOf('lock', l)) : []),
    ];
    return found.filter(live).filter((e) => e.key.startsWith(prefixOfKeys));
  };

  /** Readable where the name's segment is a valid object name (it is, but for a wildcard's "*" and an IPv6 address's "_"). */
  const certName = (name: string) => {
    const segment = nameSegment(name);
    const readable = `${prefix}-cert.${segment}`;
    return readable.length <= 253 && /^[a-z0-9.-]+$/.test(segment) ? readable : objectName('cert', segment);
  };

  return {
    kind: 'kubernetes',
    shared: true,

    async get(key) {
      assertValidKey(key);
      const entry = await read(key, 'get');
      return live(entry) ? entry.value : null;
    },

    async set(key, value, setOpts) {
      assertValidKey(key);
      const expiresAt = setOpts?.ttlMs ? Date.now() + setOpts.ttlMs : null;
      for (let attempt = 0; attempt < SET_ATTEMPTS; attempt++) {
        const entry = await read(key, 'set');
        const done = entry
          ? await replace(key, value, expiresAt, entry.resourceVersion, 'set')
          : await create(key, value, expiresAt, 'set');
        if (done) return;
      }
      throw new StorageError(`${where}: set ${key} lost ${SET_ATTEMPTS} races with other writers`);
    },

    async add(key, value, ttlMs) {
      assertValidKey(key);
      const entry = await read(key, 'add');
      if (entry && (entry.expiresAt === null || entry.expiresAt > Date.now())) return false;
      // An expired entry is taken over only if nobody wrote it since we read it.
      if (entry) return replace(key, value, Date.now() + ttlMs, entry.resourceVersion, 'add');
      return create(key, value, Date.now() + ttlMs, 'add');
    },

    async delete(key) {
      assertValidKey(key);
      await remove(key, null, 'delete');
    },

    async compareAndDelete(key, value) {
      assertValidKey(key);
      const entry = await read(key, 'compareAndDelete');
      if (!live(entry) || entry.value !== value) return false;
      return remove(key, entry.resourceVersion, 'compareAndDelete');
    },

    async compareAndExtend(key, value, ttlMs) {
      assertValidKey(key);
      const entry = await read(key, 'compareAndExtend');
      if (!live(entry) || entry.value !== value) return false;
      return replace(key, value, Date.now() + ttlMs, entry.resourceVersion, 'compareAndExtend');
    },

    async list(prefixOfKeys) {
      return (await entries(prefixOfKeys, 'list')).map((e) => e.key);
    },

    async scan(prefixOfKeys, onBatch) {
      onBatch((await entries(prefixOfKeys, 'scan')).map((e) => [e.key, e.value]));
    },

    async putCertificate(bundle) {
      const name = certName(bundle.name);
      const meta = {
        name, namespace, labels: labels('certificate'),
        annotations: { [NAME]: normalizeHostname(bundle.name), 'acmed.io/names': bundle.names.join(','), 'acmed.io/not-after': bundle.notAfter },
      };
      for (let attempt = 0; attempt < SET_ATTEMPTS; attempt++) {
        const current: V1Secret | number = await call('putCertificate', () => core.readNamespacedSecret({ name, namespace }), [404]);
        const done = typeof current === 'number'
          ? await call('putCertificate', () => core.createNamespacedSecret({ namespace, body: storedCertificateSecret(meta, bundle) }), [409])
          : await call('putCertificate', () => core.replaceNamespacedSecret({
            name, namespace, body: storedCertificateSecret(meta, bundle, current.metadata?.resourceVersion),
          }), [404, 409]);
        if (typeof done !== 'number') return;
      }
      throw new StorageError(`${where}: putCertificate ${bundle.name} lost ${SET_ATTEMPTS} races with other writers`);
    },

    async getCertificate(name) {
      const secretName = certName(name);
      const found = await call('getCertificate', () => core.readNamespacedSecret({ name: secretName, namespace }), [404]);
      return typeof found === 'number' ? null : bundleFromSecret(name, found);
    },

    async deleteCertificate(name) {
      const secretName = certName(name);
      await call('deleteCertificate', () => core.deleteNamespacedSecret({ name: secretName, namespace }), [404]);
    },

    location(name) {
      return `kubernetes Secret ${namespace}/${certName(name)}`;
    },

    async listCertificates() {
      const found = await call('listCertificates', () => core.listNamespacedSecret({
        namespace, labelSelector: `${LABEL_STORE}=${prefix},${LABEL_KIND}=certificate`,
      }));
      if (typeof found === 'number') return [];
      return found.items.map((s) => s.metadata?.annotations?.[NAME]).filter((n): n is string => !!n);
    },

    async close() {},
  };
}
