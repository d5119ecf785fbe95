// The admin API from another machine: a real daemon with `admin.listen`,
// driven by the real CLI with `--admin-url`, first behind mutual TLS
// (certificates made here with openssl), then, after a SIGHUP, behind a
// bearer token. Refusals are checked at the handshake and as 401/403, and the
// log names who made each request.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../harness/ports.js';
import { createTestCa, issueServerCert, startPebble, type PebbleHandle, type ServerCert, type TestCa } from '../harness/pebble.js';
import { baseConfig, runCli, startAcmed, writeAcmedConfig, type AcmedHandle } from '../harness/acmed.js';
import { issueClientCert, type ClientCert } from '../harness/client-certs.js';
import { waitFor } from '../harness/wait.js';

let pebble: PebbleHandle;
let dir: string;
let acmed: AcmedHandle;
let config: Record<string, unknown>;
let adminUrl: string;
let serverCa: TestCa;
let server: ServerCert;
const clients: Record<string, ClientCert> = {};

before(async () => {
  const httpPort = await freePort();
  pebble = await startPebble({ httpPort });
  dir = await mkdtemp(join(tmpdir(), 'acmed-remote-'));
  serverCa = await createTestCa(await mkdtemp(join(dir, 'server-ca-')));
  server = await issueServerCert(serverCa, dir, 'admin-server');
  const clientCaDir = await mkdtemp(join(dir, 'client-ca-'));
  const clientCa = await createTestCa(clientCaDir);
  const strangerCa = await createTestCa(await mkdtemp(join(dir, 'stranger-ca-')));
  clients.ops = await issueClientCert(clientCa, dir, 'ops', { cn: 'Ops Person', email: 'ops@example.com' });
  clients.runner = await issueClientCert(clientCa, dir, 'runner', { cn: 'ci-runner' });
  clients.bot = await issueClientCert(clientCa, dir, 'bot', { cn: 'some bot', dns: 'deploy.internal' });
  clients.intruder = await issueClientCert(clientCa, dir, 'intruder', { cn: 'intruder', email: 'eve@example.com' });
  clients.stranger = await issueClientCert(strangerCa, dir, 'stranger', { cn: 'ci-runner', email: 'ops@example.com' });
  const port = await freePort();
  adminUrl = `https://127.0.0.1:${port}`;
  config = {
    ...baseConfig({ dir, directoryUrl: pebble.directoryUrl, caBundlePath: pebble.caBundlePath, httpPort }),
    log_level: 'info',
    admin: {
      socket: join(dir, 'admin.sock'),
      listen: `127.0.0.1:${port}`,
      tls: { cert: server.certPath, key: server.keyPath, client_ca: join(clientCaDir, 'ca.pem'), allowed_subjects: ['ops@example.com', 'ci-runner', 'deploy.internal'] },
    },
  };
  acmed = await startAcmed(config, dir);
});

