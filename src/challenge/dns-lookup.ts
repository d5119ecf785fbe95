/**
 * The DNS facts a dns-01 record needs before it is written: where the
 * challenge name really points (a CNAME delegates it, as lego follows it),
 * which zone holds that name (the SOA that answers for it), and which
 * servers are authoritative for the zone (where propagation is checked).
 */
import type { Answer } from 'dns-packet';
import { lookup } from 'node:dns/promises';
import { query, type DnsServer, formatServer } from './dns-transport.js';

/** The data of a record that has some (every type but OPT). */
function dataOf(record: Answer): unknown {
  return (record as { data?: unknown }).data;
}

/** The answer's rcode name (dns-packet decodes it; its type declarations leave it out). */
function rcodeOf(packet: object): string {
  return (packet as { rcode?: string }).rcode ?? 'NOERROR';
}

const MAX_CNAME_HOPS = 8;
/** A DNS name as it may appear in a CNAME target: letters, digits, "-" and "_" (as in "_acme-challenge"). */
const RECORD_NAME = /^(?=.{1,253}$)([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)+$/;

function sameName(a: string, b: string): boolean {
  return a.replace(/\.$/, '').toLowerCase() === b.replace(/\.$/, '').toLowerCase();
}

function bare(name: string): string {
  return name.replace(/\.$/, '').toLowerCase();
}

/**
 * Follows CNAMEs from name and returns the last name in the chain (name
 * itself when it is no alias), so the TXT record is written where the
 * validator's resolver ends up.
 */
export async function followCname(name: string, server: DnsServer): Promise<string> {
  let current = bare(name);
  const seen = new Set([current]);
  for (let hop = 0; hop < MAX_CNAME_HOPS; hop++) {
    const answer = await query(server, current, 'CNAME', { recursion: true });
    const alias = answer.answers?.find((a) => a.type === 'CNAME' && sameName(a.name, current));
    if (!alias) return current;
    const target = bare(dataOf(alias) as string);
    // The target goes into an update and a hook's argv: only a plain DNS name is taken.
    if (!RECORD_NAME.test(target)) throw new Error(`the CNAME at ${current} points to ${JSON.stringify(target.slice(0, 80))}, which is not a usable DNS name`);
    if (seen.has(target)) throw new Error(`the CNAME chain from ${name} loops at ${target}`);
    seen.add(target);
    current = target;
  }
  throw new Error(`the CNAME chain from ${name} is longer than ${MAX_CNAME_HOPS}`);
}

/**
 * The zone that holds name: the owner of the SOA record a server returns for
 * it (in the answer when name is the apex, in the authority section
 * otherwise, NXDOMAIN included), asking for each parent in turn when a
 * server gives neither.
 */
export async function findZone(name: string, server: DnsServer): Promise<string> {
  const labels = bare(name).split('.');
  for (let i = 0; i < labels.length - 1; i++) {
    const candidate = labels.slice(i).join('.');
    const answer = await query(server, candidate, 'SOA', { recursion: true });
    if (rcodeOf(answer) === 'REFUSED' || rcodeOf(answer) === 'SERVFAIL') {
      throw new Error(`DNS server ${formatServer(server)} answered ${rcodeOf(answer)} for the SOA of ${candidate}: it does not serve the zone of ${name}`);
    }
    const soa = [...(answer.answers ?? []), ...(answer.authorities ?? [])].find((a) => a.type === 'SOA');
    if (soa && bare(soa.name) === '') throw new Error(`no zone found for ${name}: DNS server ${formatServer(server)} knows only the root zone above it`);
    if (soa) return bare(soa.name);
  }
  throw new Error(`no zone found for ${name}: DNS server ${formatServer(server)} returned no SOA for it or any parent`);
}

/**
 * The zone's authoritative servers, each on port 53: its NS records, their
 * addresses from the same server, else (a primary that serves no zone of the
 * NS hosts) from this machine's resolver.
 */
export async function authoritativeServers(zone: string, server: DnsServer): Promise<DnsServer[]> {
  const ns = await query(server, zone, 'NS', { recursion: true });
  const hosts = (ns.answers ?? []).filter((a) => a.type === 'NS').map((a) => bare(dataOf(a) as string));
  const servers: DnsServer[] = [];
  for (const host of hosts) {
    const found: string[] = [];
    for (const type of ['A', 'AAAA'] as const) {
      const addresses = await query(server, host, type, { recursion: true }).catch(() => null);
      for (const a of addresses?.answers ?? []) if (a.type === type) found.push(dataOf(a) as string);
    }
    if (found.length === 0) found.push(...(await lookup(host, { all: true }).catch(() => [])).map((a) => a.address));
    servers.push(...found.map((host) => ({ host, port: 53 })));
  }
  if (servers.length === 0) throw new Error(`no authoritative server found for zone ${zone} (asked ${formatServer(server)} for its NS records)`);
  return servers;
}

/** The TXT strings at name on one server, asked without recursion (an authoritative answer). */
export async function txtValues(name: string, server: DnsServer, recursion = false): Promise<string[]> {
  const answer = await query(server, name, 'TXT', { recursion });
  return (answer.answers ?? []).filter((a) => a.type === 'TXT').map((a) => {
    const data = dataOf(a) as Buffer | Buffer[] | string;
    const parts = Array.isArray(data) ? data : [data];
    return parts.map((p) => p.toString()).join('');
  });
}
