/**
 * The flat field set a terminator reads from a key-value store (Redis hash,
 * Vault secret): fullchain, privkey, cert, chain, not_after. Names and
 * validity are always re-read from the certificate itself, so a stored copy
 * can never disagree with what the PEM says.
 */
import { readCertificateInfo, splitPemChain } from '../certificate-info.js';
import { normalizeHostname } from '../hostname.js';
import type { CertificateBundle } from './storage.js';

export interface CertificateFields {
  fullchain: string;
  privkey: string;
  cert: string;
  chain: string;
  not_after: string;
}

export function toFields(bundle: CertificateBundle): CertificateFields {
  return { fullchain: bundle.fullchain, privkey: bundle.privkey, cert: bundle.cert, chain: bundle.chain, not_after: bundle.notAfter };
}

/** Null when the pair a terminator needs (fullchain + privkey) is not all there. */
export function fromFields(name: string, fields: Partial<Record<string, unknown>>): CertificateBundle | null {
  const { fullchain, privkey } = fields;
  if (typeof fullchain !== 'string' || typeof privkey !== 'string' || !fullchain || !privkey) return null;
  const parts = splitPemChain(fullchain);
  const cert = typeof fields.cert === 'string' && fields.cert ? fields.cert : (parts[0] ?? fullchain);
  const chain = typeof fields.chain === 'string' ? fields.chain : parts.slice(1).join('');
  const info = readCertificateInfo(cert);
  return {
    name: normalizeHostname(name), names: info.names, cert, chain, fullchain, privkey,
    notBefore: info.notBefore.toISOString(), notAfter: info.notAfter.toISOString(),
  };
}
