/**
 * Waits until every server shows every expected TXT value, before the CA is
 * asked to validate: a CA that looks too early fails the order for good.
 * Bounded by dns.propagation_timeout_seconds; the error names what was still
 * missing where.
 */
import { abortable, sleepUnlessAborted } from '../acme/abort.js';
import { formatServer, type DnsServer } from './dns-transport.js';
import { txtValues } from './dns-lookup.js';

export interface ExpectedTxt {
  fqdn: string;
  value: string;
  /** The servers to ask for this record (its zone's authoritative servers, or dns.resolvers). */
  servers: DnsServer[];
}

export class PropagationTimeoutError extends Error {
  readonly code = 'DNS_PROPAGATION_TIMEOUT';
}

const FIRST_CHECK_INTERVAL_MS = 200;
const MAX_CHECK_INTERVAL_MS = 2_000;

/** Resolves with the milliseconds waited; rejects with PropagationTimeoutError after timeoutMs. */
export async function waitForPropagation(
  records: ExpectedTxt[], opts: { timeoutMs: number; recursion: boolean; signal?: AbortSignal },
): Promise<number> {
  const started = Date.now();
  let pending = records.flatMap((r) => r.servers.map((server) => ({ ...r, server })));
  let interval = FIRST_CHECK_INTERVAL_MS;
  let lastProblem = new Map<string, string>();
  for (;;) {
    const results = await Promise.all(pending.map(async (check) => {
      try {
        const values = await abortable(txtValues(check.fqdn, check.server, opts.recursion), opts.signal);
        return values.includes(check.value) ? null : `${check.fqdn} at ${formatServer(check.server)}: value not there yet`;
      } catch (err) {
        if (opts.signal?.aborted) throw err;
        return `${check.fqdn} at ${formatServer(check.server)}: ${(err as Error).message}`;
      }
    }));
    lastProblem = new Map();
    pending = pending.filter((check, i) => {
      if (results[i] === null) return false;
      lastProblem.set(`${check.fqdn}@${formatServer(check.server)}`, results[i]!);
      return true;
    });
    const waited = Date.now() - started;
    if (pending.length === 0) return waited;
    if (waited + interval > opts.timeoutMs) {
      throw new PropagationTimeoutError(`DNS records not visible after ${Math.round(waited / 1000)} s (dns.propagation_timeout_seconds): ${[...lastProblem.values()].join('; ')}`);
    }
    await sleepUnlessAborted(interval, opts.signal);
    interval = Math.min(interval * 2, MAX_CHECK_INTERVAL_MS);
  }
}
