/**
 * The Ingress source: kube-lego's job as one more source of managed
 * certificates. It watches Ingresses (and the Secrets acmed wrote), turns
 * the annotated ones into managed certificates (handed to the daemon, which
 * plans them like configured ones), and keeps each Ingress's Secret holding
 * the stored certificate:
 *
 *   stored copy missing, expired or not covering the hosts → a job (the
 *     one path: queue → lock → order → store → outcome event)
 *   an `issued` outcome event → the certificate written to every Secret
 *     that holds it (a deploy step, like the deploy hook)
 *   Secret missing, unreadable, not a matching pair, or not the stored
 *     certificate → rewritten from storage, with no new order
 *
 * An Ingress that loses its annotation, or is deleted, drops out of the
 * plan: its certificate is no longer managed, and its Secret stays.
 */
import { type KubeConfig, NetworkingV1Api, CoreV1Api, type V1Ingress, type V1Secret } from '@kubernetes/client-node';
import { isDeepStrictEqual } from 'node:util';
import type { ManagedCertificate } from '../config/managed.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { IssueOutcome, JobEvent } from '../renewal/job.js';
import type { CertificateBundle, Storage } from '../storage/storage.js';
import { ChallengeIngress } from './challenge-ingress.js';
import { type IngressPlan, planIngresses, type SecretTarget } from './ingress-certificates.js';
import { IngressSecrets, MANAGED_BY, MANAGED_BY_LABEL } from './ingress-secrets.js';
import { Watcher } from './watcher.js';

export interface IngressSourceOptions {
  kc: KubeConfig;
  /** acmed's namespace, where its challenge Ingress lives. */
  namespace: string;
  config: () => Config;
  storage: Storage;
  /** Hands a job to the work queue. */
  submit: (cert: ManagedCertificate) => Promise<IssueOutcome>;
  /** The certificates annotated Ingresses ask for now (the daemon manages them beside `certificates`). */
  onCertificates: (certs: ManagedCertificate[]) => void;
  log: Logger;
  now?: () => number;
  /** Longest pause between reconnection attempts (tests shorten it). */
  maxBackoffMs?: number;
}

/** Changes within this window are handled in one pass (a kubectl apply of ten Ingresses). */
const DEBOUNCE_MS = 100;

export class IngressSource {
  private readonly ingressWatchers: Watcher<V1Ingress>[];
  private readonly secretWatchers: Watcher<V1Secret>[];
  private readonly secrets: IngressSecrets;
  readonly challengeIngress: ChallengeIngress;
  private plan: IngressPlan = { targets: [], certificates: [], refused: [] };
  private refusalsLogged = new Set<string>();
  private timer?: NodeJS.Timeout;
  private syncing: Promise<void> = Promise.resolve();
  private again = false;
  /** What the next pass must check: everything, or the Secrets named (namespace/name). */
  private dirty: { all: boolean; secrets: Set<string> } = { all: true, secrets: new Set() };
  private readonly ordering = new Set<string>();
  private stopped = false;

  constructor(private readonly opts: IngressSourceOptions) {
    const { kc, log } = opts;
    const k8s = opts.config().kubernetes;
    const networking = kc.makeApiClient(NetworkingV1Api);
    const core = kc.makeApiClient(CoreV1Api);
    const scopes: (string | null)[] = k8s.namespaces.length > 0 ? k8s.namespaces : [null];
    const selector = `${MANAGED_BY_LABEL}=${MANAGED_BY}`;
    this.ingressWatchers = scopes.map((ns) => new Watcher<V1Ingress>({
      kc, log, maxBackoffMs: opts.maxBackoffMs,
      what: `Ingresses in ${ns ?? 'all namespaces'}`,
      path: ns ? `/apis/networking.k8s.io/v1/namespaces/${ns}/ingresses` : '/apis/networking.k8s.io/v1/ingresses',
      list: () => (ns ? networking.listNamespacedIngress({ namespace: ns }) : networking.listIngressForAllNamespaces()),
    }));
    // Only the Secrets acmed wrote: one deleted or edited by hand is put back.
    this.secretWatchers = scopes.map((ns) => new Watcher<V1Secret>({
      kc, log, maxBackoffMs: opts.maxBackoffMs, labelSelector: selector,
      what: `acmed's Secrets in ${ns ?? 'all namespaces'}`,
      path: ns ? `/api/v1/namespaces/${ns}/secrets` : '/api/v1/secrets',
      list: () => (ns ? core.listNamespacedSecret({ namespace: ns, labelSelector: selector }) : core.listSecretForAllNamespaces({ labelSelector: selector })),
    }));
    // An Ingress event changes the plan, which says itself what changed; a Secret event concerns that Secret.
    for (const w of this.ingressWatchers) w.on('change', (ingress) => this.schedule(ingress ? undefined : 'all'));
    for (const w of this.secretWatchers) {
      w.on('change', (secret) => this.schedule(secret ? `${secret.metadata?.namespace}/${secret.metadata?.name}` : 'all'));
    }
    this.secrets = new IngressSecrets(kc);
    this.challengeIngress = new ChallengeIngress({
      kc, namespace: opts.namespace, name: k8s.challenge_ingress, service: k8s.challenge_service, ingressClass: k8s.ingress_class,
    });
  }

