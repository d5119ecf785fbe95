/**
 * How a finished job changes its certificate's index record: a new
 * certificate gives it new facts and clears its backoff and pending order; a
 * failure the host is to blame for extends its backoff. Faults of the CA,
 * the store or a lock say nothing about the host and change nothing here.
 */
import { readCertificateInfo } from '../certificate-info.js';
import type { Logger } from '../log.js';
import { nextBackoff } from './backoff.js';
import { recordFromCertificate, type RenewalPolicy } from './index-record.js';
import type { CertificateIndex } from './index.js';
import type { JobEvent } from './job.js';

export interface IndexEventOptions {
  policy: () => RenewalPolicy;
  failBackoffMinutes: () => number;
  log: Logger;
  now?: () => number;
}

export function recordJobEvents(index: CertificateIndex, opts: IndexEventOptions): (event: JobEvent) => void {
  const now = () => new Date((opts.now ?? Date.now)());
  const persistFailed = (name: string) => (err: Error) =>
    opts.log.warn({ cert: name, err: err.message }, 'index record kept in memory; it is written when the store answers');
  return (event) => {
    if (event.type === 'issued') {
      const { name } = event.outcome;
      const info = readCertificateInfo(event.bundle.cert);
      void index.update(name, event.bundle.names, (prev) => ({
        ...recordFromCertificate(name, info, prev, opts.policy(), now()), backoff: null, order: null,
        ...(event.outcome.ca ? { ca: event.outcome.ca } : {}),
      })).catch(persistFailed(name));
    } else if (event.type === 'failed' && event.blame === 'host') {
      const { name } = event;
      void index.update(name, event.names, (prev) => ({
        ...prev,
        backoff: nextBackoff(prev.backoff, {
          at: now(), kind: event.kind, message: event.error.message, retryAfterMs: event.retryAfterMs,
        }, opts.failBackoffMinutes()),
      })).then((record) => {
        opts.log.warn({ cert: name, failures: record.backoff?.failures, backoffUntil: record.backoff?.until }, 'host in failure backoff');
      }, persistFailed(name));
    }
  };
}
