// The run the store-failover tests share (Redis Sentinel, Redis Cluster, a
// three-member etcd): one bin/acmed on the store, one order held open so its
// http-01 token is published, then names issued one by one (each asked again
// until it succeeds) while a test-supplied kill takes a store node down after
// KILL_AFTER of them. It checks that the held token is served while the node
// is gone, that names are issued again once the store has failed over, in
// the same process, and that no certificate is lost; it reports the pause.
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import http from 'node:http';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Storage } from '../../src/storage/storage.js';
import { startAcmed, type AcmedHandle } from './acmed.js';
import type { PebbleHandle } from './pebble.js';
import { waitFor } from './wait.js';

/** Names issued one after another; the store node dies after KILL_AFTER of them. */
export const RUN_LENGTH = 10;
export const KILL_AFTER = 4;

/** A stored certificate as the terminator reads it, or null when absent. */
export interface StoredPems {
  cert: string;
  chain: string;
  fullchain: string;
  privkey: string;
}

export interface FailoverSetup {
  /** Under a directory of its own. */
  label: string;
  dir: string;
  pebble: PebbleHandle;
  /** acmed's http-01 port on 127.0.0.1. */
  httpPort: number;
  /** Where Pebble's validation of the held order goes: a server that accepts and never answers, on httpPort. */
  blackholeAddress: string;
  /** `storage` and `storage_config` for acmed. */
  storage: Record<string, unknown>;
  /** A backend instance of the test's own on the same store, to find the published token. */
  reader: Storage;
  readCertificate(name: string): Promise<StoredPems | null>;
  /** Kills the store node that matters for the next name; resolves once it is dead. */
  kill(nextName: string): Promise<void>;
  /** Resolves once the store has replaced the killed node. */
  promoted(): Promise<void>;
  /** True while the killed node has not been replaced yet. */
  stillDown(): Promise<boolean>;
}

export interface FailoverResult {
  /** From the kill to the first name issued after it. */
  pauseMs: number;
  /** From the kill to the store's promotion. */
  promotionMs: number;
}

