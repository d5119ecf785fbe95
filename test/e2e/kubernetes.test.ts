// Kubernetes mode end to end: two acmed replicas (storage: kubernetes,
// kubernetes.enabled) against Pebble and a Kubernetes API server, driven
// with the real kubectl as an operator would: Ingresses go in with
// `kubectl apply -f`, Secrets come out with `kubectl get secret -o jsonpath`.
//
// The API server is the in-repo stand-in (test/standins/kubernetes.ts), or a
// real cluster when KUBECONFIG is set (its context's namespace is acmed's;
// Ingresses go to KUBE_TEST_NAMESPACE, default that same namespace). Tests
// that need the stand-in's hooks (taking the API server away, counting its
// writes) say so and are skipped against a real cluster.
//
// Pebble validates http-01 at 127.0.0.1, where replica A listens; replica B
// listens on 127.0.0.2 and answers nothing: what it orders is validated
// through A, which reads the tokens B published in the shared storage.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createPublicKey, X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { startAcmed, type AcmedHandle } from '../harness/acmed.js';
import { startPebble, type PebbleHandle } from '../harness/pebble.js';
import { freePort } from '../harness/ports.js';
import { waitFor } from '../harness/wait.js';
import { type KubernetesStandin, startKubernetesStandin } from '../standins/kubernetes.js';

const run = promisify(execFile);
const REAL = process.env.KUBECONFIG;
/** acmed's namespace: the stand-in kubeconfig's context namespace, or a real one's. */
let acmedNamespace = 'acmed';
const WAIT = { timeoutMs: 60_000, intervalMs: 200 };

let dir: string;
let pebble: PebbleHandle;
let standin: KubernetesStandin | undefined;
let kubeconfig: string;
let appNamespace: string;
let replicas: AcmedHandle[] = [];
const prefix = `e2e${Date.now().toString(36)}`;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'acmed-kubernetes-'));
  const httpPort = await freePort('127.0.0.1');
  [pebble, standin] = await Promise.all([startPebble({ httpPort }), REAL ? undefined : startKubernetesStandin()]);
  kubeconfig = REAL ?? await standin!.kubeconfig(acmedNamespace);
  if (REAL) acmedNamespace = (await kubectl('config', 'view', '--minify', '-o', 'jsonpath={..namespace}')).trim() || 'default';
  appNamespace = REAL ? (process.env.KUBE_TEST_NAMESPACE ?? acmedNamespace) : 'web';
  replicas = await Promise.all(['127.0.0.1', '127.0.0.2'].map(async (address, k) => {
    const sub = join(dir, `acmed-${k}`);
    await mkdir(sub);
    return startAcmed({
      account_email: 'ops@example.com',
      tos_accepted: true,
      api_uri: pebble.directoryUrl,
      ca_bundle: pebble.caBundlePath,
      // An Ingress Secret holds one pair: Ingress certificates are ordered with the first type alone.
      cert_type: ['ecc', 'rsa'],
      challenge: { listen: [`${address}:${httpPort}`] },
      admin: { socket: join(sub, 'admin.sock') },
      storage: 'kubernetes',
      storage_config: { kubernetes: { prefix, timeout: 3000 } },
      spool_dir: join(sub, 'spool'),
      kubernetes: { enabled: true, kubeconfig, challenge_ingress: `${prefix}-challenges`, challenge_service: { name: 'acmed', port: 8080 } },
      lock_ttl_seconds: 10,
      log_level: 'debug',
    }, sub);
  }));
});

after(async () => {
  await Promise.all(replicas.map((r) => r.stop('SIGTERM').catch(() => null)));
  if (REAL) {
    // What this run left in the cluster: its Ingresses and their Secrets, acmed's state, locks and challenge Ingress.
    const quiet = (...args: string[]) => kubectl(...args).catch(() => '');
    for (const ingress of ['shop', 'plain', 'marker', 'later']) await quiet('delete', 'ingress', '-n', appNamespace, `${prefix}-${ingress}`, '--ignore-not-found');
    for (const secret of ['shop-tls', 'api-tls', 'marker-tls', 'plain-tls', 'later-tls']) await quiet('delete', 'secret', '-n', appNamespace, `${prefix}-${secret}`, '--ignore-not-found');
    await quiet('delete', 'secrets,leases.coordination.k8s.io', '-l', `acmed.io/store=${prefix}`);
    await quiet('delete', 'ingress', `${prefix}-challenges`, '--ignore-not-found');
  }
  await Promise.all([pebble?.stop(), standin?.close()]);
  await rm(dir, { recursive: true, force: true });
});

