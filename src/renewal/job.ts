/**
 * A job is one certificate to issue or renew, whoever asked (config, the
 * scheduler, the CLI, the admin API); its end is one JobEvent that the log,
 * metrics, the index, the scheduler and the deploy hook all listen to.
 */
import type { ManagedCertificate } from '../config/managed.js';
import type { CertificateBundle } from '../storage/storage.js';

export interface IssueJob {
  cert: ManagedCertificate;
  /** Order even when a valid certificate is stored, and even during backoff. */
  force?: boolean;
}

export interface IssueOutcome {
  name: string;
  names: string[];
  notBefore: string;
  notAfter: string;
  location: string;
  /** False when a stored certificate already covered the names and was not due. */
  issued: boolean;
  /** ACME requests this job sent. */
  requests: number;
  durationMs: number;
  /** The order was one an earlier run placed, resumed instead of placed again. */
  resumed?: boolean;
  /** The certificate came from the spool (issued earlier, stored now), with no new order. */
  fromSpool?: boolean;
  /** dns-01: how long acmed waited for its TXT records to show on the DNS servers before asking the CA to validate. */
  dnsPropagationMs?: number;
  /** The directory URL of the CA that issued it, when this job ordered it. */
  ca?: string;
  deployHook?: { ok: boolean; exitCode: number | null; timedOut: boolean; output: string };
}

/** A job's step as it starts, for whoever watches it (`acmed issue` on a terminal). */
export interface JobProgress {
  name: string;
  step: 'locked' | 'ordering' | 'validating' | 'finalizing' | 'downloading' | 'stored' | 'deploy hook';
  /** Since the job started (after any wait in the queue). */
  elapsedMs: number;
}

/** Why a job ended without a new certificate, from the host's point of view. */
/** config: the config asks for what the CA cannot do (a profile it does not list); retried after a reload, no host backoff. */
export type FailureBlame = 'host' | 'ca' | 'store' | 'lock' | 'account' | 'shutdown' | 'config';

export type JobEvent =
  | { type: 'issued'; outcome: IssueOutcome; bundle: CertificateBundle }
  | { type: 'skipped'; name: string; names: string[]; reason: 'valid' | 'backoff' | 'shutdown'; outcome?: IssueOutcome; error?: Error }
  | {
    type: 'failed'; name: string; names: string[]; error: Error; kind: string; blame: FailureBlame; retryAfterMs?: number;
    /** The job got as far as asking the CA for an order (not refused before it: CA backoff, lock, store, account). */
    ordered?: boolean;
  };