export async function failoverRun(t: TestContext, setup: FailoverSetup): Promise<FailoverResult> {
  const { label, pebble, httpPort } = setup;
  const sub = join(setup.dir, label);
  await mkdir(sub);
  const acmed = await startAcmed({
    account_email: 'ops@example.com',
    tos_accepted: true,
    api_uri: pebble.directoryUrl,
    ca_bundle: pebble.caBundlePath,
    domains: ['*.example.com'],
    challenge: { listen: [`127.0.0.1:${httpPort}`] },
    admin: { socket: join(sub, 'admin.sock') },
    ...setup.storage,
    spool_dir: join(sub, 'spool'),
    lock_ttl_seconds: 10,
    log_level: 'debug',
  }, sub);
  let exited: string | undefined;
  acmed.child.once('exit', (code, signal) => { exited ??= `exited (${code ?? signal})`; });
  t.after(() => acmed.stop());
  const alive = () => assert.equal(exited, undefined, `acmed ${exited}:\n${acmed.logs().slice(-3000)}`);

  // An order whose validation hangs keeps its token published across the failover.
  const hangName = `hang-${label}.example.com`;
  await pebble.addA(hangName, [setup.blackholeAddress]);
  const logStart = acmed.logs().length;
  const hanging = admin(acmed, 'POST', '/acme', { host: hangName }).catch((err: Error) => ({ status: 0, body: err.message }));
  await waitFor('the held order to publish its token', () => acmed.logs().slice(logStart).split('\n')
    .some((line) => line.includes('challenges answered') && line.includes(hangName)), { context: () => acmed.logs().slice(-3000) });
  const tokenKeys = await setup.reader.list('challenges/');
  assert.equal(tokenKeys.length, 1, `one published token: ${tokenKeys.join(', ')}`);
  const token = tokenKeys[0].slice('challenges/'.length);
  const keyAuthorization = await setup.reader.get(tokenKeys[0]);
  assert.ok(keyAuthorization?.startsWith(`${token}.`));

  const names = Array.from({ length: RUN_LENGTH }, (_, i) => `${label}-${i + 1}.example.com`);
  const done: { name: string; at: number; attempts: number }[] = [];
  let killedAt = 0;
  let promotedAt = 0;
  let promotion: Promise<void> | undefined;
  for (const [i, name] of names.entries()) {
    if (i === KILL_AFTER) {
      await setup.kill(name);
      killedAt = Date.now();
      // The token it holds is still served while the store has not failed over.
      const served = await httpGet(httpPort, `/.well-known/acme-challenge/${token}`);
      assert.ok(await setup.stillDown(), 'the token check ran before the store failed over');
      assert.equal(served.status, 200, 'the held token is served during the failover');
      assert.equal(served.body, keyAuthorization);
      promotion = setup.promoted().then(() => { promotedAt = Date.now(); });
    }
    let attempts = 0;
    for (const deadline = Date.now() + 90_000; ;) {
      attempts++;
      const answer = await admin(acmed, 'POST', '/acme', { host: name });
      if (answer.status === 201 || answer.status === 200) {
        assert.equal(answer.body.data.name, name);
        break;
      }
      alive();
      if (Date.now() > deadline) assert.fail(`${name} was not issued within 90 s: ${answer.status} ${JSON.stringify(answer.body)}\n${acmed.logs().slice(-4000)}`);
      await sleep(200);
    }
    done.push({ name, at: Date.now(), attempts });
  }
  await promotion;
  alive();

  const firstAfter = done[KILL_AFTER];
  const pauseMs = firstAfter.at - killedAt;
  const gaps = done.slice(1).map((d, i) => d.at - done[i].at);
  t.diagnostic(`${label}: store node killed after ${KILL_AFTER} names; failed over ${promotedAt - killedAt} ms later; ` +
    `first issuance after the kill ${pauseMs} ms after it (${firstAfter.attempts} attempts); longest gap between issuances ${Math.max(...gaps)} ms, ` +
    `median ${[...gaps].sort((a, b) => a - b)[Math.floor(gaps.length / 2)]} ms`);
  // Issuance went on after the failover, in the same process, and once it had, each name took one request:
  // the store does not stay unusable (or fail every other write) on the nodes that are left.
  assert.ok(done.slice(KILL_AFTER).some((d) => d.at >= promotedAt), 'names were issued after the failover');
  assert.deepEqual(done.slice(KILL_AFTER + 1).filter((d) => d.attempts > 1).map((d) => `${d.name}: ${d.attempts} attempts`), []);
  assert.ok(pauseMs < 60_000, `issuance paused ${pauseMs} ms`);

  // No certificate lost: every name, before and after the kill, is whole where the terminator reads it.
  for (const name of names) {
    const pems = await setup.readCertificate(name);
    assert.ok(pems, `${name} is missing`);
    for (const [field, value] of Object.entries(pems)) assert.ok(value, `${name}: ${field} is empty`);
    const leaf = new X509Certificate(pems.cert);
    assert.equal(leaf.subjectAltName, `DNS:${name}`);
    assert.ok(leaf.checkPrivateKey(createPrivateKey(pems.privkey)), `${name}: privkey matches cert`);
    assert.equal(pems.fullchain, pems.cert + pems.chain);
  }
  const list = await admin(acmed, 'GET', '/acme/certificates');
  const valid = new Set((list.body.data as { host: string; valid: boolean }[]).filter((c) => c.valid).map((c) => c.host));
  assert.deepEqual(names.filter((n) => !valid.has(n)), [], 'acmed lists every certificate as valid');
  await waitFor('/healthz to say 200', async () => (await admin(acmed, 'GET', '/healthz')).status === 200, { timeoutMs: 30_000 });

  const hung = await hanging;
  assert.notEqual(hung.status, 201, 'the held order never validated');
  alive();
  assert.equal(await acmed.stop('SIGTERM'), 0, 'a clean exit after it all');
  return { pauseMs, promotionMs: promotedAt - killedAt };
}

function admin(acmed: AcmedHandle, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      socketPath: acmed.socketPath, method, path, agent: false,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { text += d; });
      res.on('end', () => {
        let parsed: unknown = text;
        try { parsed = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode!, body: parsed });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
  });
}