  async start(): Promise<void> {
    await Promise.all([...this.ingressWatchers, ...this.secretWatchers].map((w) => w.start()));
    this.schedule('all');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await Promise.all([...this.ingressWatchers, ...this.secretWatchers].map((w) => w.stop()));
    await this.syncing;
  }

  /** The Secrets acmed keeps now. */
  targets(): readonly SecretTarget[] {
    return this.plan.targets;
  }

  /** Issuer hook: the challenge Ingress routes every managed host, and this order's, before the order starts. */
  beforeOrder = async (cert: ManagedCertificate): Promise<void> => {
    await this.challengeIngress.ensure([...this.plan.certificates.flatMap((c) => c.names), ...cert.names]);
  };

  /** Outcome listener: a new certificate goes to every Secret that holds it. */
  onOutcome = (event: JobEvent): void => {
    if (event.type !== 'issued') return;
    for (const target of this.plan.targets.filter((t) => t.certName === event.outcome.name)) {
      void this.writeIfNeeded(target, event.bundle);
    }
  };

  /**
   * A pass soon: over everything ('all': at start, after the API server was
   * away), or over what changed. Passes never overlap; a change during one
   * leads to one more.
   */
  private schedule(what?: 'all' | string): void {
    if (this.stopped) return;
    if (what === 'all') this.dirty.all = true;
    else if (what) this.dirty.secrets.add(what);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.again = true;
      this.syncing = this.syncing.then(async () => {
        while (this.again && !this.stopped) {
          this.again = false;
          await this.sync().catch((err: Error) => this.opts.log.error({ err: err.message }, 'Kubernetes pass failed'));
        }
      });
    }, DEBOUNCE_MS);
  }

  private async sync(): Promise<void> {
    const ingresses = this.ingressWatchers.flatMap((w) => w.items());
    const plan = planIngresses(ingresses, this.opts.config());
    for (const refusal of plan.refused) {
      const line = `${refusal.namespace}/${refusal.ingress}: ${refusal.reason}`;
      if (!this.refusalsLogged.has(line)) this.opts.log.warn({ ingress: `${refusal.namespace}/${refusal.ingress}`, reason: refusal.reason }, 'Ingress TLS entry ignored');
    }
    this.refusalsLogged = new Set(plan.refused.map((r) => `${r.namespace}/${r.ingress}: ${r.reason}`));
    const before = this.plan;
    const dirty = this.dirty;
    this.dirty = { all: false, secrets: new Set() };
    this.plan = plan;
    if (!isDeepStrictEqual(before.certificates, plan.certificates)) {
      this.opts.log.info({ certificates: plan.certificates.length, secrets: plan.targets.length }, 'Ingresses read: managed certificates updated');
      this.opts.onCertificates(plan.certificates);
    }
    const targetsOf = (p: IngressPlan, name: string) => p.targets.filter((t) => t.certName === name);
    for (const cert of plan.certificates) {
      const changed = dirty.all
        || !isDeepStrictEqual(before.certificates.find((c) => c.name === cert.name), cert)
        || !isDeepStrictEqual(targetsOf(before, cert.name), targetsOf(plan, cert.name))
        || targetsOf(plan, cert.name).some((t) => dirty.secrets.has(`${t.namespace}/${t.secretName}`));
      if (changed) await this.reconcile(cert);
    }
  }

  /** Brings the Secrets of one certificate in line with storage, or asks for a job when storage has nothing usable. */
  private async reconcile(cert: ManagedCertificate): Promise<void> {
    const targets = this.plan.targets.filter((t) => t.certName === cert.name);
    if (targets.length === 0) return;
    let stored: CertificateBundle | null;
    try {
      stored = await this.opts.storage.getCertificate(cert.name);
    } catch (err) {
      this.opts.log.warn({ cert: cert.name, err: (err as Error).message }, 'cannot read the stored certificate; the next pass tries again');
      return;
    }
    const now = (this.opts.now ?? Date.now)();
    if (!stored || !cert.names.every((n) => stored.names.includes(n)) || Date.parse(stored.notAfter) <= now) {
      this.order(cert);
      return;
    }
    for (const target of targets) await this.writeIfNeeded(target, stored);
  }

  /** One job per certificate at a time; when it ends, its Secrets are checked again. */
  private order(cert: ManagedCertificate): void {
    if (this.ordering.has(cert.name)) return;
    this.ordering.add(cert.name);
    this.opts.submit(cert).then(
      () => this.reconcileLater(cert.name),
      (err: Error) => this.opts.log.debug({ cert: cert.name, err: err.message }, 'Ingress certificate job did not issue; the scheduler tries again'),
    ).finally(() => this.ordering.delete(cert.name));
  }

  private reconcileLater(name: string): void {
    const cert = this.plan.certificates.find((c) => c.name === name);
    if (cert && !this.stopped) this.syncing = this.syncing.then(() => this.reconcile(cert)).catch(() => {});
  }

  private async writeIfNeeded(target: SecretTarget, bundle: CertificateBundle): Promise<void> {
    try {
      const state = await this.secrets.state(target, bundle);
      if (state === 'current') return;
      await this.secrets.write(target, bundle);
      this.opts.log.info({ secret: `${target.namespace}/${target.secretName}`, cert: target.certName, was: state, not_after: bundle.notAfter }, 'Ingress Secret written');
    } catch (err) {
      this.opts.log.warn({ secret: `${target.namespace}/${target.secretName}`, err: (err as Error).message }, 'cannot write the Ingress Secret; the next pass tries again');
    }
  }
}
