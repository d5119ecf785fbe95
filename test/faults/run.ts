// The fault suite ("certificates never lapse"): each scenario starts its own
// Pebble (and Redis, tmpfs, proxies), drives the real `bin/acmed` through
// faults as a black box, and checks what an operator relies on afterwards.
//
//   npm run test:faults                      every scenario, small size (CI)
//   npm run test:faults -- --full            full size
//   npm run test:faults -- --only sigkill-file,ca-restart --seed 7 --repeat 3
//
// The table: runs (how many times the scenario ran: --repeat), failures
// (how many of those failed), ACME orders (orders the CA created, summed
// over the runs), certificates lost (requested but not there, whole, at the
// end; or, for short-lived certificates, found expired on disk), notes.
// FAULT_SEED sets the default seed; FAULT_LOG_DIR=dir keeps every daemon's
// whole log there. Progress lines go to stderr, the report to stdout.
//
// Scenarios run one after another (they time CPU and kill processes; running
// them side by side on a 2-core machine would measure each other). Each has
// a deadline; a run that passes it is ended, cleaned up (processes stopped,
// tmpfs unmounted) and counted as failed. At the end: the reasons for every
// failure, one table row per scenario, and a last line "N passed, N failed".
// Exit status 1 if any scenario failed.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { FaultContext, ScenarioFailure, type Scenario, type Size } from '../harness/fault-kit.js';
import { formatTable, type SummaryRow } from './table.js';
import { sigkillFile } from './sigkill-file.js';
import { redisRestart } from './redis-restart.js';
import { flakyCa } from './flaky-ca.js';
import { caRestart } from './ca-restart.js';
import { shortLived } from './short-lived.js';
import { storageTrouble } from './storage-trouble.js';

const SCENARIOS: Scenario[] = [sigkillFile, redisRestart, flakyCa, caRestart, shortLived, storageTrouble];
const DEFAULT_SEED = 20_251_125;

interface Args {
  size: Size;
  only: string[];
  seed: number;
  repeat: number;
  quiet: boolean;
  /** Multiplies every scenario's deadline (a slow machine: 2; checking the deadline path: 0.05). */
  budgetScale: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { size: 'small', only: [], seed: Number(process.env.FAULT_SEED ?? DEFAULT_SEED), repeat: 1, quiet: false, budgetScale: 1 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const v = arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : argv[++i];
      if (v === undefined) usage(`${arg} needs a value`);
      return v;
    };
    if (arg === '--full') args.size = 'full';
    else if (arg === '--small') args.size = 'small';
    else if (arg === '--quiet') args.quiet = true;
    else if (arg.startsWith('--only')) args.only.push(...value().split(',').filter(Boolean));
    else if (arg.startsWith('--seed')) args.seed = Number(value());
    else if (arg.startsWith('--repeat')) args.repeat = Number(value());
    else if (arg.startsWith('--budget-scale')) args.budgetScale = Number(value());
    else if (arg === '--help' || arg === '-h') usage();
    else usage(`unknown argument ${arg}`);
  }
  if (!Number.isInteger(args.seed)) usage('--seed takes an integer');
  if (!Number.isInteger(args.repeat) || args.repeat < 1) usage('--repeat takes a positive integer');
  if (!(args.budgetScale > 0)) usage('--budget-scale takes a positive number');
  const unknown = args.only.filter((id) => !SCENARIOS.some((s) => s.id === id));
  if (unknown.length > 0) usage(`no scenario ${unknown.join(', ')}`);
  return args;
}

function usage(problem?: string): never {
  const out = problem ? process.stderr : process.stdout;
  if (problem) out.write(`test:faults: ${problem}\n`);
  out.write('usage: npm run test:faults -- [--full] [--only id[,id]] [--seed N] [--repeat N] [--budget-scale X] [--quiet]\nscenarios:\n');
  for (const s of SCENARIOS) out.write(`  ${s.id.padEnd(16)} ${s.title}\n`);
  process.exit(problem ? 2 : 0);
}

/** What the scenarios need on this machine; a clear line for each thing missing. */
function preflight(): string[] {
  const missing: string[] = [];
  for (const cmd of ['pebble', 'pebble-challtestsrv', 'redis-server', 'openssl', 'mount']) {
    try {
      execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    } catch {
      missing.push(`${cmd} is not installed (scripts/install-deps.sh installs pebble and redis-server)`);
    }
  }
  if (!existsSync(resolve(import.meta.dirname, '../../dist/cli/index.js'))) {
    missing.push('dist/ is not built: run npm run build (bin/acmed runs dist/cli/index.js)');
  }
  return missing;
}

interface RunResult {
  scenario: Scenario;
  run: number;
  seed: number;
  ms: number;
  ctx: FaultContext;
  passed: boolean;
}

