/**
 * The config schema. Key names follow the Kong ACME plugin where they mean the
 * same thing (DESIGN.md), so a Kong user can move a config over. Every object
 * is strict: a misspelt key is an error, not a silently ignored setting.
 */
import { validate as isValidCron } from 'node-cron';
import { z } from 'zod';
import { normalizeHostname } from '../hostname.js';
import { crossFieldChecks } from './cross-checks.js';

export { storageName } from './storage-name.js';

/** A certificate name: a host, or "*.host" (a wildcard, which needs dns-01). */
const certificateName = z.string().transform((value, ctx) => {
  try {
    return normalizeHostname(value, { allowWildcard: true });
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

const challengeType = z.enum(['http-01', 'dns-01']);

const hostPattern = z.string().transform((value, ctx) => {
  try {
    return normalizeHostname(value, { allowWildcard: true });
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

// One check, one message: a value that is not host:port at all gets no second "port" message.
// (Not zod's `abort`, which would also stop the cross-field checks.)
const listenAddress = z.string().superRefine((value, ctx) => {
  if (!/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/.test(value)) {
    ctx.addIssue({ code: 'custom', message: 'expected "host:port", e.g. "0.0.0.0:80" or "[::]:80"' });
  } else if (Number(value.slice(value.lastIndexOf(':') + 1)) > 65535) {
    ctx.addIssue({ code: 'custom', message: 'port must be 0..65535' });
  }
});

const certType = z.enum(['ecc', 'rsa']);
const eccCurve = z.enum(['P-256', 'P-384']);
const rsaKeySize = z.union([z.literal(2048), z.literal(3072), z.literal(4096)]);
/** An ACME profile name (draft-ietf-acme-profiles), sent in newOrder when the CA's directory lists it. */
const profileName = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'a profile name as the CA lists it in meta.profiles (letters, digits, ".", "_", "-")');

/** A certificate kept issued; any key setting here overrides the global one for it. */
const certificateEntry = z.strictObject({
  names: z.array(certificateName).min(1),
  /** Overrides challenge.type; a certificate with a "*." name uses dns-01 unless it says otherwise. */
  challenge: challengeType.optional(),
  cert_type: certType.optional(),
  ecc_curve: eccCurve.optional(),
  rsa_key_size: rsaKeySize.optional(),
  preferred_chain: z.string().min(1).nullable().optional(),
  profile: profileName.nullable().optional(),
  reuse_key: z.boolean().optional(),
});

const serverAddress = z.strictObject({
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535),
});

const dnsServerAddress = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[^:\s\[\]]+)(:\d{1,5})?$/, 'expected "host:port" (port 53 when left out), e.g. "ns1.example.com:53"');

const tsigAlgorithm = z.enum(['hmac-sha256', 'hmac-sha384', 'hmac-sha512']);

/** dns-01: how acmed writes TXT records (one provider) and where it checks they are visible. */
const dnsSection = z.strictObject({
  provider: z.enum(['rfc2136', 'exec']),
  /** Where propagation is checked; empty: the zone's authoritative servers. */
  resolvers: z.array(dnsServerAddress).default([]),
  propagation_timeout_seconds: z.number().positive().max(3600).default(120),
  rfc2136: z.strictObject({
    server: dnsServerAddress,
    /** null: found by SOA lookup for each record name (a CNAME's target may be in another zone). */
    zone: z.string().min(1).nullable().default(null),
    tsig_key_name: z.string().min(1).default('acmed'),
    tsig_algorithm: tsigAlgorithm.default('hmac-sha256'),
    tsig_secret_file: z.string().min(1),
  }).nullable().default(null),
  exec: z.strictObject({
    command: z.string().min(1),
    timeout_seconds: z.number().positive().max(3600).default(60),
  }).nullable().default(null),
}).superRefine((dns, ctx) => {
  if (dns.provider === 'rfc2136' && !dns.rfc2136) ctx.addIssue({ code: 'custom', path: ['provider'], message: 'provider rfc2136 needs a dns.rfc2136 section (server, tsig_key_name, tsig_secret_file)' });
  if (dns.provider === 'exec' && !dns.exec) ctx.addIssue({ code: 'custom', path: ['provider'], message: 'provider exec needs a dns.exec section (command)' });
});

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
  /** Redis Sentinel: the sentinels to ask for the master named sentinel_master (host and port are then unused). */
  sentinels: z.array(serverAddress).min(1).nullable().default(null),
  sentinel_master: z.string().min(1).nullable().default(null),
  /** The sentinels' own password (requirepass in sentinel.conf); `auth` is the data nodes'. */
  sentinel_password: z.string().nullable().default(null),
  /** Redis Cluster: some of its nodes to start from; the rest are discovered (host and port are then unused). */
  cluster_nodes: z.array(serverAddress).min(1).nullable().default(null),
});

