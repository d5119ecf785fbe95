/**
 * IP address names (RFC 8738 "ip" identifiers). One spelling per address, so
 * two ways of writing it can never become two certificates, two storage
 * paths or an order the CA reports back under another name:
 *  - IPv4: four decimal parts, no leading zeros. "010.1.1.1" (octal to some
 *    parsers), "1.2.3" and "0x7f.0.0.1" (shorthand inet_aton accepts) are
 *    refused rather than guessed at.
 *  - IPv6: RFC 5952 text (lower case, longest zero run compressed, hex
 *    groups). Zone ids ("%eth0") are refused: a
 *    certificate cannot name an interface. IPv4-mapped addresses
 *    (::ffff:a.b.c.d) are refused with a hint to write the IPv4 address: a
 *    client connecting to one speaks IPv4 to the IPv4 address. Embedded
 *    dotted forms are accepted as input and written in hex groups.
 * Private, loopback and link-local addresses are accepted: whether one can
 * be certified is the CA's decision (public CAs refuse them; Pebble, which
 * the tests use, validates 127.0.0.1 and ::1).
 */
import { isIPv6 } from 'node:net';

const IPV4_PART = /^(?:0|[1-9][0-9]{0,2})$/;

/** Looks like an attempt at an IP address: nothing that is one can pass as a host name, and the reverse. */
export function looksLikeIpAddress(input: string): boolean {
  return /^[0-9]+(?:\.[0-9]+)*$/.test(input) || /^[0-9a-f:.]*:[0-9a-f:.]*(?:%.*)?$/i.test(input) || /^\[.*\]$/.test(input);
}

/** The canonical form of an IP address literal, or the reason it is refused. */
export function parseIpAddress(input: string): { address: string; version: 4 | 6 } | { reason: string } {
  if (input.includes(':')) return parseIpv6(input);
  const parts = input.split('.');
  if (parts.length !== 4) return { reason: 'an IPv4 address needs four dot-separated numbers' };
  for (const part of parts) {
    if (!IPV4_PART.test(part) || Number(part) > 255) {
      return { reason: `IPv4 part ${JSON.stringify(part)} is not a number 0..255 without leading zeros` };
    }
  }
  return { address: input, version: 4 };
}

function parseIpv6(input: string): { address: string; version: 6 } | { reason: string } {
  if (input.includes('%')) return { reason: 'IPv6 zone ids ("%eth0") cannot be in a certificate' };
  if (input.startsWith('[')) return { reason: 'write an IPv6 address without brackets' };
  if (!isIPv6(input)) return { reason: 'not an IPv6 address' };
  const address = canonicalIpv6(input);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(address);
  if (mapped) {
    const [high, low] = [parseInt(mapped[1]!, 16), parseInt(mapped[2]!, 16)];
    return { reason: `an IPv4-mapped address; write the IPv4 address ${high >> 8}.${high & 255}.${low >> 8}.${low & 255}` };
  }
  return { address, version: 6 };
}

/**
 * RFC 5952 text of a valid IPv6 address. The WHATWG URL serializer is that
 * algorithm (and always prints hex groups, where inet_ntop would print
 * "::1:0" as "::0.1.0.0").
 */
export function canonicalIpv6(address: string): string {
  return new URL(`http://[${address}]/`).hostname.slice(1, -1);
}

/** True for a name that is an IP address in canonical form (every name past normalizeHostname is canonical). */
export function isIpAddress(name: string): boolean {
  return (name.includes(':') || /^[0-9.]+$/.test(name)) && 'address' in parseIpAddress(name);
}
