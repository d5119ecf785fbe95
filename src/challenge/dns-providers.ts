/**
 * Builds the dns-01 solver from the `dns` config section: the one place that
 * knows which provider file a `dns.provider` name means.
 */
import type { DnsConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { Storage } from '../storage/storage.js';
import { Dns01Solver } from './dns01.js';
import { ExecProvider } from './dns-exec.js';
import type { DnsProvider } from './dns-provider.js';
import { Rfc2136Provider } from './dns-rfc2136.js';
import { parseServer } from './dns-transport.js';

async function createProvider(dns: DnsConfig): Promise<DnsProvider> {
  switch (dns.provider) {
    case 'rfc2136': return Rfc2136Provider.create(dns.rfc2136!);
    case 'exec': return new ExecProvider(dns.exec!);
  }
}

export async function createDns01Solver(dns: DnsConfig, storage: Storage, log: Logger): Promise<Dns01Solver> {
  return new Dns01Solver({
    provider: await createProvider(dns),
    storage,
    log,
    resolvers: dns.resolvers.map(parseServer),
    propagationTimeoutMs: dns.propagation_timeout_seconds * 1000,
    zone: dns.provider === 'rfc2136' ? dns.rfc2136!.zone : null,
  });
}
