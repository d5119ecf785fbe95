/**
 * Prometheus metrics for GET /metrics. One registry per daemon (no globals),
 * fed by the issuer's events and read at scrape time from storage and the
 * ACME engine, so there is no second copy of state to keep in step.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Issuer } from '../daemon/issuer.js';
import type { Storage } from '../storage/storage.js';

export interface MetricsSources {
  issuer: Issuer;
  storage: Storage;
  /** ACME requests sent so far, when the engine exists. */
  acmeRequests: () => number | undefined;
  /** http-01 lookups answered and missed. */
  challengeStats: () => { hits: number; misses: number };
  storageHealthy: () => Promise<boolean>;
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
  sources.issuer.on('issued', (outcome) => {
    orders.inc({ result: 'issued', kind: '' });
    duration.observe(outcome.durationMs / 1000);
    if (outcome.deployHook) hooks.inc({ result: outcome.deployHook.ok ? 'ok' : 'failed' });
  });
  sources.issuer.on('failed', ({ kind }) => orders.inc({ result: 'failed', kind }));

  new Gauge({
    name: 'acmed_certificate_not_after_seconds', help: 'Expiry of each stored certificate (unix time)', labelNames: ['name'], registers: [registry],
    async collect() {
      this.reset();
      for (const name of await sources.storage.listCertificates().catch(() => [])) {
        const bundle = await sources.storage.getCertificate(name).catch(() => null);
        if (bundle) this.set({ name }, Date.parse(bundle.notAfter) / 1000);
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
    async collect() {
      this.set((await sources.storageHealthy()) ? 1 : 0);
    },
  });
  new Gauge({
    name: 'acmed_orders_running', help: 'Orders in progress', registers: [registry],
    collect() {
      this.set(sources.issuer.running.length);
    },
  });
  return registry;
}
