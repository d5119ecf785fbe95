// Config loading: defaults, and every problem reported as file:line:col
// pointing at the offending key or value.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ConfigError, loadConfig, parseConfig } from '../../src/config/load.js';
import { certificateForHost, configuredCertificates, isManagedName, managedCertificateNamed } from '../../src/config/managed.js';

const run = promisify(execFile);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BASE = 'account_email: ops@example.com\ntos_accepted: true\n';

/** Parses text that must be invalid and returns its ConfigError. */
function problemsOf(text: string, file = 'acmed.yaml'): ConfigError {
  try {
    parseConfig(text, file);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('config was accepted but should have been rejected');
}

/** 1-based line and column of the first occurrence of needle (after `from` lines). */
function posOf(text: string, needle: string, fromLine = 1): { line: number; col: number } {
  const lines = text.split('\n');
  for (let i = fromLine - 1; i < lines.length; i++) {
    const col = lines[i].indexOf(needle);
    if (col >= 0) return { line: i + 1, col: col + 1 };
  }
  throw new Error(`needle ${needle} not in text`);
}

/** Asserts exactly one problem, at the position of needle, whose message matches. */
function assertOneProblem(text: string, needle: string, message: RegExp, fromLine = 1): void {
  const err = problemsOf(text);
  assert.equal(err.problems.length, 1, err.lines().join('\n'));
  const { line, col } = posOf(text, needle, fromLine);
  const [printed] = err.lines();
  assert.match(printed, new RegExp(`^acmed\\.yaml:${line}:${col}: `), printed);
  assert.match(printed, message);
}

describe('defaults', () => {
  test('a minimal config gets every default', () => {
    const config = parseConfig(BASE);
    assert.equal(config.account_email, 'ops@example.com');
    assert.equal(config.tos_accepted, true);
    assert.equal(config.storage, 'file');
    assert.deepEqual(config.challenge.listen, ['0.0.0.0:80']);
    assert.equal(config.cert_type, 'ecc');
    assert.equal(config.rsa_key_size, 4096);
    assert.equal(config.api_uri, 'https://acme-v02.api.letsencrypt.org/directory');
    assert.equal(config.fail_backoff_minutes, 5);
    assert.equal(config.renew_threshold_days, null);
    assert.equal(config.eab_kid, null);
    assert.equal(config.eab_hmac_key, null);
    assert.equal(config.preferred_chain, null);
    assert.equal(config.ca_bundle, null);
    assert.deepEqual(config.domains, []);
    assert.deepEqual(config.certificates, []);
    assert.equal(config.admin.socket, '/run/acmed/admin.sock');
    assert.equal(config.storage_config.file.path, '/var/lib/acmed');
    assert.equal(config.storage_config.redis.port, 6379);
    assert.equal(config.storage_config.consul.kv_path, 'acme');
    assert.equal(config.storage_config.vault.auth_method, 'token');
  });

  test('a partly given nested object keeps defaults for the rest', () => {
    const config = parseConfig(`${BASE}storage_config:\n  redis:\n    port: 6380\n`);
    assert.equal(config.storage_config.redis.port, 6380);
    assert.equal(config.storage_config.redis.host, '127.0.0.1');
    assert.equal(config.storage_config.file.path, '/var/lib/acmed');
  });

  test('certificate names and domain patterns are normalized', () => {
    const config = parseConfig(`${BASE}domains: ["*.Example.COM", "example.org."]\ncertificates:\n  - names: [WWW.Example.com.]\n`);
    assert.deepEqual(config.domains, ['*.example.com', 'example.org']);
    assert.deepEqual(config.certificates, [{ names: ['www.example.com'] }]);
  });

  test('explicit values override defaults', () => {
    const config = parseConfig(`${BASE}cert_type: rsa\nrsa_key_size: 2048\nstorage: memory\nchallenge:\n  listen: ["127.0.0.1:5002", "[::1]:5002"]\n`);
    assert.equal(config.cert_type, 'rsa');
    assert.equal(config.rsa_key_size, 2048);
    assert.equal(config.storage, 'memory');
    assert.deepEqual(config.challenge.listen, ['127.0.0.1:5002', '[::1]:5002']);
  });
});

describe('problems point at file:line:col', () => {
  test('unknown top-level key points at the key', () => {
    const text = `${BASE}cert_type: ecc\ncolour: blue\n`;
    assertOneProblem(text, 'colour', /unknown key "colour"/);
  });

  test('unknown nested key points at the nested key', () => {
    const text = `${BASE}storage_config:\n  file:\n    path: /srv/acmed\n    colour: blue\n`;
    const err = problemsOf(text);
    assert.equal(err.problems.length, 1);
    assert.deepEqual({ line: err.problems[0].line, col: err.problems[0].col }, posOf(text, 'colour'));
    assert.deepEqual(posOf(text, 'colour'), { line: 6, col: 5 });
    assert.match(err.problems[0].message, /storage_config\.file: unknown key "colour"/);
  });

  test('wrong enum value points at the value', () => {
    const text = `${BASE}cert_type: dsa\n`;
    assertOneProblem(text, 'dsa', /cert_type: .*"ecc".*"rsa"/);
  });

  test('tos_accepted false points at the value', () => {
    const text = 'account_email: ops@example.com\ntos_accepted: false\n';
    assertOneProblem(text, 'false', /tos_accepted must be true/);
  });

  test('tos_accepted missing is reported at the mapping it belongs in', () => {
    const text = '# acmed\n\naccount_email: ops@example.com\n';
    assertOneProblem(text, 'account_email', /tos_accepted: .*must be true/);
  });

  test('invalid email points at the value', () => {
    const text = 'tos_accepted: true\naccount_email: "ops at example"\n';
    assertOneProblem(text, '"ops at example"', /account_email: .*email/i);
  });

  test('a value of the wrong type says so, not "required"', () => {
    const text = `${BASE}fail_backoff_minutes: soon\n`;
    const err = problemsOf(text);
    assert.equal(err.problems.length, 1);
    assert.deepEqual({ line: err.problems[0].line, col: err.problems[0].col }, posOf(text, 'soon'));
    assert.match(err.problems[0].message, /^fail_backoff_minutes: /);
    assert.doesNotMatch(err.problems[0].message, /required/);
    assert.match(err.problems[0].message, /number/);
  });

  test('a missing required key says "required"', () => {
    const err = problemsOf('tos_accepted: true\n');
    assert.equal(err.problems.length, 1);
    assert.equal(err.problems[0].message, 'account_email: required');
  });

  const hostile: [string, string, RegExp][] = [
    ['path traversal', '../etc', /invalid host name "\.\.\/etc"/],
    ['slash', 'a/b.example.com', /invalid host name "a\/b\.example\.com"/],
    ['raw unicode', 'bücher.example', /non-ASCII.*xn--/],
    ['overlong label', `${'a'.repeat(64)}.example.com`, /label longer than 63/],
  ];
  for (const [what, name, message] of hostile) {
    test(`certificate name rejected: ${what}`, () => {
      const text = `${BASE}certificates:\n  - names:\n      - good.example.com\n      - "${name}"\n`;
      assertOneProblem(text, `"${name}"`, message);
      assert.match(problemsOf(text).problems[0].message, /^certificates\.0\.names\.1: /);
    });
  }

  test('hostile names in a flow list each get their own column', () => {
    const text = `${BASE}certificates:\n  - names: [ok.example.com, "../etc", a/b.example.com]\n`;
    const err = problemsOf(text);
    assert.equal(err.problems.length, 2, err.lines().join('\n'));
    assert.deepEqual({ line: err.problems[0].line, col: err.problems[0].col }, posOf(text, '"../etc"'));
    assert.deepEqual({ line: err.problems[1].line, col: err.problems[1].col }, posOf(text, 'a/b.example.com'));
  });

  test('wildcards are fine in domains but not two deep', () => {
    const text = `${BASE}domains:\n  - "*.example.com"\n  - "*.*.example.com"\n`;
    assertOneProblem(text, '"*.*.example.com"', /domains\.1: invalid host name/);
  });

  test('bad listen addresses point at the element, one message each', () => {
    const text = `${BASE}challenge:\n  listen:\n    - 127.0.0.1:80\n    - nope\n    - 127.0.0.1:70000\n`;
    const err = problemsOf(text);
    assert.equal(err.problems.length, 2, err.lines().join('\n'));
    const [notHostPort, badPort] = err.problems;
    assert.deepEqual({ line: notHostPort.line, col: notHostPort.col }, posOf(text, 'nope'));
    assert.match(notHostPort.message, /challenge\.listen\.1: expected "host:port"/);
    assert.deepEqual({ line: badPort.line, col: badPort.col }, posOf(text, '127.0.0.1:70000'));
    assert.match(badPort.message, /challenge\.listen\.2: port must be 0\.\.65535/);
  });

  test('YAML syntax error points at the offending spot', () => {
    const text = `${BASE}cert_type: ecc: rsa\nstorage: file\n`;
    const err = problemsOf(text);
    assert.ok(err.problems.length >= 1);
    assert.deepEqual({ line: err.problems[0].line, col: err.problems[0].col }, posOf(text, 'ecc: rsa'));
    assert.match(err.lines()[0], /^acmed\.yaml:3:12: \S/);
  });

  test('duplicate keys are a syntax problem on the second key', () => {
    const text = `${BASE}storage: file\nstorage: memory\n`;
    const err = problemsOf(text);
    assert.equal(err.problems.length, 1);
    assert.deepEqual({ line: err.problems[0].line, col: err.problems[0].col }, { line: 4, col: 1 });
    assert.match(err.problems[0].message, /unique/i);
  });

  test('eab_kid without eab_hmac_key points at eab_kid', () => {
    const text = `${BASE}eab_kid: kid-1\n`;
    assertOneProblem(text, 'kid-1', /eab_kid and eab_hmac_key go together/);
  });

  test('eab_hmac_key without eab_kid points at eab_hmac_key', () => {
    const text = `${BASE}eab_hmac_key: c2VjcmV0\n`;
    assertOneProblem(text, 'c2VjcmV0', /eab_kid and eab_hmac_key go together/);
  });

  test('eab_kid with eab_hmac_key is accepted', () => {
    const config = parseConfig(`${BASE}eab_kid: kid-1\neab_hmac_key: c2VjcmV0\n`);
    assert.equal(config.eab_kid, 'kid-1');
    assert.equal(config.eab_hmac_key, 'c2VjcmV0');
  });

  test('several problems at once are all reported, each at its own line', () => {
    const text = [
      'account_email: nobody',
      'tos_accepted: false',
      'cert_type: dsa',
      'colour: blue',
      'storage_config:',
      '  file:',
      '    colour: red',
      '',
    ].join('\n');
    const err = problemsOf(text);
    const at = err.problems.map((p) => `${p.line}:${p.col}`).sort();
    assert.deepEqual(at, ['1:16', '2:15', '3:12', '4:1', '7:5']);
    assert.equal(err.lines().length, 5);
    assert.equal(err.message, err.lines().join('\n'));
    for (const line of err.lines()) assert.match(line, /^acmed\.yaml:\d+:\d+: \S/);
  });
});

describe('loadConfig', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'acmed-config-test-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('reads and validates a file', async (t) => {
    t.after(() => rm(join(dir, 'good.yaml'), { force: true }));
    await writeFile(join(dir, 'good.yaml'), `${BASE}storage: memory\n`);
    const config = await loadConfig(join(dir, 'good.yaml'));
    assert.equal(config.storage, 'memory');
  });

  test('a missing file is one problem naming the file', async () => {
    const file = join(dir, 'does-not-exist.yaml');
    await assert.rejects(loadConfig(file), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.file, file);
      assert.equal(err.problems.length, 1);
      assert.match(err.lines()[0], new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: cannot read config: file not found$`));
      return true;
    });
  });

  test('problems in a file carry its path', async () => {
    const file = join(dir, 'bad.yaml');
    await writeFile(file, `${BASE}colour: blue\n`);
    await assert.rejects(loadConfig(file), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.deepEqual(err.lines(), [`${file}:3:1: unknown key "colour"`]);
      return true;
    });
    await rm(file);
  });
});

describe('acmed check-config (real CLI)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'acmed-check-config-'));
    // bin/acmed runs the compiled CLI; build it once if nobody has yet.
    if (!existsSync(join(ROOT, 'dist', 'cli', 'index.js'))) {
      await run(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: ROOT });
    }
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('exits 1 and prints file:line:col lines on stderr for a bad file', async () => {
    const file = join(dir, 'bad.yaml');
    await writeFile(file, 'account_email: nobody\ntos_accepted: true\ncolour: blue\n');
    const result = await run(process.execPath, [join(ROOT, 'bin', 'acmed'), 'check-config', '--config', file], { cwd: dir })
      .then(() => ({ code: 0, stdout: '', stderr: '' }), (err: { code: number; stdout: string; stderr: string }) => err);
    assert.equal(result.code, 1);
    const lines = result.stderr.trim().split('\n').sort();
    assert.equal(lines.length, 2, result.stderr);
    assert.match(lines[0], new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:1:16: account_email: `));
    assert.equal(lines[1], `${file}:3:1: unknown key "colour"`);
  });

  test('exits 0 for a good file', async () => {
    const file = join(dir, 'good.yaml');
    await writeFile(file, `${BASE}storage: memory\nchallenge:\n  listen: ["127.0.0.1:5002"]\n`);
    const { stdout, stderr } = await run(process.execPath, [join(ROOT, 'bin', 'acmed'), 'check-config', '--config', file], { cwd: dir });
    assert.equal(stderr, '');
    assert.equal(stdout, `${file}: ok\n`);
  });
});

