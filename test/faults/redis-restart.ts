// Scenario 2: Redis storage, and redis-server killed (SIGKILL) and started
// again with its data (append-only file, fsync always) at random moments
// while acmed issues the certificates of its config. acmed stays up and,
// once Redis is back each time, finishes the work by itself: every
// certificate stored whole, none ordered more than once per restart.
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { redisCertificateProblems } from '../harness/fault-checks.js';
import { DaemonUnderTest, type FaultContext, type Scenario } from '../harness/fault-kit.js';
import { startOrderCountingProxy } from '../harness/fault-order-proxy.js';
import { startPebble } from '../harness/pebble.js';
import { freePort } from '../harness/ports.js';
import { startRedis } from '../harness/redis.js';

const NAMESPACE = 'acmed-fault:';
/** Once Redis is back, some missing certificate is stored within this long. */
const RESUME_WITHIN_S = 30;

export const redisRestart: Scenario = {
  id: 'redis-restart',
  title: 'redis-server killed and restarted (with its data) while certificates are issued',
  budgetMs: { small: 120_000, full: 420_000 },
  async run(ctx: FaultContext) {
    const count = ctx.full ? 40 : 12;
    const restarts = ctx.full ? 5 : 2;
    const dir = await ctx.tempDir('redis');
    const httpPort = await freePort();

    ctx.step('starting Pebble, Redis and the order-counting proxy');
    // Validation sleeps of 0-1 s keep orders in flight when Redis goes away (see sigkill-file.ts).
    const [pebble, redisServer] = await Promise.all([
      startPebble({ httpPort, noSleep: false, env: { PEBBLE_VA_SLEEPTIME: '2' } }),
      startRedis({ persist: true }),
    ]);
    ctx.defer('stop Pebble', () => pebble.stop());
    ctx.defer('stop Redis', () => redisServer.stop());
    const proxy = await startOrderCountingProxy(pebble);
    ctx.defer('close the proxy', () => proxy.close());
    ctx.countOrdersWith(() => proxy.orders());
    const redis = new Redis({ host: redisServer.host, port: redisServer.port, maxRetriesPerRequest: 1, connectTimeout: 1_000 });
    redis.on('error', () => {}); // while Redis is down; the failing call reports it
    ctx.defer('disconnect the checking client', () => redis.disconnect());

    const names = Array.from({ length: count }, (_, i) => `redis${i + 1}.example.com`);
    const config = {
      account_email: 'ops@example.com',
      tos_accepted: true,
      api_uri: proxy.directoryUrl,
      ca_bundle: pebble.caBundlePath,
      domains: ['*.example.com'],
      certificates: names.map((name) => ({ names: [name] })),
      challenge: { listen: [`127.0.0.1:${httpPort}`] },
      admin: { socket: join(dir, 'admin.sock') },
      storage: 'redis',
      storage_config: { redis: { host: redisServer.host, port: redisServer.port, namespace: NAMESPACE } },
      // Its own spool: the default for Redis storage is one directory for the whole machine.
      spool_dir: join(dir, 'spool'),
      log_level: 'debug',
    };
    const daemon = new DaemonUnderTest(ctx, config, dir);
    const stored = async () => (await redis.keys(`${NAMESPACE}certs/*`)).length;
    /** Every hash present is whole; half-written ones are problems. */
    const checkWhole = async (when: string) => {
      for (const key of await redis.keys(`${NAMESPACE}certs/*`)) {
        const name = key.slice(`${NAMESPACE}certs/`.length);
        const problems = await redisCertificateProblems(redis, NAMESPACE, name);
        if (problems.length > 0) ctx.problem(`${when}: ${problems.join('; ')}`);
      }
    };

    // Restart k lands once a random number of certificates from the k-th
    // stratum of [1, count) is stored, plus 0-300 ms; Redis stays down 1-4 s.
    const plan = Array.from({ length: restarts }, (_, k) => ({
      progress: Math.floor(ctx.rng.between(1 + (k * (count - 1)) / restarts, 1 + ((k + 1) * (count - 1)) / restarts)),
      delayMs: ctx.rng.int(0, 300),
      downMs: ctx.rng.int(1_000, ctx.full ? 6_000 : 4_000),
    }));

    // When the stored count grew, and when each name first appeared, to see how soon work resumes after each restart.
    const growth: { at: number; stored: number }[] = [];
    const firstSeen = new Map<string, number>();
    const watcher = setInterval(() => {
      redis.keys(`${NAMESPACE}certs/*`).then((keys) => {
        for (const name of keys.map((k) => k.slice(`${NAMESPACE}certs/`.length))) if (!firstSeen.has(name)) firstSeen.set(name, Date.now());
        if (keys.length > (growth[growth.length - 1]?.stored ?? 0)) growth.push({ at: Date.now(), stored: keys.length });
      }, () => {});
    }, 200);
    ctx.defer('stop watching progress', () => clearInterval(watcher));
    const upAt: number[] = [];
    const downAt: number[] = [];
    const startedAt = Date.now();

    ctx.step('starting acmed');
    await daemon.start();
    const at: number[] = [];
    for (const [k, { progress, delayMs, downMs }] of plan.entries()) {
      ctx.step(`Redis restart ${k + 1}/${restarts}: waiting for ${progress}/${count} certificates, then ${delayMs} ms`);
      const reached = await ctx.waitFor(`${progress} of ${count} certificates in Redis`, async () => (await stored()) >= progress,
        { timeoutMs: ctx.full ? 60_000 : 30_000, intervalMs: 20, tolerateErrors: true })
        .then(() => true, (err: Error) => {
          if (ctx.aborted) throw err;
          // A stall: reported below with its length; the restarts left are skipped.
          ctx.log(err.message.split('\n')[0]);
          return false;
        });
      if (!reached) break;
      await ctx.sleep(delayMs);
      at.push(await stored().catch(() => -1));
      await checkWhole(`before Redis restart ${k + 1}`);
      downAt.push(Date.now());
      await redisServer.kill();
      ctx.log(`Redis killed with ${at[k]}/${count} stored; down for ${downMs} ms`);
      await ctx.sleep(downMs);
      ctx.expect(daemon.running, `acmed is not running while Redis is down (restart ${k + 1})`);
      await redisServer.restart();
      upAt.push(Date.now());
    }

    ctx.step(`waiting for all ${count} certificates after the last Redis restart`);
    let absent: string[] = names;
    await ctx.waitFor(`all ${count} certificates in Redis`, async () => {
      const present = new Set((await redis.keys(`${NAMESPACE}certs/*`)).map((k) => k.slice(`${NAMESPACE}certs/`.length)));
      absent = names.filter((n) => !present.has(n));
      return absent.length === 0;
    }, {
      // Longer than lock_ttl_seconds (60 s): a stall on a dead lock is told apart from work never done.
      timeoutMs: ctx.full ? 180_000 : 75_000,
      intervalMs: 250,
      tolerateErrors: true,
      context: () => `still missing: ${absent.join(', ')}\n${daemon.tail()}`,
    }).catch((err: Error) => ctx.problem(err.message));

    ctx.step('checking what is stored');
    ctx.lost = 0; // counted from here on
    for (const name of names) {
      const problems = await redisCertificateProblems(redis, NAMESPACE, name);
      if (problems.length > 0) {
        ctx.lose();
        ctx.problem(problems.join('; '));
      }
    }
    await checkWhole('at the end');
    await ctx.waitFor('/healthz to answer 200 after the last restart', async () => (await daemon.health()) === 200,
      { timeoutMs: 20_000, intervalMs: 500, context: () => daemon.tail() }).catch((err: Error) => ctx.problem(err.message));
    ctx.expect(daemon.incarnations === 1 && daemon.unexpectedExits.length === 0, 'acmed had to be restarted');

    const done = upAt.length;
    ctx.expect(ctx.orders <= count + done, `${ctx.orders} newOrders for ${count} certificates and ${done} Redis restarts `
      + `(at most ${count + done}); ordered more than once: ${proxy.orderedMoreThanOnce().join(', ') || 'none'}`);
    const exit = await daemon.stop('SIGTERM');
    ctx.expect(exit === 0, `acmed exited ${exit} on SIGTERM after the run\n${daemon.tail()}`);
    clearInterval(watcher);
    // The README's promise: the store is probed at most every 30 s, and once
    // it answers acmed issues what is missing by itself. So while Redis is up
    // and certificates are missing, one is stored at least every 30 s.
    const stall = longestStall(startedAt, growth, count, downAt.map((d, k) => [d, upAt[k] ?? Date.now()]));
    if (stall.seconds > RESUME_WITHIN_S) {
      const stuck = names.filter((n) => !((firstSeen.get(n) ?? Infinity) <= startedAt + stall.from * 1000))
        .map((n) => `${n} (${firstSeen.has(n) ? `stored at +${((firstSeen.get(n)! - startedAt) / 1000).toFixed(1)} s` : 'never'})`);
      ctx.problem(`no certificate was stored for ${stall.seconds.toFixed(0)} s with Redis up and ${count - stall.stored} missing `
        + `(from +${stall.from.toFixed(1)} s; bound ${RESUME_WITHIN_S} s): locks or orders from before an outage held until they expired?\n`
        + `missing then: ${stuck.join(', ')}\n${daemon.tail(0)}`);
    }
    // Seconds from Redis back to the next certificate stored.
    const resumed = upAt.map((t, k) => {
      const next = growth.find((g) => g.at >= t && g.stored > at[k]);
      return next ? ((next.at - t) / 1000).toFixed(1) : '-';
    });
    ctx.note(`Redis restarts at ${at.join('/')} stored, work resumed ${resumed.join('/')} s after; longest stall ${stall.seconds.toFixed(0)} s`);
    ctx.note(`${ctx.orders} orders (bound ${count + done})${done < restarts ? ` (${restarts - done} restarts skipped: stalled)` : ''}`);
  },
};

/**
 * The longest time with Redis up during which no certificate was added
 * while some were missing (the time Redis was down does not count).
 */
function longestStall(startedAt: number, growth: { at: number; stored: number }[], count: number, down: [number, number][]): { seconds: number; from: number; stored: number } {
  const points = [{ at: startedAt, stored: 0 }, ...growth];
  let worst = { seconds: 0, from: 0, stored: 0 };
  for (let i = 0; i < points.length; i++) {
    if (points[i].stored >= count) break;
    const from = points[i].at;
    const to = points[i + 1]?.at ?? Date.now();
    const downtime = down.reduce((sum, [d, u]) => sum + Math.max(0, Math.min(u, to) - Math.max(d, from)), 0);
    const seconds = (to - from - downtime) / 1000;
    if (seconds > worst.seconds) worst = { seconds, from: (from - startedAt) / 1000, stored: points[i].stored };
  }
  return worst;
}
