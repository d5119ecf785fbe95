// Starts Debian's Pebble 2.4 plus pebble-challtestsrv (as Pebble's DNS) on
// loopback free ports, for end-to-end tests and benchmarks.
//
// Request logging (checked against Debian's Pebble 2.4): Pebble's stdout has
// one line per ACME request that reaches a handler, with the method and the
// route *pattern*, not the full path, e.g.
//   "Pebble 2026/11/23 15:40:24 POST /authZ/ -> calling handler()"
// Requests to unknown paths (404), with a wrong method (405) and management
// API calls are not logged, and the harness's own readiness poll adds one or
// more "GET /dir" lines. So the log gives rough totals; use counting-proxy.ts
// for exact per-client, per-path counts.
// Also: each http-01 validation makes 3 HTTP fetches ("Starting 3 validations").
//
// kill() and start() stop and restart Pebble alone, on the same ports with the
// same config (challtestsrv keeps running). Pebble keeps everything in memory,
// so a restarted Pebble has forgotten every account, order and nonce and has
// a new issuing root, as a CA whose database was reset would.

import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports.js';

const run = promisify(execFile);

export interface PebbleOptions {
  /** The http-01 port Pebble validates against. */
  httpPort: number;
  /** Default true: sets PEBBLE_VA_NOSLEEP=1. */
  noSleep?: boolean;
  /** PEBBLE_WFE_NONCEREJECT; unset keeps Pebble's default (5%). */
  nonceReject?: number;
  /** Extra environment, e.g. { PEBBLE_AUTHZREUSE: '100' }. */
  env?: Record<string, string>;
  /** kid -> base64url HMAC key; turns on externalAccountBindingRequired. */
  eab?: Record<string, string>;
  /** Lifetime of issued certificates (Pebble 2.4's `certificateValidityPeriod`); unset keeps Pebble's 5 years. */
  validitySeconds?: number;
  /** "host:port" of the DNS server Pebble resolves with (dns-01 tests: a real BIND); unset: pebble-challtestsrv. */
  dnsServer?: string;
}

export interface TestCa {
  certPath: string;
  keyPath: string;
  certPem: string;
}

export interface ServerCert {
  cert: string;
  key: string;
  certPath: string;
  keyPath: string;
}

export interface PebbleHandle {
  directoryUrl: string;
  /** PEM of the throwaway CA that signed Pebble's HTTPS cert. */
  caBundlePath: string;
  ca: TestCa;
  managementUrl: string;
  /** Base URL of Pebble's ACME listener, e.g. https://127.0.0.1:14000 */
  acmeUrl: string;
  /** pebble-challtestsrv's DNS server ("127.0.0.1:<port>"), Pebble's resolver: acmed's preflight_resolver in tests. */
  dnsServer: string;
  /** A cert for localhost/127.0.0.1 signed by the same CA (for proxies). */
  issueServerCert(name?: string): Promise<ServerCert>;
  /** Pebble's root `index` (0 unless PEBBLE_ALTERNATE_ROOTS adds more). */
  rootPem(index?: number): Promise<string>;
  intermediatePem(): Promise<string>;
  certStatusBySerial(hexSerial: string): Promise<any>;
  /** Adds A answers for host; pebble-challtestsrv appends them to the ones it already has. */
  addA(host: string, addresses: string[]): Promise<void>;
  /** Forgets host's A answers (back to the default, 127.0.0.1); clearA then addA replaces them. */
  clearA(host: string): Promise<void>;
  /** Pebble's output since the first start, across kill()/start(). */
  logs(): string;
  /**
   * Orders Pebble created: "Added order" is logged once per order stored
   * (its "POST /order-plz" line repeats when a nonce is rejected and resent).
   */
  ordersAdded(): number;
  /** Stops Pebble only; the temp dir, config, ports and challtestsrv stay, for start(). */
  kill(): Promise<void>;
  /**
   * Starts Pebble again on the same ports and waits until it serves its
   * directory. It comes back empty: no accounts, orders or nonces, a new root.
   */
  start(): Promise<void>;
  stop(): Promise<void>;
}

// If the test process ends without stop() (crash, process.exit, SIGTERM from
// node --test on timeout), kill the children and remove the temp dirs.
const live = new Set<ChildProcess>();
const dirs = new Set<string>();
let hooksInstalled = false;
function cleanupNow(): void {
  for (const c of live) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}
