// Scenario 4: the CA goes away (Pebble stopped: connections refused) for a
// while and comes back with its memory wiped (no accounts, a new root), as a
// CA whose database was reset would. Certificates requested during the
// outage (`acmed issue`, which may fail or wait) are issued once it is back,
// by the same acmed process: no host is put into failure backoff for the
// CA's fault, /healthz says 503 while the CA is down and 200 after.
import { join } from 'node:path';
import { baseConfig } from '../harness/acmed.js';
import { liveProblems } from '../harness/fault-checks.js';
import { DaemonUnderTest, type CertificateRow, type CliResult, type FaultContext, type Scenario } from '../harness/fault-kit.js';
import { startPebble } from '../harness/pebble.js';
import { freePort } from '../harness/ports.js';

export const caRestart: Scenario = {
  id: 'ca-restart',
  title: 'CA stopped, then restarted with its memory wiped; no acmed restart',
  budgetMs: { small: 80_000, full: 360_000 },
  async run(ctx: FaultContext) {
    const outageMs = ctx.full ? 60_000 : 15_000;
    const count = ctx.full ? 20 : 5;
    const dir = await ctx.tempDir('ca-restart');
    const dataDir = join(dir, 'data');
    const httpPort = await freePort();

    ctx.step('starting Pebble');
    const pebble = await startPebble({ httpPort });
    ctx.defer('stop Pebble', () => pebble.stop());
    // acmed talks to Pebble directly, so a stopped CA is a refused connection.
    ctx.countOrdersWith(() => pebble.ordersAdded());

    const before = ['ca-before1.example.com', 'ca-before2.example.com'];
    const during = Array.from({ length: count }, (_, i) => `ca-during${i + 1}.example.com`);
    const config = {
      ...baseConfig({ dir, directoryUrl: pebble.directoryUrl, caBundlePath: pebble.caBundlePath, httpPort }),
      certificates: before.map((name) => ({ names: [name] })),
    };
    const daemon = new DaemonUnderTest(ctx, config, dir);
    ctx.step('starting acmed; the configured certificates are issued (the account is registered)');
    await daemon.start();
    await ctx.waitFor('the certificates configured before the outage', async () => {
      for (const name of before) if ((await liveProblems(dataDir, name)).length > 0) return false;
      return true;
    }, { timeoutMs: 30_000, intervalMs: 200, context: () => daemon.tail() });
    ctx.expect(await daemon.health() === 200, 'healthz is not 200 before the outage');

    ctx.step(`CA down for ${outageMs / 1000} s; ${count} certificates requested meanwhile`);
    await pebble.kill();
    const downAt = Date.now();
    // The requests are spread over the outage; each CLI call may fail at once or wait for the CA.
    const spacing = (outageMs * 0.6) / count;
    const cliTimeout = outageMs + (ctx.full ? 60_000 : 20_000);
    const requests: Promise<CliResult>[] = during.map(async (name, i) => {
      await ctx.sleep(i * spacing);
      return daemon.cli(['issue', name, '--json'], cliTimeout);
    });

    // 503 soon after the first requests met the dead CA, and for the rest of the outage.
    let sawUnhealthyAt: number | undefined;
    const answers: number[] = [];
    let relapses = 0;
    while (Date.now() - downAt < outageMs) {
      const status = await daemon.health();
      answers.push(status);
      if (status === 503) sawUnhealthyAt ??= Date.now();
      else if (sawUnhealthyAt !== undefined) relapses++;
      await ctx.sleep(1_000);
    }
    ctx.expect(sawUnhealthyAt !== undefined && sawUnhealthyAt - downAt < Math.max(10_000, outageMs / 2),
      `/healthz did not answer 503 within ${Math.max(10, outageMs / 2000)} s of the CA going down (answers, one a second: ${compact(answers)})\n${daemon.tail()}`);
    ctx.expect(relapses === 0, `/healthz went back to ${answers.find((a, i) => a !== 503 && i > answers.indexOf(503))} while the CA was still down `
      + `(answers, one a second: ${compact(answers)})\n${daemon.tail(0)}`);
    const duringRows = await daemon.certificates().catch(() => [] as CertificateRow[]);
    const blamedDuring = duringRows.filter((r) => r.failures > 0 || r.backoff_until);
    ctx.expect(blamedDuring.length === 0, `hosts put into failure backoff for the CA's outage: ${describe(blamedDuring)}`);

    ctx.step('CA back, empty (no accounts, new root)');
    await pebble.start();
    const upAt = Date.now();
    await ctx.waitFor('/healthz to answer 200 after the CA is back', async () => (await daemon.health()) === 200,
      { timeoutMs: ctx.full ? 60_000 : 30_000, intervalMs: 500, context: () => daemon.tail() }).catch((err: Error) => ctx.problem(err.message));

    ctx.step(`waiting for the ${count} certificates requested during the outage (no CLI call, no restart)`);
    let missing: string[] = during;
    await ctx.waitFor(`the ${count} certificates requested during the outage`, async () => {
      const next: string[] = [];
      for (const name of during) if ((await liveProblems(dataDir, name)).length > 0) next.push(name);
      missing = next;
      return missing.length === 0;
    }, { timeoutMs: ctx.full ? 180_000 : 40_000, intervalMs: 500, context: () => `missing: ${missing.join(', ')}\n${daemon.tail()}` })
      .catch((err: Error) => ctx.problem(err.message));
    const issuedAfterMs = Date.now() - upAt;

    const results = await Promise.all(requests);
    const hung = results.filter((r) => r.timedOut);
    ctx.expect(hung.length === 0, `${hung.length} acmed issue call(s) hung for ${cliTimeout / 1000} s`);
    const failedCli = results.filter((r) => r.code !== 0 && !r.timedOut);
    const unclear = failedCli.filter((r) => r.stderr.trim() === '' || r.stderr.trim().split('\n').length > 1);
    ctx.expect(unclear.length === 0, `acmed issue failed without one clear line on stderr: ${JSON.stringify(unclear[0]?.stderr ?? '')}`);

    ctx.step('checking the list');
    const list = await daemon.cli(['list', '--json']);
    let rows: CertificateRow[] = [];
    try {
      rows = JSON.parse(list.stdout) as CertificateRow[];
    } catch {
      ctx.problem(`acmed list --json: exit ${list.code}, not JSON: ${list.stdout.slice(0, 200)} ${list.stderr.trim()}`);
    }
    const blamed = rows.filter((r) => r.failures > 0 || r.backoff_until);
    ctx.expect(blamed.length === 0, `hosts in failure backoff after the CA outage: ${describe(blamed)}`);
    ctx.lost = 0; // counted from here on
    for (const name of [...before, ...during]) {
      const problems = await liveProblems(dataDir, name);
      if (problems.length > 0) {
        ctx.lose();
        ctx.problem(problems.join('; '));
      }
    }
    ctx.expect(daemon.incarnations === 1 && daemon.unexpectedExits.length === 0, 'acmed did not stay up through the CA outage');
    const exit = await daemon.stop('SIGTERM');
    ctx.expect(exit === 0, `acmed exited ${exit} on SIGTERM after the run\n${daemon.tail()}`);

    const answered = failedCli.length > 0 ? `; issue during outage: ${failedCli.length}× "${failedCli[0].stderr.trim().slice(0, 60)}"` : '';
    ctx.note(`issued ${(issuedAfterMs / 1000).toFixed(0)} s after CA back${answered}`);
  },
};

function compact(statuses: number[]): string {
  return statuses.join(' ') || 'none';
}

function describe(rows: CertificateRow[]): string {
  return rows.map((r) => `${r.host} (failures ${r.failures}, backoff_until ${r.backoff_until}, last_error ${r.last_error})`).join('; ');
}
