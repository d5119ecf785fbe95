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
 * The busy bound: acmed's CPU time while the batch is issued, as a share of
 * the wall time. Measured on the 2-core CI machine (6 certificates at once
 * after a warm-up certificate): an order costs acmed about 0.12 s of CPU
 * (key, CSR, JWS signatures, TLS handshakes, debug logging), 0.2-0.3 s here
 * with the retries that nonce rejection and dropped connections cause, so
 * an honest daemon sits at 16-34 % of the wall time, the rest being Pebble's
 * validation sleeps that six concurrent orders share. A busy loop of any
 * kind (a poll or retry without a wait, a spin on the event loop) keeps one
 * core at 100 % for as long as it lasts. 50 % sits between the two with room
 * for a slower machine.
 */
const BUSY_SHARE = 0.5;
/**
 * A request storm shows in the counts before the CPU: an order is ~7-9
 * requests, doubled by 50 % nonce rejection, plus order polls during
 * Pebble's validation sleep (backing off x1.6 up to 5 s) and retries of
 * dropped connections; measured median ~40. Three times that is a storm.
 */
const REQUESTS_PER_CERT = 120;
/** With nothing to do, a daemon's timers cost next to nothing; a spinning one burns a core. */
const IDLE_SHARE = 0.05;
const IDLE_WINDOW_MS = 5_000;

export const flakyCa: Scenario = {
  id: 'flaky-ca',
  title: 'Pebble with 50 % nonce rejection and validation sleeps behind a chaos proxy; no busy loop',
  budgetMs: { small: 80_000, full: 300_000 },
  async run(ctx: FaultContext) {
    const count = ctx.full ? 20 : 6;
    const cliTimeout = ctx.full ? 150_000 : 45_000;
    const dir = await ctx.tempDir('flaky');
    const dataDir = join(dir, 'data');
    const httpPort = await freePort();

    ctx.step('starting Pebble (nonce rejection 50 %, validation sleeps), the order-counting proxy and the chaos proxy');
    const pebble = await startPebble({ httpPort, noSleep: false, nonceReject: 50 });
    ctx.defer('stop Pebble', () => pebble.stop());
    const proxy = await startOrderCountingProxy(pebble);
    ctx.defer('close the order-counting proxy', () => proxy.close());
    ctx.countOrdersWith(() => proxy.orders());
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
    const warm = await daemon.cli(['issue', 'flaky0.example.com', '--json'], cliTimeout);
    if (warm.code !== 0) ctx.problem(`acmed issue flaky0.example.com (warm-up) failed (exit ${warm.code}): ${warm.stderr.trim()}\n${daemon.tail(10)}`);
    const warmUpCpu = daemon.cpuSeconds() - warmCpu;

    ctx.step(`acmed issue for ${count} names at once`);
    const cpuBefore = daemon.cpuSeconds();
    const wallBefore = Date.now();
    const results = await Promise.all(names.map((name) => daemon.cli(['issue', name, '--json'], cliTimeout)));
    const cpuBusy = daemon.cpuSeconds() - cpuBefore;
    const wallBusy = (Date.now() - wallBefore) / 1000;

    const requests: number[] = [];
    results.forEach((r, i) => {
      if (r.code !== 0) {
        ctx.problem(`acmed issue ${names[i]} ${r.timedOut ? `hung for ${cliTimeout / 1000} s` : `failed (exit ${r.code})`}: ${r.stderr.trim()}\n${daemon.tail(10)}`);
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
    ctx.lost = 0; // counted from here on
    for (const name of names) {
      const problems = await liveProblems(dataDir, name);
      if (problems.length > 0) {
        ctx.lose();
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

    const storms = requests.filter((r) => r > REQUESTS_PER_CERT);
    ctx.expect(storms.length === 0, `acmed issue reported ${storms.join(', ')} requests for one certificate (bound ${REQUESTS_PER_CERT}): a request storm?`);
    const perCert = proxy.requests() / (count + 1);
    ctx.expect(perCert <= REQUESTS_PER_CERT, `${proxy.requests()} ACME requests reached the CA for ${count + 1} certificates (bound ${REQUESTS_PER_CERT} each): a request storm?`);

    const exit = await daemon.stop('SIGTERM');
    ctx.expect(exit === 0, `acmed exited ${exit} on SIGTERM after the run\n${daemon.tail()}`);

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
