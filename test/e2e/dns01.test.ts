// dns-01 end to end: a real acmed writes TXT records into a real BIND 9 with
// TSIG-signed RFC 2136 updates (or through an exec hook), and Pebble, whose
// resolver is that BIND, validates them. Covers wildcard, apex + wildcard,
// CNAME delegation, cleanup after success, failure and a SIGKILL, a wrong
// TSIG secret, Redis storage and a two-instance cluster.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startBind, type BindHandle } from '../harness/bind.js';
import { startPebble, type PebbleHandle } from '../harness/pebble.js';
import { baseConfig, startAcmed, type AcmedHandle } from '../harness/acmed.js';
import { freePort } from '../harness/ports.js';
import { startRedis, type RedisServer } from '../harness/redis.js';
import { waitFor } from '../harness/wait.js';

const run = promisify(execFile);

let bind: BindHandle;
let pebble: PebbleHandle;
let dir: string;
let rootPath: string;
const started: AcmedHandle[] = [];

before(async () => {
  bind = await startBind({
    zones: [
      { name: 'example.com' },
      { name: 'example.org' },
      // The operator's zone delegates validation: _acme-challenge.app CNAMEs into a zone acmed may update.
      { name: 'example.net', records: ['_acme-challenge.app IN CNAME app.acme-delegated.test.'] },
      { name: 'acme-delegated.test' },
    ],
  });
  pebble = await startPebble({ httpPort: await freePort(), dnsServer: bind.address });
  dir = await mkdtemp(join(tmpdir(), 'acmed-dns01-'));
  rootPath = join(dir, 'pebble-root.pem');
  await writeFile(rootPath, await pebble.rootPem());
});

