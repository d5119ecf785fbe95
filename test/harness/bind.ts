// Starts a real BIND 9 (Debian's `named`) in the foreground on a free
// loopback port, with its own config, zones and working directory in a temp
// dir, so it neither needs nor disturbs a system named on port 53. Each zone
// takes RFC 2136 updates signed with the harness's TSIG key and nothing else.
//
// Checked against Debian 12's BIND 9.18: run as root without `-u`, named
// stays root (no chroot, no privilege drop) and writes its journals (*.jnl)
// into the temp dir; `controls {}` keeps it from opening an rndc port. With
// recursion off it does not follow a CNAME into another of its zones, so
// recursion is allowed from loopback (Pebble's resolver sets RD), as a CA's
// recursive resolver would follow the chain; it serves an empty root zone,
// so recursion never leaves the machine.

import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports.js';

const run = promisify(execFile);

export interface BindZone {
  /** e.g. "example.com" */
  name: string;
  /** Extra zone-file lines (owner names relative to the zone or absolute with a dot). */
  records?: string[];
}

export interface BindOptions {
  zones: BindZone[];
  /** TSIG algorithm of the update key; default hmac-sha256. */
  algorithm?: 'hmac-sha256' | 'hmac-sha384' | 'hmac-sha512';
}

export interface BindHandle {
  port: number;
  /** named's process id. */
  pid: number;
  /** "127.0.0.1:<port>" */
  address: string;
  keyName: string;
  algorithm: string;
  /** base64 secret of the update key */
  secret: string;
  /** The key as `tsig-keygen` prints it, in a file. */
  keyFilePath: string;
  dir: string;
  /** TXT strings at name (asked with dig, so through a client that is not acmed's). */
  txt(name: string): Promise<string[]>;
  /** dig +short answer lines for name and type. */
  dig(name: string, type: string): Promise<string[]>;
  logs(): string;
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
const dirs = new Set<string>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function zoneFile(zone: BindZone): string {
  return [
    '$TTL 60',
    `@ IN SOA ns1.${zone.name}. hostmaster.${zone.name}. 1 3600 600 86400 5`,
    `@ IN NS ns1.${zone.name}.`,
    'ns1 IN A 127.0.0.1',
    '@ IN A 127.0.0.1',
    '* IN A 127.0.0.1',
    ...(zone.records ?? []),
    '',
  ].join('\n');
}

export async function startBind(opts: BindOptions): Promise<BindHandle> {
  const dir = await mkdtemp(join(tmpdir(), 'acmed-bind-'));
  dirs.add(dir);
  const algorithm = opts.algorithm ?? 'hmac-sha256';
  const keyName = 'acmed-test';
  // tsig-keygen prints the key in named.conf syntax; acmed reads that same file.
  const { stdout: keyText } = await run('tsig-keygen', ['-a', algorithm, keyName]);
  const secret = /secret\s+"([^"]+)"/.exec(keyText)![1];
  const keyFilePath = join(dir, 'acmed-test.key');
  await writeFile(keyFilePath, keyText, { mode: 0o600 });
  const port = await freePort();
  const zones = opts.zones.map((z) => `zone "${z.name}" {
  type primary;
  file "${join(dir, `${z.name}.zone`)}";
  allow-update { key "${keyName}"; };
};`);
  const conf = `options {
  directory "${dir}";
  pid-file "${join(dir, 'named.pid')}";
  session-keyfile "${join(dir, 'session.key')}";
  managed-keys-directory "${dir}";
  listen-on port ${port} { 127.0.0.1; };
  listen-on-v6 { none; };
  // Recursion (for loopback only) so a CNAME into another zone served here is followed in one
  // answer, as a CA's recursive resolver follows it; names outside these zones are never asked.
  recursion yes;
  allow-recursion { 127.0.0.1; };
  notify no;
  dnssec-validation no;
  allow-transfer { none; };
};
controls { };
include "${keyFilePath}";
zone "." { type primary; file "${join(dir, 'root.zone')}"; };
${zones.join('\n')}
`;
  const confPath = join(dir, 'named.conf');
  await writeFile(confPath, conf);
  for (const z of opts.zones) await writeFile(join(dir, `${z.name}.zone`), zoneFile(z));
  // An empty root zone of its own: a name outside the test zones gets a quick NXDOMAIN instead of a recursion to the internet.
  await writeFile(join(dir, 'root.zone'), ['$TTL 60', '. IN SOA ns1.root-servers.test. hostmaster.root-servers.test. 1 3600 600 86400 5', '. IN NS ns1.root-servers.test.', 'ns1.root-servers.test. IN A 127.0.0.1', ''].join('\n'));

  let out = '';
  // -g: foreground, logs to stderr; no -u: stays the user that started it.
  const child = spawn('named', ['-g', '-c', confPath, '-p', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  child.once('exit', () => live.delete(child));
  child.stdout!.setEncoding('utf8').on('data', (s: string) => { out += s; });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => { out += s; });

  const dig = async (name: string, type: string): Promise<string[]> => {
    const { stdout } = await run('dig', ['@127.0.0.1', '-p', String(port), '+short', '+time=2', '+tries=1', name, type]);
    return stdout.split('\n').filter((l) => l.length > 0);
  };
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
        child.once('exit', () => { clearTimeout(timer); resolve(); });
        child.kill('SIGTERM');
      });
    }
    await rm(dir, { recursive: true, force: true });
    dirs.delete(dir);
  };

  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      await stop();
      throw new Error(`named exited early (${child.exitCode ?? child.signalCode}):\n${out}`);
    }
    if (out.includes('running') && (await dig(opts.zones[0].name, 'SOA').catch(() => [])).length > 0) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`named not ready after 15s:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  return {
    port,
    pid: child.pid!,
    address: `127.0.0.1:${port}`,
    keyName,
    algorithm,
    secret,
    keyFilePath,
    dir,
    dig,
    txt: async (name) => (await dig(name, 'TXT')).map((line) => line.replace(/^"|"$/g, '')),
    logs: () => out,
    stop,
  };
}
