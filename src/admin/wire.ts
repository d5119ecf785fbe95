/**
 * What crosses the admin API, in one place: the daemon builds these, the CLI
 * reads them. Field names are snake_case everywhere (Kong's style), so
 * `acmed issue --json`, `show --json` and `list --json` name a field alike.
 * Only types and pure converters live here: the CLI imports this file
 * without loading the daemon.
 */
import type { IssueOutcome } from '../renewal/job.js';
import type { PassResult } from '../renewal/renewer.js';

export interface CertificateStatus {
  host: string;
  names: string[];
  /** renewing: an order runs now; failed: the last attempt failed (see last_error, backoff_until). */
  status: 'valid' | 'expired' | 'missing' | 'renewing' | 'failed';
  not_before: string | null;
  not_after: string | null;
  valid: boolean;
  serial_number: string | null;
  issuer_cn: string | null;
  /** Where the terminator reads it; null while there is no certificate. */
  location: string | null;
  /** Kept issued and renewed by acmed: in `certificates`, or allowed by `domains` as a certificate of its own. */
  managed: boolean;
  /** When the scheduler renews it, from the index; null only while there is no certificate. */
  renew_at: string | null;
  /** The rule that set renew_at: ari, threshold, lifetime-fraction, nearly-expired, expired. */
  renew_reason: string | null;
  failures: number;
  last_error: string | null;
  backoff_until: string | null;
  /** An order placed and not finished (resumed after a restart). */
  pending_order: string | null;
  /** Directory URL of the CA that issued the stored certificate (the first CA's when it was issued before acmed recorded it); null while there is none. */
  ca: string | null;
}

export interface HealthReport {
  ok: boolean;
  checks: Record<string, { ok: boolean } & Record<string, unknown>>;
}

/** `POST /acme`'s `data`: one certificate issued (or found still valid). */
export interface IssueResult {
  name: string;
  names: string[];
  issued: boolean;
  not_before: string;
  not_after: string;
  location: string;
  /** ACME requests this order sent (its own, not other orders' running beside it). */
  requests: number;
  duration_ms: number;
  /** dns-01: how long the TXT records took to show on every DNS server; null for http-01. */
  dns_propagation_ms: number | null;
  resumed: boolean;
  from_spool: boolean;
  /** Directory URL of the CA that issued it; null when no order was placed (still valid, from the spool). */
  ca: string | null;
  deploy_hook: { ok: boolean; exit_code: number | null; timed_out: boolean } | null;
}

/** `PATCH /acme?wait=true`'s `data`: what a renewal pass did. */
export interface PassSummary {
  checked: number;
  renewed: string[];
  failed: { name: string; error: string }[];
  backed_off: string[];
  not_due: number;
}

/** `GET /acme/status`: the daemon at a glance (`acmed status`). */
export interface DaemonSummary {
  version: string;
  started_at: string;
  uptime_seconds: number;
  config: string | null;
  /** The first CA of api_uri, with the state of all CAs taken together (down only while every CA is). */
  ca: { url: string; up: boolean; until: string | null; last_error: string | null };
  /** Every CA of api_uri in fallback order, each with its own backoff. */
  cas: { url: string; up: boolean; until: string | null; last_error: string | null }[];
  storage: { kind: string; up: boolean };
  certificates: { total: number; by_status: Record<string, number> };
  next_renewal: { name: string; at: string } | null;
  running_orders: number;
}

export interface ErrorBody {
  message: string;
  kind?: string;
}

export function toWireOutcome(o: IssueOutcome): IssueResult {
  return {
    name: o.name,
    names: o.names,
    issued: o.issued,
    not_before: o.notBefore,
    not_after: o.notAfter,
    location: o.location,
    requests: o.requests,
    duration_ms: o.durationMs,
    dns_propagation_ms: o.dnsPropagationMs ?? null,
    resumed: o.resumed ?? false,
    from_spool: o.fromSpool ?? false,
    ca: o.ca ?? null,
    // The hook's output stays in the log: it may hold anything the hook printed.
    deploy_hook: o.deployHook ? { ok: o.deployHook.ok, exit_code: o.deployHook.exitCode, timed_out: o.deployHook.timedOut } : null,
  };
}

export function toWirePass(p: PassResult): PassSummary {
  return { checked: p.checked, renewed: p.renewed, failed: p.failed, backed_off: p.backedOff, not_due: p.notDue };
}
