/**
 * The flat field set a terminator reads from a key-value store (Redis hash,
 * Vault secret, Consul/etcd keys, the Kubernetes Secret's extra data):
 * fullchain, privkey, cert, chain, not_after, and with an RSA certificate
 * kept beside the primary one the same fields again with `-rsa` appended
 * (`fullchain-rsa`, …, `not_after-rsa`). Names and validity are always
 * re-read from the certificate itself, so a stored copy can never disagree
 * with what the PEM says.
 */
import { readCertificateInfo, splitPemChain } from '../certificate-info.js';
import { normalizeHostname } from '../hostname.js';
import type { CertificateBundle, CertificateVariant } from './storage.js';

/** Appended to each field (and file) name of the RSA certificate kept beside the primary one. */
export const RSA_SUFFIX = '-rsa';

/** The PEM fields of one certificate, in the order stores that keep one key per file write them. */
export const PEM_FIELDS = ['fullchain', 'privkey', 'cert', 'chain'] as const;

/** The RSA variant's PEM field names: what a write without one must leave behind nowhere. */
export const RSA_PEM_FIELDS = PEM_FIELDS.map((field) => `${field}${RSA_SUFFIX}`);

export type CertificateFields = Record<string, string>;

export function toFields(bundle: CertificateBundle): CertificateFields {
  return { ...variantFields(bundle, ''), ...(bundle.rsa ? variantFields(bundle.rsa, RSA_SUFFIX) : {}) };
}

/** The PEM fields of the bundle (the RSA ones too, when it has them) as [field name, PEM] pairs. */
export function pemEntries(bundle: CertificateBundle): [string, string][] {
  const entries: [string, string][] = PEM_FIELDS.map((field) => [field, bundle[field]]);
  if (bundle.rsa) for (const field of PEM_FIELDS) entries.push([`${field}${RSA_SUFFIX}`, bundle.rsa[field]]);
  return entries;
}

/** Null when the pair a terminator needs (fullchain + privkey) is not all there. */
export function fromFields(name: string, fields: Partial<Record<string, unknown>>): CertificateBundle | null {
  const primary = variantFrom(fields, '');
  if (!primary) return null;
  const info = readCertificateInfo(primary.cert);
  const rsa = variantFrom(fields, RSA_SUFFIX);
  return { name: normalizeHostname(name), names: info.names, ...primary, ...(rsa ? { rsa } : {}) };
}

function variantFields(variant: CertificateVariant, suffix: string): CertificateFields {
  return {
    [`fullchain${suffix}`]: variant.fullchain, [`privkey${suffix}`]: variant.privkey,
    [`cert${suffix}`]: variant.cert, [`chain${suffix}`]: variant.chain, [`not_after${suffix}`]: variant.notAfter,
  };
}

function variantFrom(fields: Partial<Record<string, unknown>>, suffix: string): CertificateVariant | null {
  const text = (field: string) => {
    const value = fields[`${field}${suffix}`];
    return typeof value === 'string' ? value : undefined;
  };
  const fullchain = text('fullchain');
  const privkey = text('privkey');
  if (!fullchain || !privkey) return null;
  const parts = splitPemChain(fullchain);
  const cert = text('cert') || (parts[0] ?? fullchain);
  const chain = text('chain') ?? parts.slice(1).join('');
  const info = readCertificateInfo(cert);
  return { cert, chain, fullchain, privkey, notBefore: info.notBefore.toISOString(), notAfter: info.notAfter.toISOString() };
}
