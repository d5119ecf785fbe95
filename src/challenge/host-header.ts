/**
 * The name a request's Host header asks for: a host name, or an IP address
 * (RFC 8738 §6: a validation of an "ip" identifier sends the address as the
 * Host, an IPv6 one in brackets), with any port dropped. Undefined for a
 * header that names nothing acmed could hold a certificate for.
 */
import { normalizeHostname } from '../hostname.js';

const WITH_BRACKETS = /^\[([^\]]*)\](?::\d{1,5})?$/;
const WITH_PORT = /^([^:]*)(?::\d{1,5})?$/;

export function nameOfHostHeader(header: string | undefined): string | undefined {
  if (!header) return undefined;
  // A bare IPv6 address ("::1", no brackets) is not a valid Host: its last group would read as a port.
  const host = WITH_BRACKETS.exec(header)?.[1] ?? WITH_PORT.exec(header)?.[1];
  if (host === undefined || host.length === 0) return undefined;
  try {
    return normalizeHostname(host);
  } catch {
    return undefined;
  }
}

/** A name as the host part of a URL: an IPv6 address in brackets (RFC 3986 §3.2.2). */
export function urlHostOf(name: string): string {
  return name.includes(':') ? `[${name}]` : name;
}
