/**
 * acmed's own Ingress (kube-lego's "kube-lego-nginx"): one rule per managed
 * host sending /.well-known/acme-challenge/ to acmed's Service, so the CA's
 * http-01 request reaches acmed through the cluster's Ingress controller.
 * Brought up to date before each order; written only when its hosts change,
 * so an idle acmed writes nothing.
 */
import { type KubeConfig, NetworkingV1Api, type V1Ingress } from '@kubernetes/client-node';
import { isDeepStrictEqual } from 'node:util';
import { isIpAddress } from '../ip-address.js';
import { describeApiError, statusOf } from './client.js';
import { KubernetesApiError, MANAGED_BY, MANAGED_BY_LABEL } from './ingress-secrets.js';

export interface ChallengeIngressOptions {
  kc: KubeConfig;
  namespace: string;
  name: string;
  service: { name: string; port: number };
  ingressClass: string | null;
}

const ATTEMPTS = 3;

export class ChallengeIngress {
  private readonly api: NetworkingV1Api;
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly opts: ChallengeIngressOptions) {
    this.api = opts.kc.makeApiClient(NetworkingV1Api);
  }

  /**
   * Makes the Ingress route exactly `hosts` (in one order: the same set
   * writes nothing). Calls run one at a time. IP addresses are left out:
   * Kubernetes refuses an address as a rule's host, and one such rule would
   * fail the whole Ingress; the CA's request for an address reaches acmed
   * only where port 80 of that address is routed to it (README "IP address certificates").
   */
  ensure(hosts: Iterable<string>): Promise<void> {
    const wanted = [...new Set(hosts)].filter((host) => !isIpAddress(host)).sort();
    const run = this.queue.then(() => this.apply(wanted));
    this.queue = run.catch(() => {});
    return run;
  }

  private spec(hosts: string[]): V1Ingress['spec'] {
    const { service, ingressClass } = this.opts;
    return {
      ...(ingressClass ? { ingressClassName: ingressClass } : {}),
      rules: hosts.map((host) => ({
        host,
        http: {
          paths: [{
            path: '/.well-known/acme-challenge/', pathType: 'Prefix',
            backend: { service: { name: service.name, port: { number: service.port } } },
          }],
        },
      })),
    };
  }

  private async apply(hosts: string[]): Promise<void> {
    const { namespace, name } = this.opts;
    const spec = this.spec(hosts);
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      let current: V1Ingress | null;
      try {
        current = await this.api.readNamespacedIngress({ name, namespace });
      } catch (err) {
        if (statusOf(err) !== 404) throw new KubernetesApiError(`cannot read the challenge Ingress ${namespace}/${name}: ${describeApiError(err)}`);
        current = null;
      }
      if (current && isDeepStrictEqual(normalise(current.spec), normalise(spec))) return;
      const body: V1Ingress = {
        apiVersion: 'networking.k8s.io/v1', kind: 'Ingress',
        metadata: {
          name, namespace, labels: { ...current?.metadata?.labels, [MANAGED_BY_LABEL]: MANAGED_BY },
          ...(current?.metadata?.annotations ? { annotations: current.metadata.annotations } : {}),
          ...(current ? { resourceVersion: current.metadata?.resourceVersion } : {}),
        },
        spec,
      };
      try {
        if (current) await this.api.replaceNamespacedIngress({ name, namespace, body });
        else await this.api.createNamespacedIngress({ namespace, body });
        return;
      } catch (err) {
        if (statusOf(err) === 409) continue;
        throw new KubernetesApiError(`cannot write the challenge Ingress ${namespace}/${name}: ${describeApiError(err)}`);
      }
    }
    throw new KubernetesApiError(`cannot write the challenge Ingress ${namespace}/${name}: it kept changing under us`);
  }
}

/** The spec as JSON, so defaults the API server adds or leaves out compare equal. */
function normalise(spec: V1Ingress['spec']): unknown {
  return JSON.parse(JSON.stringify({ ingressClassName: spec?.ingressClassName, rules: spec?.rules ?? [] }));
}