function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', cleanupNow);
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    // Re-raise after cleanup so the default signal behaviour still applies.
    process.once(sig, () => { cleanupNow(); process.kill(process.pid, sig); });
  }
}
function track(child: ChildProcess): void {
  installHooks();
  live.add(child);
  child.once('exit', () => live.delete(child));
}

/** A throwaway CA valid for 2 days. Extensions satisfy strict verifiers (Go, Python). */
export async function createTestCa(dir: string): Promise<TestCa> {
  const keyPath = join(dir, 'ca.key');
  const certPath = join(dir, 'ca.pem');
  await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', '/CN=acmed test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-addext', 'subjectKeyIdentifier=hash',
  ]);
  return { certPath, keyPath, certPem: await readFile(certPath, 'utf8') };
}

/** A TLS server cert for localhost + 127.0.0.1 signed by `ca` (extendedKeyUsage "serverAuth,clientAuth" makes a client cert too). */
export async function issueServerCert(ca: TestCa, dir: string, name = 'server', extendedKeyUsage = 'serverAuth'): Promise<ServerCert> {
  const keyPath = join(dir, `${name}.key`);
  const csrPath = join(dir, `${name}.csr`);
  const certPath = join(dir, `${name}.pem`);
  const extPath = join(dir, `${name}.ext`);
  await writeFile(extPath, [
    'subjectAltName=DNS:localhost,IP:127.0.0.1',
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature',
    `extendedKeyUsage=${extendedKeyUsage}`,
    'authorityKeyIdentifier=keyid',
    '',
  ].join('\n'));
  await run('openssl', [
    'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', keyPath, '-out', csrPath, '-subj', '/CN=localhost',
  ]);
  await run('openssl', [
    'x509', '-req', '-in', csrPath, '-CA', ca.certPath, '-CAkey', ca.keyPath,
    '-set_serial', `0x${Date.now().toString(16)}${Math.floor(Math.random() * 1e6).toString(16)}`,
    '-days', '2', '-extfile', extPath, '-out', certPath,
  ]);
  return {
    cert: await readFile(certPath, 'utf8'),
    key: await readFile(keyPath, 'utf8'),
    certPath,
    keyPath,
  };
}

interface HttpResult { status: number; body: string }

function fetchText(url: string, ca: string, method = 'GET', body?: string): Promise<HttpResult> {
  const u = new URL(url);
  const send = u.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(u, { method, ca, agent: false, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout: ${url}`)));
    req.on('error', reject);
    req.end(body);
  });
}

async function expectOk(p: Promise<HttpResult>, what: string): Promise<string> {
  const r = await p;
  if (r.status < 200 || r.status >= 300) throw new Error(`${what}: HTTP ${r.status}: ${r.body}`);
  return r.body;
}

async function waitFor(what: string, probe: () => Promise<boolean>, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${what} exited early (${child.exitCode ?? child.signalCode}):\n${output()}`);
    }
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what} not ready after 15s:\n${output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function startChild(cmd: string, args: string[], env: NodeJS.ProcessEnv): { child: ChildProcess; output: () => string } {
  let out = '';
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  track(child);
  child.stdout?.setEncoding('utf8').on('data', (s: string) => { out += s; });
  child.stderr?.setEncoding('utf8').on('data', (s: string) => { out += s; });
  return { child, output: () => out };
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    child.once('exit', () => { clearTimeout(timer); resolve(); });
    child.kill('SIGTERM');
  });
}

