/** `acmed run` and `acmed check-config`: the commands that load the config and the daemon. */
import { ConfigError, loadConfig } from '../config/load.js';
import { onlineProblems } from '../config/online-checks.js';
import { readConfigText } from '../config/yaml-source.js';
import { resolveConfigPath } from '../config/path.js';
import { Daemon } from '../daemon/daemon.js';
import { notifySystemd } from '../daemon/systemd.js';
import { CliError } from './errors.js';

/** systemd gives a stop 90 s by default; acmed promises 10. */
const STOP_DEADLINE_MS = 10_000;

export async function checkConfig(flag?: string, opts: { online?: boolean } = {}): Promise<number> {
  const file = resolveConfigPath(flag);
  try {
    const config = await loadConfig(file);
    if (opts.online) {
      const { problems, warnings } = await onlineProblems(config, await readConfigText(file), file);
      if (problems.length > 0) throw new ConfigError(file, problems);
      for (const line of new ConfigError(file, warnings).lines()) process.stdout.write(`warning: ${line}\n`);
    }
    process.stdout.write(`${file}: ok${opts.online ? ' (and the CA agrees)' : ''}\n`);
    if (config.kubernetes.enabled && config.domains.length === 0) {
      process.stdout.write(`${file}: note: kubernetes.enabled with an empty "domains" allowlist: acmed orders whatever names annotated Ingresses ask for\n`);
    }
    return 0;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.lines().join('\n')}\n`);
    return 1;
  }
}

export async function runDaemon(flag?: string): Promise<void> {
  const file = resolveConfigPath(flag);
  let config;
  try {
    config = await loadConfig(file);
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(`invalid config:\n${err.lines().join('\n')}`);
    throw err;
  }
  // Signals are caught from here on, so a stop that arrives while the daemon starts is not lost.
  let daemon: Daemon | undefined;
  let stopRequested: string | undefined;
  let stopping = false;
  const stop = (signal: string) => {
    if (!daemon) {
      stopRequested = signal;
      return;
    }
    if (stopping) return;
    stopping = true;
    const running = daemon;
    running.log.info({ signal }, 'stopping');
    void notifySystemd('STOPPING=1');
    setTimeout(() => {
      running.log.error('shutdown took longer than 10 s; exiting anyway');
      process.exit(1);
    }, STOP_DEADLINE_MS).unref();
    running.stop().then(() => process.exit(0), (err: Error) => {
      running.log.error({ err: err.message }, 'shutdown failed');
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  // SIGHUP: reread and validate; a broken file leaves the running config in place.
  // One that arrives while the daemon starts is applied once it has started.
  let started!: () => void;
  let reloading = new Promise<void>((resolve) => {
    started = resolve;
  });
  process.on('SIGHUP', () => {
    reloading = reloading.then(async () => {
      if (!daemon || stopping) return;
      await notifySystemd('RELOADING=1');
      try {
        await daemon.reload(await loadConfig(file));
      } catch (err) {
        if (err instanceof ConfigError) {
          for (const line of err.lines()) daemon.log.error({ problem: line }, 'config reload rejected; still running on the previous config');
        } else {
          daemon.log.error({ err: (err as Error).message }, 'config reload failed; still running on the previous config');
        }
      }
      await notifySystemd('READY=1');
    });
  });

  // READY once port 80 and the admin socket listen; the index loads after (100,000 records take seconds).
  daemon = await Daemon.start({ config, configPath: file, onListening: () => void notifySystemd('--ready', 'STATUS=loading the certificate index') });
  started();
  if (stopRequested) {
    stop(stopRequested);
    return;
  }
  await notifySystemd(`STATUS=serving ${daemon.index.size} certificates`);
}
