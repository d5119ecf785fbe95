/**
 * How one certificate is ordered: its key (type, curve, size, reused or
 * new), the ACME profile and the preferred chain. The global keys apply,
 * and an entry of `certificates:` may override each for its certificate.
 * Read at each order, so a reload applies to the next one.
 */
import type { Config } from './schema.js';
import { storageName } from './storage-name.js';

export type KeyType = 'ecc' | 'rsa';

export interface OrderSettings {
  /**
   * The key types to keep, the primary first: ECDSA when both are asked
   * for (`cert_type: [ecc, rsa]`, in either order), whose certificate takes
   * the plain names in storage while the RSA one takes the `-rsa` names.
   */
  keyTypes: KeyType[];
  /** keyTypes[0]: the type of the certificate stored under the plain names. */
  keyType: KeyType;
  rsaBits: number;
  curve: 'P-256' | 'P-384';
  preferredChain: string | null;
  profile: string | null;
  reuseKey: boolean;
}

export function orderSettings(config: Config, name: string): OrderSettings {
  // name is where the certificate is stored: a wildcard's without its "*.".
  const entry = config.certificates.find((c) => storageName(c.names[0]) === name);
  const keyTypes = keyTypesOf(entry?.cert_type ?? config.cert_type);
  return {
    keyTypes,
    keyType: keyTypes[0],
    rsaBits: entry?.rsa_key_size ?? config.rsa_key_size,
    curve: entry?.ecc_curve ?? config.ecc_curve,
    preferredChain: entry?.preferred_chain !== undefined ? entry.preferred_chain : config.preferred_chain,
    profile: entry?.profile !== undefined ? entry.profile : config.profile,
    reuseKey: entry?.reuse_key ?? config.reuse_key,
  };
}

/** `cert_type` as a list, ECDSA first: the order written in the config does not matter. */
export function keyTypesOf(certType: KeyType | KeyType[]): KeyType[] {
  const asked = new Set(Array.isArray(certType) ? certType : [certType]);
  return (['ecc', 'rsa'] as const).filter((t) => asked.has(t));
}

/**
 * The settings with the primary key type alone: a certificate only Ingresses
 * ask for ends up in one `kubernetes.io/tls` Secret, which holds one pair.
 */
export function primaryTypeOnly(settings: OrderSettings): OrderSettings {
  return { ...settings, keyTypes: [settings.keyType] };
}

/** Every profile the config asks for, with where: the global key or a certificate's entry. */
export function requestedProfiles(config: Config): { profile: string; path: (string | number)[] }[] {
  const found: { profile: string; path: (string | number)[] }[] = [];
  if (config.profile) found.push({ profile: config.profile, path: ['profile'] });
  config.certificates.forEach((c, i) => {
    if (c.profile) found.push({ profile: c.profile, path: ['certificates', i, 'profile'] });
  });
  return found;
}
