// Scenario 6: file storage on a small tmpfs that turns read-only (a remount),
// then full (a filler file up to ENOSPC), then writable again. While it is
// broken, `acmed issue` fails with one clear line and /healthz says 503;
// nothing partial is left (every archive version has its four PEMs, no empty
// lock or record wedges a name); what was already issued stays readable and
// is not ordered again; and every certificate asked for during the trouble
// is issued by itself once the store is writable (no CLI call after it).
// One order is in flight when the store turns read-only (Pebble's answer to
// its finalize is held back until the remount): the certificate the store
// refuses is held in spool_dir, outside the tmpfs, and written afterwards
// without a second order.
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { baseConfig } from '../harness/acmed.js';
import { liveProblems, partialWrites, tempFiles } from '../harness/fault-checks.js';
import { DaemonUnderTest, type CliResult, type FaultContext, type Scenario } from '../harness/fault-kit.js';
import { startOrderCountingProxy } from '../harness/fault-order-proxy.js';
import { canMount, mountTmpfs } from '../harness/tmpfs.js';
import { startPebble } from '../harness/pebble.js';
import { freePort } from '../harness/ports.js';

/**
 * acmed reports a store with less than min_free_mb free as unhealthy (a
 * default of tens of MiB), so the tmpfs is larger than that when healthy;
 * still small enough (RAM) to fill in a fraction of a second.
 */
const TMPFS_KB = 128 * 1024;
/** Pebble 2.4's finalize URLs; its answer is held back this long while the store turns read-only. */
const FINALIZE_PATH = '/finalize-order/';
const FINALIZE_HOLD_MS = 1_500;
/** A clear refusal names the store's trouble, not a stack trace or a bare code. */
const CLEAR_STORAGE_ERROR = /read-only|readonly|EROFS|no space|ENOSPC|full|storage|not writable|cannot write/i;

