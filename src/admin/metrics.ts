/**
 * Prometheus metrics for GET /metrics, named after cert-manager's
 * (certmanager_certificate_expiration_timestamp_seconds → acmed_…) so its
 * dashboards and alerts carry over with the prefix changed. One registry per
 * daemon (no globals), fed by the issuer's events and the ACME transport, and
 * read at scrape time from the in-memory index, so there is no second copy of
 * state to keep in step and a scrape reads nothing from storage.
 *
 * Aggregates (certificates by state, days to expiry) are always there; the
 * per-certificate series (those with a `name` label) can be turned off
 * (`metrics.per_certificate: false`) where 100,000 certificates would make
 * half a million series.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AcmeRequestSample } from '../acme/request-action.js';
import type { DeployHooks } from '../daemon/deploy-hooks.js';
import type { Issuer } from '../daemon/issuer.js';
import type { CaBackoffs } from '../renewal/ca-backoffs.js';
import type { CertificateIndex } from '../renewal/index.js';
import type { JobEvent } from '../renewal/job.js';
import type { StoreHealth } from '../storage/health.js';
import { countByState, isValidAt, type CertificateState } from '../daemon/status.js';
import type { IndexRecord } from '../renewal/index-record.js';

const DAY_SECONDS = 86_400;
const STATES: CertificateState[] = ['valid', 'expired', 'missing', 'renewing', 'failed'];
/**
 * prom-client's default metrics include three gauges whose names end in
 * `_total`, which promtool's lint refuses; the same counts stay available
 * as nodejs_active_handles, nodejs_active_requests and nodejs_active_resources.
 */
const LINT_FAILING_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

export interface MetricsSources {
  issuer: Issuer;
  hooks: DeployHooks;
  index: CertificateIndex;
  ca: CaBackoffs;
  queue: { readonly pending: string[]; readonly running: string[] };
  now: () => number;
  /** metrics.per_certificate: read at each scrape, so a reload turns the series on or off. */
  perCertificate: () => boolean;
  /** http-01 requests answered (hit) and 404ed (miss) since start: plain numbers the hot path bumps. */
  challengeStats: () => { hits: number; misses: number };
  storageHealth: () => StoreHealth;
}

/** What an on-demand request came to (see challenge/on-demand.ts). */
export type OnDemandResult =
  | 'started' | 'has_certificate' | 'pending' | 'backed_off' | 'not_allowed' | 'rate_limited' | 'refused_by_ask_url' | 'ask_url_failed';

export interface DaemonMetrics {
  readonly contentType: string;
  /** The whole exposition: prom-client's registry, then the per-certificate series. */
  metrics(): Promise<string>;
  /**
   * The same text in pieces of a few thousand lines, made as they are
   * written: at 100,000 certificates the whole is tens of MB, and building it
   * in one string grew the heap by 50 MB a scrape.
   */
  chunks(): AsyncGenerator<string>;
  /** Counts and times one HTTP request to the CA (the ACME transport calls it). */
  observeAcmeRequest(sample: AcmeRequestSample): void;
  /** Counts one port-80 request that on-demand issuance looked at. */
  observeOnDemand(result: OnDemandResult): void;
}

