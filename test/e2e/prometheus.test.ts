// A real Prometheus scrapes a real acmed that issued a certificate from
// Pebble, and sees its expiry series; the sample alert rules load into it.
// The admin API listens on a unix socket, which Prometheus cannot scrape: a
// loopback TCP forwarder in the harness (test/harness/unix-forwarder.ts)
// carries the bytes, nothing more.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { baseConfig, startAcmed, type AcmedHandle } from '../harness/acmed.js';
import { startPebble, type PebbleHandle } from '../harness/pebble.js';
import { freePort } from '../harness/ports.js';
import { startPrometheus, type PrometheusHandle } from '../harness/prometheus.js';
import { forwardTcpToUnix, type Forwarder } from '../harness/unix-forwarder.js';
import { waitFor } from '../harness/wait.js';

let pebble: PebbleHandle;
let acmed: AcmedHandle;
let forwarder: Forwarder;
let prometheus: PrometheusHandle;
let dir: string;

before(async () => {
  const httpPort = await freePort();
  pebble = await startPebble({ httpPort });
  dir = await mkdtemp(join(tmpdir(), 'acmed-prom-'));
  acmed = await startAcmed(baseConfig({ dir, directoryUrl: pebble.directoryUrl, caBundlePath: pebble.caBundlePath, httpPort }), dir);
  forwarder = await forwardTcpToUnix(acmed.socketPath);
  prometheus = await startPrometheus({
    targets: [`127.0.0.1:${forwarder.port}`],
    ruleFiles: [resolve(import.meta.dirname, '../../config/acmed.rules.yml')],
  });
});

after(async () => {
  await prometheus?.stop();
  await forwarder?.close();
  await acmed?.stop();
  await pebble?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('Prometheus scrapes acmed and sees the new certificate\'s expiry, readiness and ACME requests', async () => {
  const issued = await acmed.cli(['issue', 'prom.example.com']);
  assert.equal(issued.code, 0, issued.stderr);
  const cert = new X509Certificate(await readFile(join(acmed.storagePath, 'live', 'prom.example.com', 'cert.pem')));

  const series = await waitFor('the expiry series in Prometheus', async () => {
    const result = await prometheus.query('acmed_certificate_expiration_timestamp_seconds{name="prom.example.com"}');
    return result.length > 0 ? result : undefined;
  }, { timeoutMs: 30_000, context: () => prometheus.logs() });
  assert.equal(series.length, 1);
  assert.equal(Number(series[0]!.value[1]), Date.parse(cert.validTo) / 1000);
  assert.equal(series[0]!.metric.job, 'acmed');

  const [target] = await prometheus.targets();
  assert.equal(target!.health, 'up', target!.lastError);
  const ready = await prometheus.query('acmed_certificate_ready_status{name="prom.example.com",condition="True"}');
  assert.equal(ready[0]?.value[1], '1');
  const orders = await prometheus.query('sum(acmed_acme_client_request_count_total{action="new_order"})');
  assert.ok(Number(orders[0]?.value[1]) >= 1, JSON.stringify(orders));
  // Every request the engine made is named after its ACME step.
  const actions = (await prometheus.query('sum by (action) (acmed_acme_client_request_count_total)')).map((r) => r.metric.action);
  assert.ok(!actions.includes('other'), actions.join());
  for (const action of ['new_account', 'new_order', 'get_authorization', 'accept_challenge', 'finalize_order', 'get_certificate']) {
    assert.ok(actions.includes(action), `${action} in ${actions.join()}`);
  }
  // The rules loaded and nothing fires for a fresh 5-year certificate and a CA that answers.
  const alerts = await prometheus.query('ALERTS');
  assert.deepEqual(alerts, []);
  const rules = await fetch(`${prometheus.url}/api/v1/rules`).then((r) => r.json()) as { data: { groups: { rules: unknown[] }[] } };
  assert.equal(rules.data.groups.flatMap((g) => g.rules).length, 4);
});
