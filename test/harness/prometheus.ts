// Starts Debian's Prometheus server on a free loopback port with its own
// config and data directory (never the system service's /etc/prometheus or
// :9090), scraping the targets given, and queries it over its HTTP API.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort } from './ports.js';
import { waitFor } from './wait.js';

const running = new Set<ChildProcess>();
process.on('exit', () => running.forEach((c) => c.kill('SIGKILL')));

export interface PrometheusHandle {
  url: string;
  logs(): string;
  /** An instant query; the API's `data.result`. */
  query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]>;
  /** The API's `data.activeTargets` of /api/v1/targets. */
  targets(): Promise<{ health: string; lastError: string; scrapeUrl: string }[]>;
  stop(): Promise<void>;
}

export async function startPrometheus(opts: { targets: string[]; metricsPath?: string; ruleFiles?: string[] }): Promise<PrometheusHandle> {
  const dir = await mkdtemp(join(tmpdir(), 'acmed-prometheus-'));
  const port = await freePort();
  const configPath = join(dir, 'prometheus.yml');
  await writeFile(configPath, stringify({
    global: { scrape_interval: '1s', evaluation_interval: '1s' },
    rule_files: opts.ruleFiles ?? [],
    scrape_configs: [{ job_name: 'acmed', metrics_path: opts.metricsPath ?? '/metrics', static_configs: [{ targets: opts.targets }] }],
  }));
  let output = '';
  const child: ChildProcess = spawn('prometheus', [
    `--config.file=${configPath}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`,
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  child.once('exit', () => running.delete(child));
  child.stdout!.on('data', (d: Buffer) => { output += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { output += d.toString(); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    await rm(dir, { recursive: true, force: true });
  };
  const api = async (path: string) => {
    const res = await fetch(`${url}${path}`);
    const body = await res.json() as { status: string; data: any; error?: string };
    if (body.status !== 'success') throw new Error(`prometheus ${path}: ${body.error}`);
    return body.data;
  };
  try {
    await waitFor('prometheus to be ready', async () => {
      if (child.exitCode !== null) throw new Error(`prometheus exited:\n${output}`);
      return (await fetch(`${url}/-/ready`).catch(() => undefined))?.ok;
    }, { timeoutMs: 30_000, context: () => output });
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    url,
    logs: () => output,
    query: async (expr) => (await api(`/api/v1/query?query=${encodeURIComponent(expr)}`)).result,
    targets: async () => (await api('/api/v1/targets')).activeTargets,
    stop,
  };
}
