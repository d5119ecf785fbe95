// `npm run demo`: a local Pebble CA, an acmed daemon with file storage in
// ./demo/, and one certificate issued through the CLI and checked with
// openssl. The daemon keeps running (Ctrl-C stops everything) so you can try
// the CLI yourself; DEMO_EXIT=1 stops after the check.
import { execFileSync } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { freePort } from '../test/harness/ports.js';
import { startPebble } from '../test/harness/pebble.js';
import { baseConfig, runCli, startAcmed } from '../test/harness/acmed.js';

const dir = resolve('demo');
await rm(dir, { recursive: true, force: true });
await mkdir(dir, { recursive: true });
const httpPort = await freePort();
const pebble = await startPebble({ httpPort });
const config = { ...baseConfig({ dir, directoryUrl: pebble.directoryUrl, caBundlePath: pebble.caBundlePath, httpPort }), log_level: 'info' };
const acmed = await startAcmed(config, dir);
const stop = async () => {
  await acmed.stop();
  await pebble.stop();
};
process.on('SIGINT', () => void stop().then(() => process.exit(0)));

const issued = await runCli(['issue', 'a.example.com', '--config', acmed.configPath]);
process.stdout.write(issued.stdout + issued.stderr);
if (issued.code !== 0) {
  await stop();
  process.exit(1);
}
const rootPath = join(dir, 'pebble-root.pem');
await writeFile(rootPath, await pebble.rootPem());
const live = join(acmed.storagePath, 'live', 'a.example.com');
process.stdout.write(execFileSync('openssl', ['verify', '-CAfile', rootPath, '-untrusted', join(live, 'chain.pem'), join(live, 'cert.pem')]));
process.stdout.write(`
acmed is running against a local Pebble CA (http-01 on 127.0.0.1:${httpPort}).
Try, in another terminal:
  bin/acmed issue b.example.com --config ${acmed.configPath}
  bin/acmed list --config ${acmed.configPath}
Certificates: ${join(acmed.storagePath, 'live')}/
Ctrl-C stops acmed and Pebble.
`);
if (process.env.DEMO_EXIT) {
  await stop();
  process.exit(0);
}
