/**
 * What annotated Ingresses ask for, as kube-lego read them: every
 * `spec.tls[]` entry of an Ingress annotated `kubernetes.io/tls-acme: "true"`
 * is a certificate for its `hosts`, to be kept in the Secret `secretName` of
 * the Ingress's namespace. Pure: Ingresses and config in, targets and
 * refusals out, so the rules are tested without an API server.
 *
 * A certificate is named by its first host, as everywhere in acmed; two
 * entries whose first host is the same share one certificate covering the
 * hosts of both (each Secret then holds a certificate valid for its hosts).
 */
import type { V1Ingress } from '@kubernetes/client-node';
import type { ManagedCertificate } from '../config/managed.js';
import type { Config } from '../config/schema.js';
import { matchesPattern, normalizeHostname } from '../hostname.js';

export const TLS_ACME = 'kubernetes.io/tls-acme';
const CLASS_ANNOTATION = 'kubernetes.io/ingress.class';

/** One Secret acmed keeps for one `spec.tls[]` entry. */
export interface SecretTarget {
  namespace: string;
  secretName: string;
  ingress: string;
  /** The entry's hosts, normalised. */
  hosts: string[];
  /** The certificate the Secret holds (name = its first host). */
  certName: string;
}

export interface Refusal {
  ingress: string;
  namespace: string;
  reason: string;
}

export interface IngressPlan {
  targets: SecretTarget[];
  certificates: ManagedCertificate[];
  refused: Refusal[];
}

export function wantsCertificates(ingress: V1Ingress, ingressClass: string | null): boolean {
  if (ingress.metadata?.annotations?.[TLS_ACME] !== 'true') return false;
  if (ingressClass === null) return true;
  const cls = ingress.spec?.ingressClassName ?? ingress.metadata?.annotations?.[CLASS_ANNOTATION];
  return cls === ingressClass;
}

export function planIngresses(ingresses: V1Ingress[], config: Pick<Config, 'domains' | 'kubernetes'>): IngressPlan {
  const targets: SecretTarget[] = [];
  const refused: Refusal[] = [];
  const namesByCert = new Map<string, string[]>();
  const sorted = [...ingresses].sort((a, b) => key(a).localeCompare(key(b))); // the same plan whatever the watch order
  for (const ingress of sorted) {
    if (!wantsCertificates(ingress, config.kubernetes.ingress_class)) continue;
    const namespace = ingress.metadata?.namespace ?? 'default';
    const name = ingress.metadata?.name ?? '';
    const refuse = (reason: string) => refused.push({ ingress: name, namespace, reason });
    for (const [i, tls] of (ingress.spec?.tls ?? []).entries()) {
      if (!tls.secretName) {
        refuse(`spec.tls[${i}] has no secretName`);
        continue;
      }
      let hosts: string[];
      try {
        hosts = [...new Set((tls.hosts ?? []).map((h) => normalizeHostname(h)))];
      } catch (err) {
        refuse(`spec.tls[${i}]: ${(err as Error).message} (wildcards need dns-01; acmed answers Ingresses over http-01)`);
        continue;
      }
      if (hosts.length === 0) {
        refuse(`spec.tls[${i}] (${tls.secretName}) lists no hosts`);
        continue;
      }
      const outside = config.domains.length > 0 ? hosts.filter((h) => !config.domains.some((p) => matchesPattern(h, p))) : [];
      if (outside.length > 0) {
        refuse(`spec.tls[${i}] (${tls.secretName}): ${outside.join(', ')} match no "domains" pattern`);
        continue;
      }
      const certName = hosts[0];
      const names = namesByCert.get(certName) ?? [];
      for (const h of hosts) if (!names.includes(h)) names.push(h);
      namesByCert.set(certName, names);
      targets.push({ namespace, secretName: tls.secretName, ingress: name, hosts, certName });
    }
  }
  const certificates = [...namesByCert].map(([name, names]) => ({ name, names }));
  return { targets, certificates, refused };
}

function key(ingress: V1Ingress): string {
  return `${ingress.metadata?.namespace ?? ''}/${ingress.metadata?.name ?? ''}`;
}
