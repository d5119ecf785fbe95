/**
 * The config schema. Key names follow the Kong ACME plugin where they mean the
 * same thing (DESIGN.md), so a Kong user can move a config over. Every object
 * is strict: a misspelt key is an error, not a silently ignored setting.
 */
import { validate as isValidCron } from 'node-cron';
import { z } from 'zod';
import { normalizeHostname } from '../hostname.js';

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

// abort: a value that is not host:port at all gets one message, not a second "port" one.
const listenAddress = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/, { error: 'expected "host:port", e.g. "0.0.0.0:80" or "[::]:80"', abort: true })
  .refine((value) => Number(value.slice(value.lastIndexOf(':') + 1)) <= 65535, 'port must be 0..65535');

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
  certificates: z.array(z.strictObject({
    names: z.array(certificateName).min(1),
    /** Overrides challenge.type; a certificate with a "*." name uses dns-01 unless it says otherwise. */
    challenge: challengeType.optional(),
  })).default([]),
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
    /** The challenge of certificates that do not name one (on-demand and admin-issued ones too). */
    type: challengeType.default('http-01'),
  }).default({ listen: ['0.0.0.0:80'], type: 'http-01' }),
  dns: dnsSection.nullable().default(null),
  metrics: z.strictObject({
    // 100,000 certificates make 200,000 per-certificate series; aggregates are always there.
    per_certificate: z.boolean().default(true),
  }).default({ per_certificate: true }),
  admin: z.strictObject({
    socket: z.string().min(1).default('/run/acmed/admin.sock'),
  }).default({ socket: '/run/acmed/admin.sock' }),
  storage: z.enum(['file', 'memory', 'redis', 'consul', 'vault']).default('file'),
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
  }).default({
    file: fileStorage.parse({}),
    redis: redisStorage.parse({}),
    consul: consulStorage.parse({}),
    vault: vaultStorage.parse({}),
  }),
}).superRefine((config, ctx) => {
  if (config.cluster && config.storage === 'memory') {
    ctx.addIssue({ code: 'custom', path: ['storage'], message: 'memory storage lives in one process; several instances (cluster: true) need file, redis, consul or vault' });
  }
  if ((config.eab_kid === null) !== (config.eab_hmac_key === null)) {
    // Point at the one that is set: the missing one has no line to point at.
    const present = config.eab_kid !== null ? 'eab_kid' : 'eab_hmac_key';
    ctx.addIssue({ code: 'custom', path: [present], message: 'eab_kid and eab_hmac_key go together: set both or neither' });
  }
  checkChallenges(config, ctx);
});

interface ChallengeSettings {
  certificates: { names: string[]; challenge?: 'http-01' | 'dns-01' }[];
  challenge: { type: 'http-01' | 'dns-01' };
  dns: object | null;
}

/**
 * Every certificate's challenge must be one acmed can answer: a wildcard
 * name only by dns-01, and dns-01 only with a `dns` section. Problems point
 * at the name (or the `challenge` key) they are about. Two certificates
 * stored under one name (a wildcard's files drop the "*.") are refused too.
 */
function checkChallenges(config: ChallengeSettings, ctx: z.RefinementCtx): void {
  if (config.challenge.type === 'dns-01' && !config.dns) {
    ctx.addIssue({ code: 'custom', path: ['challenge', 'type'], message: 'dns-01 needs a "dns" section (provider rfc2136 or exec); see README "dns-01"' });
  }
  const storedAs = new Map<string, number>();
  config.certificates.forEach((cert, i) => {
    const wildcardAt = cert.names.findIndex((n) => n.startsWith('*.'));
    if (wildcardAt >= 0 && !config.dns) {
      ctx.addIssue({
        code: 'custom', path: ['certificates', i, 'names', wildcardAt],
        message: `${cert.names[wildcardAt]} is a wildcard name: it needs dns-01, and dns-01 needs a "dns" section (provider rfc2136 or exec); see README "dns-01"`,
      });
    } else if (wildcardAt >= 0 && cert.challenge === 'http-01') {
      ctx.addIssue({
        code: 'custom', path: ['certificates', i, 'names', wildcardAt],
        message: `${cert.names[wildcardAt]} is a wildcard name: http-01 cannot prove it; remove "challenge: http-01" or use dns-01`,
      });
    } else if (cert.challenge === 'dns-01' && !config.dns) {
      ctx.addIssue({ code: 'custom', path: ['certificates', i, 'challenge'], message: 'dns-01 needs a "dns" section (provider rfc2136 or exec); see README "dns-01"' });
    }
    const name = storageName(cert.names[0]);
    const other = storedAs.get(name);
    if (other !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['certificates', i, 'names', 0], message: `certificates ${other + 1} and ${i + 1} would both be stored as ${name}; give one of them another first name` });
    } else {
      storedAs.set(name, i);
    }
  });
}

/** Where a certificate is stored: its first name, without a wildcard's "*." (certbot's convention). */
export function storageName(firstName: string): string {
  return firstName.startsWith('*.') ? firstName.slice(2) : firstName;
}

export type Config = z.output<typeof configSchema>;
export type StorageName = Config['storage'];
export type DnsConfig = NonNullable<Config['dns']>;
