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

export const redisRestart: Scenario = {
  id: 'redis-restart',
  title: 'redis-server killed and restarted (with its data) while certificates are issued',
  budgetMs: { small: 150_000, full: 480_000 },
  async run(ctx: FaultContext) {
    const count = ctx.full ? 40 : 12;
    const restarts = ctx.full ? 5 : 2;
    const dir = await ctx.tempDir('redis');
    const httpPort = await freePort();

    ctx.step('starting Pebble, Redis and the order-counting proxy');
    const [pebble, redisServer] = await Promise.all([startPebble({ httpPort }), startRedis({ persist: true })]);
    ctx.defer('stop Pebble', () => pebble.stop());
    ctx.defer('stop Redis', () => redisServer.stop());
    const proxy = await startOrderCountingProxy(pebble);
    ctx.defer('close the proxy', () => proxy.close());
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

    ctx.step('starting acmed');
    await daemon.start();
    const at: number[] = [];
    for (const [k, { progress, delayMs, downMs }] of plan.entries()) {
      ctx.step(`Redis restart ${k + 1}/${restarts}: waiting for ${progress}/${count} certificates, then ${delayMs} ms`);
      await ctx.waitFor(`${progress} of ${count} certificates in Redis`, async () => (await stored()) >= progress,
        { timeoutMs: 60_000, intervalMs: 20, tolerateErrors: true, context: () => daemon.tail() });
      await ctx.sleep(delayMs);
      at.push(await stored().catch(() => -1));
      await checkWhole(`before Redis restart ${k + 1}`);
      await redisServer.kill();
      ctx.log(`Redis killed with ${at[k]}/${count} stored; down for ${downMs} ms`);
      await ctx.sleep(downMs);
      ctx.expect(daemon.running, `acmed is not running while Redis is down (restart ${k + 1})`);
      await redisServer.restart();
    }

    ctx.step(`waiting for all ${count} certificates after the last Redis restart`);
    let absent: string[] = names;
    await ctx.waitFor(`all ${count} certificates in Redis`, async () => {
      const present = new Set((await redis.keys(`${NAMESPACE}certs/*`)).map((k) => k.slice(`${NAMESPACE}certs/`.length)));
      absent = names.filter((n) => !present.has(n));
      return absent.length === 0;
    }, {
      timeoutMs: ctx.full ? 180_000 : 75_000,
      intervalMs: 250,
      tolerateErrors: true,
      context: () => `still missing: ${absent.join(', ')}\n${daemon.tail()}`,
    }).catch((err: Error) => ctx.problem(err.message));

    ctx.step('checking what is stored');
    for (const name of names) {
      const problems = await redisCertificateProblems(redis, NAMESPACE, name);
      if (problems.length > 0) {
        ctx.lost++;
        ctx.problem(problems.join('; '));
      }
    }
    await checkWhole('at the end');
    await ctx.waitFor('/healthz to answer 200 after the last restart', async () => (await daemon.health()) === 200,
      { timeoutMs: 30_000, intervalMs: 500, context: () => daemon.tail() }).catch((err: Error) => ctx.problem(err.message));
    ctx.expect(daemon.incarnations === 1 && daemon.unexpectedExits.length === 0, 'acmed had to be restarted');

    ctx.orders = proxy.orders();
    ctx.expect(ctx.orders <= count + restarts, `${ctx.orders} newOrders for ${count} certificates and ${restarts} Redis restarts `
      + `(at most ${count + restarts}); ordered more than once: ${proxy.orderedMoreThanOnce().join(', ') || 'none'}`);
    const exit = await daemon.stop('SIGTERM');
    ctx.expect(exit === 0, `acmed exited ${exit} on SIGTERM after the run\n${daemon.tail()}`);
    ctx.note(`Redis restarts at ${at.join('/')} stored`);
    ctx.note(`${ctx.orders} orders ≤ ${count + restarts}`);
  },
};
