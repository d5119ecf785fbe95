// Scenario 3: a CA that behaves like a busy real one, behind a bad network.
// Pebble rejects half the nonces (PEBBLE_WFE_NONCEREJECT=50) and keeps its
// validation sleeps; in front of it a TCP chaos proxy drops and delays
// connections. Every `acmed issue` still succeeds, the requests it took are
// reported, and acmed does not spin: its CPU time (utime + stime from
// /proc/<pid>/stat) stays a small part of the wall time.
import { join } from 'node:path';
import { baseConfig } from '../harness/acmed.js';
import { liveProblems } from '../harness/fault-checks.js';
import { DaemonUnderTest, type FaultContext, type Scenario } from '../harness/fault-kit.js';
import { startOrderCountingProxy } from '../harness/fault-order-proxy.js';
import { startChaosProxy } from '../harness/chaos-proxy.js';
import { startPebble } from '../harness/pebble.js';
import { freePort } from '../harness/ports.js';

/**
 * CPU bound while certificates are issued, as a share of wall time. One
 * certificate costs acmed a P-256 key, a CSR, a few dozen JWS signatures
 * (ECDSA, ~0.1 ms each), a TLS handshake per connection (a few ms; the chaos
 * proxy makes many connections) and its debug log lines: well under 0.2 s of
 * CPU; Pebble's validation sleeps (0-5 s per authorization) and the proxy's
 * delays make the wall time seconds per certificate. So an honest client sits
 * near 1-5 %; 15 % leaves room for JIT and GC on a loaded 2-core machine,
 * while a busy retry or polling loop burns a whole core (100 %).
 */
const BUSY_SHARE = 0.15;
/** With nothing to do, a daemon's timers cost next to nothing; a spinning one burns a core. */
const IDLE_SHARE = 0.05;
const IDLE_WINDOW_MS = 5_000;

