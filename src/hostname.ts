/**
 * Host name validation. Every host name that reaches a path, a storage key or
 * an ACME order passes through here first, so hostile input ("../", "a/b",
 * overlong labels, raw unicode) is refused before it can touch anything.
 */
import { AcmedError } from './errors.js';

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
 * or throws InvalidHostnameError. IDNs must arrive in A-label form ("xn--"):
 * converting unicode here would let two spellings map to one certificate.
 */
export function normalizeHostname(input: unknown, opts: { allowWildcard?: boolean } = {}): string {
  if (typeof input !== 'string') throw new InvalidHostnameError(String(input), 'not a string');
  if (input.length === 0) throw new InvalidHostnameError(input, 'empty');
  if (input.length > MAX_NAME_LENGTH + 1) throw new InvalidHostnameError(input, `longer than ${MAX_NAME_LENGTH} characters`);
  // eslint-disable-next-line no-control-regex
  if (/[^\x21-\x7e]/.test(input)) {
    throw new InvalidHostnameError(input, 'contains non-ASCII or control characters (use the A-label "xn--" form for IDNs)');
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
  if (/^[0-9]+$/.test(labels[labels.length - 1])) throw new InvalidHostnameError(input, 'IP addresses are not host names');
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
  if (!pattern.startsWith('*.')) return host === pattern;
  // Without slicing: this runs for every certificate on every pass.
  const headLength = host.length - (pattern.length - 1);
  if (headLength <= 0 || !host.endsWith(pattern.slice(1))) return false;
  const dot = host.indexOf('.');
  return dot === headLength;
}
