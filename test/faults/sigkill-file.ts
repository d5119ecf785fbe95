// Scenario 1: acmed is SIGKILLed at random moments while it issues the
// certificates of its config (file storage), and started again after each
// kill. Afterwards every certificate is under live/<name>/ and whole, no temp
// file is left anywhere, the account key is the one made at the first start,
// and no certificate was ordered more than once per kill that interrupted it.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { baseConfig } from '../harness/acmed.js';
import { liveNames, liveProblems, partialWrites, tempFiles } from '../harness/fault-checks.js';
import { DaemonUnderTest, type FaultContext, type Scenario } from '../harness/fault-kit.js';
import { startOrderCountingProxy } from '../harness/fault-order-proxy.js';
import { startPebble } from '../harness/pebble.js';
import { freePort } from '../harness/ports.js';

export const sigkillFile: Scenario = {
  id: 'sigkill-file',
  title: 'SIGKILL of acmed at random moments while certificates are issued (file storage)',
  budgetMs: { small: 75_000, full: 300_000 },
  async run(ctx: FaultContext) {
    const count = ctx.full ? 40 : 12;
    const kills = ctx.full ? 15 : 3;
    const dir = await ctx.tempDir('sigkill');
    const dataDir = join(dir, 'data');
    const httpPort = await freePort();

    ctx.step('starting Pebble and the order-counting proxy');
    // Orders are kept in flight by holding Pebble's finalize answers back for
    // 600 ms (the certificate is being made; the order is resumable in every
    // state from here), while validation stays quick (PEBBLE_VA_NOSLEEP): a
    // CA that validates while nothing listens on port 80 fails that order,
    // and no client can resume an order the CA has invalidated. So the bound
    // below, one extra order per kill, is about what resume can save.
    const pebble = await startPebble({ httpPort });
    ctx.defer('stop Pebble', () => pebble.stop());
    const proxy = await startOrderCountingProxy(pebble);
    ctx.defer('close the proxy', () => proxy.close());
    proxy.hold('/finalize-order/', 1000);
    ctx.countOrdersWith(() => proxy.orders());

    const names = Array.from({ length: count }, (_, i) => `kill${i + 1}.example.com`);
    const config = {
      ...baseConfig({ dir, directoryUrl: proxy.directoryUrl, caBundlePath: pebble.caBundlePath, httpPort }),
      certificates: names.map((name) => ({ names: [name] })),
    };
    const daemon = new DaemonUnderTest(ctx, config, dir);

    // The account key, watched from the moment it first appears: it must never change.
    const keyPath = join(dataDir, 'state', 'account', 'key.pem');
    let firstKey: string | undefined;
    let keyChanged = false;
    const watchKey = async () => {
      const key = await readFile(keyPath, 'utf8').catch(() => undefined);
      if (!key) return;
      firstKey ??= key;
      if (key !== firstKey && !keyChanged) {
        keyChanged = true;
        ctx.problem(`the account key changed (state/account/key.pem) after start #${daemon.incarnations}\n${daemon.tail()}`);
      }
    };
    const keyTimer = setInterval(() => void watchKey(), 50);
    ctx.defer('stop watching the account key', () => clearInterval(keyTimer));

    // Kill k lands a random 0..1.5 s (full: 2 s) after start #k answers on its
    // admin socket: the same moments for the same seed, spread over account
    // registration, orders and writes (the daemon issues several at once, so
    // waiting for a number of certificates would land too coarsely).
    const windowMs = ctx.full ? 2_000 : 1_500;
    const plan = Array.from({ length: kills }, () => ctx.rng.int(0, windowMs));
    const progress = async () => (await liveNames(dataDir)).filter((n) => names.includes(n)).length;

    ctx.step('starting acmed');
    await daemon.start();
    let landedWithWork = 0;
    const killedAt: number[] = [];
    for (const [k, delayMs] of plan.entries()) {
      ctx.step(`kill ${k + 1}/${kills}: ${delayMs} ms after start #${daemon.incarnations}`);
      await ctx.sleep(delayMs);
      await daemon.kill();
      const done = await progress();
      if (done < count) landedWithWork++;
      killedAt.push(done);
      await watchKey();
      await daemon.start();
    }

    ctx.step(`waiting for all ${count} certificates after the last restart`);
    const missing = async () => {
      const absent: string[] = [];
      for (const name of names) if ((await liveProblems(dataDir, name)).length > 0) absent.push(name);
      return absent;
    };
    await ctx.waitFor(`all ${count} certificates to be whole under live/`, async () => (await missing()).length === 0, {
      timeoutMs: ctx.full ? 120_000 : 40_000,
      intervalMs: 250,
      context: () => daemon.tail(),
    }).catch((err: Error) => ctx.problem(err.message));

    ctx.step('checking the store');
    const exit = await daemon.stop('SIGTERM');
    ctx.expect(exit === 0, `acmed exited ${exit} on SIGTERM after the run\n${daemon.tail()}`);
    await watchKey();

    ctx.lost = 0; // counted from here on
    for (const name of names) {
      const problems = await liveProblems(dataDir, name);
      if (problems.length > 0) {
        ctx.lose();
        ctx.problem(problems.join('; '));
      }
    }
    const temps = await tempFiles(dataDir);
    ctx.expect(temps.length === 0, `${temps.length} temp file(s) left under the data dir: ${temps.slice(0, 8).join(', ')}`);
    const finalKey = await readFile(keyPath, 'utf8').catch(() => undefined);
    ctx.expect(firstKey !== undefined && finalKey === firstKey,
      finalKey === undefined ? 'no account key at state/account/key.pem' : 'state/account/key.pem is not the key of the first start');

    ctx.expect(ctx.orders <= count + kills, `${ctx.orders} newOrders for ${count} certificates and ${kills} kills (at most ${count + kills} allowed); `
      + `ordered more than once: ${proxy.orderedMoreThanOnce().join(', ') || 'none'}`);

    // Not in the list, so reported without failing: leftovers a kill can make.
    const partial = await partialWrites(dataDir);
    if (partial.length > 0) ctx.note(`${partial.length} partial leftover(s), e.g. ${partial[0]}`);
    ctx.note(`${kills} kills at ${killedAt.join('/')} done (${landedWithWork} with work left)`);
    ctx.note(`${ctx.orders} orders (bound ${count + kills})`);
  },
};