const etcdStorage = z.strictObject({
  /** Client URLs of the etcd members; http:// or https://. */
  endpoints: z.array(z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL, e.g. "http://127.0.0.1:2379"' }))
    .min(1).default(['http://127.0.0.1:2379']),
  prefix: z.string().default('acme/'),
  username: z.string().min(1).nullable().default(null),
  password: z.string().nullable().default(null),
  /** PEM files: the CA that signed the members' certificates, and a client certificate where etcd asks for one. */
  tls: z.strictObject({
    ca: z.string().min(1).nullable().default(null),
    cert: z.string().min(1).nullable().default(null),
    key: z.string().min(1).nullable().default(null),
  }).default({ ca: null, cert: null, key: null }),
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

const adminTls = z.strictObject({
  cert: z.string().min(1).nullable().default(null),
  key: z.string().min(1).nullable().default(null),
  /** Only client certificates this CA signed complete the handshake. */
  client_ca: z.string().min(1).nullable().default(null),
  /** Who may use the API: a certificate's email, else its CN, else a DNS SAN (Kong's mTLS consumer match). */
  allowed_subjects: z.array(z.string().min(1)).default([]),
});

const adminSchema = z.strictObject({
  socket: z.string().min(1).default('/run/acmed/admin.sock'),
  /** "host:port" of a TCP listener; refused without token_file or tls (see cross-checks). */
  listen: listenAddress.nullable().default(null),
  token_file: z.string().min(1).nullable().default(null),
  tls: adminTls.default(adminTls.parse({})),
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

// RFC 8555 7.3.4: the CA hands the HMAC key out base64url-encoded; anything else is a paste error.
const eabHmacKey = z.string().regex(/^[A-Za-z0-9_-]+={0,2}$/, 'must be base64url (A-Z, a-z, 0-9, "-" and "_"), as the CA gave it');

export const configSchema = z.strictObject({
  account_email: z.email(),
  tos_accepted: z.literal(true, {
    error: 'tos_accepted must be true: acmed registers an ACME account only after you accept the CA\'s terms of service',
  }),
  /** One CA's directory, or several in fallback order (ca-list.ts reads it as a list). */
  api_uri: z.union([z.url(), z.array(z.url()).min(1, 'list at least one CA directory')]).default('https://acme-v02.api.letsencrypt.org/directory'),
  ca_bundle: z.string().nullable().default(null),
  cert_type: certType.default('ecc'),
  rsa_key_size: rsaKeySize.default(4096),
  ecc_curve: eccCurve.default('P-256'),
  profile: profileName.nullable().default(null),
  /** Keep the certificate's private key across renewals (key pinning, DANE 3 1 1). */
  reuse_key: z.boolean().default(false),
  domains: z.array(hostPattern).default([]),
  certificates: z.array(certificateEntry).default([]),
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
  eab_hmac_key: eabHmacKey.nullable().default(null),
  /** External account bindings per CA, keyed by directory URL (one of api_uri's). */
  eab: z.record(z.string(), z.strictObject({ kid: z.string().min(1), hmac_key: eabHmacKey })).nullable().default(null),
  preferred_chain: z.string().nullable().default(null),
  log_level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
  challenge: z.strictObject({
    listen: z.array(listenAddress).min(1).default(['0.0.0.0:80']),
    /** The challenge of certificates that do not name one (on-demand and admin-issued ones too). */
    type: challengeType.default('http-01'),
    /** Port-80 requests that are not challenges: 301 to https://<host><path> (true) or 404. */
    redirect_https: z.boolean().default(false),
  }).default({ listen: ['0.0.0.0:80'], type: 'http-01', redirect_https: false }),
  dns: dnsSection.nullable().default(null),
  /** A plain HTTP request for a `domains` host without a certificate starts its issuance. */
  on_demand: z.strictObject({
    enabled: z.boolean().default(false),
    /** Asked `GET <ask_url>?domain=<host>` first; only a 2xx lets the host be issued. */
    ask_url: z.url({ protocol: /^https?$/ }).nullable().default(null),
    /** New hosts started per sliding hour, at most. */
    max_per_hour: z.number().int().min(1).max(100_000).default(20),
  }).default({ enabled: false, ask_url: null, max_per_hour: 20 }),
  /** Probe http://<host>/.well-known/acme-challenge/ before each new order; a failed probe places no order. */
  preflight_check: z.boolean().default(false),
  /** The port the probe fetches: where the CA validates http-01, 80 for every public CA (Pebble's httpPort in tests). */
  preflight_port: z.number().int().min(1).max(65535).default(80),
  /** "host:port" of a DNS server the probe asks instead of the system resolver (a test DNS such as pebble-challtestsrv). */
  preflight_resolver: listenAddress.nullable().default(null),
  metrics: z.strictObject({
    // 100,000 certificates make 200,000 per-certificate series; aggregates are always there.
    per_certificate: z.boolean().default(true),
  }).default({ per_certificate: true }),
  admin: adminSchema.default(adminSchema.parse({})),
  storage: z.enum(['file', 'memory', 'redis', 'consul', 'vault', 'etcd', 'kubernetes']).default('file'),
  /**
   * Several acmed instances share this storage (and answer http-01 for each
   * other). Redis, Consul, Vault and etcd are always treated as shared; file storage
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
    etcd: etcdStorage.default(etcdStorage.parse({})),
    kubernetes: kubernetesStorage.default(kubernetesStorage.parse({})),
  }).default({
    file: fileStorage.parse({}),
    redis: redisStorage.parse({}),
    consul: consulStorage.parse({}),
    vault: vaultStorage.parse({}),
    etcd: etcdStorage.parse({}),
    kubernetes: kubernetesStorage.parse({}),
  }),
  kubernetes: kubernetes.default(kubernetes.parse({})),
  // when: cross-field rules run even when a field failed, so check-config reports every problem at once.
}).superRefine((config, ctx) => crossFieldChecks(config, ctx), { when: () => true });

/** One Redis topology at a time: a single server, Sentinel, or Cluster. */
export type Config = z.output<typeof configSchema>;
export type StorageName = Config['storage'];
export type DnsConfig = NonNullable<Config['dns']>;
