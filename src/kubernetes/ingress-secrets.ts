/**
 * The Secrets the Ingresses name: the terminator-facing copy of a
 * certificate for an Ingress controller. acmed's storage stays the source of
 * truth (its index, locks and renewal work the same with every backend);
 * these Secrets are a deploy step fed from it, written when a job issues a
 * certificate and whenever a Secret no longer holds the stored one (deleted
 * by hand, edited, never written). A write names the resourceVersion it read,
 * so an edit in between is not overwritten blindly (409: read and try again).
 */
import { createPublicKey, X509Certificate } from 'node:crypto';
import { CoreV1Api, type KubeConfig, type V1Secret } from '@kubernetes/client-node';
import { StorageError } from '../storage/errors.js';
import type { CertificateBundle } from '../storage/storage.js';
import { describeApiError, statusOf } from './client.js';
import type { SecretTarget } from './ingress-certificates.js';
import { bundleFromSecret, tlsSecret } from './tls-secret.js';

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'acmed';
const ATTEMPTS = 3;

/** The API server failed or could not be reached: like a store fault, nothing about any host. */
export class KubernetesApiError extends StorageError {}

export type SecretState = 'current' | 'missing' | 'invalid' | 'stale';

export class IngressSecrets {
  private readonly core: CoreV1Api;

  constructor(kc: KubeConfig) {
    this.core = kc.makeApiClient(CoreV1Api);
  }

  /** Whether the target's Secret holds exactly `bundle` (the stored certificate), and if not, why. */
  async state(target: SecretTarget, bundle: CertificateBundle): Promise<SecretState> {
    const secret = await this.read(target);
    if (!secret) return 'missing';
    const held = bundleFromSecret(target.certName, secret);
    if (!held || !pairMatches(held)) return 'invalid';
    return held.fullchain === bundle.fullchain && held.privkey === bundle.privkey ? 'current' : 'stale';
  }

  /** Writes bundle into the target's Secret, keeping labels and annotations others set. */
  async write(target: SecretTarget, bundle: CertificateBundle): Promise<void> {
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const current = await this.read(target);
      const meta = {
        name: target.secretName, namespace: target.namespace,
        labels: { ...current?.metadata?.labels, [MANAGED_BY_LABEL]: MANAGED_BY },
        annotations: {
          ...current?.metadata?.annotations,
          'acmed.io/names': bundle.names.join(','), 'acmed.io/not-after': bundle.notAfter, 'acmed.io/ingress': target.ingress,
        },
      };
      try {
        if (!current) await this.core.createNamespacedSecret({ namespace: target.namespace, body: tlsSecret(meta, bundle) });
        else {
          const body = tlsSecret(meta, bundle, current.metadata?.resourceVersion);
          body.data = { ...current.data, ...body.data };
          await this.core.replaceNamespacedSecret({ name: target.secretName, namespace: target.namespace, body });
        }
        return;
      } catch (err) {
        if (statusOf(err) === 409) continue; // written or created meanwhile: read again
        throw new KubernetesApiError(`cannot write Secret ${target.namespace}/${target.secretName}: ${describeApiError(err)}`);
      }
    }
    throw new KubernetesApiError(`cannot write Secret ${target.namespace}/${target.secretName}: it kept changing under us`);
  }

  private async read(target: SecretTarget): Promise<V1Secret | null> {
    try {
      return await this.core.readNamespacedSecret({ name: target.secretName, namespace: target.namespace });
    } catch (err) {
      if (statusOf(err) === 404) return null;
      throw new KubernetesApiError(`cannot read Secret ${target.namespace}/${target.secretName}: ${describeApiError(err)}`);
    }
  }
}

/** The key belongs to the certificate (kube-lego's "invalid pair"). */
function pairMatches(bundle: CertificateBundle): boolean {
  try {
    const fromKey = createPublicKey(bundle.privkey).export({ type: 'spki', format: 'der' });
    const fromCert = new X509Certificate(bundle.cert).publicKey.export({ type: 'spki', format: 'der' });
    return fromKey.equals(fromCert);
  } catch {
    return false;
  }
}
