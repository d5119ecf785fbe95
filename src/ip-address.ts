/**
 * IP address names (RFC 8738 "ip" identifiers). One spelling per address, so
 * two ways of writing it can never become two certificates, two storage
 * paths or an order the CA reports back under another name:
 *  - IPv4: four decimal parts, no leading zeros. "010.1.1.1" (octal to some
 *    parsers), "1.2.3" and "0x7f.0.0.1" (shorthand inet_aton accepts) are
 *    refused rather than guessed at.
 *  - IPv6: RFC 5952 text (lower case, longest zero run compressed), as the
 *    C library's inet_ntop prints it. Zone ids ("%eth0") are refused: a
 *    certificate cannot name an interface. IPv4-mapped and IPv4-compatible
 *    forms are refused with a hint to write the IPv4 address.
 * Private, loopback and link-local addresses are accepted: whether one can
 * be certified is the CA's decision (public CAs refuse them; Pebble, which
 * the tests use, validates 127.0.0.1 and ::1).
 */
import { isIPv6, SocketAddress } from 'node:net';

const IPV4_PART = /^(?:0|[1-9][0-9]{0,2})$/;

/** Looks like an attempt at an IP address: nothing that is one can pass as a host name, and the reverse. */
export function looksLikeIpAddress(input: string): boolean {
  return input.includes(':') || /^[0-9.]+$/.test(input) || /^\[.*\]$/.test(input);
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
  const address = new SocketAddress({ address: input, family: 'ipv6' }).address;
  const embedded = /^::(?:ffff:)?([0-9]+\.[0-9.]+)$/.exec(address);
  if (embedded) return { reason: `an IPv4-mapped or IPv4-compatible address; write the IPv4 address ${embedded[1]}` };
  return { address, version: 6 };
}

/** True for a name that is an IP address in canonical form (every name past normalizeHostname is canonical). */
export function isIpAddress(name: string): boolean {
  return (name.includes(':') || /^[0-9.]+$/.test(name)) && 'address' in parseIpAddress(name);
}
