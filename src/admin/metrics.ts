/**
 * Prometheus metrics for GET /metrics. One registry per daemon (no globals),
 * fed by the issuer's events and read at scrape time from storage and the
 * ACME engine, so there is no second copy of state to keep in step.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DeployHooks } from '../daemon/deploy-hooks.js';
import type { Issuer } from '../daemon/issuer.js';
import type { CaBackoff } from '../renewal/ca-backoff.js';
import type { CertificateIndex } from '../renewal/index.js';
import type { StoreHealth } from '../storage/health.js';

export interface MetricsSources {
  issuer: Issuer;
  hooks: DeployHooks;
  index: CertificateIndex;
  ca: CaBackoff;
  queue: { readonly pending: string[]; readonly running: string[] };
  now: () => number;
  /** ACME requests sent so far, when the engine exists. */
  acmeRequests: () => number | undefined;
  /** http-01 lookups answered and missed. */
  challengeStats: () => { hits: number; misses: number };
  storageHealth: () => StoreHealth;
}

export function createMetrics(sources: MetricsSources): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'acmed_' });

  const orders = new Counter({
    name: 'acmed_orders_total', help: 'Certificate orders by result and error kind', labelNames: ['result', 'kind'], registers: [registry],
  });
  const duration = new Histogram({
    name: 'acmed_order_duration_seconds', help: 'Time from job start to stored certificate',
    buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120], registers: [registry],
  });
  const hooks = new Counter({ name: 'acmed_deploy_hook_runs_total', help: 'Deploy hook runs by result', labelNames: ['result'], registers: [registry] });
  sources.issuer.on('outcome', (event) => {
    if (event.type === 'issued') {
      orders.inc({ result: 'issued', kind: '' });
      duration.observe(event.outcome.durationMs / 1000);
    } else if (event.type === 'failed') {
      orders.inc({ result: 'failed', kind: event.kind });
    }
  });
  sources.hooks.on('ran', (run) => hooks.inc({ result: run.ok ? 'ok' : 'failed' }));

  new Gauge({
    name: 'acmed_certificate_not_after_seconds', help: 'Expiry of each stored certificate (unix time)', labelNames: ['name'], registers: [registry],
    collect() {
      // From the index: a scrape reads no certificate.
      this.reset();
      for (const record of sources.index.all()) {
        if (record.notAfter) this.set({ name: record.name }, Date.parse(record.notAfter) / 1000);
      }
    },
  });
  new Gauge({
    name: 'acmed_acme_requests', help: 'ACME HTTP requests sent since start', registers: [registry],
    collect() {
      this.set(sources.acmeRequests() ?? 0);
    },
  });
  new Gauge({
    name: 'acmed_http01_lookups', help: 'http-01 token lookups since start', labelNames: ['result'], registers: [registry],
    collect() {
      const { hits, misses } = sources.challengeStats();
      this.set({ result: 'hit' }, hits);
      this.set({ result: 'miss' }, misses);
    },
  });
  new Gauge({
    name: 'acmed_storage_up', help: '1 when the storage backend answers', registers: [registry],
    collect() {
      const health = sources.storageHealth();
      this.set(health.up && health.writable ? 1 : 0);
    },
  });
  new Gauge({
    name: 'acmed_ca_up', help: '1 unless the CA is in backoff after network errors, timeouts or 5xx', registers: [registry],
    collect() {
      this.set(sources.ca.state().up ? 1 : 0);
    },
  });
  new Gauge({
    name: 'acmed_ca_backoff_until_seconds', help: 'End of the CA backoff (unix time); 0 when the CA is up', registers: [registry],
    collect() {
      const until = sources.ca.state().until;
      this.set(until ? Date.parse(until) / 1000 : 0);
    },
  });
  new Gauge({
    name: 'acmed_certificate_renew_at_seconds', help: 'When each certificate is due for renewal (unix time)', labelNames: ['name'], registers: [registry],
    collect() {
      this.reset();
      for (const record of sources.index.all()) {
        if (record.renewAt) this.set({ name: record.name }, Date.parse(record.renewAt) / 1000);
      }
    },
  });
  new Gauge({
    name: 'acmed_orders_queued', help: 'Jobs waiting in the work queue or running', registers: [registry],
    collect() {
      this.set(sources.queue.pending.length);
    },
  });
  new Gauge({
    name: 'acmed_orders_running', help: 'Orders in progress', registers: [registry],
    collect() {
      this.set(sources.queue.running.length);
    },
  });
  return registry;
}
