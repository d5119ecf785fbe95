// The CLI as a new operator meets it: a config path with a typo is an error
// (never another daemon's socket), usage mistakes get one hint line, `renew`
// and `show` tell the truth about names without a certificate, `status`
// summarises, and `acmed issue` on a terminal shows its steps as they happen.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../harness/ports.js';
import { startPebble, type PebbleHandle } from '../harness/pebble.js';
import { ACMED_BIN, baseConfig, runCli, startAcmed, type AcmedHandle } from '../harness/acmed.js';

const run = promisify(execFile);
let pebble: PebbleHandle;
let dir: string;
let acmed: AcmedHandle;

before(async () => {
  const httpPort = await freePort();
  pebble = await startPebble({ httpPort });
  dir = await mkdtemp(join(tmpdir(), 'acmed-cli-'));
  acmed = await startAcmed({
    ...baseConfig({ dir, directoryUrl: pebble.directoryUrl, caBundlePath: pebble.caBundlePath, httpPort }),
    certificates: [{ names: ['listed.example.com'] }],
  }, dir);
});

after(async () => {
  await acmed?.stop();
  await pebble?.stop();
  await rm(dir, { recursive: true, force: true });
});

test('a --config or $ACMED_CONFIG that cannot be read or parsed is an error naming it, not the default socket', async () => {
  const missing = await runCli(['list', '--config', '/nonexistent/acmed.yaml']);
  assert.equal(missing.code, 1);
  assert.equal(missing.stderr, 'acmed: /nonexistent/acmed.yaml: cannot read config: file not found\n');
  assert.equal(missing.stdout, '');

  const broken = join(dir, 'broken.yaml');
  await writeFile(broken, 'account_email: ops@example.com\nadmin:\n  socket: [unclosed\n');
  const viaEnv = await runCli(['list'], { ...process.env, ACMED_CONFIG: broken });
  assert.equal(viaEnv.code, 1);
  assert.match(viaEnv.stderr, new RegExp(`^acmed: ${broken}:\\d+:\\d+: `));

  // A readable config leads to its own daemon's socket.
  const listed = await runCli(['list', '--json', '--config', acmed.configPath]);
  assert.equal(listed.code, 0, listed.stderr);
});

test('usage mistakes print the error and one hint, not the whole help', async () => {
  for (const args of [['issue'], ['issue', '--frce', 'x.example.com'], ['lsit'], ['issue', '-rf.example.com']]) {
    const r = await runCli(args);
    assert.notEqual(r.code, 0, args.join(' '));
    const lines = r.stderr.trimEnd().split('\n');
    assert.ok(lines.length <= 3, `${args.join(' ')} printed ${lines.length} lines:\n${r.stderr}`);
    assert.match(r.stderr, /^acmed: /);
    assert.match(r.stderr, /\(see acmed( issue)? --help\)/);
  }
  const typo = await runCli(['lsit']);
  assert.match(typo.stderr, /Did you mean list\?/);
});

test('renew of a host that never had a certificate says so and exits 1; --issue orders it', async () => {
  const refused = await acmed.cli(['renew', 'never.example.com']);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /^acmed: no certificate for never\.example\.com to renew; "acmed issue never\.example\.com"/);
  assert.doesNotMatch(pebble.logs(), /never\.example\.com/, 'no ACME request for it');

  const issued = await acmed.cli(['renew', 'never.example.com', '--issue', '--json']);
  assert.equal(issued.code, 0, issued.stderr);
  assert.deepEqual((JSON.parse(issued.stdout) as { renewed: string[] }).renewed, ['never.example.com']);
});

test('show prints files only where a certificate is, and managed as the renewal loop sees it', async () => {
  await acmed.cli(['issue', 'pattern.example.com']);
  const issued = await acmed.cli(['show', 'pattern.example.com']);
  assert.equal(issued.code, 0, issued.stderr);
  assert.match(issued.stdout, /^files: +\/.*live\/pattern\.example\.com\/?$/m);
  assert.match(issued.stdout, /^managed: +yes/m, 'a certificate issued through `domains` is renewed');

  // A name whose validation fails (the CA is sent to an address where nothing listens) has no certificate.
  await pebble.addA('broken.example.com', ['127.0.0.9']);
  const failed = await acmed.cli(['issue', 'broken.example.com']);
  assert.equal(failed.code, 1);
  const row = JSON.parse((await acmed.cli(['show', 'broken.example.com', '--json'])).stdout) as { location: string | null; status: string; managed: boolean };
  assert.equal(row.status, 'failed');
  assert.equal(row.location, null);
  assert.equal(row.managed, true);
  const shown = await acmed.cli(['show', 'broken.example.com']);
  assert.doesNotMatch(shown.stdout, /^files:/m);
  assert.match(shown.stdout, /^error: +/m);
});

test('status summarises the daemon', async () => {
  const r = await acmed.cli(['status']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^acmed \d+\.\d+\.\d+, up /);
  assert.match(r.stdout, new RegExp(`^config: +${acmed.configPath}$`, 'm'));
  assert.match(r.stdout, /^CA: +https:\/\/.* up$/m);
  assert.match(r.stdout, /^storage: +file up$/m);
  assert.match(r.stdout, /^certificates: +\d+ \(\d+ valid/m);
});

test('acmed issue on a terminal shows each step as it starts, with the time since the job started', async () => {
  // `script` gives the CLI a pseudo-terminal, as an operator's shell would.
  const { stdout } = await run('script', ['-qec', `${process.execPath} ${ACMED_BIN} issue tty.example.com --socket ${acmed.socketPath}`, '/dev/null'], { timeout: 120_000 });
  const steps = [...stdout.matchAll(/^\s+(\d+\.\d)s {2}([a-z ]+?)\r?$/gm)].map((m) => m[2]);
  for (const step of ['queued', 'locked', 'ordering', 'validating', 'finalizing', 'downloading', 'stored']) {
    assert.ok(steps.includes(step), `step ${step} not shown in:\n${stdout}`);
  }
  assert.deepEqual(steps.slice(0, 3), ['queued', 'locked', 'ordering'], 'in order');
  assert.match(stdout, /issued tty\.example\.com/);

  // Not on a terminal: no steps, the same result.
  const plain = await acmed.cli(['issue', 'tty.example.com']);
  assert.equal(plain.code, 0);
  assert.doesNotMatch(plain.stderr + plain.stdout, /ordering/);
});