after(async () => {
  await Promise.all(started.map((a) => a.stop('SIGKILL')));
  await pebble?.stop();
  await bind?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** An acmed config in its own folder, dns-01 through the test BIND. */
async function dnsConfig(name: string, dns: Record<string, unknown> = {}): Promise<{ sub: string; config: Record<string, unknown> }> {
  const sub = join(dir, name);
  await mkdir(sub);
  const config = {
    ...baseConfig({ dir: sub, directoryUrl: pebble.directoryUrl, caBundlePath: pebble.caBundlePath, httpPort: await freePort() }),
    domains: [],
    dns: {
      provider: 'rfc2136',
      resolvers: [bind.address],
      propagation_timeout_seconds: 20,
      rfc2136: { server: bind.address, tsig_key_name: bind.keyName, tsig_algorithm: bind.algorithm, tsig_secret_file: bind.keyFilePath },
      ...dns,
    },
  };
  return { sub, config };
}

async function launch(config: Record<string, unknown>, sub: string): Promise<AcmedHandle> {
  const acmed = await startAcmed(config, sub);
  started.push(acmed);
  return acmed;
}

async function certificateNames(liveDir: string): Promise<string[]> {
  const cert = new X509Certificate(await readFile(join(liveDir, 'cert.pem')));
  const { stdout } = await run('openssl', ['verify', '-CAfile', rootPath, '-untrusted', join(liveDir, 'chain.pem'), join(liveDir, 'cert.pem')]);
  assert.match(stdout, /: OK/);
  return cert.subjectAltName!.split(', ').map((s) => s.replace(/^DNS:/, '')).sort();
}

/** Ledger entries (records placed and not removed) in file storage. */
async function ledgerEntries(storagePath: string): Promise<string[]> {
  return readdir(join(storagePath, 'state', 'dns-records')).catch(() => []);
}

test('wildcard, apex + wildcard and a CNAME-delegated name are issued through BIND, and every TXT record is gone afterwards', async () => {
  const { sub, config } = await dnsConfig('rfc2136');
  config.certificates = [
    { names: ['*.example.com'] },
    { names: ['example.org', '*.example.org'] },
    { names: ['app.example.net'], challenge: 'dns-01' },
  ];
  const acmed = await launch(config, sub);

  const wildcard = await acmed.cli(['issue', 'example.com']);
  assert.equal(wildcard.code, 0, wildcard.stderr + acmed.logs().slice(-3000));
  // certbot's convention: a wildcard-first certificate's files are named without "*.".
  const wildcardDir = join(acmed.storagePath, 'live', 'example.com');
  assert.deepEqual(await certificateNames(wildcardDir), ['*.example.com']);
  const byWildcard = await acmed.cli(['issue', '*.example.com']);
  assert.equal(byWildcard.code, 0, byWildcard.stderr);
  assert.match(byWildcard.stdout, /already valid: \*\.example\.com/);

  const both = await acmed.cli(['issue', 'example.org']);
  assert.equal(both.code, 0, both.stderr);
  assert.deepEqual(await certificateNames(join(acmed.storagePath, 'live', 'example.org')), ['*.example.org', 'example.org']);

  const delegated = await acmed.cli(['issue', 'app.example.net']);
  assert.equal(delegated.code, 0, delegated.stderr);
  assert.deepEqual(await certificateNames(join(acmed.storagePath, 'live', 'app.example.net')), ['app.example.net']);

  const logs = acmed.logs();
  // apex + wildcard: two values at one name, both there when Pebble looked.
  const orgRecords = logs.split('\n').filter((l) => l.includes('dns-01 TXT record added') && l.includes('"record":"_acme-challenge.example.org"'));
  assert.equal(orgRecords.length, 2, logs);
  // The delegated record went to the CNAME's target, in the target's zone.
  assert.match(logs, /"record":"app\.acme-delegated\.test","zone":"acme-delegated\.test","delegated":true/);
  assert.match(logs, /dns-01 records visible on every server/);

  for (const name of ['_acme-challenge.example.com', '_acme-challenge.example.org', 'app.acme-delegated.test']) {
    assert.deepEqual(await bind.txt(name), [], `${name} still has TXT records`);
  }
  assert.deepEqual(await bind.dig('_acme-challenge.app.example.net', 'CNAME'), ['app.acme-delegated.test.'], 'the delegation CNAME is left alone');
  assert.deepEqual(await ledgerEntries(acmed.storagePath), []);
  assert.ok(!logs.includes(bind.secret), 'the TSIG secret never reaches the log');
});

test('acmed issue shows the propagation wait', async () => {
  const { sub, config } = await dnsConfig('shown');
  config.challenge = { ...(config.challenge as object), type: 'dns-01' };
  config.domains = ['*.example.com'];
  const acmed = await launch(config, sub);
  const result = await acmed.cli(['issue', 'shown.example.com']);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /dns-01: +TXT records visible on every DNS server after \d+\.\d s/);
});

test('a wrong TSIG secret is one clear error naming the server and the rcode; nothing is left behind', async () => {
  const { sub, config } = await dnsConfig('wrong-secret');
  const wrongKey = join(sub, 'wrong.key');
  await writeFile(wrongKey, `key "${bind.keyName}" {\n\talgorithm ${bind.algorithm};\n\tsecret "${Buffer.alloc(32, 7).toString('base64')}";\n};\n`);
  (config.dns as { rfc2136: Record<string, unknown> }).rfc2136.tsig_secret_file = wrongKey;
  config.certificates = [{ names: ['*.wrong.example.com'] }];
  const acmed = await launch(config, sub);
  const startedAt = Date.now();
  const result = await acmed.cli(['issue', 'wrong.example.com']);
  assert.notEqual(result.code, 0);
  const line = result.stderr.trim();
  assert.equal(line.split('\n').length, 1, line);
  assert.match(line, new RegExp(`DNS server ${bind.address.replace(/\./g, '\\.')} refused the update of add TXT _acme-challenge\\.wrong\\.example\\.com in zone example\\.com: NOTAUTH \\(TSIG error BADSIG\\)`));
  assert.ok(Date.now() - startedAt < 15_000, 'fails at once, not after a propagation wait');
  assert.doesNotMatch(acmed.logs(), /waiting for dns-01 records to propagate/);
  // No order left waiting at the CA: its authorization was deactivated.
  assert.match(acmed.logs(), /"deactivated":1,"of":1,"msg":"order given up before validation; its authorizations deactivated"/);
  assert.deepEqual(await ledgerEntries(acmed.storagePath), [], 'a refused update leaves nothing to clean up');
  assert.deepEqual(await bind.txt('_acme-challenge.wrong.example.com'), []);
  assert.ok(!acmed.logs().includes(Buffer.alloc(32, 7).toString('base64')), 'the secret never reaches the log');
});

test('records that never show up end the order after propagation_timeout_seconds; the records are removed all the same', async () => {
  const { sub, config } = await dnsConfig('timeout');
  const silent: Socket = createSocket('udp4');
  await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
  try {
    (config.dns as Record<string, unknown>).resolvers = [`127.0.0.1:${silent.address().port}`];
    (config.dns as Record<string, unknown>).propagation_timeout_seconds = 2;
    config.certificates = [{ names: ['late.example.com', '*.late.example.com'] }];
    const acmed = await launch(config, sub);
    const result = await acmed.cli(['issue', 'late.example.com']);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /DNS records not visible after \d+ s \(dns\.propagation_timeout_seconds\): _acme-challenge\.late\.example\.com at 127\.0\.0\.1:\d+: no answer/);
    assert.match(acmed.logs(), /"deactivated":2,"of":2/);
    await waitFor('both records removed', () => /dns-01 TXT record removed[\s\S]*dns-01 TXT record removed/.test(acmed.logs()));
    assert.deepEqual(await bind.txt('_acme-challenge.late.example.com'), []);
    assert.deepEqual(await ledgerEntries(acmed.storagePath), []);
  } finally {
    silent.close();
  }
});

