// The kubernetes keys: defaults, bad values named at their line, and
// check-config's note about an empty allowlist.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { parseConfig } from '../../src/config/load.js';
import { configProblems } from '../harness/config-problems.js';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..', '..');
const BASE = 'account_email: ops@example.com\ntos_accepted: true\n';


describe('kubernetes config', () => {
  test('defaults: off, in-cluster, all namespaces, acmed-challenges to acmed:80; storage_config.kubernetes', () => {
    const config = parseConfig(BASE);
    assert.deepEqual(config.kubernetes, {
      enabled: false, kubeconfig: null, namespaces: [], ingress_class: null,
      challenge_ingress: 'acmed-challenges', challenge_service: { name: 'acmed', port: 80 },
    });
    assert.deepEqual(config.storage_config.kubernetes, { namespace: null, prefix: 'acmed', timeout: 5000 });
    assert.equal(parseConfig(`${BASE}storage: kubernetes\n`).storage, 'kubernetes');
  });

  test('bad names and keys are reported at their line', () => {
    const lines = configProblems(`${BASE}kubernetes:\n  enabled: yes please\n  challenge_ingress: Bad_Name\n  namespaces: [UPPER]\n  challenge_service: { name: acmed, port: 0 }\n  watch_all: true\nstorage_config:\n  kubernetes: { prefix: "-x" }\n`);
    const at = (line: number) => lines.filter((l) => l.startsWith(`acmed.yaml:${line}:`));
    assert.equal(at(4).length, 1, lines.join('\n'));
    assert.match(at(5)[0], /Kubernetes object name/);
    assert.match(at(6)[0], /namespace name/);
    assert.equal(at(7).length, 1);
    assert.match(at(8)[0], /unknown key "watch_all"/);
    assert.match(at(10)[0], /lower-case/);
  });
});

describe('acmed check-config with kubernetes (real CLI)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'acmed-k8s-config-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const check = async (text: string) => {
    const file = join(dir, 'acmed.yaml');
    await writeFile(file, text);
    return { file, ...(await run(process.execPath, [join(ROOT, 'bin', 'acmed'), 'check-config', '--config', file], { cwd: dir })) };
  };

  test('an empty domains allowlist with kubernetes enabled: a note that Ingresses decide', async () => {
    const { file, stdout, stderr } = await check(`${BASE}kubernetes: { enabled: true }\n`);
    assert.equal(stderr, '');
    assert.equal(stdout, `${file}: ok\n${file}: note: kubernetes.enabled with an empty "domains" allowlist: acmed orders whatever names annotated Ingresses ask for\n`);
  });

  test('no note with an allowlist, or with kubernetes off', async () => {
    for (const text of [`${BASE}kubernetes: { enabled: true }\ndomains: ["*.example.com"]\n`, BASE]) {
      const { file, stdout } = await check(text);
      assert.equal(stdout, `${file}: ok\n`);
    }
  });
});
