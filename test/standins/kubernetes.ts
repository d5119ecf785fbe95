// A Kubernetes API server stand-in (no cluster can be installed here). It
// serves, over TLS with bearer-token auth, exactly what acmed and the kubectl
// commands of the tests use, as the Kubernetes API reference describes it:
//   discovery   GET /api, /apis, /api/v1, /apis/<group>/<version>, /version
//   objects     GET (get, list with labelSelector, watch=true with
//               resourceVersion and timeoutSeconds), POST (create; 409
//               AlreadyExists), PUT (replace; 409 Conflict on a stale
//               metadata.resourceVersion), PATCH (merge and strategic-merge
//               patch), DELETE (with preconditions; 409 Conflict)
// for secrets, services, configmaps, serviceaccounts (v1), ingresses
// (networking.k8s.io/v1), leases (coordination.k8s.io/v1), deployments
// (apps/v1), roles/rolebindings/clusterroles/clusterrolebindings
// (rbac.authorization.k8s.io/v1) and namespaces. Failures are Status objects.
// A watch from a resourceVersion older than the kept history gets an ERROR
// event with a 410 Status (compact() forces that). goAway()/comeBack() play an
// API server that is unreachable for a while; its objects survive.
//
// Not served: /openapi (kubectl runs with --validate=false), protobuf (kubectl
// falls back to JSON), server-side apply (415), JSON patch (415), field selectors.

import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestCa, issueServerCert } from '../harness/pebble.js';
import { ApiFailure, type KubeObject, ObjectStore, parseSelector, type ResourceType, type WatchEvent } from './kubernetes-store.js';

const TYPES: ResourceType[] = [
  { group: '', version: 'v1', resource: 'secrets', kind: 'Secret', namespaced: true },
  { group: '', version: 'v1', resource: 'services', kind: 'Service', namespaced: true },
  { group: '', version: 'v1', resource: 'configmaps', kind: 'ConfigMap', namespaced: true },
  { group: '', version: 'v1', resource: 'serviceaccounts', kind: 'ServiceAccount', namespaced: true },
  { group: '', version: 'v1', resource: 'namespaces', kind: 'Namespace', namespaced: false },
  { group: 'apps', version: 'v1', resource: 'deployments', kind: 'Deployment', namespaced: true },
  { group: 'networking.k8s.io', version: 'v1', resource: 'ingresses', kind: 'Ingress', namespaced: true },
  { group: 'coordination.k8s.io', version: 'v1', resource: 'leases', kind: 'Lease', namespaced: true },
  { group: 'rbac.authorization.k8s.io', version: 'v1', resource: 'roles', kind: 'Role', namespaced: true },
  { group: 'rbac.authorization.k8s.io', version: 'v1', resource: 'rolebindings', kind: 'RoleBinding', namespaced: true },
  { group: 'rbac.authorization.k8s.io', version: 'v1', resource: 'clusterroles', kind: 'ClusterRole', namespaced: false },
  { group: 'rbac.authorization.k8s.io', version: 'v1', resource: 'clusterrolebindings', kind: 'ClusterRoleBinding', namespaced: false },
];

const VERBS = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'];

export interface KubernetesStandin {
  /** https://127.0.0.1:<port> */
  url: string;
  port: number;
  token: string;
  /** PEM of the CA that signed the serving certificate. */
  caPem: string;
  store: ObjectStore;
  /** Requests received, as "METHOD path?query". */
  readonly requests: string[];
  /** Writes a kubeconfig for this server and token; returns its path. */
  kubeconfig(namespace?: string): Promise<string>;
  /** Closes the listener and every connection (watches too): the API server is unreachable. */
  goAway(): Promise<void>;
  /** Listens again on the same port, with the same objects. */
  comeBack(): Promise<void>;
  close(): Promise<void>;
}

