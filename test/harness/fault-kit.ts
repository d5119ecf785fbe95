// The fault suite's (test/faults/) scenario context and daemon driver.
//
// A scenario gets a FaultContext: its deadline, a seeded PRNG, a list of
// problems (failed expectations, recorded so one run reports all of them),
// notes for the summary table and a cleanup stack the runner always unwinds.
// Every wait goes through ctx.waitFor / ctx.sleep, which never outlive the
// deadline, so a wedged daemon ends the scenario with a reason instead of
// hanging the suite.
//
// DaemonUnderTest drives `bin/acmed run` as a black box across restarts: it
// keeps the log of every incarnation (for the tail in a failure report), runs
// the CLI with a bounded time, talks to the admin socket, and reads the
// process's CPU time from /proc.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ACMED_BIN, startAcmed, writeAcmedConfig, type AcmedHandle } from './acmed.js';

export type Size = 'small' | 'full';

/** Thrown to end a scenario at once; its message is the reason shown in the report. */
export class ScenarioFailure extends Error {}

/** mulberry32: a small seeded PRNG, so "random moments" are the same on every run with one seed. */
export function seededRng(seed: number): Rng {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    between: (lo, hi) => lo + next() * (hi - lo),
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
  };
}

export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform in [lo, hi). */
  between(lo: number, hi: number): number;
  /** Uniform integer in [lo, hi]. */
  int(lo: number, hi: number): number;
}

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** Appended to the failure, e.g. a daemon's log tail. */
  context?: () => string;
  /** Treat an exception from the probe as "not yet" (the last one is reported on timeout). */
  tolerateErrors?: boolean;
}

export class FaultContext {
  readonly problems: string[] = [];
  readonly notes: string[] = [];
  /** Longer diagnostics (log tails) printed under the table when the scenario fails. */
  readonly details: string[] = [];
  /** Certificates requested that were not there, whole, at the end; null until the scenario got as far as counting. */
  lost: number | null = null;
  private orderCounter: () => number = () => 0;
  currentStep = 'setup';
  readonly startedAt = Date.now();
  readonly deadline: number;
  readonly rng: Rng;
  private readonly controller = new AbortController();
  private readonly cleanups: { what: string; fn: () => Promise<unknown> | unknown }[] = [];
  private readonly witnesses: (() => string)[] = [];

  constructor(readonly scenario: string, readonly size: Size, readonly seed: number, budgetMs: number, private readonly verbose = true) {
    this.deadline = this.startedAt + budgetMs;
    this.rng = seededRng(seed);
  }

  /** Where the orders the CA created are counted; read at the end, whether the scenario got there or not. */
  countOrdersWith(fn: () => number): void {
    this.orderCounter = fn;
  }

  get orders(): number {
    return this.orderCounter();
  }

  /** Records a certificate found missing or broken at the end. */
  lose(): void {
    this.lost = (this.lost ?? 0) + 1;
  }

