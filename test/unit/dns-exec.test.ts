// The exec provider with real scripts: lego's argv convention, hostile-looking
// values passed as data (no shell), failures with the hook's output, and a
// timeout that kills the hook's whole process group.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DnsHookError, ExecProvider } from '../../src/challenge/dns-exec.js';

/** Running, as opposed to gone or a zombie waiting for a parent (in a container, pid 1 may never reap it). */
async function running(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  return stat !== null && !/^\d+ \(.*\) Z/.test(stat);
}

let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'acmed-dns-exec-'));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function script(name: string, body: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, `#!/bin/sh\n${body}\n`);
  await chmod(path, 0o755);
  return path;
}

const record = { fqdn: '_acme-challenge.example.com', zone: 'example.com', value: 'abc_DEF-123' };

test('present and cleanup get the action, the record name with its dot and the value, one argv each', async () => {
  const log = join(dir, 'args.log');
  const hook = await script('args.sh', `for a in "$@"; do printf '[%s]' "$a" >> ${log}; done; echo "zone=$ACMED_DNS_ZONE" >> ${log}`);
  const provider = new ExecProvider({ command: hook, timeout_seconds: 10 });
  await provider.present(record);
  await provider.cleanup(record);
  // A value a shell would expand stays one literal argument.
  const marker = join(dir, 'injected');
  await provider.present({ ...record, value: `$(touch ${marker}); \`touch ${marker}\`` });
  assert.equal(await readFile(log, 'utf8'), [
    '[present][_acme-challenge.example.com.][abc_DEF-123]zone=example.com',
    '[cleanup][_acme-challenge.example.com.][abc_DEF-123]zone=example.com',
    `[present][_acme-challenge.example.com.][$(touch ${marker}); \`touch ${marker}\`]zone=example.com`,
    '',
  ].join('\n'));
  assert.ok(!existsSync(marker), 'nothing ran through a shell');
});

test('a failing hook is an error with its exit status and output', async () => {
  const hook = await script('fail.sh', 'echo "api said no: 403" >&2; exit 3');
  await assert.rejects(new ExecProvider({ command: hook, timeout_seconds: 10 }).present(record), (err: Error) => {
    assert.ok(err instanceof DnsHookError);
    assert.equal(err.message, `dns.exec.command ${hook} present _acme-challenge.example.com. exited with 3: api said no: 403`);
    return true;
  });
  await assert.rejects(new ExecProvider({ command: join(dir, 'absent'), timeout_seconds: 10 }).cleanup(record), /cannot run dns\.exec\.command .*absent: spawn .* ENOENT/);
});

test('a hook that outlives its timeout is killed with its whole process group', async () => {
  const pids = join(dir, 'pids');
  // The hook starts a child of its own, as a script calling an API client would, and both hang.
  const hook = await script('hang.sh', `sleep 300 & echo $! > ${pids}; echo $$ >> ${pids}; wait`);
  const started = Date.now();
  await assert.rejects(new ExecProvider({ command: hook, timeout_seconds: 0.5 }).present(record),
    /dns\.exec\.command .*hang\.sh present _acme-challenge\.example\.com\. did not finish within 0\.5 s and was killed/);
  assert.ok(Date.now() - started < 5_000);
  const [child, shell] = (await readFile(pids, 'utf8')).trim().split('\n').map(Number);
  // SIGKILL is delivered at once; the kernel needs a moment to finish the processes off.
  for (let i = 0; i < 50 && ((await running(child)) || (await running(shell))); i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(await running(child), false, 'the hook\'s child was killed');
  assert.equal(await running(shell), false, 'the hook was killed');
});