async function kubectl(...args: string[]): Promise<string> {
  try {
    return (await run('kubectl', ['--kubeconfig', kubeconfig, ...args], { timeout: 60_000 })).stdout;
  } catch (err) {
    const failure = err as { stderr?: string; message: string };
    throw new Error(`kubectl ${args.join(' ')}: ${failure.stderr || failure.message}`);
  }
}

/** kubectl apply -f of an Ingress manifest, as JSON or YAML. */
async function applyIngress(name: string, tls: { hosts: string[]; secretName: string }[], opts: { annotated?: boolean; yaml?: boolean } = {}): Promise<void> {
  const manifest = {
    apiVersion: 'networking.k8s.io/v1', kind: 'Ingress',
    metadata: { name: `${prefix}-${name}`, namespace: appNamespace, ...(opts.annotated === false ? {} : { annotations: { 'kubernetes.io/tls-acme': 'true' } }) },
    spec: {
      tls: tls.map((t) => ({ hosts: t.hosts, secretName: `${prefix}-${t.secretName}` })),
      rules: tls.flatMap((t) => t.hosts).map((host) => ({
        host, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web', port: { number: 80 } } } }] },
      })),
    },
  };
  const file = join(dir, `${name}-${Date.now()}.${opts.yaml ? 'yaml' : 'json'}`);
  await writeFile(file, opts.yaml ? (await import('yaml')).stringify(manifest) : JSON.stringify(manifest));
  await kubectl('apply', '--validate=false', '-f', file);
}

interface SecretSeen { crt: string; key: string; type: string; names: string[]; cert: X509Certificate }

/** The Secret as kubectl reads it; undefined while it does not exist. */
async function getSecret(name: string): Promise<SecretSeen | undefined> {
  let out: string;
  try {
    out = await kubectl('get', 'secret', '-n', appNamespace, `${prefix}-${name}`, '-o', 'jsonpath={.type} {.data.tls\\.crt} {.data.tls\\.key}');
  } catch (err) {
    if (/NotFound|not found/.test((err as Error).message)) return undefined;
    throw err;
  }
  const [type, crt64, key64] = out.trim().split(' ');
  const crt = Buffer.from(crt64, 'base64').toString();
  const key = Buffer.from(key64, 'base64').toString();
  const cert = new X509Certificate(crt);
  const names = (cert.subjectAltName ?? '').split(', ').map((n) => n.replace(/^DNS:/, ''));
  return { crt, key, type, names, cert };
}

function assertValidPair(secret: SecretSeen, hosts: string[]): void {
  assert.equal(secret.type, 'kubernetes.io/tls');
  for (const host of hosts) assert.ok(secret.names.includes(host), `${host} not in ${secret.names}`);
  const fromKey = createPublicKey(secret.key).export({ type: 'spki', format: 'der' });
  assert.deepEqual(fromKey, secret.cert.publicKey.export({ type: 'spki', format: 'der' }), 'tls.key does not belong to tls.crt');
  assert.ok(secret.crt.split('BEGIN CERTIFICATE').length > 2, 'tls.crt is the full chain');
}

/** Orders Pebble stored ("Added order" is logged once per order). */
function orderCount(): number {
  return pebble.logs().split('\n').filter((line) => line.includes('Added order "')).length;
}

const logs = () => replicas.map((r, k) => `--- replica ${k}\n${r.logs().split('\n').slice(-30).join('\n')}`).join('\n');
const secretCovering = (name: string, hosts: string[]) => waitFor(`Secret ${name} covering ${hosts}`, async () => {
  const secret = await getSecret(name);
  return secret && hosts.every((h) => secret.names.includes(h)) ? secret : undefined;
}, { ...WAIT, context: logs });

