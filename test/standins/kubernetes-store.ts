// The object store behind the Kubernetes API stand-in: what etcd and the
// API server's registry do for the resources acmed touches. One
// resourceVersion counter for every object (like etcd's revision), writes
// that carry a resourceVersion are checked against it (409 Conflict), and a
// bounded history of watch events that a watch resumes from; a watch from a
// resourceVersion older than the history gets 410 Gone ("too old resource
// version"), as after etcd compaction.

import { randomUUID } from 'node:crypto';

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name?: string;
    namespace?: string;
    resourceVersion?: string;
    uid?: string;
    creationTimestamp?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

export interface ResourceType {
  /** "" for the core group. */
  group: string;
  version: string;
  /** Plural, lower case: "ingresses". */
  resource: string;
  kind: string;
  namespaced: boolean;
}

export type WatchType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface WatchEvent {
  rv: number;
  type: WatchType;
  resource: string;
  object: KubeObject;
}

/** A failure the API server answers with a Status object. */
export class ApiFailure extends Error {
  constructor(readonly code: number, readonly reason: string, message: string, readonly details?: Record<string, unknown>) {
    super(message);
  }
}

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const HISTORY = 1000;

export class ObjectStore {
  /** The last resourceVersion handed out. */
  revision = 0;
  /** resource → "namespace/name" → object. */
  private readonly objects = new Map<string, Map<string, KubeObject>>();
  private history: WatchEvent[] = [];
  /** The oldest resourceVersion a watch can resume from. */
  private oldest = 0;
  private readonly watchers = new Set<(event: WatchEvent) => void>();
  /** Mutating requests served, by "VERB resource": tests check an idle client writes nothing. */
  readonly writes: string[] = [];

  private table(resource: string): Map<string, KubeObject> {
    let table = this.objects.get(resource);
    if (!table) this.objects.set(resource, (table = new Map()));
    return table;
  }

  get(type: ResourceType, namespace: string, name: string): KubeObject {
    const found = this.table(type.resource).get(`${namespace}/${name}`);
    if (!found) throw notFound(type, name);
    return structuredClone(found);
  }

  list(type: ResourceType, namespace: string | null, labelSelector: string | null): KubeObject[] {
    const match = parseSelector(labelSelector);
    return [...this.table(type.resource).values()]
      .filter((o) => namespace === null || o.metadata.namespace === namespace)
      .filter((o) => match(o.metadata.labels ?? {}))
      .map((o) => structuredClone(o));
  }

  create(type: ResourceType, namespace: string, body: KubeObject): KubeObject {
    const name = body.metadata?.name;
    checkName(type, name);
    if (body.metadata.namespace && type.namespaced && body.metadata.namespace !== namespace) {
      throw new ApiFailure(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
    }
    const key = `${namespace}/${name}`;
    const table = this.table(type.resource);
    if (table.has(key)) throw new ApiFailure(409, 'AlreadyExists', `${describe(type)} "${name}" already exists`, { name, kind: type.resource, group: type.group });
    const object = normalise(type, body);
    object.metadata = {
      ...object.metadata, namespace: type.namespaced ? namespace : undefined, uid: randomUUID(),
      creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), resourceVersion: String(++this.revision),
    };
    if (!type.namespaced) delete object.metadata.namespace;
    table.set(key, object);
    this.record(type, 'ADDED', object, 'create');
    return structuredClone(object);
  }

  replace(type: ResourceType, namespace: string, name: string, body: KubeObject): KubeObject {
    const key = `${namespace}/${name}`;
    const current = this.table(type.resource).get(key);
    if (!current) throw notFound(type, name);
    if (body.metadata?.name !== name) throw new ApiFailure(400, 'BadRequest', 'the name of the object does not match the name on the URL');
    const expected = body.metadata.resourceVersion;
    if (expected !== undefined && expected !== '' && expected !== current.metadata.resourceVersion) throw conflict(type, name);
    return this.put(type, key, current, body, 'replace');
  }

  /** JSON merge patch (RFC 7386); kubectl's strategic merge patches of these types reduce to it (see kubernetes.ts). */
  patch(type: ResourceType, namespace: string, name: string, patch: Record<string, unknown>): KubeObject {
    const key = `${namespace}/${name}`;
    const current = this.table(type.resource).get(key);
    if (!current) throw notFound(type, name);
    const merged = mergePatch(structuredClone(current), patch) as KubeObject;
    const expected = (patch.metadata as KubeObject['metadata'] | undefined)?.resourceVersion;
    if (expected && expected !== current.metadata.resourceVersion) throw conflict(type, name);
    merged.metadata = { ...merged.metadata, name };
    return this.put(type, key, current, merged, 'patch');
  }

