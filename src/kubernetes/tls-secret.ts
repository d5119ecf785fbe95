/**
 * A certificate as a `kubernetes.io/tls` Secret: `tls.crt` is the full
 * chain and `tls.key` the private key, the two keys every Ingress controller
 * reads. Used for the Ingresses' Secrets and for storage: kubernetes' own
 * copies. An Ingress Secret holds one pair (the primary certificate); the
 * store's copy also carries an RSA certificate kept beside it, under the
 * field names every key-value store uses (`fullchain-rsa`, `privkey-rsa`, …).
 */
import type { V1Secret } from '@kubernetes/client-node';
import { fromFields, RSA_SUFFIX, toFields } from '../storage/certificate-fields.js';
import type { CertificateBundle } from '../storage/storage.js';

export interface SecretMeta {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

export function tlsSecret(meta: SecretMeta, bundle: CertificateBundle, resourceVersion?: string): V1Secret {
  return {
    apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls',
    metadata: { name: meta.name, namespace: meta.namespace, labels: meta.labels, annotations: meta.annotations, ...(resourceVersion ? { resourceVersion } : {}) },
    data: { 'tls.crt': b64(bundle.fullchain), 'tls.key': b64(bundle.privkey) },
  };
}

/** The store's copy: the tls Secret plus, when the bundle has one, the RSA certificate's fields. */
export function storedCertificateSecret(meta: SecretMeta, bundle: CertificateBundle, resourceVersion?: string): V1Secret {
  const secret = tlsSecret(meta, bundle, resourceVersion);
  for (const [field, value] of Object.entries(toFields(bundle))) {
    if (field.endsWith(RSA_SUFFIX)) secret.data![field] = b64(value);
  }
  return secret;
}

/** The bundle in a Secret (with its RSA certificate, if it holds one); null when it has no readable pair (missing keys, not PEM). */
export function bundleFromSecret(name: string, secret: V1Secret): CertificateBundle | null {
  const data = secret.data ?? {};
  const fields: Record<string, string> = {};
  for (const [key, value] of Object.entries(data)) fields[key] = Buffer.from(value, 'base64').toString();
  try {
    return fromFields(name, { ...fields, fullchain: fields['tls.crt'] ?? '', privkey: fields['tls.key'] ?? '' });
  } catch {
    return null;
  }
}

const b64 = (text: string) => Buffer.from(text).toString('base64');