export const storageTrouble: Scenario = {
  id: 'storage-trouble',
  title: 'file storage on a tmpfs turned read-only, then full, then writable again',
  budgetMs: { small: 75_000, full: 240_000 },
  async run(ctx: FaultContext) {
    if (!canMount()) ctx.fail('needs root to mount a tmpfs (run the fault suite as root, as CI does)');
    const perPhase = ctx.full ? 3 : 1;
    const dir = await ctx.tempDir('storage');
    const dataDir = join(dir, 'data');
    const spoolDir = join(dir, 'spool');
    await mkdir(dataDir);
    const httpPort = await freePort();

    ctx.step(`mounting a ${TMPFS_KB / 1024} MiB tmpfs for the data dir`);
    const fs = await mountTmpfs(dataDir, TMPFS_KB);
    ctx.defer(`unmount ${dataDir}`, () => fs.unmount());

    ctx.step('starting Pebble and the order-counting proxy');
    const pebble = await startPebble({ httpPort });
    ctx.defer('stop Pebble', () => pebble.stop());
    const proxy = await startOrderCountingProxy(pebble);
    ctx.defer('close the proxy', () => proxy.close());
    ctx.countOrdersWith(() => proxy.orders());

    const before = ['st-before1.example.com', 'st-before2.example.com'];
    const inflight = 'st-inflight.example.com';
    const readOnlyNames = Array.from({ length: perPhase }, (_, i) => `st-ro${i + 1}.example.com`);
    const fullNames = Array.from({ length: perPhase }, (_, i) => `st-full${i + 1}.example.com`);
    const config = {
      ...baseConfig({ dir, directoryUrl: proxy.directoryUrl, caBundlePath: pebble.caBundlePath, httpPort }),
      certificates: before.map((name) => ({ names: [name] })),
      spool_dir: spoolDir,
    };
    const daemon = new DaemonUnderTest(ctx, config, dir);
    ctx.step('starting acmed; the configured certificates are issued');
    await daemon.start();
    await ctx.waitFor('the certificates configured before the trouble', async () => {
      for (const name of before) if ((await liveProblems(dataDir, name)).length > 0) return false;
      return true;
    }, { timeoutMs: 30_000, intervalMs: 200, context: () => daemon.tail() });
    await ctx.waitFor('/healthz 200 before the trouble', async () => (await daemon.health()) === 200,
      { timeoutMs: 10_000, intervalMs: 250, context: () => daemon.tail() });

    const refusals: string[] = [];
    /** While the store is broken: `acmed issue` fails with one clear line, /healthz goes 503, the old certificates stay readable. */
    const whileBroken = async (phase: string, names: string[]) => {
      const results = await Promise.all(names.map((name) => daemon.cli(['issue', name], 20_000)));
      results.forEach((r: CliResult, i) => {
        const line = r.stderr.trim();
        refusals.push(line);
        if (r.timedOut) ctx.problem(`${phase}: acmed issue ${names[i]} hung for 20 s`);
        else if (r.code === 0) ctx.problem(`${phase}: acmed issue ${names[i]} succeeded on a ${phase} store: ${r.stdout.trim()}`);
        else if (!CLEAR_STORAGE_ERROR.test(line) || line.split('\n').length > 1) {
          ctx.problem(`${phase}: acmed issue ${names[i]} failed without a clear storage error (exit ${r.code}): ${JSON.stringify(line)}`);
        }
      });
      await ctx.waitFor(`/healthz 503 while the store is ${phase}`, async () => (await daemon.health()) === 503,
        { timeoutMs: 10_000, intervalMs: 250, context: () => daemon.tail() }).catch((err: Error) => ctx.problem(err.message));
      for (const name of before) {
        const problems = await liveProblems(dataDir, name);
        ctx.expect(problems.length === 0, `${phase}: a certificate issued before the trouble is not readable: ${problems.join('; ')}`);
      }
      ctx.expect(daemon.running, `acmed is not running while the store is ${phase}`);
    };

    ctx.step(`store read-only while the order for ${inflight} is being finalized`);
    const finalizes = proxy.seen(FINALIZE_PATH);
    proxy.hold(FINALIZE_PATH, FINALIZE_HOLD_MS);
    const inflightIssue = daemon.cli(['issue', inflight], 30_000);
    await ctx.waitFor(`the finalize request of ${inflight}`, () => proxy.seen(FINALIZE_PATH) > finalizes,
      { timeoutMs: 20_000, intervalMs: 20, context: () => daemon.tail() });
    await fs.readOnly();
    proxy.hold(FINALIZE_PATH, 0);
    const held = await inflightIssue;
    const heldLine = held.stderr.trim();
    if (held.timedOut) ctx.problem(`acmed issue ${inflight} (in flight when the store turned read-only) hung for 30 s`);
    else if (held.code === 0) ctx.problem(`acmed issue ${inflight} reported success though the store was read-only: ${held.stdout.trim()}`);
    else ctx.expect(CLEAR_STORAGE_ERROR.test(heldLine) && heldLine.split('\n').length === 1,
      `acmed issue ${inflight} (in flight when the store turned read-only) failed without a clear storage error (exit ${held.code}): ${JSON.stringify(heldLine)}`);
    await whileBroken('read-only', readOnlyNames);

    ctx.step('store writable but full');
    const filled = await fs.writableButFull();
    ctx.log(`filler: ${filled} bytes`);
    await whileBroken('full', fullNames);

    ctx.step('store writable again (filler removed); no more CLI calls');
    await fs.unfill();
    const requested = [inflight, ...readOnlyNames, ...fullNames];
    let missing: string[] = requested;
    let spoolListing = '';
    await ctx.waitFor('the certificates requested during the trouble, issued by acmed itself', async () => {
      spoolListing = (await readdir(spoolDir).catch(() => ['(no spool_dir)'])).join(', ') || '(empty)';
      const next: string[] = [];
      for (const name of requested) if ((await liveProblems(dataDir, name)).length > 0) next.push(name);
      missing = next;
      return missing.length === 0;
    }, {
      timeoutMs: ctx.full ? 120_000 : 40_000,
      intervalMs: 500,
      context: () => `missing: ${missing.join(', ')}; spool_dir holds: ${spoolListing}\n${daemon.tail()}`,
    }).catch((err: Error) => ctx.problem(err.message));
    await ctx.waitFor('/healthz 200 once the store is writable', async () => (await daemon.health()) === 200,
      { timeoutMs: 15_000, intervalMs: 500, context: () => daemon.tail() }).catch((err: Error) => ctx.problem(err.message));

    ctx.step('checking the store');
    ctx.lost = 0; // counted from here on
    for (const name of [...before, ...requested]) {
      const problems = await liveProblems(dataDir, name);
      if (problems.length > 0) {
        ctx.lose();
        ctx.problem(problems.join('; '));
      }
    }
    // Locks of finished jobs are gone once the daemon is idle.
    const locks = async () => (await readdir(join(dataDir, 'state', 'locks')).catch(() => [] as string[])).filter((l) => !l.startsWith('.') && l !== 'account');
    await ctx.waitFor('no certificate lock left in state/locks', async () => (await locks()).length === 0,
      { timeoutMs: 10_000, intervalMs: 250 }).catch(async () => ctx.problem(`locks left after the trouble: ${(await locks()).join(', ')}`));
    const exit = await daemon.stop('SIGTERM');
    ctx.expect(exit === 0, `acmed exited ${exit} on SIGTERM after the run\n${daemon.tail()}`);
    const partial = await partialWrites(dataDir);
    ctx.expect(partial.length === 0, `partial writes left: ${partial.join('; ')}`);
    const temps = await tempFiles(dataDir);
    ctx.expect(temps.length === 0, `temp files left: ${temps.join(', ')}`);
    for (const name of before) {
      ctx.expect(proxy.ordersFor(name) === 1, `${name}, issued before the trouble, was ordered ${proxy.ordersFor(name)} times`);
    }
    ctx.expect(proxy.ordersFor(inflight) === 1, `${inflight}, issued by the CA while the store was read-only, was ordered `
      + `${proxy.ordersFor(inflight)} times: the certificate the store refused was not kept (spool_dir) and written later`);
    const duringOrders = requested.map((n) => proxy.ordersFor(n));
    ctx.note(`orders for names requested during trouble: ${duringOrders.join('/')}`);
    if (refusals.length > 0) ctx.note(`refusal: "${refusals[0].slice(0, 70)}"`);
  },
};
