/**
 * The one log line per finished job, as a listener of the issuer's outcome
 * events. Host failures are warnings (someone should look at DNS or port
 * 80); faults of the CA, the store or a lock are info, since acmed retries
 * them by itself; an order abandoned by shutdown says so.
 */
import type { Logger } from '../log.js';
import type { JobEvent } from '../renewal/job.js';

export function logJobEvents(log: Logger): (event: JobEvent) => void {
  return (event) => {
    switch (event.type) {
      case 'issued': {
        const { outcome } = event;
        log.info({
          cert: outcome.name, names: outcome.names, notAfter: outcome.notAfter, requests: outcome.requests,
          ms: outcome.durationMs, resumed: outcome.resumed, fromSpool: outcome.fromSpool,
        }, 'certificate issued');
        return;
      }
      case 'skipped':
        log.debug({ cert: event.name, reason: event.reason }, 'certificate job skipped');
        return;
      case 'failed': {
        const fields = { cert: event.name, names: event.names, kind: event.kind, blame: event.blame, err: event.error.message };
        if (event.blame === 'host') log.warn(fields, 'certificate order failed');
        else if (event.blame === 'shutdown') log.warn(fields, event.error.message);
        else if (event.blame === 'config') log.error(fields, 'certificate not ordered: the config asks for what the CA does not offer; fix it and reload');
        else log.info(fields, 'certificate order not completed; acmed retries by itself');
      }
    }
  };
}