export async function startPebble(opts: PebbleOptions): Promise<PebbleHandle> {
  const dir = await mkdtemp(join(tmpdir(), 'acmed-pebble-'));
  installHooks();
  dirs.add(dir);
  const children: ChildProcess[] = [];
  const cleanup = async (): Promise<void> => {
    await Promise.all(children.map(stopChild));
    await rm(dir, { recursive: true, force: true });
    dirs.delete(dir);
  };
  try {
    const ca = await createTestCa(dir);
    const tlsCert = await issueServerCert(ca, dir, 'pebble-tls');
    const [acmePort, mgmtPort, tlsPort, dnsPort, dnsMgmtPort] = await distinctPorts(5);

    const pebbleConfig = {
      pebble: {
        listenAddress: `127.0.0.1:${acmePort}`,
        managementListenAddress: `127.0.0.1:${mgmtPort}`,
        certificate: tlsCert.certPath,
        privateKey: tlsCert.keyPath,
        httpPort: opts.httpPort,
        tlsPort,
        ocspResponderURL: '',
        externalAccountBindingRequired: opts.eab !== undefined,
        ...(opts.eab ? { externalAccountMACKeys: opts.eab } : {}),
        ...(opts.validitySeconds !== undefined ? { certificateValidityPeriod: opts.validitySeconds } : {}),
      },
    };
    const configPath = join(dir, 'pebble-config.json');
    await writeFile(configPath, JSON.stringify(pebbleConfig, null, 2));

    // Only the DNS server and management API: every A query answers 127.0.0.1
    // and AAAA answers nothing, so Pebble never dials ::1 instead.
    const dns = startChild('pebble-challtestsrv', [
      '-dns01', `127.0.0.1:${dnsPort}`,
      '-management', `127.0.0.1:${dnsMgmtPort}`,
      '-http01', '', '-https01', '', '-tlsalpn01', '',
      '-defaultIPv4', '127.0.0.1', '-defaultIPv6', '',
    ], process.env);
    children.push(dns.child);
    const dnsMgmtUrl = `http://127.0.0.1:${dnsMgmtPort}`;
    // Any HTTP answer (404 on "/") means the management listener is up.
    await waitFor('pebble-challtestsrv', async () => (await fetchText(dnsMgmtUrl, '')).status > 0, dns.child, dns.output);

    const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
    if (opts.noSleep ?? true) env.PEBBLE_VA_NOSLEEP = '1';
    else delete env.PEBBLE_VA_NOSLEEP;
    if (opts.nonceReject !== undefined) env.PEBBLE_WFE_NONCEREJECT = String(opts.nonceReject);
    const acmeUrl = `https://127.0.0.1:${acmePort}`;
    const directoryUrl = `${acmeUrl}/dir`;
    const managementUrl = `https://127.0.0.1:${mgmtPort}`;
    // Output of earlier runs, so logs() still counts requests made before a kill().
    let earlierOutput = '';
    let pebble: { child: ChildProcess; output: () => string } | undefined;
    const startPebbleChild = async (): Promise<void> => {
      const started = startChild('pebble', ['-config', configPath, '-dnsserver', opts.dnsServer ?? `127.0.0.1:${dnsPort}`], env);
      pebble = started;
      children.push(started.child);
      await waitFor('pebble', async () => (await fetchText(directoryUrl, ca.certPem)).status === 200, started.child, started.output);
    };
    const killPebbleChild = async (): Promise<void> => {
      if (!pebble) return;
      const { child, output } = pebble;
      pebble = undefined;
      await stopChild(child);
      children.splice(children.indexOf(child), 1);
      earlierOutput += output();
    };
    await startPebbleChild();

    const mgmtGet = (path: string) => expectOk(fetchText(managementUrl + path, ca.certPem), `GET ${path}`);
    let certCount = 0;
    return {
      directoryUrl,
      caBundlePath: ca.certPath,
      ca,
      managementUrl,
      acmeUrl,
      dnsServer: `127.0.0.1:${dnsPort}`,
      issueServerCert: (name) => issueServerCert(ca, dir, name ?? `extra-${++certCount}`),
      rootPem: (index = 0) => mgmtGet(`/roots/${index}`),
      intermediatePem: () => mgmtGet('/intermediates/0'),
      certStatusBySerial: async (hex) => JSON.parse(await mgmtGet(`/cert-status-by-serial/${hex.toLowerCase()}`)),
      addA: async (host, addresses) => {
        await expectOk(fetchText(`${dnsMgmtUrl}/add-a`, '', 'POST', JSON.stringify({ host, addresses })), 'add-a');
      },
      clearA: async (host) => {
        await expectOk(fetchText(`${dnsMgmtUrl}/clear-a`, '', 'POST', JSON.stringify({ host })), 'clear-a');
      },
      logs: () => earlierOutput + (pebble?.output() ?? ''),
      ordersAdded: () => (earlierOutput + (pebble?.output() ?? '')).split('\n').filter((line) => line.includes('Added order "')).length,
      kill: killPebbleChild,
      start: async () => {
        if (pebble) throw new Error('pebble is already running; kill() it first');
        await startPebbleChild();
      },
      stop: cleanup,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

// freePort can hand out the same port twice if called back to back after close.
async function distinctPorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}