describe('cluster, keyring and issue-3 keys', () => {
  test('memory storage is refused when several instances share state', () => {
    const text = `${BASE}storage: memory\ncluster: true\n`;
    assertOneProblem(text, 'memory', /memory storage lives in one process/);
  });

  test('memory storage alone, and redis with cluster, are fine', () => {
    assert.equal(parseConfig(`${BASE}storage: memory\n`).storage, 'memory');
    assert.equal(parseConfig(`${BASE}storage: redis\ncluster: true\n`).cluster, true);
  });

  test('a bad renewal_schedule names the line', () => {
    const text = `${BASE}renewal_schedule: "every day"\n`;
    assertOneProblem(text, '"every day"', /not a valid cron expression/);
  });

  test('lock_ttl_seconds and deploy_hook_timeout_seconds are bounded', () => {
    assertOneProblem(`${BASE}lock_ttl_seconds: 1\n`, '1', /lock_ttl_seconds/, 3);
    assert.equal(parseConfig(BASE).deploy_hook_timeout_seconds, 120);
    assert.equal(parseConfig(BASE).lock_ttl_seconds, 60);
    assert.equal(parseConfig(BASE).keyring_key_file, null);
  });
});

test('isManagedName answers as managedCertificateNamed does, for configured, pattern, covered and foreign names', () => {
  const config = parseConfig([
    'account_email: ops@example.com', 'tos_accepted: true', 'api_uri: https://ca.test/dir',
    'domains: ["*.example.com", "example.org"]',
    'certificates: [{ names: ["shop.example.com", "www.shop.example.com"] }, { names: ["other.example.net", "shop.example.com"] }]',
  ].join('\n'));
  const names = ['shop.example.com', 'www.shop.example.com', 'other.example.net', 'a.example.com', 'a.b.example.com', 'example.com',
    'example.org', 'www.example.org', 'x.example.net', 'UPPER.example.com', 'bad..example.com', 'aexample.com'];
  for (const name of names) {
    assert.equal(isManagedName(config, name), managedCertificateNamed(config, name) !== undefined, name);
  }
  assert.equal(isManagedName(config, 'other.example.net'), true);
  assert.equal(isManagedName(config, 'www.shop.example.com'), false, 'covered by shop.example.com, not a certificate of its own');
});

