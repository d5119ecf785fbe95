/**
 * The dns-01 solver: for each authorization it finds where the TXT record
 * goes (`_acme-challenge.<name>`, or the end of the CNAME chain from there,
 * in that name's zone), notes it in the ledger, has the provider write it,
 * waits until every DNS server that matters shows every value of the
 * order, and afterwards removes exactly the records it wrote, on success,
 * failure or shutdown alike. Apex and wildcard of one name share one record
 * name with two values.
 */
import { getServers } from 'node:dns';
import type { Logger } from '../log.js';
import type { Storage } from '../storage/storage.js';
import { authoritativeServers, findZone, followCname } from './dns-lookup.js';
import { waitForPropagation, type ExpectedTxt } from './dns-propagation.js';
import type { DnsProvider, TxtRecord } from './dns-provider.js';
import { DnsRecordLedger } from './dns-record-ledger.js';
import { DnsUpdateError } from './dns-rfc2136.js';
import { formatServer, parseServer, type DnsServer } from './dns-transport.js';
import type { ChallengeAnswer, ChallengeSolver } from './solver.js';

export interface Dns01Options {
  provider: DnsProvider;
  storage: Storage;
  log: Logger;
  /** dns.resolvers: where propagation is checked; empty: each zone's authoritative servers. */
  resolvers: DnsServer[];
  propagationTimeoutMs: number;
  /** dns.rfc2136.zone: used for record names inside it; null: SOA lookup. */
  zone?: string | null;
  /** Owner token written with each ledger entry; default: this process's (tests play an earlier run with it). */
  owner?: string;
}

function isWithin(name: string, zone: string): boolean {
  return name === zone || name.endsWith(`.${zone}`);
}

export class Dns01Solver implements ChallengeSolver {
  readonly type = 'dns-01';
  /** The record each presented answer wrote, by challenge token (unique per challenge). */
  private readonly placed = new Map<string, TxtRecord>();
  private readonly ledger: DnsRecordLedger;

  constructor(private readonly opts: Dns01Options) {
    this.ledger = new DnsRecordLedger(opts.storage, opts.owner);
  }

  /** Where zones, CNAMEs and NS records are asked: the provider's server, else dns.resolvers, else this machine's resolver. */
  private get lookupServer(): DnsServer {
    const server = this.opts.provider.lookupServer ?? this.opts.resolvers[0] ?? (getServers()[0] ? parseServer(getServers()[0]) : undefined);
    if (!server) throw new Error('no DNS server to look up zones with: set dns.resolvers');
    return server;
  }

  async present(answer: ChallengeAnswer): Promise<void> {
    const lookup = this.lookupServer;
    const fqdn = await followCname(`_acme-challenge.${answer.identifier}`, lookup);
    const configured = this.opts.zone?.replace(/\.$/, '').toLowerCase();
    const zone = configured && isWithin(fqdn, configured) ? configured : await findZone(fqdn, lookup);
    const record: TxtRecord = { fqdn, zone, value: answer.keyAuthorization };
    this.placed.set(answer.token, record);
    await this.ledger.add(record, this.opts.provider.kind);
    try {
      await this.opts.provider.present(record);
    } catch (err) {
      // A refused update changed nothing (RFC 2136 updates are atomic): nothing to clean up later.
      if (err instanceof DnsUpdateError) {
        this.placed.delete(answer.token);
        await this.ledger.remove(record).catch(() => {});
      }
      throw err;
    }
    const delegated = fqdn !== `_acme-challenge.${answer.identifier}`;
    this.opts.log.info({ name: answer.identifier, wildcard: answer.wildcard, record: fqdn, zone, delegated, provider: this.opts.provider.kind }, 'dns-01 TXT record added');
  }

  async ready(answers: ChallengeAnswer[], signal?: AbortSignal): Promise<number> {
    const records = answers.map((a) => this.placed.get(a.token)).filter((r): r is TxtRecord => r !== undefined);
    if (records.length === 0) return 0;
    const serversByZone = new Map<string, DnsServer[]>();
    for (const zone of new Set(records.map((r) => r.zone))) {
      serversByZone.set(zone, this.opts.resolvers.length > 0 ? this.opts.resolvers : await authoritativeServers(zone, this.lookupServer));
    }
    const expected: ExpectedTxt[] = records.map((r) => ({ fqdn: r.fqdn, value: r.value, servers: serversByZone.get(r.zone)! }));
    const servers = [...new Set([...serversByZone.values()].flat().map(formatServer))];
    this.opts.log.info({ records: [...new Set(records.map((r) => r.fqdn))], servers, timeoutSeconds: this.opts.propagationTimeoutMs / 1000 }, 'waiting for dns-01 records to propagate');
    const ms = await waitForPropagation(expected, {
      timeoutMs: this.opts.propagationTimeoutMs, recursion: this.opts.resolvers.length > 0, signal,
    });
    this.opts.log.info({ records: records.length, servers, ms }, 'dns-01 records visible on every server');
    return ms;
  }

  async cleanUp(answer: ChallengeAnswer): Promise<void> {
    const record = this.placed.get(answer.token);
    if (!record) return;
    this.placed.delete(answer.token);
    await this.remove(record);
  }

  private async remove(record: TxtRecord): Promise<boolean> {
    try {
      await this.opts.provider.cleanup(record);
    } catch (err) {
      this.opts.log.warn({ record: record.fqdn, zone: record.zone, err: (err as Error).message }, 'cannot remove a dns-01 TXT record; it is removed at the next start');
      return false;
    }
    await this.ledger.remove(record).catch((err: Error) => {
      this.opts.log.warn({ record: record.fqdn, err: err.message }, 'removed a dns-01 TXT record but could not forget it; the next start removes it again');
    });
    this.opts.log.info({ record: record.fqdn, zone: record.zone }, 'dns-01 TXT record removed');
    return true;
  }

  /**
   * Removes the records an earlier run of this instance placed and never
   * removed (killed mid-order, or the DNS server was down at cleanup). Called
   * at start, before any order runs; returns how many were removed.
   */
  async cleanLeftovers(): Promise<number> {
    let removed = 0;
    for (const entry of await this.ledger.leftovers()) {
      if (await this.remove({ fqdn: entry.fqdn, zone: entry.zone, value: entry.value })) removed++;
    }
    return removed;
  }
}
