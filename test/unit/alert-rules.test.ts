// The sample alert rules (config/acmed.rules.yml) through promtool: they
// parse, and test/rules/acmed.rules.test.yml's cases fire what they should.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';

const ROOT = resolve(import.meta.dirname, '../..');
const RULES = join(ROOT, 'config/acmed.rules.yml');
const CASES = join(ROOT, 'test/rules/acmed.rules.test.yml');

function promtool(args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((done) => {
    execFile('promtool', args, (err, stdout, stderr) => done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, output: stdout + stderr }));
  });
}

test('promtool check rules accepts the sample alert file', async () => {
  const { code, output } = await promtool(['check', 'rules', RULES]);
  assert.equal(code, 0, output);
  assert.match(output, /SUCCESS: 4 rules found/);
});

test('promtool test rules: expiring, renewal failing and CA down fire when they should, and not before', async () => {
  const { code, output } = await promtool(['test', 'rules', CASES]);
  assert.equal(code, 0, output);
  assert.match(output, /SUCCESS/);
});

test('the rule tests catch a broken rule (expiry threshold of 3 days instead of 7)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'acmed-rules-'));
  try {
    const rules = await readFile(RULES, 'utf8');
    assert.ok(rules.includes('< 7 * 86400'));
    await writeFile(join(dir, 'rules.yml'), rules.replace('< 7 * 86400', '< 3 * 86400'));
    const cases = (await readFile(CASES, 'utf8')).replace('../../config/acmed.rules.yml', 'rules.yml');
    await writeFile(join(dir, 'cases.yml'), cases);
    const { code, output } = await promtool(['test', 'rules', join(dir, 'cases.yml')]);
    assert.notEqual(code, 0);
    assert.match(output, /AcmedCertificateExpiringSoon/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