describe('check-config reports every problem at once', () => {
  test('a bad listen does not hide the cross-field problems, and each sits at its own key or value', () => {
    const text = [
      'account_email: ops@example.com', 'tos_accepted: true', 'storage: memory', 'cluster: true', 'eab_kid: kid-1',
      'challenge:', '  listen: ["bad"]', 'certificates:', '  - names: [a.example.com]', '    nmes: [b.example.com]',
      'renew_treshold_days: 3', 'admin:', '  tokn_file: /x', '',
    ].join('\n');
    const err = problemsOf(text);
    const lines = err.lines();
    const expect: [string, RegExp, number?][] = [
      ['memory', /memory storage lives in one process/],
      ['kid-1', /eab_kid and eab_hmac_key go together/],
      ['"bad"', /expected "host:port"/],
      ['nmes', /unknown key "nmes" \(did you mean "names"\?\)/],
      ['renew_treshold_days', /did you mean "renew_threshold_days"/],
      ['tokn_file', /did you mean "token_file"/],
    ];
    assert.equal(lines.length, expect.length, lines.join('\n'));
    for (const [needle, message] of expect) {
      const { line, col } = posOf(text, needle);
      const printed = lines.find((l) => l.startsWith(`acmed.yaml:${line}:${col}: `));
      assert.ok(printed, `no problem at ${needle} (${line}:${col}) in\n${lines.join('\n')}`);
      assert.match(printed, message);
    }
  });

  test('several unknown keys in one mapping are reported one by one, and a far-off key gets no suggestion', () => {
    const text = `${BASE}storage_config:\n  redis:\n    hots: a\n    zzzzzz: 1\n`;
    const lines = problemsOf(text).lines();
    assert.equal(lines.length, 2, lines.join('\n'));
    assert.match(lines[0], /^acmed\.yaml:5:5: .*unknown key "hots" \(did you mean "host"\?\)$/);
    assert.match(lines[1], /^acmed\.yaml:6:5: .*unknown key "zzzzzz"$/);
  });

  test('eab_hmac_key must be base64url, and the message does not echo it', () => {
    const text = `${BASE}eab_kid: kid-1\neab_hmac_key: "s3cr3t value!!"\n`;
    assertOneProblem(text, '"s3cr3t', /eab_hmac_key: must be base64url/);
    assert.doesNotMatch(problemsOf(text).message, /s3cr3t/);
    assert.equal(parseConfig(`${BASE}eab_kid: k\neab_hmac_key: zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W\n`).eab_hmac_key?.length, 64);
  });
});