  get full(): boolean {
    return this.size === 'full';
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get aborted(): boolean {
    return this.controller.signal.aborted;
  }

  /** Seconds since the scenario started, for log lines and notes. */
  elapsed(): string {
    return ((Date.now() - this.startedAt) / 1000).toFixed(1);
  }

  log(message: string): void {
    if (this.verbose) process.stderr.write(`[${this.scenario} +${this.elapsed()}s] ${message}\n`);
  }

  /** Names what the scenario is doing now, so a deadline reports where it stuck. */
  step(what: string): void {
    this.currentStep = what;
    this.log(what);
  }

  /** A failed expectation: recorded, and the scenario goes on to check the rest. */
  problem(message: string): void {
    this.problems.push(message);
    this.log(`PROBLEM: ${message.split('\n')[0]}`);
  }

  expect(ok: boolean, message: string): boolean {
    if (!ok) this.problem(message);
    return ok;
  }

  note(text: string): void {
    this.notes.push(text);
  }

  detail(title: string, text: string): void {
    if (text.trim()) this.details.push(`${title}:\n${text}`);
  }

  fail(message: string): never {
    throw new ScenarioFailure(message);
  }

  /** Called by the runner when the deadline passes: every wait and sleep ends. */
  abort(reason: string): void {
    this.controller.abort(new ScenarioFailure(reason));
  }

  remainingMs(): number {
    return Math.max(0, this.deadline - Date.now());
  }

  /** Throws if the deadline passed. */
  checkpoint(): void {
    if (this.aborted) throw this.signal.reason as Error;
    if (Date.now() > this.deadline) throw new ScenarioFailure(`deadline passed during: ${this.currentStep}`);
  }

  async sleep(ms: number): Promise<void> {
    this.checkpoint();
    try {
      await sleep(Math.min(ms, this.remainingMs()), undefined, { signal: this.signal });
    } catch {
      // aborted: checkpoint says why
    }
    this.checkpoint();
  }

  /** Polls fn until it returns something truthy; fails the scenario with `what` and the context when it does not in time. */
  async waitFor<T>(what: string, fn: () => Promise<T | undefined | null | false> | T | undefined | null | false, opts: WaitOptions = {}): Promise<T> {
    const { timeoutMs = 30_000, intervalMs = 100, context, tolerateErrors = false } = opts;
    const until = Math.min(Date.now() + timeoutMs, this.deadline);
    let lastError: Error | undefined;
    for (;;) {
      this.checkpoint();
      try {
        const value = await fn();
        if (value) return value;
      } catch (err) {
        if (!tolerateErrors || err instanceof ScenarioFailure) throw err;
        lastError = err as Error;
      }
      if (Date.now() >= until) {
        const why = lastError ? ` (last error: ${lastError.message})` : '';
        const extra = context ? `\n${context()}` : '';
        throw new ScenarioFailure(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}${why}${extra}`);
      }
      await this.sleep(intervalMs);
    }
  }

  /** Something that can say what it was doing (a daemon's log tail), for a failure with no context of its own (the deadline). */
  witness(fn: () => string): void {
    this.witnesses.push(fn);
  }

  witnessReport(): string {
    return this.witnesses.map((fn) => fn()).filter(Boolean).join('\n');
  }

  /** Registers a cleanup; the runner runs them in reverse order, pass or fail. */
  defer(what: string, fn: () => Promise<unknown> | unknown): void {
    this.cleanups.push({ what, fn });
  }

  async cleanup(): Promise<void> {
    while (this.cleanups.length > 0) {
      const { what, fn } = this.cleanups.pop()!;
      try {
        await Promise.race([
          Promise.resolve().then(fn),
          sleep(20_000, undefined, { ref: false }).then(() => { throw new Error('did not finish in 20 s'); }),
        ]);
      } catch (err) {
        this.log(`cleanup "${what}" failed: ${(err as Error).message}`);
        this.notes.push(`cleanup ${what} failed`);
      }
    }
  }

  async tempDir(prefix: string): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), `acmed-fault-${prefix}-`));
    this.defer(`remove ${dir}`, () => rm(dir, { recursive: true, force: true }));
    return dir;
  }
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
  timedOut: boolean;
}

export interface AdminAnswer {
  status: number;
  body: any;
}

/** Runs `acmed <args>` as a new process, killed after timeoutMs; never throws for a non-zero exit. */
export function runAcmedCli(args: string[], timeoutMs: number): Promise<CliResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    execFile(process.execPath, [ACMED_BIN, ...args], { timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const timedOut = Boolean(err && (err as { killed?: boolean }).killed);
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr, ms: Date.now() - started, timedOut });
    });
  });
}

/** One request to the admin API over its unix socket; JSON in and out. */
export function adminRequest(socketPath: string, method: string, path: string, body?: unknown, timeoutMs = 30_000): Promise<AdminAnswer> {
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request({
      socketPath, method, path, agent: false, timeout: timeoutMs,
      headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {},
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { text += d; });
      res.on('end', () => {
        let parsed: unknown = text;
        try { parsed = JSON.parse(text); } catch { /* not JSON: keep the text */ }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** CPU seconds (user + system) a process has used, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return (utime + stime) / CLOCK_TICKS;
}

/** sysconf(_SC_CLK_TCK); 100 on every Linux that Node runs on. */
const CLOCK_TICKS = 100;

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/** A pino JSON line as "time LEVEL msg key=value …" (the message first, so a cut line keeps it); other lines as they are. */
export function readableLogLine(line: string): string {
  if (!line.startsWith('{')) return line;
  try {
    const { time, level, msg, service, ...rest } = JSON.parse(line) as Record<string, unknown>;
    void service;
    const when = typeof time === 'string' ? time.slice(11, 23) : String(time ?? '');
    const fields = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
    return [when, LEVELS[level as number] ?? String(level), msg ?? '', ...fields].join(' ');
  } catch {
    return line;
  }
}

/** The last lines of a log, readable and each cut to a width. */
export function tailLines(text: string, lines: number, width = 300): string {
  if (lines <= 0) return '';
  return text.split('\n').filter((l) => l.trim() !== '').slice(-lines).map(readableLogLine)
    .map((l) => (l.length > width ? `${l.slice(0, width)}…` : l)).join('\n');
}

/** pino lines at warn (40) or above. */
export function warningLines(text: string, lines: number, width = 300): string {
  return tailLines(text.split('\n').filter((l) => /"level":(4|5|6)\d/.test(l)).join('\n'), lines, width);
}

/**
 * One acmed daemon under test, across restarts. Its exits are expected only
 * when the scenario asked for them (stop/kill); any other exit is a problem
 * recorded with the log tail.
 */
export class DaemonUnderTest {
  private handle?: AcmedHandle;
  private pastLogs = '';
  private expectingExit = false;
  incarnations = 0;
  readonly unexpectedExits: string[] = [];

  constructor(private readonly ctx: FaultContext, public config: Record<string, unknown>, readonly dir: string, readonly label = 'acmed') {
    ctx.witness(() => this.tail(12));
    ctx.defer(`stop ${label}`, async () => {
      await this.forceStop();
      // FAULT_LOG_DIR=/some/dir keeps every incarnation's whole log, for digging after a run.
      const keep = process.env.FAULT_LOG_DIR;
      if (keep) {
        await mkdir(keep, { recursive: true });
        await writeFile(join(keep, `${ctx.scenario}-seed${ctx.seed}-${label}.log`), this.logs());
      }
    });
  }

  get socketPath(): string {
    return (this.config.admin as { socket: string }).socket;
  }

  get running(): boolean {
    const child = this.handle?.child;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  get pid(): number {
    const pid = this.handle?.child.pid;
    if (!this.running || pid === undefined) this.ctx.fail(`${this.label} is not running`);
    return pid;
  }

  logs(): string {
    return this.pastLogs + (this.handle?.logs() ?? '');
  }

  /** The tail of the log and the last warnings, for a failure message. */
  tail(lines = 15): string {
    const warnings = warningLines(this.logs(), 8);
    const parts = [];
    if (lines > 0) parts.push(`--- ${this.label} log, last ${lines} lines ---\n${tailLines(this.logs(), lines)}`);
    if (warnings) parts.push(`--- ${this.label} warnings/errors, last 8 ---\n${warnings}`);
    return parts.join('\n');
  }

  async start(): Promise<void> {
    this.ctx.checkpoint();
    if (this.handle) this.pastLogs += this.handle.logs();
    this.handle = undefined;
    this.expectingExit = false;
    this.incarnations++;
    try {
      this.handle = await startAcmed(this.config, this.dir);
    } catch (err) {
      const message = (err as Error).message;
      this.pastLogs += `${message}\n`;
      this.ctx.fail(`${this.label} did not start (start #${this.incarnations}):\n${tailLines(message, 25)}`);
    }
    const child = this.handle.child;
    const incarnation = this.incarnations;
    child.once('exit', (code, signal) => {
      if (this.expectingExit) return;
      const what = `${this.label} (start #${incarnation}) exited by itself: ${signal ?? `code ${code}`}`;
      this.unexpectedExits.push(what);
      this.ctx.problem(`${what}\n${this.tail(20)}`);
    });
  }

  /** Sends a signal and waits for the exit (SIGKILL after timeoutMs); returns the exit code, or the signal. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15_000): Promise<number | string> {
    const handle = this.handle;
    if (!handle) return 'not started';
    const child = handle.child;
    this.expectingExit = true;
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode ?? child.signalCode!;
    const exited = new Promise<number | string>((resolve) => child.once('exit', (code, sig) => resolve(code ?? sig ?? 'unknown')));
    child.kill(signal);
    const timer = setTimeout(() => {
      this.ctx.problem(`${this.label} did not exit within ${timeoutMs / 1000} s of ${signal}; killed\n${this.tail(10)}`);
      child.kill('SIGKILL');
    }, timeoutMs);
    try {
      return await exited;
    } finally {
      clearTimeout(timer);
    }
  }

  kill(): Promise<number | string> {
    return this.stop('SIGKILL');
  }

  /** The cleanup: whatever state it is in, it ends. */
  async forceStop(): Promise<void> {
    if (!this.running) return;
    const code = await this.stop('SIGTERM', 12_000);
    if (code !== 0 && code !== 'SIGKILL') this.ctx.log(`${this.label} exited ${code} at cleanup`);
  }

  /** `acmed <args> --socket S`, bounded by timeoutMs and the scenario's deadline. */
  cli(args: string[], timeoutMs = 60_000): Promise<CliResult> {
    this.ctx.checkpoint();
    return runAcmedCli([...args, '--socket', this.socketPath], Math.max(1_000, Math.min(timeoutMs, this.ctx.remainingMs())));
  }

  admin(method: string, path: string, body?: unknown, timeoutMs = 30_000): Promise<AdminAnswer> {
    this.ctx.checkpoint();
    return adminRequest(this.socketPath, method, path, body, Math.max(1_000, Math.min(timeoutMs, this.ctx.remainingMs())));
  }

  /** GET /healthz's status code, or 0 when the socket does not answer in time. */
  async health(timeoutMs = 5_000): Promise<number> {
    try {
      return (await this.admin('GET', '/healthz', undefined, timeoutMs)).status;
    } catch {
      return 0;
    }
  }

  /** The rows of GET /acme/certificates. */
  async certificates(): Promise<CertificateRow[]> {
    const answer = await this.admin('GET', '/acme/certificates');
    if (answer.status !== 200) this.ctx.fail(`GET /acme/certificates answered ${answer.status}: ${JSON.stringify(answer.body)}`);
    return (answer.body as { data: CertificateRow[] }).data;
  }

  cpuSeconds(): number {
    return cpuSeconds(this.pid);
  }

  /** Writes a new config and sends SIGHUP; waits for the daemon's "config reloaded" line. */
  async reload(config: Record<string, unknown>): Promise<void> {
    this.config = config;
    await writeAcmedConfig(this.dir, config);
    const from = this.logs().length;
    this.handle!.child.kill('SIGHUP');
    await this.ctx.waitFor(`${this.label} to reload its config`, () => this.logs().slice(from).includes('config reloaded'),
      { timeoutMs: 15_000, context: () => this.tail() });
  }
}

/** A row of GET /acme/certificates (`acmed list --json`). */
export interface CertificateRow {
  host: string;
  names: string[];
  status: string;
  not_after: string | null;
  valid: boolean;
  renew_at: string | null;
  failures: number;
  last_error: string | null;
  backoff_until: string | null;
}

/** Runs fns at most `width` at a time, in order of the list; results in the same order. */
export async function inBatches<T, R>(items: T[], width: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
  return results;
}

/** One scenario of the fault suite: a file in test/faults/, listed in test/faults/run.ts. */
export interface Scenario {
  /** Short name, the table's first column and what --only takes. */
  id: string;
  /** One line: what goes wrong and what must still hold. */
  title: string;
  /** The whole scenario's deadline at each size, setup and cleanup of servers included. */
  budgetMs: Record<Size, number>;
  run(ctx: FaultContext): Promise<void>;
}
