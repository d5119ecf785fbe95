/**
 * The config schema. Key names follow the Kong ACME plugin where they mean the
 * same thing (DESIGN.md), so a Kong user can move a config over. Every object
 * is strict: a misspelt key is an error, not a silently ignored setting.
 */
import { validate as isValidCron } from 'node-cron';
import { z } from 'zod';
import { normalizeHostname } from '../hostname.js';

const hostname = z.string().transform((value, ctx) => {
  try {
    return normalizeHostname(value);
  } catch (err) {
    const hint = value.startsWith('*.') ? ' (wildcard names need dns-01, which acmed does not offer yet)' : '';
    ctx.addIssue({ code: 'custom', message: `${(err as Error).message}${hint}` });
    return z.NEVER;
  }
});

const hostPattern = z.string().transform((value, ctx) => {
  try {
    return normalizeHostname(value, { allowWildcard: true });
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

// abort: a value that is not host:port at all gets one message, not a second "port" one.
const listenAddress = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/, { error: 'expected "host:port", e.g. "0.0.0.0:80" or "[::]:80"', abort: true })
  .refine((value) => Number(value.slice(value.lastIndexOf(':') + 1)) <= 65535, 'port must be 0..65535');

const fileStorage = z.strictObject({ path: z.string().min(1).default('/var/lib/acmed') });

const redisStorage = z.strictObject({
  host: z.string().default('127.0.0.1'),
  port: z.number().int().min(1).max(65535).default(6379),
  auth: z.string().nullable().default(null),
  database: z.number().int().min(0).default(0),
  ssl: z.boolean().default(false),
  ssl_verify: z.boolean().default(false),
  ssl_server_name: z.string().nullable().default(null),
  namespace: z.string().default(''),
  /** Milliseconds a Redis call may take (acmed's addition, like consul/vault's timeout). */
  timeout: z.number().int().positive().default(2000),
});

const consulStorage = z.strictObject({
  host: z.string().default('127.0.0.1'),
  port: z.number().int().min(1).max(65535).default(8500),
  token: z.string().nullable().default(null),
  kv_path: z.string().default('acme'),
  timeout: z.number().int().positive().default(2000),
  https: z.boolean().default(false),
});

const vaultStorage = z.strictObject({
  host: z.string().default('127.0.0.1'),
  port: z.number().int().min(1).max(65535).default(8200),
  token: z.string().nullable().default(null),
  kv_path: z.string().default('acme'),
  timeout: z.number().int().positive().default(2000),
  https: z.boolean().default(false),
  tls_verify: z.boolean().default(true),
  tls_server_name: z.string().nullable().default(null),
  auth_method: z.enum(['token', 'kubernetes']).default('token'),
  auth_path: z.string().nullable().default(null),
  auth_role: z.string().nullable().default(null),
  jwt_path: z.string().nullable().default(null),
});

const kubernetesStorage = z.strictObject({
  /** null: acmed's own namespace (the kubeconfig context's, or the pod's). */
  namespace: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'a Kubernetes namespace name (lower case, digits, "-")').max(63).nullable().default(null),
  /** Starts every object name acmed stores, and is its acmed.io/store label: two acmed deployments in one namespace need two. */
  prefix: z.string().regex(/^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$/, '1-32 lower-case letters, digits or "-", starting and ending with a letter or digit').default('acmed'),
  /** Milliseconds an API call may take. */
  timeout: z.number().int().positive().default(5000),
});

const objectName = z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'a Kubernetes object name (lower case, digits, "-", ".")').max(253);

const kubernetes = z.strictObject({
  /** Watch annotated Ingresses and keep their TLS Secrets issued (kube-lego's job). */
  enabled: z.boolean().default(false),
  /** null: the pod's service account (in-cluster). */
  kubeconfig: z.string().min(1).nullable().default(null),
  /** Namespaces whose Ingresses are watched; empty: all. */
  namespaces: z.array(z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'a Kubernetes namespace name')).default([]),
  /** Only Ingresses of this class (spec.ingressClassName, or the kubernetes.io/ingress.class annotation); null: any. */
  ingress_class: z.string().min(1).nullable().default(null),
  /** acmed's own Ingress, in its namespace, that routes /.well-known/acme-challenge/ for every managed host to challenge_service. */
  challenge_ingress: objectName.default('acmed-challenges'),
  challenge_service: z.strictObject({
    name: objectName.default('acmed'),
    port: z.number().int().min(1).max(65535).default(80),
  }).default({ name: 'acmed', port: 80 }),
});

