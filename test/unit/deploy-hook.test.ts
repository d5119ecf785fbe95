// The deploy hook: certbot's variables, a bounded run, failures reported and
// never thrown (the new certificate stays whatever the hook does).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Writable } from 'node:stream';
import { runDeployHook } from '../../src/daemon/deploy-hook.js';
import { createLogger } from '../../src/log.js';

function capture() {
  let text = '';
  const stream = new Writable({ write(chunk, _enc, cb) { text += chunk.toString(); cb(); } });
  return { log: createLogger('info', stream), text: () => text };
}

const input = { lineage: '/var/lib/acmed/live/a.example.com', names: ['a.example.com', 'www.a.example.com'], host: 'a.example.com', notAfter: '2031-01-01T00:00:00.000Z' };

test('the hook gets certbot\'s variables and acmed\'s own', async () => {
  const { log } = capture();
  const run = await runDeployHook({ ...input, command: 'printf "%s|%s|%s|%s" "$RENEWED_LINEAGE" "$RENEWED_DOMAINS" "$ACMED_HOST" "$ACMED_NOT_AFTER"', timeoutMs: 10_000 }, log);
  assert.equal(run.ok, true);
  assert.equal(run.exitCode, 0);
  assert.equal(run.output, '/var/lib/acmed/live/a.example.com|a.example.com www.a.example.com|a.example.com|2031-01-01T00:00:00.000Z');
});

test('a failing hook is reported with its output and logged, not thrown', async () => {
  const { log, text } = capture();
  const run = await runDeployHook({ ...input, command: 'echo "nginx: [emerg] bad config" >&2; exit 3', timeoutMs: 10_000 }, log);
  assert.equal(run.ok, false);
  assert.equal(run.exitCode, 3);
  assert.equal(run.timedOut, false);
  assert.match(run.output, /bad config/);
  assert.match(text(), /deploy hook failed; the new certificate stays in place/);
});

test('a hook that runs too long is killed with what it started', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'acmed-hook-'));
  try {
    const marker = join(dir, 'late');
    const { log } = capture();
    // The child of the hook would write the marker after 3 s unless the whole group is killed.
    const run = await runDeployHook({ ...input, command: `(sleep 3; touch ${marker}) & sleep 30`, timeoutMs: 300 }, log);
    assert.equal(run.ok, false);
    assert.equal(run.timedOut, true);
    assert.ok(run.durationMs < 10_000);
    await sleep(3500);
    assert.equal(existsSync(marker), false, 'the hook\'s background child was killed too');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a hook that cannot start is a reported failure', async () => {
  const { log } = capture();
  const run = await runDeployHook({ ...input, command: '/nonexistent/reload-nginx', timeoutMs: 5_000 }, log);
  assert.equal(run.ok, false);
  assert.equal(run.exitCode, 127);
});
