/** `acmed run` and `acmed check-config`: the commands that load the config and the daemon. */
import { ConfigError, loadConfig } from '../config/load.js';
import { resolveConfigPath } from '../config/path.js';
import { Daemon } from '../daemon/daemon.js';
import { CliError } from './admin-client.js';

export async function checkConfig(flag?: string): Promise<number> {
  const file = resolveConfigPath(flag);
  try {
    await loadConfig(file);
    process.stdout.write(`${file}: ok\n`);
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
  const daemon = await Daemon.start({ config });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    daemon.log.info({ signal }, 'stopping');
    const force = setTimeout(() => {
      daemon.log.error('in-flight work did not finish within 10 s; exiting anyway');
      process.exit(1);
    }, 10_000);
    force.unref();
    daemon.stop().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