test('an annotated Ingress with two TLS entries gets two valid Secrets; two replicas order each certificate once', async () => {
  const ordersBefore = orderCount();
  await applyIngress('shop', [
    { hosts: ['shop.example.com', 'www.shop.example.com'], secretName: 'shop-tls' },
    { hosts: ['api.example.com'], secretName: 'api-tls' },
  ], { yaml: true });
  const shop = await secretCovering('shop-tls', ['shop.example.com', 'www.shop.example.com']);
  const api = await secretCovering('api-tls', ['api.example.com']);
  assertValidPair(shop, ['shop.example.com', 'www.shop.example.com']);
  assertValidPair(api, ['api.example.com']);
  assert.equal(orderCount() - ordersBefore, 2, 'each certificate was ordered once, by one of the two replicas, for one key type');
  assert.equal(createPublicKey(shop.key).asymmetricKeyType, 'ec', 'cert_type [ecc, rsa]: the Secret holds the first type');

  const annotations = JSON.parse(await kubectl('get', 'secret', '-n', appNamespace, `${prefix}-api-tls`, '-o', 'jsonpath={.metadata}'));
  assert.equal(annotations.labels['app.kubernetes.io/managed-by'], 'acmed');
  assert.equal(annotations.annotations['acmed.io/names'], 'api.example.com');
  assert.equal(new Date(annotations.annotations['acmed.io/not-after']).getTime(), new Date(api.cert.validTo).getTime());

  // The challenge Ingress routed every host to acmed's Service before the orders.
  const rules = JSON.parse(await kubectl('get', 'ingress', '-n', acmedNamespace, `${prefix}-challenges`, '-o', 'jsonpath={.spec.rules}'));
  assert.deepEqual(rules.map((r: { host: string }) => r.host).sort(), ['api.example.com', 'shop.example.com', 'www.shop.example.com']);
  assert.deepEqual(rules[0].http.paths[0], {
    path: '/.well-known/acme-challenge/', pathType: 'Prefix', backend: { service: { name: 'acmed', port: { number: 8080 } } },
  });
  if (standin) {
    assert.ok(standin.store.writes.some((w) => w === 'create leases'), 'the certificate locks were Leases');
    const leases = { group: 'coordination.k8s.io', version: 'v1', resource: 'leases', kind: 'Lease', namespaced: true };
    await waitFor('every lock released', () => standin!.store.list(leases, acmedNamespace, null).length === 0, WAIT);
  }
});

test('an Ingress without the annotation is ignored', async () => {
  const ordersBefore = orderCount();
  await applyIngress('plain', [{ hosts: ['plain.example.com'], secretName: 'plain-tls' }], { annotated: false });
  // An annotated Ingress applied after it: once its Secret is there, acmed has seen both.
  await applyIngress('marker', [{ hosts: ['marker.example.com'], secretName: 'marker-tls' }]);
  await secretCovering('marker-tls', ['marker.example.com']);
  assert.equal(await getSecret('plain-tls'), undefined);
  assert.equal(orderCount() - ordersBefore, 1, 'only the annotated Ingress was ordered');
  assert.ok(!replicas.some((r) => r.logs().includes('plain.example.com')), 'acmed did not even plan plain.example.com');
});

test('an idle acmed writes nothing to the API server', { skip: REAL ? 'counts the stand-in\'s writes' : false }, async () => {
  // The last test's jobs may still be releasing their locks: start from a quiet store.
  let last = -1;
  await waitFor('the store to be quiet for a second', async () => {
    const now = standin!.store.writes.length;
    const quiet = now === last;
    last = now;
    if (!quiet) await sleep(1_000);
    return quiet;
  }, WAIT);
  const before = standin!.store.writes.length;
  // A change that makes both replicas read everything again, and write nothing.
  await applyIngress('plain', [{ hosts: ['plain.example.com', 'plain2.example.com'], secretName: 'plain-tls' }], { annotated: false });
  const applied = standin!.store.writes.length;
  assert.deepEqual(standin!.store.writes.slice(before), ['patch ingresses'], 'the apply itself');
  await sleep(3_000); // idleness has no event to wait for: a few passes' worth of time
  assert.deepEqual(standin!.store.writes.slice(applied), []);
});