export async function startKubernetesStandin(opts: { token?: string } = {}): Promise<KubernetesStandin> {
  const dir = await mkdtemp(join(tmpdir(), 'acmed-kube-standin-'));
  const ca = await createTestCa(dir);
  const serving = await issueServerCert(ca, dir, 'kube-apiserver');
  const tls = { cert: await readFile(serving.certPath), key: await readFile(serving.keyPath) };
  const token = opts.token ?? randomBytes(16).toString('hex');
  const store = new ObjectStore();
  const requests: string[] = [];
  const sockets = new Set<Socket>();
  let port = 0;

  const handle = (req: IncomingMessage, res: ServerResponse, body: Buffer) => {
    const url = new URL(req.url ?? '/', 'https://standin');
    requests.push(`${req.method} ${url.pathname}${url.search}`);
    if (req.headers.authorization !== `Bearer ${token}`) return status(res, new ApiFailure(401, 'Unauthorized', 'Unauthorized'));
    try {
      route(req.method ?? 'GET', url, req, res, body);
    } catch (err) {
      status(res, err instanceof ApiFailure ? err : new ApiFailure(500, 'InternalError', (err as Error).message));
    }
  };

  const route = (method: string, url: URL, req: IncomingMessage, res: ServerResponse, body: Buffer) => {
    const path = url.pathname.replace(/\/+$/, '');
    if (method === 'GET') {
      const discovery = discover(path);
      if (discovery) return json(res, 200, discovery);
    }
    const m = /^\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))(?:\/namespaces\/([^/]+))?\/([^/]+)(?:\/([^/]+))?$/.exec(path);
    const type = m && TYPES.find((t) => t.resource === m[5] && t.group === (m[2] ?? '') && t.version === (m[1] ?? m[3]));
    if (!m || !type) throw new ApiFailure(404, 'NotFound', 'the server could not find the requested resource');
    const namespace = m[4] ?? null;
    const name = m[6] ?? null;
    if (type.namespaced && namespace === null && (name !== null || method !== 'GET')) throw new ApiFailure(404, 'NotFound', 'the server could not find the requested resource');
    const ns = type.namespaced ? namespace ?? '' : '';
    const parse = () => {
      try {
        return JSON.parse(body.toString() || 'null');
      } catch (err) {
        throw new ApiFailure(400, 'BadRequest', `the body of the request was in an unknown format: ${(err as Error).message}`);
      }
    };
    if (method === 'GET' && name !== null) return json(res, 200, store.get(type, ns, name));
    if (method === 'GET') {
      const q = url.searchParams;
      if (q.get('watch') === 'true' || q.get('watch') === '1') return watch(type, type.namespaced ? namespace : null, q, res);
      const items = store.list(type, type.namespaced ? namespace : null, q.get('labelSelector'));
      return json(res, 200, {
        kind: `${type.kind}List`, apiVersion: type.group ? `${type.group}/${type.version}` : type.version,
        metadata: { resourceVersion: String(store.revision) }, items,
      });
    }
    if (isDryRun(url)) throw new ApiFailure(400, 'BadRequest', 'this stand-in does not do server-side dry runs');
    const contentType = (req.headers['content-type'] ?? 'application/json').split(';')[0].trim();
    if ((method === 'POST' || method === 'PUT') && contentType !== 'application/json') {
      throw new ApiFailure(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json (not ${contentType})`);
    }
    if (method === 'POST' && name === null) return json(res, 201, store.create(type, ns, parse()));
    if (method === 'PUT' && name !== null) return json(res, 200, store.replace(type, ns, name, parse()));
    if (method === 'PATCH' && name !== null) {
      if (contentType !== 'application/merge-patch+json' && contentType !== 'application/strategic-merge-patch+json') {
        throw new ApiFailure(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json (not ${contentType})`);
      }
      return json(res, 200, store.patch(type, ns, name, parse() ?? {}));
    }
    if (method === 'DELETE' && name !== null) {
      const options = body.length ? parse() : {};
      return json(res, 200, store.remove(type, ns, name, options?.preconditions));
    }
    throw new ApiFailure(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`);
  };

  const watch = (type: ResourceType, namespace: string | null, q: URLSearchParams, res: ServerResponse) => {
    const match = parseSelector(q.get('labelSelector'));
    const wanted = (e: WatchEvent) => e.resource === type.resource
      && (namespace === null || e.object.metadata.namespace === namespace) && match(e.object.metadata.labels ?? {});
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    const send = (type: string, object: unknown) => {
      if (!res.destroyed) res.write(`${JSON.stringify({ type, object })}\n`);
    };
    const rv = q.get('resourceVersion') ?? '';
    if (rv === '' || rv === '0') {
      for (const object of store.list(type, namespace, q.get('labelSelector'))) send('ADDED', object);
    } else {
      const past = store.since(Number(rv));
      if (past === null || !/^\d+$/.test(rv)) {
        send('ERROR', statusObject(new ApiFailure(410, 'Expired', `too old resource version: ${rv} (${store.revision})`)));
        res.end();
        return;
      }
      for (const e of past.filter(wanted)) send(e.type, e.object);
    }
    const unsubscribe = store.subscribe((e) => {
      if (wanted(e)) send(e.type, e.object);
    });
    const timeout = Number(q.get('timeoutSeconds') ?? 0);
    const timer = timeout > 0 ? setTimeout(() => res.end(), timeout * 1000) : undefined;
    res.on('close', () => {
      clearTimeout(timer);
      unsubscribe();
    });
  };

  const discover = (path: string): unknown => {
    const groupVersions = [...new Set(TYPES.filter((t) => t.group).map((t) => `${t.group}/${t.version}`))];
    if (path === '/version') return { major: '1', minor: '32', gitVersion: 'v1.32.0-acmed-standin', platform: 'linux/amd64' };
    if (path === '/api') return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: `127.0.0.1:${port}` }] };
    if (path === '/apis') {
      return {
        kind: 'APIGroupList', apiVersion: 'v1',
        groups: groupVersions.map((gv) => {
          const [group, version] = gv.split('/');
          return { name: group, versions: [{ groupVersion: gv, version }], preferredVersion: { groupVersion: gv, version } };
        }),
      };
    }
    const gv = path === '/api/v1' ? 'v1' : path.startsWith('/apis/') ? path.slice('/apis/'.length) : null;
    if (gv === null) return null;
    const types = TYPES.filter((t) => (t.group ? `${t.group}/${t.version}` : t.version) === gv);
    if (types.length === 0) return null;
    return {
      kind: 'APIResourceList', apiVersion: 'v1', groupVersion: gv,
      resources: types.map((t) => ({ name: t.resource, singularName: t.kind.toLowerCase(), namespaced: t.namespaced, kind: t.kind, verbs: VERBS })),
    };
  };

  const server: Server = createServer(tls, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handle(req, res, Buffer.concat(chunks)));
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  const listen = () => new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  await listen();
  port = (server.address() as { port: number }).port;
  const url = `https://127.0.0.1:${port}`;
  const goAway = async () => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    await closed;
  };

  return {
    url, port, token, caPem: ca.certPem, store,
    get requests() {
      return requests;
    },
    async kubeconfig(namespace = 'default') {
      const path = join(dir, `kubeconfig-${namespace}-${randomBytes(3).toString('hex')}.yaml`);
      await writeFile(path, kubeconfigYaml({ server: url, caPem: ca.certPem, token, namespace }), { mode: 0o600 });
      return path;
    },
    goAway,
    comeBack: listen,
    async close() {
      if (server.listening) await goAway();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A kubeconfig with one cluster, one token user and one context. */
export function kubeconfigYaml(opts: { server: string; caPem: string; token: string; namespace: string }): string {
  return JSON.stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': 'standin',
    clusters: [{ name: 'standin', cluster: { server: opts.server, 'certificate-authority-data': Buffer.from(opts.caPem).toString('base64') } }],
    users: [{ name: 'acmed', user: { token: opts.token } }],
    contexts: [{ name: 'standin', context: { cluster: 'standin', user: 'acmed', namespace: opts.namespace } }],
  }, null, 2);
}

function isDryRun(url: URL): boolean {
  return url.searchParams.has('dryRun');
}

function statusObject(failure: ApiFailure): Record<string, unknown> {
  return {
    kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: failure.message, reason: failure.reason,
    ...(failure.details ? { details: failure.details } : {}), code: failure.code,
  };
}

function status(res: ServerResponse, failure: ApiFailure): void {
  json(res, failure.code, statusObject(failure));
}

function json(res: ServerResponse, code: number, value: unknown): void {
  if (res.destroyed) return;
  const body = JSON.stringify(value);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export type { KubeObject };
