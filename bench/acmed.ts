// acmed's side of the benchmark: a running daemon, and `acmed issue <host>`
// run as a new CLI process per certificate, as an operator runs it.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { baseConfig, runCli, startAcmed } from '../test/harness/acmed.js';
import type { PeerOptions, PeerResult } from './peers.js';

export async function runAcmed(opts: PeerOptions): Promise<PeerResult> {
  const dir = await mkdtemp(join(tmpdir(), 'acmed-bench-'));
  const config = { ...baseConfig({ dir, directoryUrl: opts.directoryUrl, caBundlePath: opts.caBundlePath, httpPort: opts.httpPort }), log_level: 'warn' };
  const daemon = await startAcmed(config, dir);
  const result: PeerResult = { secondsPerCert: [], requestsPerCert: [], certPaths: [] };
  try {
    // The first order also registers the account; like the peers, that is not timed.
    await expectIssued(daemon.configPath, `warmup-${opts.names[0]}`);
    for (const name of opts.names) {
      const before = opts.counts().total;
      const started = performance.now();
      await expectIssued(daemon.configPath, name);
      result.secondsPerCert.push((performance.now() - started) / 1000);
      result.requestsPerCert.push(opts.counts().total - before);
      result.certPaths.push(join(daemon.storagePath, 'live', name, 'fullchain.pem'));
    }
  } finally {
    await daemon.stop();
    await rm(dir, { recursive: true, force: true });
  }
  return result;
}

async function expectIssued(configPath: string, name: string): Promise<void> {
  const { code, stderr } = await runCli(['issue', name, '--config', configPath]);
  if (code !== 0) throw new Error(`acmed issue ${name} failed: ${stderr}`);
}