export const configSchema = z.strictObject({
  account_email: z.email(),
  tos_accepted: z.literal(true, {
    error: 'tos_accepted must be true: acmed registers an ACME account only after you accept the CA\'s terms of service',
  }),
  api_uri: z.url().default('https://acme-v02.api.letsencrypt.org/directory'),
  ca_bundle: z.string().nullable().default(null),
  cert_type: z.enum(['ecc', 'rsa']).default('ecc'),
  rsa_key_size: z.union([z.literal(2048), z.literal(3072), z.literal(4096)]).default(4096),
  domains: z.array(hostPattern).default([]),
  certificates: z.array(z.strictObject({ names: z.array(hostname).min(1) })).default([]),
  renew_threshold_days: z.number().positive().nullable().default(null),
  fail_backoff_minutes: z.number().positive().default(5),
  /** node-cron expression for the renewal pass; null: once a day at a minute derived from this machine's name. */
  renewal_schedule: z.string().refine((v) => isValidCron(v), 'not a valid cron expression (e.g. "17 3 * * *")').nullable().default(null),
  /** Shell command run after each new certificate, with certbot's RENEWED_LINEAGE / RENEWED_DOMAINS. */
  deploy_hook: z.string().min(1).nullable().default(null),
  deploy_hook_timeout_seconds: z.number().positive().max(3600).default(120),
  /** Also write live/<name>/combined.pem (fullchain + key) for HAProxy. */
  haproxy_pem: z.boolean().default(false),
  eab_kid: z.string().nullable().default(null),
  eab_hmac_key: z.string().nullable().default(null),
  preferred_chain: z.string().nullable().default(null),
  log_level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
  challenge: z.strictObject({
    listen: z.array(listenAddress).min(1).default(['0.0.0.0:80']),
  }).default({ listen: ['0.0.0.0:80'] }),
  metrics: z.strictObject({
    // 100,000 certificates make 200,000 per-certificate series; aggregates are always there.
    per_certificate: z.boolean().default(true),
  }).default({ per_certificate: true }),
  admin: z.strictObject({
    socket: z.string().min(1).default('/run/acmed/admin.sock'),
  }).default({ socket: '/run/acmed/admin.sock' }),
  storage: z.enum(['file', 'memory', 'redis', 'consul', 'vault', 'kubernetes']).default('file'),
  /**
   * Several acmed instances share this storage (and answer http-01 for each
   * other). Redis, Consul and Vault are always treated as shared; file storage
   * becomes shared (a network file system); memory storage is refused.
   */
  cluster: z.boolean().default(false),
  /** Encrypts acmed's records and the account key at rest (AES-256-GCM); see README. */
  keyring_key_file: z.string().min(1).nullable().default(null),
  /** The work queue's width: orders running at once, whatever asked for them. */
  max_concurrent_orders: z.number().int().min(1).max(1000).default(8),
  /**
   * Where certificates the CA issued but the store refused (down, disk full)
   * are held until it accepts them. null: <file path>/spool for file storage,
   * /var/lib/acmed/spool otherwise.
   */
  spool_dir: z.string().min(1).nullable().default(null),
  /** /healthz reports the store unhealthy when file storage has less free space than this. */
  min_free_mb: z.number().min(0).default(64),
  /** How long a certificate's lock outlives a holder that stopped renewing it (a dead instance). */
  lock_ttl_seconds: z.number().int().min(5).max(3600).default(60),
  storage_config: z.strictObject({
    file: fileStorage.default(fileStorage.parse({})),
    redis: redisStorage.default(redisStorage.parse({})),
    consul: consulStorage.default(consulStorage.parse({})),
    vault: vaultStorage.default(vaultStorage.parse({})),
    kubernetes: kubernetesStorage.default(kubernetesStorage.parse({})),
  }).default({
    file: fileStorage.parse({}),
    redis: redisStorage.parse({}),
    consul: consulStorage.parse({}),
    vault: vaultStorage.parse({}),
    kubernetes: kubernetesStorage.parse({}),
  }),
  kubernetes: kubernetes.default(kubernetes.parse({})),
}).superRefine((config, ctx) => {
  if (config.cluster && config.storage === 'memory') {
    ctx.addIssue({ code: 'custom', path: ['storage'], message: 'memory storage lives in one process; several instances (cluster: true) need file, redis, consul or vault' });
  }
  if ((config.eab_kid === null) !== (config.eab_hmac_key === null)) {
    // Point at the one that is set: the missing one has no line to point at.
    const present = config.eab_kid !== null ? 'eab_kid' : 'eab_hmac_key';
    ctx.addIssue({ code: 'custom', path: [present], message: 'eab_kid and eab_hmac_key go together: set both or neither' });
  }
});

export type Config = z.output<typeof configSchema>;
export type StorageName = Config['storage'];