  remove(type: ResourceType, namespace: string, name: string, preconditions?: { resourceVersion?: string; uid?: string }): KubeObject {
    const key = `${namespace}/${name}`;
    const table = this.table(type.resource);
    const current = table.get(key);
    if (!current) throw notFound(type, name);
    if (preconditions?.resourceVersion && preconditions.resourceVersion !== current.metadata.resourceVersion) {
      throw new ApiFailure(409, 'Conflict', `Operation cannot be fulfilled on ${type.resource}${type.group ? `.${type.group}` : ''} "${name}": Precondition failed: ResourceVersion in precondition: ${preconditions.resourceVersion}, ResourceVersion in object meta: ${current.metadata.resourceVersion}`);
    }
    if (preconditions?.uid && preconditions.uid !== current.metadata.uid) {
      throw new ApiFailure(409, 'Conflict', `Operation cannot be fulfilled on ${type.resource} "${name}": Precondition failed: UID in precondition: ${preconditions.uid}, UID in object meta: ${current.metadata.uid}`);
    }
    table.delete(key);
    const gone = { ...current, metadata: { ...current.metadata, resourceVersion: String(++this.revision) } };
    this.record(type, 'DELETED', gone, 'delete');
    return structuredClone(gone);
  }

  private put(type: ResourceType, key: string, current: KubeObject, body: KubeObject, verb: string): KubeObject {
    const object = normalise(type, body);
    object.metadata = {
      ...object.metadata, namespace: current.metadata.namespace, uid: current.metadata.uid,
      creationTimestamp: current.metadata.creationTimestamp, resourceVersion: String(++this.revision),
    };
    if (!type.namespaced) delete object.metadata.namespace;
    this.table(type.resource).set(key, object);
    this.record(type, 'MODIFIED', object, verb);
    return structuredClone(object);
  }

  private record(type: ResourceType, kind: WatchType, object: KubeObject, verb: string): void {
    this.writes.push(`${verb} ${type.resource}`);
    const event: WatchEvent = { rv: this.revision, type: kind, resource: type.resource, object: structuredClone(object) };
    this.history.push(event);
    if (this.history.length > HISTORY) this.oldest = this.history.shift()!.rv;
    for (const watcher of this.watchers) watcher(event);
  }

  /**
   * Events after resourceVersion rv, or null when rv is older than the
   * history kept (the watch must relist: 410 Gone).
   */
  since(rv: number): WatchEvent[] | null {
    if (rv < this.oldest) return null;
    return this.history.filter((e) => e.rv > rv);
  }

  /** Forgets the watch history, as etcd compaction does: every older resourceVersion gets 410 Gone. */
  compact(): void {
    this.oldest = this.revision;
    this.history = [];
  }

  subscribe(watcher: (event: WatchEvent) => void): () => void {
    this.watchers.add(watcher);
    return () => this.watchers.delete(watcher);
  }
}

function describe(type: ResourceType): string {
  return type.group ? `${type.resource}.${type.group}` : type.resource;
}

function notFound(type: ResourceType, name: string): ApiFailure {
  return new ApiFailure(404, 'NotFound', `${describe(type)} "${name}" not found`, { name, kind: type.resource, group: type.group });
}

function conflict(type: ResourceType, name: string): ApiFailure {
  return new ApiFailure(409, 'Conflict', `Operation cannot be fulfilled on ${describe(type)} "${name}": the object has been modified; please apply your changes to the latest version and try again`, { name, kind: type.resource, group: type.group });
}

function checkName(type: ResourceType, name: unknown): asserts name is string {
  if (typeof name !== 'string' || name === '') throw new ApiFailure(422, 'Invalid', `${type.kind} "" is invalid: metadata.name: Required value: name or generateName is required`);
  if (name.length > 253 || !DNS_SUBDOMAIN.test(name)) {
    throw new ApiFailure(422, 'Invalid', `${type.kind} "${name}" is invalid: metadata.name: Invalid value: "${name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`);
  }
}

/** Sets kind and apiVersion, and folds a Secret's stringData into data, as the API server does. */
function normalise(type: ResourceType, body: KubeObject): KubeObject {
  const object = structuredClone(body);
  object.kind = type.kind;
  object.apiVersion = type.group ? `${type.group}/${type.version}` : type.version;
  if (type.kind === 'Secret') {
    const stringData = object.stringData as Record<string, string> | undefined;
    if (stringData) {
      const data = { ...(object.data as Record<string, string> | undefined) };
      for (const [k, v] of Object.entries(stringData)) data[k] = Buffer.from(v).toString('base64');
      object.data = data;
      delete object.stringData;
    }
    object.type ??= 'Opaque';
  }
  return object;
}

function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const result: Record<string, unknown> = target !== null && typeof target === 'object' && !Array.isArray(target) ? { ...(target as object) } : {};
  for (const [key, value] of Object.entries(patch as Record<string, unknown>)) {
    if (key.startsWith('$')) continue; // strategic-merge directives: these types' lists are atomic
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

/** Equality-based label selectors: "a=b", "a==b", "a!=b", "a", "!a", comma-separated. */
export function parseSelector(selector: string | null): (labels: Record<string, string>) => boolean {
  if (!selector) return () => true;
  const terms = selector.split(',').map((term) => term.trim()).filter(Boolean).map((term) => {
    const m = /^(!?)([A-Za-z0-9._/-]+)(?:\s*(==|=|!=)\s*([A-Za-z0-9._-]*))?$/.exec(term);
    if (!m) throw new ApiFailure(400, 'BadRequest', `unable to parse requirement: ${term}`);
    const [, not, key, op, value] = m;
    if (!op) return (l: Record<string, string>) => (not ? !(key in l) : key in l);
    if (op === '!=') return (l: Record<string, string>) => l[key] !== value;
    return (l: Record<string, string>) => l[key] === value;
  });
  return (labels) => terms.every((t) => t(labels));
}
