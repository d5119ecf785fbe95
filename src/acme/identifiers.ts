/**
 * ACME identifiers for certificate names: a host name is a "dns" identifier
 * (RFC 8555 §9.7.7), an IP address an "ip" identifier (RFC 8738 §3). What
 * the CA sends back (an order's identifiers, an authorization's) is read
 * into acmed's canonical spelling, since a CA may write an IPv6 address
 * another way (uncompressed, upper case) than the order asked for it.
 */
import { isIpAddress, parseIpAddress } from '../ip-address.js';

export interface Identifier {
  type: string;
  value: string;
}

/** The identifier a newOrder carries for a canonical name. */
export function identifierOf(name: string): Identifier {
  return { type: isIpAddress(name) ? 'ip' : 'dns', value: name };
}

/** The name an identifier from the CA stands for, spelled as acmed spells names. */
export function nameOfIdentifier(identifier: Identifier): string {
  const value = identifier.value.toLowerCase();
  if (identifier.type !== 'ip') return value;
  const ip = parseIpAddress(value);
  return 'address' in ip ? ip.address : value;
}
