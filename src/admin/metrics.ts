/**
 * Prometheus metrics for GET /metrics. One registry per daemon (no globals),
 * fed by the issuer's events and read at scrape time from the in-memory
 * index and the ACME engine, so there is no second copy of state to keep in
 * step and a scrape reads nothing from storage. Aggregates (certificates by
 * state, days to expiry) are always there; the two per-certificate series
 * can be turned off (`metrics.per_certificate: false`) where 100,000
 * certificates would make 200,000 series.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DeployHooks } from '../daemon/deploy-hooks.js';
import type { Issuer } from '../daemon/issuer.js';
import type { CaBackoff } from '../renewal/ca-backoff.js';
import type { CertificateIndex } from '../renewal/index.js';
import type { StoreHealth } from '../storage/health.js';
import { stateOf, type CertificateState } from '../daemon/status.js';
import type { IndexRecord } from '../renewal/index-record.js';

const DAY_SECONDS = 86_400;
const STATES: CertificateState[] = ['valid', 'expired', 'missing', 'renewing', 'failed'];

export interface MetricsSources {
  issuer: Issuer;
  hooks: DeployHooks;
  index: CertificateIndex;
  ca: CaBackoff;
  queue: { readonly pending: string[]; readonly running: string[] };
  now: () => number;
  /** metrics.per_certificate: read at each scrape, so a reload turns the series on or off. */
  perCertificate: () => boolean;
  /** ACME requests sent so far, when the engine exists. */
  acmeRequests: () => number | undefined;
  /** http-01 lookups answered and missed. */
  challengeStats: () => { hits: number; misses: number };
  storageHealth: () => StoreHealth;
}

export interface DaemonMetrics {
  readonly contentType: string;
  /** The whole exposition: prom-client's registry, then the per-certificate series. */
  metrics(): Promise<string>;
  /**
   * The same text in pieces of a few thousand lines, made as they are
   * written: at 100,000 certificates the whole is 15 MB, and building it in
   * one string grew the heap by 50 MB a scrape.
   */
  chunks(): AsyncGenerator<string>;
}

export function createMetrics(sources: MetricsSources): DaemonMetrics {
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
    name: 'acmed_certificates', help: 'Managed certificates by state (valid, expired, missing, renewing, failed)', labelNames: ['state'], registers: [registry],
    collect() {
      const now = sources.now();
      const queued = new Set(sources.queue.pending);
      const counts = new Map<CertificateState, number>(STATES.map((state) => [state, 0]));
      for (const record of sources.index.all()) {
        const state = stateOf(record, now, queued);
        counts.set(state, counts.get(state)! + 1);
      }
      for (const [state, count] of counts) this.set({ state }, count);
    },
  });
  new Histogram({
    name: 'acmed_certificate_expiry_days', help: 'Days until each stored certificate expires (negative: expired), as a distribution',
    buckets: [0, 1, 3, 7, 14, 21, 30, 45, 60, 90, 180, 365], registers: [registry],
    collect() {
      // A snapshot of the index at each scrape, not an accumulation.
      this.reset();
      const now = sources.now();
      for (const record of sources.index.all()) {
        if (record.notAfter) this.observe((Date.parse(record.notAfter) - now) / 1000 / DAY_SECONDS);
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
  return {
    contentType: registry.contentType,
    async metrics() {
      let text = '';
      for await (const chunk of this.chunks()) text += chunk;
      return text;
    },
    async *chunks() {
      yield await registry.metrics();
      if (!sources.perCertificate()) return;
      const records = sources.index.all();
      for (const series of PER_CERTIFICATE) {
        yield `\n# HELP ${series.name} ${series.help}\n# TYPE ${series.name} gauge\n`;
        for (let i = 0; i < records.length; i += CHUNK_RECORDS) yield seriesLines(series, records.slice(i, i + CHUNK_RECORDS));
      }
    },
  };
}

/**
 * acmed_certificate_not_after_seconds and acmed_certificate_renew_at_seconds,
 * one series per certificate, written straight in the text exposition
 * format: prom-client's labelled gauges take ~1 s to fill and render 200,000
 * series, this takes a tenth of that. Host names carry no character the
 * format must escape, but a name is escaped anyway.
 */
const PER_CERTIFICATE = [
  {
    name: 'acmed_certificate_not_after_seconds', field: 'notAfter',
    help: 'Expiry of each stored certificate (unix time; off with metrics.per_certificate: false)',
  },
  {
    name: 'acmed_certificate_renew_at_seconds', field: 'renewAt',
    help: 'When each certificate is due for renewal (unix time; off with metrics.per_certificate: false)',
  },
] as const;
const CHUNK_RECORDS = 5_000;

function seriesLines(series: (typeof PER_CERTIFICATE)[number], records: IndexRecord[]): string {
  let text = '';
  for (const record of records) {
    const at = record[series.field];
    if (at) text += `${series.name}{name="${escapeLabel(record.name)}"} ${Date.parse(at) / 1000}\n`;
  }
  return text;
}

function escapeLabel(value: string): string {
  return /[\\"\n]/.test(value) ? value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n') : value;
}
