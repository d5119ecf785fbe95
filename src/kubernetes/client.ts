/**
 * The Kubernetes client acmed uses: @kubernetes/client-node's KubeConfig,
 * loaded from the service account when acmed runs in a pod, or from
 * `kubernetes.kubeconfig` otherwise, plus the two things the library leaves
 * to its callers: acmed's own namespace, and a short message from a failed
 * call (its ApiException message carries the response headers).
 */
import { readFileSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';

const SERVICE_ACCOUNT_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

export function loadKubeConfig(kubeconfig: string | null): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (kubeconfig) kc.loadFromFile(kubeconfig);
    else kc.loadFromCluster();
  } catch (err) {
    throw new Error(`cannot load the Kubernetes credentials from ${kubeconfig ?? 'the pod\'s service account'}: ${(err as Error).message}`);
  }
  if (!kc.getCurrentCluster()) throw new Error(`no current cluster in ${kubeconfig ?? 'the pod\'s service account'}`);
  return kc;
}

/** acmed's namespace: the kubeconfig context's, else the pod's service account's, else "default". */
export function ownNamespace(kc: KubeConfig): string {
  const fromContext = kc.getContextObject(kc.getCurrentContext())?.namespace;
  if (fromContext) return fromContext;
  try {
    return readFileSync(SERVICE_ACCOUNT_NAMESPACE, 'utf8').trim() || 'default';
  } catch {
    return 'default';
  }
}

/** The HTTP status of a failed API call (undefined: no answer at all). */
export function statusOf(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

/** "409 Conflict: <the API server's message>", or the transport error's message. */
export function describeApiError(err: unknown): string {
  const code = statusOf(err);
  if (code === undefined) return (err as Error)?.message ?? String(err);
  const body = (err as { body?: unknown }).body;
  let message: string | undefined;
  try {
    const parsed = typeof body === 'string' ? JSON.parse(body) : body;
    message = (parsed as { message?: string } | undefined)?.message;
  } catch {
    message = typeof body === 'string' ? body.slice(0, 200) : undefined;
  }
  // Some statuses (401, 403) come without a parsed body; the exception's own "Message:" line names them.
  message ??= /\nMessage: ([^\n]+)/.exec((err as Error).message ?? '')?.[1];
  return `HTTP ${code}${message ? `: ${message}` : ''}`;
}
