/**
 * The CAs acmed orders from: `api_uri` is one directory URL or a list in
 * fallback order. Everything that needs the CAs reads them here, as a list,
 * so no caller branches on the two spellings.
 */
import type { ExternalAccountBinding } from '../acme/zerossl-eab.js';
import { AcmedError } from '../errors.js';
import type { Config } from './schema.js';

/** The CAs' directory URLs, first = preferred. */
export function caDirectories(config: Pick<Config, 'api_uri'>): string[] {
  return typeof config.api_uri === 'string' ? [config.api_uri] : config.api_uri;
}

/** The preferred CA: where orders start, and the CA of certificates whose issuer was never recorded. */
export function firstCa(config: Pick<Config, 'api_uri'>): string {
  return caDirectories(config)[0]!;
}

/** The configured binding for one CA: its `eab` entry, or eab_kid/eab_hmac_key for the first CA. */
export function configuredEab(config: Pick<Config, 'api_uri' | 'eab' | 'eab_kid' | 'eab_hmac_key'>, directoryUrl: string): ExternalAccountBinding | undefined {
  const entry = config.eab?.[directoryUrl];
  if (entry) return { kid: entry.kid, hmacKey: entry.hmac_key };
  if (directoryUrl === firstCa(config) && config.eab_kid && config.eab_hmac_key) return { kid: config.eab_kid, hmacKey: config.eab_hmac_key };
  return undefined;
}

/** An admin call named a CA that is not in `api_uri`. */
export class UnknownCaError extends AcmedError {
  override readonly code = 'UNKNOWN_CA';
  override get status(): number {
    return 404;
  }

  override get kind(): string {
    return 'unknown_ca';
  }

  constructor(directoryUrl: string, known: string[]) {
    super(`${directoryUrl} is not one of the CAs in api_uri (${known.join(', ')})`);
  }
}

/** The named CA (default: the first), refused when api_uri does not list it. */
export function listedCa(config: Pick<Config, 'api_uri'>, directoryUrl?: string | null): string {
  const cas = caDirectories(config);
  if (!directoryUrl) return cas[0]!;
  if (!cas.includes(directoryUrl)) throw new UnknownCaError(directoryUrl, cas);
  return directoryUrl;
}
