/** Where a certificate is stored: its first name, without a wildcard's "*." (certbot's convention). */
export function storageName(firstName: string): string {
  return firstName.startsWith('*.') ? firstName.slice(2) : firstName;
}
