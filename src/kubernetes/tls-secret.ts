/**
 * A certificate as a `kubernetes.io/tls` Secret: `tls.crt` is the full
 * chain and `tls.key` the private key, the two keys every Ingress controller
 * reads. Used for the Ingresses' Secrets and for storage: kubernetes' own
 * copies.
 */
import type { V1Secret } from '@kubernetes/client-node';
import { fromFields } from '../storage/certificate-fields.js';
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

/** The bundle in a Secret; null when it has no readable pair (missing keys, not PEM). */
export function bundleFromSecret(name: string, secret: V1Secret): CertificateBundle | null {
  const data = secret.data ?? {};
  const fullchain = data['tls.crt'] ? Buffer.from(data['tls.crt'], 'base64').toString() : '';
  const privkey = data['tls.key'] ? Buffer.from(data['tls.key'], 'base64').toString() : '';
  try {
    return fromFields(name, { fullchain, privkey });
  } catch {
    return null;
  }
}

const b64 = (text: string) => Buffer.from(text).toString('base64');
