/**
 * Which name a certificate is kept under: its first name, without a
 * wildcard's "*." (certbot's convention). How that name is written in a
 * storage key or path (an IPv6 address's ":" as "_") is storage/name-segment.ts.
 */
export function storageName(firstName: string): string {
  return firstName.startsWith('*.') ? firstName.slice(2) : firstName;
}