test('the exec provider runs the hook with present|cleanup, the record name and the value, as argv', async () => {
  const { sub, config } = await dnsConfig('exec');
  const calls = join(sub, 'calls.log');
  const hook = join(sub, 'dns-hook.sh');
  // A small hook of the kind an operator writes: nsupdate against the test BIND.
  await writeFile(hook, `#!/bin/sh
set -e
echo "$1 $2 $3" >> ${calls}
case "$1" in present) op="add $2 60 TXT \\"$3\\"";; cleanup) op="delete $2 TXT \\"$3\\"";; *) exit 2;; esac
printf 'server 127.0.0.1 ${bind.port}\\nupdate %s\\nsend\\n' "$op" | nsupdate -k ${bind.keyFilePath}
`);
  await chmod(hook, 0o755);
  config.dns = { provider: 'exec', resolvers: [bind.address], propagation_timeout_seconds: 20, exec: { command: hook, timeout_seconds: 20 } };
  config.certificates = [{ names: ['exec.example.com', '*.exec.example.com'] }];
  const acmed = await launch(config, sub);
  const result = await acmed.cli(['issue', 'exec.example.com']);
  assert.equal(result.code, 0, result.stderr + acmed.logs().slice(-3000));
  assert.deepEqual(await certificateNames(join(acmed.storagePath, 'live', 'exec.example.com')), ['*.exec.example.com', 'exec.example.com']);
  const lines = (await readFile(calls, 'utf8')).trim().split('\n');
  assert.equal(lines.length, 4, lines.join('\n'));
  const presents = lines.filter((l) => l.startsWith('present '));
  const cleanups = lines.filter((l) => l.startsWith('cleanup '));
  assert.equal(presents.length, 2);
  for (const l of presents) assert.match(l, /^present _acme-challenge\.exec\.example\.com\. [A-Za-z0-9_-]{43}$/);
  assert.deepEqual(cleanups.map((l) => l.slice('cleanup '.length)).sort(), presents.map((l) => l.slice('present '.length)).sort());
  assert.deepEqual(await bind.txt('_acme-challenge.exec.example.com'), []);
});

