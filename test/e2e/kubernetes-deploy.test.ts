// deploy/kubernetes/ as an operator applies it: `kubectl apply --dry-run=client`
// accepts every manifest (kubectl still asks the API server for discovery and
// for the objects' current state: the stand-in answers, or a real cluster when
// KUBECONFIG is set), and the RBAC rules grant what acmed uses and no more.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { type KubernetesStandin, startKubernetesStandin } from '../standins/kubernetes.js';

const run = promisify(execFile);
const DEPLOY = resolve(import.meta.dirname, '../../deploy/kubernetes');

let standin: KubernetesStandin | undefined;
let kubeconfig: string;

before(async () => {
  standin = process.env.KUBECONFIG ? undefined : await startKubernetesStandin();
  kubeconfig = process.env.KUBECONFIG ?? await standin!.kubeconfig('default');
});
after(() => standin?.close());

async function manifests(): Promise<{ kind: string; metadata: { name: string }; rules?: { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }[] }[]> {
  const docs = [];
  for (const file of (await readdir(DEPLOY)).filter((f) => f.endsWith('.yaml')).sort()) {
    for (const doc of parseAllDocuments(await readFile(join(DEPLOY, file), 'utf8'))) {
      assert.deepEqual(doc.errors, [], file);
      docs.push(doc.toJS());
    }
  }
  return docs;
}

test('kubectl apply --dry-run=client accepts every manifest in deploy/kubernetes/', async () => {
  const { stdout } = await run('kubectl', ['--kubeconfig', kubeconfig, 'apply', '--dry-run=client', '--validate=false', '-f', DEPLOY], { timeout: 60_000 });
  const expected = (await manifests()).map((m) => `${m.kind.toLowerCase()}/${m.metadata.name}`);
  for (const object of expected) assert.match(stdout, new RegExp(`${object.replace('/', '(\\.[a-z0-9.]+)?/')} (created|configured|unchanged) \\(dry run\\)`), stdout);
  assert.equal(stdout.trim().split('\n').length, expected.length);
  if (standin) assert.deepEqual(standin.store.writes, [], 'a client-side dry run writes nothing');
});

test('RBAC: cluster-wide read of Ingresses, no deletes outside acmed\'s namespace, no wildcards', async () => {
  const docs = await manifests();
  const roles = docs.filter((d) => d.kind === 'ClusterRole' || d.kind === 'Role');
  for (const role of roles) {
    for (const rule of role.rules ?? []) {
      assert.ok(![...rule.verbs, ...rule.resources, ...rule.apiGroups].includes('*'), `${role.metadata.name}: wildcard`);
    }
  }
  const cluster = docs.find((d) => d.kind === 'ClusterRole')!;
  const verbs = (resource: string) => cluster.rules!.filter((r) => r.resources.includes(resource)).flatMap((r) => r.verbs).sort();
  assert.deepEqual(verbs('ingresses'), ['get', 'list', 'watch']);
  assert.deepEqual(verbs('secrets'), ['create', 'get', 'list', 'update', 'watch']);
  assert.equal(cluster.rules!.length, 2, 'nothing else cluster-wide');
  const own = docs.find((d) => d.kind === 'Role')!;
  assert.ok(own.rules!.some((r) => r.resources.includes('leases') && r.apiGroups.includes('coordination.k8s.io')));
});
