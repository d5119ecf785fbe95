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

const serverAddress = z.strictObject({
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535),
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
  storage: z.enum(['file', 'memory', 'redis', 'consul', 'vault', 'etcd']).default('file'),
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
  }).default({
    file: fileStorage.parse({}),
    redis: redisStorage.parse({}),
    consul: consulStorage.parse({}),
    vault: vaultStorage.parse({}),
    etcd: etcdStorage.parse({}),
  }),
}).superRefine((config, ctx) => {
  if (config.cluster && config.storage === 'memory') {
    ctx.addIssue({ code: 'custom', path: ['storage'], message: 'memory storage lives in one process; several instances (cluster: true) need file, redis, consul, vault or etcd' });
  }
  redisModeIssues(config.storage_config.redis, ctx);
  etcdIssues(config.storage_config.etcd, ctx);
  if ((config.eab_kid === null) !== (config.eab_hmac_key === null)) {
    // Point at the one that is set: the missing one has no line to point at.
    const present = config.eab_kid !== null ? 'eab_kid' : 'eab_hmac_key';
    ctx.addIssue({ code: 'custom', path: [present], message: 'eab_kid and eab_hmac_key go together: set both or neither' });
  }
});

/** One Redis topology at a time: a single server, Sentinel, or Cluster. */
function redisModeIssues(redis: z.output<typeof redisStorage>, ctx: z.RefinementCtx): void {
  const at = (key: string) => ['storage_config', 'redis', key];
  if (redis.sentinels && redis.cluster_nodes) {
    ctx.addIssue({ code: 'custom', path: at('cluster_nodes'), message: 'sentinels and cluster_nodes exclude each other: Redis Sentinel or Redis Cluster, not both' });
  }
  if (redis.sentinels && !redis.sentinel_master) {
    ctx.addIssue({ code: 'custom', path: at('sentinels'), message: 'sentinels needs sentinel_master: the master name the sentinels monitor' });
  }
  if (!redis.sentinels && redis.sentinel_master) {
    ctx.addIssue({ code: 'custom', path: at('sentinel_master'), message: 'sentinel_master needs sentinels: the addresses of the sentinels to ask' });
  }
  if (!redis.sentinels && redis.sentinel_password !== null) {
    ctx.addIssue({ code: 'custom', path: at('sentinel_password'), message: 'sentinel_password needs sentinels' });
  }
  if (redis.cluster_nodes && redis.database !== 0) {
    ctx.addIssue({ code: 'custom', path: at('database'), message: 'Redis Cluster has database 0 only' });
  }
}

function etcdIssues(etcd: z.output<typeof etcdStorage>, ctx: z.RefinementCtx): void {
  const at = (...keys: string[]) => ['storage_config', 'etcd', ...keys];
  if ((etcd.username === null) !== (etcd.password === null)) {
    const present = etcd.username !== null ? 'username' : 'password';
    ctx.addIssue({ code: 'custom', path: at(present), message: 'username and password go together: set both or neither' });
  }
  if ((etcd.tls.cert === null) !== (etcd.tls.key === null)) {
    const present = etcd.tls.cert !== null ? 'cert' : 'key';
    ctx.addIssue({ code: 'custom', path: at('tls', present), message: 'tls.cert and tls.key go together: a client certificate needs its key' });
  }
  const plain = etcd.endpoints.filter((url) => url.startsWith('http:'));
  if (plain.length > 0 && plain.length < etcd.endpoints.length) {
    ctx.addIssue({ code: 'custom', path: at('endpoints'), message: 'endpoints mix http:// and https://: use one scheme for every member' });
  }
}

export type Config = z.output<typeof configSchema>;
export type StorageName = Config['storage'];