async function runOnce(scenario: Scenario, size: Size, seed: number, run: number, args: Args): Promise<RunResult> {
  const budget = Math.round(scenario.budgetMs[size] * args.budgetScale);
  const quiet = args.quiet;
  const ctx = new FaultContext(scenario.id, size, seed, budget, !quiet);
  ctx.log(`start: ${scenario.title} (${size}, seed ${seed}, deadline ${Math.round(budget / 1000)} s)`);
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const reason = `deadline of ${Math.round(budget / 1000)} s passed during: ${ctx.currentStep}`;
      ctx.abort(reason);
      reject(new ScenarioFailure(reason));
    }, budget);
  });
  const work = scenario.run(ctx);
  work.catch(() => {}); // after a deadline its rejection is not news
  try {
    await Promise.race([work, deadline]);
  } catch (err) {
    if (err instanceof ScenarioFailure && ctx.aborted) ctx.problem(`${err.message}\n${ctx.witnessReport()}`);
    else if (err instanceof ScenarioFailure) ctx.problem(err.message);
    else ctx.problem(`harness error: ${(err as Error).stack ?? String(err)}`);
  } finally {
    clearTimeout(timer);
  }
  ctx.step('cleanup');
  await ctx.cleanup();
  const ms = Date.now() - started;
  const passed = ctx.problems.length === 0;
  ctx.log(`${passed ? 'passed' : `FAILED (${ctx.problems.length} problem${ctx.problems.length > 1 ? 's' : ''})`} in ${(ms / 1000).toFixed(1)} s`);
  return { scenario, run, seed, ms, ctx, passed };
}

function failureReport(r: RunResult): string {
  const lines = [
    `=== FAILED: ${r.scenario.id} (run ${r.run}, seed ${r.seed}, ${(r.ms / 1000).toFixed(1)} s) — ${r.scenario.title}`,
    `    rerun: npm run test:faults -- --only ${r.scenario.id} --seed ${r.seed}${r.ctx.full ? ' --full' : ''}`,
  ];
  for (const p of r.ctx.problems) {
    const [first, ...rest] = p.split('\n');
    lines.push(`  - ${first}`, ...rest.map((l) => `      ${l}`));
  }
  for (const d of r.ctx.details) lines.push(...d.split('\n').map((l) => `    ${l}`));
  return lines.join('\n');
}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const chosen = args.only.length > 0 ? SCENARIOS.filter((s) => args.only.includes(s.id)) : SCENARIOS;
  process.on('unhandledRejection', (err) => {
    // Work a scenario left running when its deadline passed ends with the deadline's own error: not news.
    if (err instanceof ScenarioFailure) return;
    if (!args.quiet) process.stderr.write(`[fault suite] stray rejection: ${(err as Error)?.stack ?? err}\n`);
  });
  const suiteStarted = Date.now();
  process.stderr.write(`fault suite: ${chosen.length} scenario(s), ${args.size} size, seed ${args.seed}, ${args.repeat} run(s) each\n`);

  const missing = preflight();
  const results: RunResult[] = [];
  if (missing.length > 0) {
    process.stdout.write(`cannot run the fault suite:\n${missing.map((m) => `  - ${m}`).join('\n')}\n`);
  } else {
    for (let run = 1; run <= args.repeat; run++) {
      for (const [i, scenario] of chosen.entries()) {
        const seed = args.seed + (run - 1) * 7919 + i;
        results.push(await runOnce(scenario, args.size, seed, run, args));
      }
    }
  }

  const rows: SummaryRow[] = chosen.map((scenario) => {
    const mine = results.filter((r) => r.scenario === scenario);
    const failed = mine.filter((r) => !r.passed);
    const shown = failed[0] ?? mine[mine.length - 1];
    const seconds = mine.reduce((s, r) => s + r.ms, 0) / 1000;
    const notes = shown
      ? [`${seconds.toFixed(0)} s`, ...(failed[0] ? [`FAIL: ${clip(failed[0].ctx.problems[0].split('\n')[0], 70)}`] : []), ...shown.ctx.notes].join('; ')
      : 'not run';
    return {
      scenario: scenario.id,
      runs: mine.length,
      failures: missing.length > 0 ? 1 : failed.length,
      orders: mine.reduce((s, r) => s + r.ctx.orders, 0),
      lost: mine.some((r) => r.ctx.lost === null) ? '?' : mine.reduce((s, r) => s + (r.ctx.lost ?? 0), 0),
      notes: clip(notes, 200),
    };
  });

  const failures = results.filter((r) => !r.passed);
  if (failures.length > 0) process.stdout.write(`\n${failures.map(failureReport).join('\n\n')}\n`);
  process.stdout.write(`\nfault suite (${args.size}, seed ${args.seed}) took ${((Date.now() - suiteStarted) / 1000).toFixed(0)} s\n\n`);
  process.stdout.write(`${formatTable(rows)}\n\n`);
  const failedCount = rows.filter((r) => r.failures > 0).length;
  process.stdout.write(`${rows.length - failedCount} passed, ${failedCount} failed\n`);
  process.exitCode = failedCount > 0 ? 1 : 0;
}

await main();
// Children are gone (cleanup stopped them); do not wait for stray timers or sockets.
process.exit(process.exitCode ?? 0);
