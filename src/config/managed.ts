/**
 * Which certificate a host request maps to. A host listed in `certificates:`
 * gets that certificate (all its names); a host allowed by a `domains`
 * pattern gets a certificate of its own; anything else is refused before any
 * ACME request is made.
 */
import type { ChallengeType } from '../challenge/solver.js';
import { AcmedError } from '../errors.js';
import { storageName, type Config } from './schema.js';
import { matchesPattern, normalizeHostname } from '../hostname.js';
import { isIpAddress } from '../ip-address.js';

export class HostNotAllowedError extends AcmedError {
  override readonly code = 'HOST_NOT_ALLOWED';
  override get status(): number {
    return 403;
  }
  constructor(readonly host: string) {
    super(`${host} is not in "certificates" and matches no "domains" pattern; refusing to order a certificate for it`);
  }
}

export interface ManagedCertificate {
  /** The first name, without a wildcard's "*.": where the certificate is stored. */
  name: string;
  names: string[];
  /** How the CA's challenges are answered; unset: challenge.type. */
  challenge?: ChallengeType;
}

export function configuredCertificates(config: Config): ManagedCertificate[] {
  return config.certificates.map((c) => ({ name: storageName(c.names[0]), names: c.names, challenge: challengeOf(config, c) }));
}

/**
 * A certificate's challenge: its own, else dns-01 for one with a wildcard
 * name, else http-01 for one with an IP address (RFC 8738 §7: no dns-01 for
 * an address), else the global default.
 */
function challengeOf(config: Config, cert: Config['certificates'][number]): ChallengeType {
  if (cert.challenge) return cert.challenge;
  if (cert.names.some((n) => n.startsWith('*.'))) return 'dns-01';
  if (cert.names.some(isIpAddress)) return 'http-01';
  return config.challenge.type;
}

/** The challenge type an order for cert uses. */
export function challengeFor(config: Config, cert: ManagedCertificate): ChallengeType {
  return cert.challenge ?? config.challenge.type;
}

/** Maps a requested host to the certificate that covers it; throws for hosts acmed must not order. */
export function certificateForHost(config: Config, rawHost: string): ManagedCertificate {
  // "*.example.com" names a configured wildcard certificate; it never matches `domains` (those allow hosts).
  const host = normalizeHostname(rawHost, { allowWildcard: true });
  if (host.startsWith('*.')) {
    const wildcard = configuredCertificates(config).find((c) => c.names.includes(host));
    if (wildcard) return wildcard;
    throw new HostNotAllowedError(host);
  }
  // A wildcard certificate is found by the name it is stored under (its base name) too.
  const configured = configuredCertificates(config).find((c) => c.names.includes(host))
    ?? configuredCertificates(config).find((c) => c.name === host);
  if (configured) return configured;
  if (config.domains.some((pattern) => matchesPattern(host, pattern))) {
    // An address allowed by `domains` is validated by http-01 whatever challenge.type says.
    return isIpAddress(host) ? { name: host, names: [host], challenge: 'http-01' } : { name: host, names: [host] };
  }
  throw new HostNotAllowedError(host);
}

/** Configured certificates by each of their names (the first listed wins), kept per config object. */
const configuredByHost = new WeakMap<Config, Map<string, ManagedCertificate>>();

function configuredHosts(config: Config): Map<string, ManagedCertificate> {
  let byHost = configuredByHost.get(config);
  if (!byHost) {
    byHost = new Map();
    for (const cert of configuredCertificates(config)) {
      for (const host of [...cert.names, cert.name]) if (!byHost.has(host)) byHost.set(host, cert);
    }
    configuredByHost.set(config, byHost);
  }
  return byHost;
}

const CANONICAL = /^[a-z0-9.-]+$/;

/**
 * managedCertificateNamed(config, name) !== undefined, without building
 * anything for a name already in canonical form (every index name is): the
 * scheduler and the listing ask this for each of 100,000 certificates on
 * every pass and page, and the garbage of the full path grew the heap by
 * 50 MB a pass.
 */
export function isManagedName(config: Config, name: string): boolean {
  // An IPv6 address takes the full path: it is no hot case.
  if (!CANONICAL.test(name)) return managedCertificateNamed(config, name) !== undefined;
  const configured = configuredHosts(config).get(name);
  if (configured) return configured.name === name;
  return config.domains.some((pattern) => matchesPattern(name, pattern));
}

/** The certificate named `name` when acmed keeps it (configured, or allowed by `domains` as its own); undefined otherwise. */
export function managedCertificateNamed(config: Config, name: string): ManagedCertificate | undefined {
  try {
    const cert = certificateForHost(config, name);
    return cert.name === name ? cert : undefined;
  } catch {
    return undefined; // removed from the config: its files stay, it is no longer renewed
  }
}
