/**
 * The one mapping from a certificate's name to the segment that stands for
 * it in a storage key, a file path or an object name, and back. Host names
 * and IPv4 addresses are written as they are; in an IPv6 address each ":"
 * becomes "_" (2001:db8::1 → 2001_db8__1), since ":" is not safe in every
 * backend's keys (Windows paths, Kubernetes object names, URLs) and "_" is
 * never in a host name or an address, so no two names share a segment.
 */
import { normalizeHostname } from '../hostname.js';

/** The storage segment for a name; throws InvalidHostnameError for anything that is not a host name or an IP address. */
export function nameSegment(name: string): string {
  return normalizeHostname(name).replaceAll(':', '_');
}

/** The name a segment stands for (the inverse of nameSegment); throws for a segment no name maps to. */
export function nameOfSegment(segment: string): string {
  const name = segment.replaceAll('_', ':');
  const normalized = normalizeHostname(name);
  // Only the canonical spelling is a segment: "0_0__1" is not where ::1 is kept.
  if (normalized !== name) throw new Error(`${JSON.stringify(segment)} is not the storage segment of a name`);
  return normalized;
}

/** The names behind a backend's listed segments; a segment no name maps to (an operator's own entry) is passed over. */
export function namesOfSegments(segments: Iterable<string>): string[] {
  const names: string[] = [];
  for (const segment of segments) {
    try {
      names.push(nameOfSegment(segment));
    } catch {
      // not one of ours
    }
  }
  return names;
}
