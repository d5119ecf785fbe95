// Which Secrets and certificates annotated Ingresses ask for (src/kubernetes/ingress-certificates.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Ingress } from '@kubernetes/client-node';
import { planIngresses } from '../../src/kubernetes/ingress-certificates.js';

const k8s = { enabled: true, kubeconfig: null, namespaces: [], ingress_class: null, challenge_ingress: 'acmed-challenges', challenge_service: { name: 'acmed', port: 80 } };

function ingress(name: string, tls: { hosts?: string[]; secretName?: string }[], opts: { annotated?: boolean | string; namespace?: string; className?: string; classAnnotation?: string } = {}): V1Ingress {
  const annotations: Record<string, string> = {};
  if (opts.annotated !== false) annotations['kubernetes.io/tls-acme'] = typeof opts.annotated === 'string' ? opts.annotated : 'true';
  if (opts.classAnnotation) annotations['kubernetes.io/ingress.class'] = opts.classAnnotation;
  return { metadata: { name, namespace: opts.namespace ?? 'web', annotations }, spec: { ingressClassName: opts.className, tls } };
}

describe('planIngresses', () => {
  it('each tls entry of an annotated Ingress is a Secret; the certificate is named by its first host', () => {
    const plan = planIngresses([ingress('shop', [
      { hosts: ['Shop.Example.com', 'www.shop.example.com'], secretName: 'shop-tls' },
      { hosts: ['api.example.com'], secretName: 'api-tls' },
    ])], { domains: [], kubernetes: k8s });
    assert.deepEqual(plan.targets, [
      { namespace: 'web', secretName: 'shop-tls', ingress: 'shop', hosts: ['shop.example.com', 'www.shop.example.com'], certName: 'shop.example.com' },
      { namespace: 'web', secretName: 'api-tls', ingress: 'shop', hosts: ['api.example.com'], certName: 'api.example.com' },
    ]);
    assert.deepEqual(plan.certificates, [
      { name: 'shop.example.com', names: ['shop.example.com', 'www.shop.example.com'] },
      { name: 'api.example.com', names: ['api.example.com'] },
    ]);
    assert.deepEqual(plan.refused, []);
  });

  it('ignores Ingresses without the annotation, or with another value', () => {
    const plan = planIngresses([
      ingress('a', [{ hosts: ['a.example.com'], secretName: 'a' }], { annotated: false }),
      ingress('b', [{ hosts: ['b.example.com'], secretName: 'b' }], { annotated: 'false' }),
      ingress('c', [{ hosts: ['c.example.com'], secretName: 'c' }], { annotated: 'True' }),
    ], { domains: [], kubernetes: k8s });
    assert.deepEqual(plan, { targets: [], certificates: [], refused: [] });
  });

  it('ingress_class keeps only that class, by spec.ingressClassName or the old annotation', () => {
    const plan = planIngresses([
      ingress('a', [{ hosts: ['a.example.com'], secretName: 'a' }], { className: 'nginx' }),
      ingress('b', [{ hosts: ['b.example.com'], secretName: 'b' }], { classAnnotation: 'nginx' }),
      ingress('c', [{ hosts: ['c.example.com'], secretName: 'c' }], { className: 'traefik' }),
      ingress('d', [{ hosts: ['d.example.com'], secretName: 'd' }]),
    ], { domains: [], kubernetes: { ...k8s, ingress_class: 'nginx' } });
    assert.deepEqual(plan.certificates.map((c) => c.name), ['a.example.com', 'b.example.com']);
  });

  it('refuses entries with hosts outside a non-empty domains allowlist, wildcards, no hosts or no secretName', () => {
    const plan = planIngresses([ingress('x', [
      { hosts: ['ok.example.com'], secretName: 'ok' },
      { hosts: ['ok2.example.com', 'evil.example.net'], secretName: 'mixed' },
      { hosts: ['*.example.com'], secretName: 'wild' },
      { hosts: [], secretName: 'empty' },
      { hosts: ['n.example.com'] },
      { hosts: ['bad_name.example.com'], secretName: 'bad' },
    ])], { domains: ['*.example.com'], kubernetes: k8s });
    assert.deepEqual(plan.certificates, [{ name: 'ok.example.com', names: ['ok.example.com'] }]);
    assert.equal(plan.refused.length, 5);
    assert.match(plan.refused[0].reason, /evil\.example\.net match no "domains" pattern/);
    assert.match(plan.refused[1].reason, /wildcards need dns-01/);
    assert.match(plan.refused[2].reason, /lists no hosts/);
    assert.match(plan.refused[3].reason, /no secretName/);
    assert.ok(plan.refused.every((r) => r.ingress === 'x' && r.namespace === 'web'));
  });

  it('entries sharing a first host share one certificate covering the hosts of both; the plan does not depend on watch order', () => {
    const a = ingress('a', [{ hosts: ['shop.example.com', 'www.shop.example.com'], secretName: 'one' }], { namespace: 'ns1' });
    const b = ingress('b', [{ hosts: ['shop.example.com', 'm.shop.example.com'], secretName: 'two' }], { namespace: 'ns2' });
    const plan = planIngresses([b, a], { domains: [], kubernetes: k8s });
    assert.deepEqual(plan.certificates, [{ name: 'shop.example.com', names: ['shop.example.com', 'www.shop.example.com', 'm.shop.example.com'] }]);
    assert.deepEqual(plan.targets.map((t) => `${t.namespace}/${t.secretName}`), ['ns1/one', 'ns2/two']);
    assert.deepEqual(planIngresses([a, b], { domains: [], kubernetes: k8s }), plan);
  });
});
