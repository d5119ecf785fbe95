/**
 * What a dns-01 provider does: put one TXT value at one name, and take
 * exactly that value away again. The dns-01 solver (dns01.ts) works out the
 * name (following a CNAME), the zone and the value, keeps a ledger for crash
 * cleanup and checks propagation; a provider only talks to the DNS.
 * A provider is one file (dns-rfc2136.ts, dns-exec.ts) and one line in
 * dns-providers.ts.
 */
import type { DnsServer } from './dns-transport.js';

export interface TxtRecord {
  /** Fully qualified record name without the trailing dot, e.g. "_acme-challenge.example.com". */
  fqdn: string;
  /** The zone the record lives in (SOA lookup), e.g. "example.com". */
  zone: string;
  /** The TXT value: base64url SHA-256 of the key authorization. */
  value: string;
}

export interface DnsProvider {
  /** "rfc2136" or "exec": written into the ledger and the logs. */
  readonly kind: string;
  /** Adds the value at the name, beside any other values there (apex + wildcard share a name). */
  present(record: TxtRecord): Promise<void>;
  /** Removes exactly this value; other values at the name stay. Removing one that is gone is not an error. */
  cleanup(record: TxtRecord): Promise<void>;
  /** Where to ask about zones and CNAMEs when dns.resolvers is empty (RFC 2136: the server it updates). */
  readonly lookupServer?: DnsServer;
}