describe('admin listener keys', () => {
  test('a TCP listener without a credential is refused at admin.listen', () => {
    assertOneProblem(`${BASE}admin:\n  listen: "0.0.0.0:9443"\n`, '"0.0.0.0:9443"', /needs admin.token_file or mutual TLS/);
  });

  test('token_file or complete mTLS with subjects is accepted', () => {
    const token = parseConfig(`${BASE}admin:\n  listen: "127.0.0.1:9443"\n  token_file: /etc/acmed/token\n`);
    assert.equal(token.admin.listen, '127.0.0.1:9443');
    assert.equal(token.admin.socket, '/run/acmed/admin.sock');
    const mtls = parseConfig(`${BASE}admin:\n  listen: "127.0.0.1:9443"\n  tls: { cert: /c, key: /k, client_ca: /ca, allowed_subjects: [ops@example.com] }\n`);
    assert.deepEqual(mtls.admin.tls.allowed_subjects, ['ops@example.com']);
  });

  test('partial mTLS, mTLS without subjects and a credential without a listener are each named', () => {
    assertOneProblem(`${BASE}admin:\n  listen: "127.0.0.1:9443"\n  token_file: /t\n  tls: { cert: /c }\n`, '/c', /admin.tls.cert and admin.tls.key go together/);
    assertOneProblem(`${BASE}admin:\n  listen: "127.0.0.1:9443"\n  tls: { client_ca: /ca, allowed_subjects: [a] }\n`, '/ca', /needs the server's own admin.tls.cert/);
    assertOneProblem(`${BASE}admin:\n  listen: "127.0.0.1:9443"\n  tls: { cert: /c, key: /k }\n`, '"127.0.0.1:9443"', /needs admin.token_file or mutual TLS/);
    assertOneProblem(`${BASE}admin:\n  listen: "127.0.0.1:9443"\n  tls: { cert: /c, key: /k, client_ca: /ca }\n`, '/ca', /allowed_subjects is empty/);
    assertOneProblem(`${BASE}admin:\n  token_file: /t\n`, '/t', /set admin.listen too/);
  });
});

describe('redis sentinel / cluster and etcd keys', () => {
  const REDIS = `${BASE}storage: redis\nstorage_config:\n  redis:\n`;

  test('sentinels with sentinel_master, and cluster_nodes, are read; single-server Redis stays the default', () => {
    const sentinel = parseConfig(`${REDIS}    sentinels: [{host: 10.0.0.1, port: 26379}, {host: 10.0.0.2, port: 26379}]\n    sentinel_master: acmed\n    sentinel_password: s3cret\n`);
    assert.deepEqual(sentinel.storage_config.redis.sentinels, [{ host: '10.0.0.1', port: 26379 }, { host: '10.0.0.2', port: 26379 }]);
    assert.equal(sentinel.storage_config.redis.sentinel_master, 'acmed');
    assert.equal(sentinel.storage_config.redis.sentinel_password, 's3cret');
    const cluster = parseConfig(`${REDIS}    cluster_nodes:\n      - {host: 10.0.0.1, port: 7000}\n`);
    assert.deepEqual(cluster.storage_config.redis.cluster_nodes, [{ host: '10.0.0.1', port: 7000 }]);
    const plain = parseConfig(BASE).storage_config.redis;
    assert.equal(plain.sentinels, null);
    assert.equal(plain.cluster_nodes, null);
  });

  test('sentinels together with cluster_nodes is an error at cluster_nodes', () => {
    const text = `${REDIS}    sentinels: [{host: a, port: 26379}]\n    sentinel_master: acmed\n    cluster_nodes: [{host: b, port: 7000}]\n`;
    assertOneProblem(text, '[{host: b', /sentinels and cluster_nodes exclude each other/);
  });

  test('sentinels without sentinel_master, and sentinel_master alone, are errors at the key that is set', () => {
    assertOneProblem(`${REDIS}    sentinels: [{host: a, port: 26379}]\n`, '[{host: a', /sentinels needs sentinel_master/);
    assertOneProblem(`${REDIS}    sentinel_master: acmed\n`, 'acmed', /sentinel_master needs sentinels/);
  });

  test('a sentinel or cluster node needs host and port; cluster_nodes refuses a database other than 0', () => {
    assertOneProblem(`${REDIS}    cluster_nodes: [{host: a}]\n`, '{host: a}', /cluster_nodes\.0\.port: required/);
    assertOneProblem(`${REDIS}    cluster_nodes: [{host: a, port: 7000}]\n    database: 2\n`, '2', /Redis Cluster has database 0 only/, 6);
  });

  test('etcd: defaults, and every key read', () => {
    const defaults = parseConfig(`${BASE}storage: etcd\n`).storage_config.etcd;
    assert.deepEqual(defaults, {
      endpoints: ['http://127.0.0.1:2379'], prefix: 'acme/', username: null, password: null,
      tls: { ca: null, cert: null, key: null }, timeout: 2000,
    });
    const set = parseConfig(`${BASE}storage: etcd\nstorage_config:\n  etcd:\n    endpoints: ["https://e1:2379", "https://e2:2379"]\n    prefix: certs/\n    username: acmed\n    password: pw\n    tls: {ca: /etc/acmed/etcd-ca.pem, cert: /etc/acmed/etcd.pem, key: /etc/acmed/etcd-key.pem}\n    timeout: 5000\n`).storage_config.etcd;
    assert.deepEqual(set.endpoints, ['https://e1:2379', 'https://e2:2379']);
    assert.equal(set.tls.key, '/etc/acmed/etcd-key.pem');
  });

  test('etcd: a bad endpoint, a username without password, a cert without key are errors where they stand', () => {
    assertOneProblem(`${BASE}storage: etcd\nstorage_config:\n  etcd:\n    endpoints: ["e1:2379"]\n`, '"e1:2379"', /http:\/\/ or https:\/\/ URL/);
    assertOneProblem(`${BASE}storage: etcd\nstorage_config:\n  etcd:\n    username: acmed\n`, 'acmed', /username and password go together/, 6);
    assertOneProblem(`${BASE}storage: etcd\nstorage_config:\n  etcd:\n    tls: {cert: /c.pem}\n`, '/c.pem', /tls\.cert and tls\.key go together/);
  });
});

describe('dns-01 and wildcard certificates', () => {
  const DNS = [
    'dns:',
    '  provider: rfc2136',
    '  rfc2136:',
    '    server: "ns1.example.com:53"',
    '    tsig_secret_file: /etc/acmed/tsig.key',
  ].join('\n');

  test('a wildcard name without a dns section is an error at the name', () => {
    const text = `${BASE}certificates:\n  - names: [example.com, "*.example.com"]\n`;
    assertOneProblem(text, '"*.example.com"', /certificates\.0\.names\.1: \*\.example\.com is a wildcard name: it needs dns-01, and dns-01 needs a "dns" section/);
  });

  test('with a dns section, a wildcard certificate uses dns-01 and is stored without "*."', () => {
    const config = parseConfig(`${BASE}${DNS}\ncertificates:\n  - names: ["*.Example.com", example.com]\n  - names: [www.example.org]\n  - names: [mail.example.org]\n    challenge: dns-01\n`);
    assert.deepEqual(configuredCertificates(config), [
      { name: 'example.com', names: ['*.example.com', 'example.com'], challenge: 'dns-01' },
      { name: 'www.example.org', names: ['www.example.org'], challenge: 'http-01' },
      { name: 'mail.example.org', names: ['mail.example.org'], challenge: 'dns-01' },
    ]);
    assert.equal(certificateForHost(config, 'example.com').name, 'example.com');
    assert.equal(certificateForHost(config, '*.Example.com').name, 'example.com', 'acmed issue "*.example.com" finds it too');
    assert.throws(() => certificateForHost(config, '*.example.org'), /\*\.example\.org is not in "certificates"/);
    assert.equal(isManagedName(config, 'example.com'), true);
    assert.deepEqual(config.dns, {
      provider: 'rfc2136', resolvers: [], propagation_timeout_seconds: 120, exec: null,
      rfc2136: { server: 'ns1.example.com:53', zone: null, tsig_key_name: 'acmed', tsig_algorithm: 'hmac-sha256', tsig_secret_file: '/etc/acmed/tsig.key' },
    });
    assert.equal(config.challenge.type, 'http-01');
  });

  test('a wildcard certificate that asks for http-01 is an error at the name', () => {
    const text = `${BASE}${DNS}\ncertificates:\n  - names: ["*.example.com"]\n    challenge: http-01\n`;
    assertOneProblem(text, '"*.example.com"', /http-01 cannot prove it/);
  });

  test('dns-01 chosen without a dns section is an error where it is chosen', () => {
    assertOneProblem(`${BASE}challenge:\n  type: dns-01\n`, 'dns-01', /challenge\.type: dns-01 needs a "dns" section/);
    assertOneProblem(`${BASE}certificates:\n  - names: [a.example.com]\n    challenge: dns-01\n`, 'dns-01', /certificates\.0\.challenge: dns-01 needs a "dns" section/);
  });

  test('the provider needs its own section; algorithms and addresses are checked', () => {
    assertOneProblem(`${BASE}dns:\n  provider: exec\n`, 'exec', /dns\.provider: provider exec needs a dns\.exec section/);
    assertOneProblem(`${BASE}${DNS}\n    tsig_algorithm: hmac-md5\n`, 'hmac-md5', /dns\.rfc2136\.tsig_algorithm/);
    assertOneProblem(`${BASE}${DNS}\n  resolvers: ["a b"]\n`, '"a b"', /dns\.resolvers\.0: expected "host:port"/);
    const exec = parseConfig(`${BASE}dns:\n  provider: exec\n  exec: { command: /usr/local/bin/dns-hook }\n`);
    assert.deepEqual(exec.dns?.exec, { command: '/usr/local/bin/dns-hook', timeout_seconds: 60 });
  });

  test('two certificates stored under one name are refused', () => {
    const text = `${BASE}${DNS}\ncertificates:\n  - names: [example.com]\n  - names: ["*.example.com"]\n`;
    assertOneProblem(text, '"*.example.com"', /certificates 1 and 2 would both be stored as example\.com/);
  });
});

describe('several CAs (api_uri as a list)', () => {
  const A = 'https://a.test/dir';
  const B = 'https://b.test/dir';

  test('one URL or a list read alike as a list, first = preferred', async () => {
    const { caDirectories, firstCa } = await import('../../src/config/ca-list.js');
    assert.deepEqual(caDirectories(parseConfig(`${BASE}api_uri: ${A}\n`)), [A]);
    const listed = parseConfig(`${BASE}api_uri: [${B}, ${A}]\n`);
    assert.deepEqual(caDirectories(listed), [B, A]);
    assert.equal(firstCa(listed), B);
  });

  test('an empty list is refused', () => {
    assertOneProblem(`${BASE}api_uri: []\n`, '[]', /at least one CA/);
  });

  test('a CA listed twice is refused at its second entry', () => {
    const text = `${BASE}api_uri:\n  - ${A}\n  - ${B}\n  - ${A}\n`;
    assertOneProblem(text, A, /listed twice/, 6);
  });

  test('an eab key that is not one of api_uri is refused at the key', () => {
    const text = `${BASE}api_uri: [${A}, ${B}]\neab:\n  "https://c.test/dir": { kid: k, hmac_key: c2VjcmV0 }\n`;
    // At the entry (its value, as every cross-key problem here is placed).
    assertOneProblem(text, '{ kid: k,', /eab\.https:\/\/c\.test\/dir: not one of the CAs in api_uri/);
  });

  test('eab_kid and an eab entry for the first CA together are refused', () => {
    const text = `${BASE}api_uri: [${A}, ${B}]\neab_kid: k1\neab_hmac_key: c2VjcmV0\neab:\n  "${A}": { kid: k2, hmac_key: c2VjcmV0 }\n`;
    assertOneProblem(text, '{ kid: k2', /given twice/);
  });

  test('each CA gets its binding: eab_kid for the first, the eab map for the others', async () => {
    const { configuredEab } = await import('../../src/config/ca-list.js');
    const config = parseConfig(`${BASE}api_uri: [${A}, ${B}]\neab_kid: k1\neab_hmac_key: c2VjcmV0\neab:\n  "${B}": { kid: k2, hmac_key: b3RoZXI }\n`);
    assert.deepEqual(configuredEab(config, A), { kid: 'k1', hmacKey: 'c2VjcmV0' });
    assert.deepEqual(configuredEab(config, B), { kid: 'k2', hmacKey: 'b3RoZXI' });
    const second = parseConfig(`${BASE}api_uri: [${B}, ${A}]\neab_kid: k1\neab_hmac_key: c2VjcmV0\n`);
    assert.equal(configuredEab(second, A), undefined, 'eab_kid belongs to the first CA only');
  });
});