export function createMetrics(sources: MetricsSources): DaemonMetrics {
  const registry = new Registry();
  // Unprefixed (process_cpu_seconds_total, nodejs_heap_size_used_bytes): the names process dashboards query.
  collectDefaultMetrics({ register: registry });
  for (const name of LINT_FAILING_DEFAULTS) registry.removeSingleMetric(name);
  // Series with a `name` label that prom-client keeps, shown only while metrics.per_certificate is on.
  const perCertificate = new Registry();

  const orders = new Counter({
    name: 'acmed_orders_total', help: 'ACME orders placed or resumed, by result and error kind (jobs refused before ordering are not counted)',
    labelNames: ['result', 'kind'], registers: [registry],
  });
  const duration = new Histogram({
    name: 'acmed_order_duration_seconds', help: 'Time from job start to stored certificate',
    buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120], registers: [registry],
  });
  const failures = new Counter({
    name: 'acmed_issuance_failures_total', help: 'Failed issuances and renewals per certificate, by reason (the CA\'s problem type, or ca_unavailable, store, lock, account)',
    labelNames: ['name', 'reason'], registers: [perCertificate],
  });
  const hooks = new Counter({ name: 'acmed_deploy_hook_runs_total', help: 'Deploy hook runs by result', labelNames: ['result'], registers: [registry] });
  const acmeRequests = new Counter({
    name: 'acmed_acme_client_request_count_total',
    help: 'HTTP requests to the ACME server by action, method and status ("error": no answer); cert-manager\'s acme_client_request_count',
    labelNames: ['action', 'method', 'status'], registers: [registry],
  });
  const acmeDuration = new Histogram({
    name: 'acmed_acme_client_request_duration_seconds', help: 'Time for an HTTP request to the ACME server to be answered, by action',
    labelNames: ['action'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [registry],
  });
  const onDemand = new Counter({
    name: 'acmed_on_demand_requests_total', help: 'Port-80 requests for hosts without a certificate seen by on-demand issuance, by what came of them',
    labelNames: ['result'], registers: [registry],
  });

  const fallbacks = new Counter({
    name: 'acmed_ca_fallbacks_total', help: 'Orders that went on from one CA to the next in api_uri (from, to: directory URLs)',
    labelNames: ['from', 'to'], registers: [registry],
  });
  sources.issuer.on('fallback', ({ from, to }) => fallbacks.inc({ from, to }));
  sources.issuer.on('outcome', (event) => {
    if (event.type === 'issued') {
      duration.observe(event.outcome.durationMs / 1000);
      if (!event.outcome.fromSpool) orders.inc({ result: 'issued', kind: '' });
    } else if (event.type === 'failed') {
      if (event.ordered) orders.inc({ result: 'failed', kind: event.kind });
      const reason = failureReason(event);
      if (reason) failures.inc({ name: event.name, reason });
    }
  });
  sources.hooks.on('ran', (run) => hooks.inc({ result: run.ok ? 'ok' : 'failed' }));

  // The http-01 hot path counts in plain numbers; the counter catches up at each scrape.
  const served = { hits: 0, misses: 0 };
  new Counter({
    name: 'acmed_http01_requests_total', help: 'http-01 challenge requests: hit (key authorization served), miss (unknown token, 404)',
    labelNames: ['result'], registers: [registry],
    collect() {
      const { hits, misses } = sources.challengeStats();
      this.inc({ result: 'hit' }, Math.max(0, hits - served.hits));
      this.inc({ result: 'miss' }, Math.max(0, misses - served.misses));
      served.hits = hits;
      served.misses = misses;
    },
  });
  new Gauge({
    name: 'acmed_certificates', help: 'Managed certificates by state (valid, expired, missing, renewing, failed)', labelNames: ['state'], registers: [registry],
    collect() {
      const counts = countByState(sources.index.all(), sources.now(), new Set(sources.queue.pending));
      for (const state of STATES) this.set({ state }, counts[state]);
    },
  });
  new Histogram({
    // In seconds, Prometheus's base unit (promtool refuses "days"); buckets are whole days.
    name: 'acmed_certificate_expiry_seconds', help: 'Time until each stored certificate expires (negative: expired), as a distribution; buckets of 0, 1, 3, 7, 14, 21, 30, 45, 60, 90, 180, 365 days',
    buckets: [0, 1, 3, 7, 14, 21, 30, 45, 60, 90, 180, 365].map((days) => days * DAY_SECONDS), registers: [registry],
    collect() {
      // A snapshot of the index at each scrape, not an accumulation.
      this.reset();
      const now = sources.now();
      for (const record of sources.index.all()) {
        if (record.notAfter) this.observe((Date.parse(record.notAfter) - now) / 1000);
      }
    },
  });
  new Gauge({
    name: 'acmed_storage_up', help: '1 when the storage backend answers and takes writes', registers: [registry],
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
    name: 'acmed_ca_backoff_until_timestamp_seconds', help: 'End of the CA backoff (unix time); 0 when the CA is up', registers: [registry],
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
      yield `\n${await perCertificate.metrics()}`;
      const records = sources.index.all();
      const now = sources.now();
      for (const family of PER_CERTIFICATE) {
        yield `\n# HELP ${family.name} ${family.help}\n# TYPE ${family.name} gauge\n`;
        for (let i = 0; i < records.length; i += CHUNK_RECORDS) yield family.lines(records.slice(i, i + CHUNK_RECORDS), now);
      }
    },
    observeAcmeRequest(sample) {
      acmeRequests.inc({ action: sample.action, method: sample.method, status: sample.status });
      acmeDuration.observe({ action: sample.action }, sample.seconds);
    },
    observeOnDemand(result) {
      onDemand.inc({ result });
    },
  };
}

