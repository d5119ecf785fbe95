// The reference pages in docs/ are checked against the code they describe,
// so they cannot drift: every config key the schema accepts, every CLI
// command and option, every admin endpoint.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { createAdminHandler, type AdminBackend } from '../../src/admin/api.js';
import { loadConfig } from '../../src/config/load.js';
import { configKeyPaths } from '../../src/config/schema-keys.js';
import { createLogger } from '../../src/log.js';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..', '..');
const doc = (name: string) => readFile(join(ROOT, 'docs', name), 'utf8');

/** The backticked names in the first cell of each table row. */
function tableKeys(text: string): { keys: string[]; line: string }[] {
  return text.split('\n').filter((l) => l.startsWith('| `')).map((line) => ({
    line,
    keys: [...line.split(' | ')[0].matchAll(/`([^`]+)`/g)].map((m) => m[1]),
  }));
}

test('docs/config.md documents every config key, and only keys that exist', async () => {
  const rows = tableKeys(await doc('config.md'));
  const paths = configKeyPaths();
  const leaves = paths.filter((p) => !paths.some((q) => q.startsWith(`${p}.`)));
  const missing = leaves.filter((leaf) => !rows.some(({ keys, line }) => keys.includes(leaf)
    || keys.some((k) => leaf.startsWith(`${k}.`) && line.includes(`\`${leaf.slice(k.length + 1)}\``))));
  assert.deepEqual(missing, [], 'keys the schema accepts that docs/config.md does not describe');
  const unknown = rows.flatMap(({ keys }) => keys).filter((k) => !paths.includes(k));
  assert.deepEqual(unknown, [], 'keys docs/config.md describes that the schema does not accept');
});

test('docs/cli.md describes every command and every option of `acmed --help`', async () => {
  const text = await doc('cli.md');
  const bin = join(ROOT, 'bin', 'acmed');
  const { stdout: top } = await run(process.execPath, [bin, '--help']);
  const commands = [...top.split('Commands:')[1].matchAll(/^ {2}([a-z-]+)/gm)].map((m) => m[1]).filter((c) => c !== 'help');
  assert.ok(commands.length >= 8, `commands found: ${commands.join(' ')}`);
  // Commands with subcommands (acmed account …) are checked one level down.
  const subcommands = async (command: string) => {
    const { stdout } = await run(process.execPath, [bin, command, '--help']);
    const listed = stdout.includes('Commands:') ? [...stdout.split('Commands:')[1].matchAll(/^ {2}([a-z-]+)/gm)].map((m) => m[1]).filter((c) => c !== 'help') : [];
    return listed.length > 0 ? listed.map((sub) => `${command} ${sub}`) : [command];
  };
  const all = (await Promise.all(commands.map(subcommands))).flat();
  assert.ok(all.includes('account rollover'), all.join(', '));
  for (const command of all) {
    assert.ok(text.includes(`\`acmed ${command}`), `docs/cli.md has no row for acmed ${command}`);
    const { stdout } = await run(process.execPath, [bin, ...command.split(' '), '--help']);
    for (const [, option] of stdout.matchAll(/^\s+(?:-\w, )?(--[a-z-]+)/gm)) {
      if (option === '--help') continue;
      assert.match(text, new RegExp(`(?<![\\w-])${option}(?![\\w-])`), `docs/cli.md does not mention ${option} of acmed ${command}`);
    }
  }
});

test('every endpoint in docs/admin-api.md is routed by the admin API', async () => {
  const endpoints = tableKeys(await doc('admin-api.md')).flatMap(({ keys }) => keys).filter((k) => /^[A-Z]+ \//.test(k));
  assert.ok(endpoints.length >= 8, endpoints.join(', '));
  // Every route calls the backend; a call counted is a request routed.
  let calls = 0;
  const backend = new Proxy({}, { get: () => () => { calls++; throw new Error('stub'); } }) as AdminBackend;
  const handler = createAdminHandler(backend, createLogger('fatal'));
  const server = http.createServer((req, res) => handler(req, res, 'test'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  try {
    for (const endpoint of endpoints) {
      const [method, path] = endpoint.split(' ');
      const before = calls;
      // A route that had begun streaming drops the connection when the stub throws: that is fine here.
      const status = await fetch(`http://127.0.0.1:${port}${path.replace(':host', 'a.example.com')}?wait=true`, { method, ...(method === 'GET' ? {} : { body: '{"host":"a.example.com"}' }) })
        .then(async (r) => { await r.text(); return r.status; }, () => 0);
      // Routed: the backend was asked, or the route itself refused the stub request (400) rather than 404/405.
      assert.ok(calls > before || status === 400, `${endpoint} is not routed (HTTP ${status})`);
    }
  } finally {
    server.close();
  }
});

test('packaging agrees with itself: the image exposes the port its baked config listens on; the units document files that exist', async () => {
  const dockerfile = await readFile(join(ROOT, 'Dockerfile'), 'utf8');
  const baked = /^COPY (config\/\S+) \/etc\/acmed\/acmed\.yaml$/m.exec(dockerfile)?.[1];
  assert.ok(baked, 'the Dockerfile bakes a config');
  const config = await loadConfig(join(ROOT, baked));
  const listening = config.challenge.listen.map((l) => Number(l.slice(l.lastIndexOf(':') + 1))).sort();
  const exposed = [...dockerfile.matchAll(/^EXPOSE (.+)$/gm)].flatMap((m) => m[1].split(/\s+/).map((p) => Number(p.split('/')[0]))).sort();
  assert.deepEqual(listening, exposed);
  for (const unit of ['acmed.service', 'acmed.socket']) {
    const text = await readFile(join(ROOT, 'config', unit), 'utf8');
    for (const [, path] of text.matchAll(/file:\/\/\/opt\/acmed\/(\S+)/g)) {
      await assert.doesNotReject(readFile(join(ROOT, path)), `${unit} documents ${path}, which the repository (installed at /opt/acmed) lacks`);
    }
  }
});
