// Scenario 5: short-lived certificates for real (Pebble's
// certificateValidityPeriod): 60-second certificates for 150 s (full: 90 s
// for 5 minutes), with one SIGTERM restart and one SIGKILL restart of acmed
// in between. Sampled every second, live/<name>/cert.pem is never expired,
// and `acmed show <name> --json` always has a renew_at for a stored
// certificate. A renewal storm (renewing far more often than the lifetime
// asks) fails too.
import { join } from 'node:path';
import { baseConfig } from '../harness/acmed.js';
import { notAfterMs, readLive } from '../harness/fault-checks.js';
import { DaemonUnderTest, type FaultContext, type Scenario } from '../harness/fault-kit.js';
import { startOrderCountingProxy } from '../harness/fault-order-proxy.js';
import { startPebble } from '../harness/pebble.js';
import { freePort } from '../harness/ports.js';

/**
 * A sample may be read up to this long after the moment it stands for (the
 * file read and the loop's own jitter), and notAfter has whole seconds.
 */
const SLACK_MS = 1_000;

export const shortLived: Scenario = {
  id: 'short-lived',
  title: 'short-lived certificates never expire on disk across a SIGTERM and a SIGKILL restart',
  budgetMs: { small: 195_000, full: 360_000 },
  async run(ctx: FaultContext) {
    const lifetimeS = ctx.full ? 90 : 60;
    const durationMs = ctx.full ? 300_000 : 150_000;
    const dir = await ctx.tempDir('short');
    const dataDir = join(dir, 'data');
    const httpPort = await freePort();

    ctx.step(`starting Pebble (${lifetimeS}-second certificates) and the order-counting proxy`);
    const pebble = await startPebble({ httpPort, validitySeconds: lifetimeS });
    ctx.defer('stop Pebble', () => pebble.stop());
    const proxy = await startOrderCountingProxy(pebble);
    ctx.defer('close the proxy', () => proxy.close());
    ctx.countOrdersWith(() => proxy.orders());

    const names = ['short1.example.com', 'short2.example.com', 'short3.example.com'];
    const config = {
      ...baseConfig({ dir, directoryUrl: proxy.directoryUrl, caBundlePath: pebble.caBundlePath, httpPort }),
      certificates: names.map((name) => ({ names: [name] })),
    };
    const daemon = new DaemonUnderTest(ctx, config, dir);
    ctx.step('starting acmed');
    await daemon.start();
    await ctx.waitFor('the first certificates', async () => {
      for (const name of names) if (!(await readLive(dataDir, name))?.cert) return false;
      return true;
    }, { timeoutMs: 30_000, intervalMs: 100, context: () => daemon.tail() });
    const first = await readLive(dataDir, names[0]);
    const lifetimeSeen = Math.round((notAfterMs(first!.cert!) - Date.now()) / 1000);
    ctx.expect(lifetimeSeen <= lifetimeS + 2, `Pebble issued a ${lifetimeSeen}-second certificate, not ${lifetimeS} s: is validitySeconds honoured?`);

    // The two restarts, at about a third and two thirds of the run (seeded jitter).
    const started = Date.now();
    const restarts = [
      { at: durationMs / 3 + ctx.rng.between(-0.1, 0.1) * durationMs, signal: 'SIGTERM' as const, done: false },
      { at: (2 * durationMs) / 3 + ctx.rng.between(-0.1, 0.1) * durationMs, signal: 'SIGKILL' as const, done: false },
    ];

    let samples = 0;
    let shows = 0;
    let minMarginMs = Infinity;
    const lapsed = new Set<string>();
    const lapsing = new Set<string>();
    /** The notAfter of every certificate seen per name: one per version. */
    const versionsSeen = new Map<string, Set<number>>(names.map((n) => [n, new Set<number>()]));
    let restarting = false;
    let showsRunning: Promise<void> | undefined;

    const showAll = async () => {
      await Promise.all(names.map(async (name) => {
        const show = await daemon.cli(['show', name, '--json'], 10_000);
        if (restarting || !daemon.running) return; // the daemon went away under the call: not its fault
        shows++;
        if (show.code !== 0) {
          ctx.problem(`acmed show ${name} --json failed (exit ${show.code}): ${show.stderr.trim()}`);
          return;
        }
        let row: { not_after: string | null; renew_at: string | null };
        try {
          row = JSON.parse(show.stdout) as typeof row;
        } catch {
          ctx.problem(`acmed show ${name} --json printed something that is not JSON: ${show.stdout.slice(0, 200)}`);
          return;
        }
        if (row.not_after !== null && !row.renew_at) {
          ctx.problem(`acmed show ${name} --json has no renew_at for a stored certificate (not_after ${row.not_after}, ${ctx.elapsed()} s)`);
        }
      }));
    };

    ctx.step(`sampling live/*/cert.pem every second for ${durationMs / 1000} s`);
    ctx.lost = 0;
    while (Date.now() - started < durationMs) {
      const tick = Date.now();
      for (const name of names) {
        const cert = (await readLive(dataDir, name))?.cert;
        const now = Date.now();
        const notAfter = cert ? notAfterMs(cert) : Number.NaN;
        samples++;
        if (!(notAfter > now - SLACK_MS)) {
          if (!lapsing.has(name)) {
            lapsing.add(name);
            lapsed.add(name);
            ctx.lost = lapsed.size;
            const when = Number.isNaN(notAfter) ? 'unreadable or missing' : `expired at ${new Date(notAfter).toISOString()}`;
            ctx.problem(`live/${name}/cert.pem ${when}; now ${new Date(now).toISOString()} (+${ctx.elapsed()} s, start #${daemon.incarnations})\n${daemon.tail(12)}`);
          }
        } else {
          lapsing.delete(name);
          minMarginMs = Math.min(minMarginMs, notAfter - now);
          versionsSeen.get(name)!.add(notAfter);
        }
      }
      // `acmed show` for each name, when the last round is done and the daemon is up.
      if (!showsRunning && !restarting && daemon.running) {
        showsRunning = showAll().finally(() => { showsRunning = undefined; });
      }
      const restart = restarts.find((r) => !r.done && Date.now() - started >= r.at);
      if (restart) {
        restart.done = true;
        restarting = true;
        await showsRunning;
        ctx.step(`${restart.signal} restart of acmed`);
        const code = await daemon.stop(restart.signal);
        if (restart.signal === 'SIGTERM') ctx.expect(code === 0, `acmed exited ${code} on SIGTERM\n${daemon.tail()}`);
        await daemon.start();
        restarting = false;
        ctx.step('sampling');
      }
      await ctx.sleep(Math.max(0, 1_000 - (Date.now() - tick)));
    }
    await showsRunning;

    ctx.step('stopping acmed');
    const exit = await daemon.stop('SIGTERM');
    ctx.expect(exit === 0, `acmed exited ${exit} on SIGTERM after the run\n${daemon.tail()}`);

    // Renewing at half the lifetime left gives about duration / (lifetime / 2)
    // orders per certificate; a quarter-lifetime cadence plus the restarts is a generous ceiling.
    const ceiling = names.length * (Math.ceil(durationMs / 1000 / (lifetimeS / 4)) + 1 + restarts.length);
    ctx.expect(ctx.orders <= ceiling, `${ctx.orders} orders for ${names.length} certificates in ${durationMs / 1000} s: more than ${ceiling}, a renewal storm?`);
    const versions = names.map((n) => versionsSeen.get(n)!.size);
    ctx.expect(versions.every((v) => v >= 2), `not every certificate was renewed during the run (versions seen: ${versions.join('/')})`);
    ctx.note(`${samples} samples, ${shows} shows, min margin ${Number.isFinite(minMarginMs) ? (minMarginMs / 1000).toFixed(1) : '-'} s`);
    ctx.note(`versions seen ${versions.join('/')}`);
  },
};