/** The `reason` label of a failed job; undefined for one cut short by shutdown (not a failure of the certificate). */
function failureReason(event: Extract<JobEvent, { type: 'failed' }>): string | undefined {
  switch (event.blame) {
    case 'host': return event.kind;
    case 'ca': return (event.error as { code?: string }).code === 'CA_UNAVAILABLE' ? 'ca_unavailable' : event.kind;
    case 'shutdown': return undefined;
    default: return event.blame;
  }
}

/**
 * The per-certificate gauges, written straight in the text exposition
 * format from the index: prom-client's labelled gauges take ~1 s to fill and
 * render 200,000 series, this takes a tenth of that. Host names carry no
 * character the format must escape, but a name is escaped anyway.
 */
const PER_CERTIFICATE: { name: string; help: string; lines: (records: IndexRecord[], now: number) => string }[] = [
  {
    name: 'acmed_certificate_expiration_timestamp_seconds',
    help: 'The date after which the certificate expires (unix time)',
    lines: (records) => timestampLines('acmed_certificate_expiration_timestamp_seconds', records, (r) => r.notAfter),
  },
  {
    name: 'acmed_certificate_renewal_timestamp_seconds',
    help: 'The date after which acmed renews the certificate (unix time)',
    lines: (records) => timestampLines('acmed_certificate_renewal_timestamp_seconds', records, (r) => r.renewAt),
  },
  {
    name: 'acmed_certificate_ready_status',
    help: 'Whether a valid certificate is stored now: 1 on the condition that holds (True, or False when missing or expired)',
    lines: (records, now) => {
      let text = '';
      for (const record of records) {
        const name = escapeLabel(record.name);
        const ready = isValidAt(record, now);
        text += `acmed_certificate_ready_status{name="${name}",condition="True"} ${ready ? 1 : 0}\n`
          + `acmed_certificate_ready_status{name="${name}",condition="False"} ${ready ? 0 : 1}\n`
          + `acmed_certificate_ready_status{name="${name}",condition="Unknown"} 0\n`;
      }
      return text;
    },
  },
  {
    name: 'acmed_backoff_until_timestamp_seconds',
    help: 'For certificates whose last attempt failed: when acmed tries again (unix time; past means due now)',
    lines: (records) => timestampLines('acmed_backoff_until_timestamp_seconds', records, (r) => r.backoff?.until ?? null),
  },
];
/**
 * Records per written piece: 500 keep each piece (~100 KB for the three
 * ready_status lines per record) under V8's large-object size (128 KB), so
 * it dies young instead of waiting in the old heap for a full collection,
 * as the list's pieces do (admin/api.ts). 5,000 left ~1 MB strings behind
 * every scrape, and the daemon's RSS after a scrape at 100,000 certificates
 * stood 30-50 MB higher.
 */
const CHUNK_RECORDS = 500;

function timestampLines(metric: string, records: IndexRecord[], field: (record: IndexRecord) => string | null): string {
  let text = '';
  for (const record of records) {
    const at = field(record);
    if (at) text += `${metric}{name="${escapeLabel(record.name)}"} ${Date.parse(at) / 1000}\n`;
  }
  return text;
}

function escapeLabel(value: string): string {
  return /[\\"\n]/.test(value) ? value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n') : value;
}