after(async () => {
  await acmed?.stop();
  await pebble?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** The CLI against the TCP listener, never the socket (no --socket; ACMED_CONFIG points nowhere useful). */
function remote(args: string[], creds: string[], env: NodeJS.ProcessEnv = {}) {
  return runCli([...args, '--admin-url', adminUrl, ...creds], { ...process.env, ACMED_CONFIG: '', ...env });
}

const mtls = (who: ClientCert) => ['--cert', who.certPath, '--key', who.keyPath, '--cacert', serverCa.certPath];

test('mutual TLS: an allowed client issues, lists and reads status through the remote CLI', async () => {
  const issued = await remote(['issue', 'remote.example.com', '--json'], mtls(clients.ops));
  assert.equal(issued.code, 0, issued.stderr);
  const data = JSON.parse(issued.stdout) as { name: string; issued: boolean; not_after: string; duration_ms: number };
  assert.equal(data.name, 'remote.example.com');
  assert.equal(data.issued, true);
  assert.ok(Date.parse(data.not_after) > Date.now());
  assert.equal(typeof data.duration_ms, 'number', 'snake_case fields, as show and list use');

  const listed = await remote(['list', '--json'], mtls(clients.runner));
  assert.equal(listed.code, 0, listed.stderr);
  assert.deepEqual((JSON.parse(listed.stdout) as { host: string }[]).map((r) => r.host), ['remote.example.com']);

  const status = await remote(['status', '--json'], mtls(clients.bot));
  assert.equal(status.code, 0, status.stderr);
  const summary = JSON.parse(status.stdout) as { version: string; certificates: { total: number; by_status: Record<string, number> }; ca: { up: boolean } };
  assert.match(summary.version, /^\d+\.\d+\.\d+/);
  assert.equal(summary.certificates.total, 1);
  assert.equal(summary.certificates.by_status.valid, 1);
  assert.equal(summary.ca.up, true);

  // Who did what: the email first, the CN when there is no email, then the DNS name.
  await waitFor('status logged with its caller', () => acmed.logs().includes('"caller":"cert:deploy.internal"'));
  assert.match(acmed.logs(), /"caller":"cert:ops@example\.com","method":"POST","path":"\/acme","status":201/);
  assert.match(acmed.logs(), /"caller":"cert:ci-runner","method":"GET","path":"\/acme\/certificates"/);
});

test('mutual TLS: a certificate from the right CA but not allowed gets 403; another CA or none is refused at the handshake', async () => {
  const refused = await remote(['list'], mtls(clients.intruder));
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /^acmed: client certificate eve@example\.com is not in admin\.tls\.allowed_subjects\n$/);

  const stranger = await remote(['list'], mtls(clients.stranger));
  assert.equal(stranger.code, 1);
  assert.match(stranger.stderr, /TLS handshake with https:\/\/127\.0\.0\.1:\d+ failed/);

  // No client certificate at all: not even a request reaches the API.
  const status = await new Promise<number | string>((resolve) => {
    const req = https.request(`${adminUrl}/acme/certificates`, { ca: serverCa.certPem }, (res) => resolve(res.statusCode ?? 0));
    req.on('error', (err) => resolve(err.message));
    req.end();
  });
  assert.ok(typeof status === 'string' || status === 401, `expected a refused handshake or 401, got ${status}`);
  assert.ok(!acmed.logs().includes('"caller":"cert:eve@example.com","method":"GET","path":"/acme/certificates","status":200'));
  assert.match(acmed.logs(), /"caller":"cert:eve@example\.com".*"status":403.*admin request refused/);
});

test('the unix socket keeps working without a credential', async () => {
  const listed = await acmed.cli(['list', '--json']);
  assert.equal(listed.code, 0, listed.stderr);
  await waitFor('socket caller logged', () => /"caller":"socket","method":"GET","path":"\/acme\/certificates"/.test(acmed.logs()));
});

test('after SIGHUP the same listener takes a bearer token instead: 401 without it or with a wrong one, the token from $ACMED_TOKEN_FILE works', async () => {
  const tokenFile = join(dir, 'admin.token');
  await writeFile(tokenFile, 'f3b1c0ffee5ecret7a9d2c4e6b8a0d1e\n', { mode: 0o600 });
  const wrongFile = join(dir, 'wrong.token');
  await writeFile(wrongFile, 'not-the-token-at-all-0123456789\n');
  const admin = config.admin as Record<string, unknown>;
  await writeAcmedConfig(dir, { ...config, admin: { ...admin, token_file: tokenFile, tls: { cert: server.certPath, key: server.keyPath } } });
  const reloaded = acmed.logs().split('config reloaded').length;
  acmed.child.kill('SIGHUP');
  await waitFor('config reloaded', () => acmed.logs().split('config reloaded').length > reloaded);

  const cacert = ['--cacert', serverCa.certPath];
  const wrong = await remote(['list'], ['--token-file', wrongFile, ...cacert]);
  assert.equal(wrong.code, 1);
  assert.equal(wrong.stderr, 'acmed: the bearer token is wrong\n');

  const viaEnv = await remote(['show', 'remote.example.com', '--json'], [], { ACMED_TOKEN_FILE: tokenFile, ACMED_CACERT: serverCa.certPath });
  assert.equal(viaEnv.code, 0, viaEnv.stderr);
  assert.equal((JSON.parse(viaEnv.stdout) as { host: string; managed: boolean }).host, 'remote.example.com');

  const bare = await new Promise<{ status: number; auth: string | undefined; body: string }>((resolve, reject) => {
    https.get(`${adminUrl}/acme/certificates`, { ca: serverCa.certPem }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, auth: res.headers['www-authenticate'], body }));
    }).on('error', reject);
  });
  assert.equal(bare.status, 401);
  assert.equal(bare.auth, 'Bearer');
  assert.match(JSON.parse(bare.body).message, /bearer token is required/);
  assert.ok(!acmed.logs().includes('f3b1c0ffee5ecret'), 'the token never reaches the log');
});

test('a TCP listener without a credential is refused at start, naming the key', async () => {
  const bad = join(await mkdtemp(join(dir, 'bad-')), 'acmed.yaml');
  await writeFile(bad, `account_email: ops@example.com\ntos_accepted: true\nadmin:\n  listen: "127.0.0.1:1"\n`);
  const started = await runCli(['run', '--config', bad]);
  assert.equal(started.code, 1);
  assert.match(started.stderr, new RegExp(`${bad}:4:11: admin\\.listen: a TCP admin listener needs admin\\.token_file or mutual TLS`));
});