test('a host added to an Ingress leads to a reissue covering it; its other Secret is not reissued', async () => {
  const apiBefore = await getSecret('api-tls');
  const ordersBefore = orderCount();
  await applyIngress('shop', [
    { hosts: ['shop.example.com', 'www.shop.example.com', 'new.shop.example.com'], secretName: 'shop-tls' },
    { hosts: ['api.example.com'], secretName: 'api-tls' },
  ]);
  const shop = await secretCovering('shop-tls', ['shop.example.com', 'www.shop.example.com', 'new.shop.example.com']);
  assertValidPair(shop, ['shop.example.com', 'www.shop.example.com', 'new.shop.example.com']);
  assert.equal(orderCount() - ordersBefore, 1);
  assert.equal((await getSecret('api-tls'))!.crt, apiBefore!.crt, 'api-tls kept its certificate');
});

test('a renewal from anywhere (here `acmed renew --force` on the other replica) reaches the Secret through the outcome event', async () => {
  const [api, shop] = [await getSecret('api-tls'), await getSecret('shop-tls')];
  const result = await replicas[1].cli(['renew', 'api.example.com', '--force']);
  assert.equal(result.code, 0, result.stderr);
  const renewed = await waitFor('api-tls to hold the renewed certificate', async () => {
    const now = await getSecret('api-tls');
    return now && now.crt !== api!.crt ? now : undefined;
  }, { ...WAIT, context: logs });
  assertValidPair(renewed, ['api.example.com']);
  assert.equal((await getSecret('shop-tls'))!.crt, shop!.crt);
});

test('a Secret deleted by hand is recreated, from storage, with no new order', async () => {
  const before = await getSecret('api-tls');
  const ordersBefore = orderCount();
  await kubectl('delete', 'secret', '-n', appNamespace, `${prefix}-api-tls`);
  const back = await secretCovering('api-tls', ['api.example.com']);
  assert.equal(back.crt, before!.crt);
  assert.equal(orderCount(), ordersBefore);
});

test('removing the annotation stops management and leaves the Secret', async () => {
  const planLines = (r: AcmedHandle) => r.logs().split('\n').filter((line) => line.includes('managed certificates updated'));
  const seen = replicas.map((r) => planLines(r).length);
  await applyIngress('marker', [{ hosts: ['marker.example.com'], secretName: 'marker-tls' }], { annotated: false });
  await waitFor('both replicas to drop marker.example.com', () => replicas.every((r, k) =>
    planLines(r).slice(seen[k]).some((line) => line.includes('"certificates":2'))), { ...WAIT, context: logs });
  assert.ok(await getSecret('marker-tls'), 'the Secret stays');
});

test('the API server away for 20 s (and its watch history gone): acmed carries on', { skip: REAL ? 'takes the stand-in away' : false }, async () => {
  await standin!.goAway();
  await sleep(20_000);
  // Meanwhile something changed and the history was compacted: every resourceVersion acmed holds is too old (410 Gone).
  standin!.store.create({ group: '', version: 'v1', resource: 'secrets', kind: 'Secret', namespaced: true }, 'elsewhere', { metadata: { name: 'noise' } });
  standin!.store.compact();
  const sinceBack = standin!.requests.length;
  await standin!.comeBack();
  assert.ok(replicas.every((r) => r.child.exitCode === null), 'both replicas still run');
  await applyIngress('later', [{ hosts: ['later.example.com'], secretName: 'later-tls' }]);
  assertValidPair(await secretCovering('later-tls', ['later.example.com']), ['later.example.com']);
  assert.ok(replicas.every((r) => r.logs().includes('the Kubernetes API server answers again')), logs());
  // Nothing secret reached the logs through all of this: no key, no bearer token.
  for (const replica of replicas) {
    assert.doesNotMatch(replica.logs(), /PRIVATE KEY/);
    assert.ok(!replica.logs().includes(standin!.token), 'the bearer token is not logged');
  }
  // Per replica: one list to see the server is back, then the watch from its old resourceVersion gets 410 and it lists again.
  const lists = standin!.requests.slice(sinceBack).filter((r) => r === 'GET /apis/networking.k8s.io/v1/ingresses');
  assert.ok(lists.length >= 4, `relisted after 410 Gone: ${lists.length} lists`);
});