export const flakyCa: Scenario = {
  id: 'flaky-ca',
  title: 'Pebble with 50 % nonce rejection and validation sleeps behind a chaos proxy; no busy loop',
  budgetMs: { small: 180_000, full: 420_000 },
  async run(ctx: FaultContext) {
    const count = ctx.full ? 20 : 6;
    const dir = await ctx.tempDir('flaky');
    const dataDir = join(dir, 'data');
    const httpPort = await freePort();

    ctx.step('starting Pebble (nonce rejection 50 %, validation sleeps), the order-counting proxy and the chaos proxy');
    const pebble = await startPebble({ httpPort, noSleep: false, nonceReject: 50 });
    ctx.defer('stop Pebble', () => pebble.stop());
    const proxy = await startOrderCountingProxy(pebble);
    ctx.defer('close the order-counting proxy', () => proxy.close());
    const chaos = await startChaos(ctx, proxy.url);
    ctx.defer('close the chaos proxy', () => chaos.close());

    const names = Array.from({ length: count }, (_, i) => `flaky${i + 1}.example.com`);
    const config = baseConfig({ dir, directoryUrl: `${chaos.url}/dir`, caBundlePath: pebble.caBundlePath, httpPort });
    const daemon = new DaemonUnderTest(ctx, config, dir);
    ctx.step('starting acmed');
    await daemon.start();

    // One certificate first, not timed: it registers the account and warms
    // up the code paths (module loading, JIT), a one-off cost of every new
    // process that would otherwise be billed to the measured batch.
    ctx.step('warm-up: one certificate, not measured');
    const warmCpu = daemon.cpuSeconds();
    const warm = await daemon.cli(['issue', 'flaky0.example.com', '--json'], 150_000);
    if (warm.code !== 0) ctx.problem(`acmed issue flaky0.example.com (warm-up) failed (exit ${warm.code}): ${warm.stderr.trim()}\n${daemon.tail(10)}`);
    const warmUpCpu = daemon.cpuSeconds() - warmCpu;

    ctx.step(`acmed issue for ${count} names at once`);
    const cpuBefore = daemon.cpuSeconds();
    const wallBefore = Date.now();
    const results = await Promise.all(names.map((name) => daemon.cli(['issue', name, '--json'], 150_000)));
    const cpuBusy = daemon.cpuSeconds() - cpuBefore;
    const wallBusy = (Date.now() - wallBefore) / 1000;

    const requests: number[] = [];
    results.forEach((r, i) => {
      if (r.code !== 0) {
        ctx.problem(`acmed issue ${names[i]} ${r.timedOut ? 'hung for 150 s' : `failed (exit ${r.code})`}: ${r.stderr.trim()}\n${daemon.tail(10)}`);
        return;
      }
      try {
        const data = JSON.parse(r.stdout) as { requests?: number; issued?: boolean };
        if (typeof data.requests !== 'number') ctx.problem(`acmed issue ${names[i]} --json reports no "requests": ${r.stdout.slice(0, 200)}`);
        else requests.push(data.requests);
      } catch {
        ctx.problem(`acmed issue ${names[i]} --json printed something that is not JSON: ${r.stdout.slice(0, 200)}`);
      }
    });
    for (const name of names) {
      const problems = await liveProblems(dataDir, name);
      if (problems.length > 0) {
        ctx.lost++;
        ctx.problem(problems.join('; '));
      }
    }

    const busyShare = cpuBusy / wallBusy;
    ctx.expect(busyShare < BUSY_SHARE, `acmed used ${cpuBusy.toFixed(2)} s of CPU in ${wallBusy.toFixed(1)} s of issuing `
      + `(${(busyShare * 100).toFixed(0)} %, bound ${BUSY_SHARE * 100} %): a busy loop?\n${daemon.tail(10)}`);

    ctx.step(`idle for ${IDLE_WINDOW_MS / 1000} s`);
    const cpuIdleBefore = daemon.cpuSeconds();
    const idleStarted = Date.now();
    await ctx.sleep(IDLE_WINDOW_MS);
    const cpuIdle = daemon.cpuSeconds() - cpuIdleBefore;
    const idleShare = cpuIdle / ((Date.now() - idleStarted) / 1000);
    ctx.expect(idleShare < IDLE_SHARE, `idle acmed used ${(idleShare * 100).toFixed(1)} % CPU (bound ${IDLE_SHARE * 100} %): something spins`);

    const exit = await daemon.stop('SIGTERM');
    ctx.expect(exit === 0, `acmed exited ${exit} on SIGTERM after the run\n${daemon.tail()}`);

    ctx.orders = proxy.orders();
    const sorted = [...requests].sort((a, b) => a - b);
    const median = sorted.length > 0 ? sorted[Math.floor(sorted.length / 2)] : NaN;
    ctx.note(`CPU ${(busyShare * 100).toFixed(1)} % busy (${cpuBusy.toFixed(2)} s/${wallBusy.toFixed(0)} s), ${(idleShare * 100).toFixed(1)} % idle, warm-up ${warmUpCpu.toFixed(2)} s`);
    ctx.note(`${proxy.requests()} ACME requests, median ${median}/cert reported`);
    ctx.note(chaos.describe());
  },
};

/** A fifth of new connections reset mid-handshake; the rest joined after 100 ms; idle ones closed after 0.5 s. */
const DROP_FRACTION = 0.2;
const CONNECT_DELAY_MS = 100;
const IDLE_CLOSE_MS = 500;
/** Besides, every open connection is reset (mid-request for those in flight) now and then: every 2-5 s. */
const RESET_EVERY_MS: [number, number] = [2_000, 5_000];

interface Chaos {
  url: string;
  describe(): string;
  close(): Promise<void>;
}

/** The chaos proxy in front of the order-counting proxy (which is in front of Pebble). */
async function startChaos(ctx: FaultContext, target: string): Promise<Chaos> {
  const chaos = await startChaosProxy({
    target,
    drop: { fraction: DROP_FRACTION, seed: ctx.seed },
    dropMode: 'after-first-bytes',
    delayMs: CONNECT_DELAY_MS,
    idleCloseMs: IDLE_CLOSE_MS,
  });
  let resets = 0;
  let timer: NodeJS.Timeout | undefined;
  const schedule = () => {
    timer = setTimeout(() => {
      resets++;
      chaos.resetAll();
      schedule();
    }, ctx.rng.int(...RESET_EVERY_MS));
  };
  schedule();
  return {
    url: chaos.url,
    describe: () => {
      const s = chaos.stats();
      return `chaos: ${s.dropped}/${s.connections} conns dropped, ${s.idleClosed} idle-closed, ${resets} reset-alls`;
    },
    close: async () => {
      clearTimeout(timer);
      await chaos.close();
    },
  };
}