test('SIGKILL in the middle of an order: the next start removes the record and finishes the certificate', async () => {
  const { sub, config } = await dnsConfig('crash');
  // Propagation is checked at a server that never answers, so the order waits there until it is killed.
  const silent: Socket = createSocket('udp4');
  await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
  const silentAddress = `127.0.0.1:${silent.address().port}`;
  try {
    config.certificates = [{ names: ['*.crash.example.com'] }];
    (config.dns as Record<string, unknown>).resolvers = [silentAddress];
    (config.dns as Record<string, unknown>).propagation_timeout_seconds = 300;
    const first = await launch(config, sub);
    await waitFor('the order to wait for propagation', () => /waiting for dns-01 records to propagate/.test(first.logs()), { context: () => first.logs().slice(-3000) });
    assert.equal((await bind.txt('_acme-challenge.crash.example.com')).length, 1);
    assert.equal((await ledgerEntries(first.storagePath)).length, 1);
    await first.stop('SIGKILL');

    (config.dns as Record<string, unknown>).resolvers = [bind.address];
    const second = await launch(config, sub);
    await waitFor('the leftover record removed', () => /removed dns-01 records an earlier run left/.test(second.logs()), { context: () => second.logs().slice(-3000) });
    const result = await second.cli(['issue', 'crash.example.com']);
    assert.equal(result.code, 0, result.stderr + second.logs().slice(-3000));
    assert.deepEqual(await certificateNames(join(second.storagePath, 'live', 'crash.example.com')), ['*.crash.example.com']);
    assert.deepEqual(await bind.txt('_acme-challenge.crash.example.com'), []);
    assert.deepEqual(await ledgerEntries(second.storagePath), []);
  } finally {
    silent.close();
  }
});

test('Redis storage and a cluster: only the instance that placed the order touches DNS', async (t) => {
  const redis: RedisServer = await startRedis();
  t.after(() => redis.stop());
  const instances: AcmedHandle[] = [];
  for (const k of [0, 1]) {
    const { sub, config } = await dnsConfig(`cluster-${k}`);
    Object.assign(config, {
      storage: 'redis',
      storage_config: { redis: { host: redis.host, port: redis.port, namespace: 'dns01:' } },
      cluster: true,
      certificates: [{ names: ['*.cluster.example.com', 'cluster.example.com'] }],
    });
    instances.push(await launch(config, sub));
  }
  const results = await Promise.all(instances.map((a) => a.cli(['issue', 'cluster.example.com'])));
  for (const r of results) assert.equal(r.code, 0, r.stderr);
  const placers = instances.filter((a) => a.logs().includes('dns-01 TXT record added'));
  assert.equal(placers.length, 1, 'one instance ordered and wrote the records');
  const removed = instances.filter((a) => a.logs().includes('dns-01 TXT record removed'));
  assert.deepEqual(removed, placers, 'and only that one removed them');
  assert.deepEqual(await bind.txt('_acme-challenge.cluster.example.com'), []);
  for (const r of results) assert.match(r.stdout, /cluster\.example\.com/);
});

test('records placed by a live peer are not touched by another instance starting', async () => {
  // Covered through the ledger's owner tokens: an instance starting on the same host leaves a live pid's entries.
  const { sub, config } = await dnsConfig('peer');
  const silent: Socket = createSocket('udp4');
  await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
  try {
    config.certificates = [{ names: ['*.peer.example.com'] }];
    (config.dns as Record<string, unknown>).resolvers = [`127.0.0.1:${silent.address().port}`];
    (config.dns as Record<string, unknown>).propagation_timeout_seconds = 300;
    const placer = await launch(config, sub);
    await waitFor('the order to wait for propagation', () => /waiting for dns-01 records to propagate/.test(placer.logs()), { context: () => placer.logs().slice(-3000) });
    // A second instance on the same storage starts while the first is mid-order.
    const peerSub = join(sub, 'peer');
    await mkdir(peerSub);
    const peer = await launch({ ...config, admin: { socket: join(peerSub, 'admin.sock') }, challenge: { listen: [`127.0.0.1:${await freePort()}`] }, certificates: [] }, peerSub);
    await waitFor('the peer to be up', () => existsSync(join(peerSub, 'admin.sock')));
    assert.equal((await bind.txt('_acme-challenge.peer.example.com')).length, 1, 'the live instance\'s record stays');
    assert.doesNotMatch(peer.logs(), /removed dns-01 records/);
    await placer.stop('SIGTERM');
    await peer.stop('SIGTERM');
    assert.deepEqual(await bind.txt('_acme-challenge.peer.example.com'), [], 'the placer removed its record when its order was abandoned');
  } finally {
    silent.close();
  }
});
