/**
 * Host name validation. Every host name that reaches a path, a storage key or
 * an ACME order passes through here first, so hostile input ("../", "a/b",
 * overlong labels, raw unicode) is refused before it can touch anything.
 */
import { AcmedError } from './errors.js';
import { looksLikeIpAddress, parseIpAddress } from './ip-address.js';

export class InvalidHostnameError extends AcmedError {
  override readonly code = 'INVALID_HOSTNAME';
  override get status(): number {
    return 400;
  }
  constructor(readonly input: string, reason: string) {
    super(`invalid host name ${JSON.stringify(truncate(input))}: ${reason}`);
  }
}

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const MAX_NAME_LENGTH = 253;

function truncate(input: string): string {
  return input.length > 80 ? `${input.slice(0, 77)}...` : input;
}

/**
 * Returns the canonical (lower-case, no trailing dot) form of a DNS host name,
 * or of an IP address literal (ip-address.ts: RFC 5952 for IPv6), or throws
 * InvalidHostnameError. IDNs must arrive in A-label form ("xn--"):
 * converting unicode here would let two spellings map to one certificate.
 * An IP address is never a wildcard: "*.1.2.3.4" fails as a host name.
 */
export function normalizeHostname(input: unknown, opts: { allowWildcard?: boolean } = {}): string {
  if (typeof input !== 'string') throw new InvalidHostnameError(String(input), 'not a string');
  if (input.length === 0) throw new InvalidHostnameError(input, 'empty');
  if (input.length > MAX_NAME_LENGTH + 1) throw new InvalidHostnameError(input, `longer than ${MAX_NAME_LENGTH} characters`);
  // eslint-disable-next-line no-control-regex
  if (/[^\x21-\x7e]/.test(input)) {
    throw new InvalidHostnameError(input, 'contains non-ASCII or control characters (use the A-label "xn--" form for IDNs)');
  }
  if (input.startsWith('*.') && looksLikeIpAddress(input.slice(2))) throw new InvalidHostnameError(input, 'an IP address cannot be a wildcard');
  if (looksLikeIpAddress(input)) {
    const ip = parseIpAddress(input.toLowerCase());
    if ('reason' in ip) throw new InvalidHostnameError(input, ip.reason);
    return ip.address;
  }
  let name = input.toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (name.length > MAX_NAME_LENGTH) throw new InvalidHostnameError(input, `longer than ${MAX_NAME_LENGTH} characters`);
  const labels = name.split('.');
  if (labels.length < 2) throw new InvalidHostnameError(input, 'needs at least two labels');
  labels.forEach((label, i) => {
    if (label === '*' && i === 0 && opts.allowWildcard) return;
    if (label.length === 0) throw new InvalidHostnameError(input, 'empty label');
    if (label.length > 63) throw new InvalidHostnameError(input, 'label longer than 63 characters');
    if (!LABEL.test(label)) throw new InvalidHostnameError(input, `label ${JSON.stringify(label)} is not a DNS label`);
  });
  // "0x7f.0.0.1", "1.2.3.0x4": numbers some resolvers read as an address; a real address is written in four decimal parts.
  if (/^(?:0x[0-9a-f]*|[0-9]+)$/.test(labels[labels.length - 1])) {
    throw new InvalidHostnameError(input, 'neither a host name (its last label is a number) nor an IPv4 address in four decimal parts');
  }
  return name;
}

export function isValidHostname(input: unknown): boolean {
  try {
    normalizeHostname(input);
    return true;
  } catch {
    return false;
  }
}

/**
 * Allowlist match: "example.com" matches itself, "*.example.com" matches
 * exactly one more label (a.example.com, not a.b.example.com), the same rule
 * a wildcard certificate follows.
 */
export function matchesPattern(host: string, pattern: string): boolean {
  // An IP address matches only itself: "*.0.0.1" is refused as a pattern, and never reaches here.
  if (!pattern.startsWith('*.')) return host === pattern;
  // Without slicing: this runs for every certificate on every pass.
  const headLength = host.length - (pattern.length - 1);
  if (headLength <= 0 || !host.endsWith(pattern.slice(1))) return false;
  const dot = host.indexOf('.');
  return dot === headLength;
}
