/**
 * Rules that span several keys. They run even when some field failed its own
 * check (zod's `when`), so they see a partly parsed object: every value is
 * tested for what it is before it is used.
 */
import type { z } from 'zod';
import { normalizeHostname } from '../hostname.js';
import { isIpAddress } from '../ip-address.js';
import { storageName } from './storage-name.js';

type Raw = Record<string, unknown>;

function section(value: unknown): Raw {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Raw) : {};
}

const isSet = (value: unknown) => value !== null && value !== undefined;

export function crossFieldChecks(config: Raw, ctx: z.RefinementCtx): void {
  if (config.cluster === true && config.storage === 'memory') {
    ctx.addIssue({ code: 'custom', path: ['storage'], message: 'memory storage lives in one process; several instances (cluster: true) need file, redis, consul, vault, etcd or kubernetes' });
  }
  if (isSet(config.eab_kid) !== isSet(config.eab_hmac_key)) {
    // Point at the one that is set: the missing one has no line to point at.
    const present = isSet(config.eab_kid) ? 'eab_kid' : 'eab_hmac_key';
    ctx.addIssue({ code: 'custom', path: [present], message: 'eab_kid and eab_hmac_key go together: set both or neither' });
  }
  caChecks(config, ctx);
  adminChecks(section(config.admin), ctx);
  challengeChecks(config, ctx);
  const storage = section(config.storage_config);
  redisChecks(section(storage.redis), ctx);
  etcdChecks(section(storage.etcd), ctx);
}

/** Several CAs: each listed once; an `eab` entry only for a listed CA, and not given twice for the first. */
function caChecks(config: Raw, ctx: z.RefinementCtx): void {
  const cas = typeof config.api_uri === 'string' ? [config.api_uri]
    : Array.isArray(config.api_uri) ? config.api_uri.filter((u): u is string => typeof u === 'string') : [];
  cas.forEach((url, i) => {
    if (cas.indexOf(url) !== i) ctx.addIssue({ code: 'custom', path: ['api_uri', i], message: `${url} is listed twice: each CA once, in fallback order` });
  });
  const eab = section(config.eab);
  for (const url of Object.keys(eab)) {
    if (!cas.includes(url)) ctx.addIssue({ code: 'custom', path: ['eab', url], message: `not one of the CAs in api_uri (${cas.join(', ')}): eab is keyed by their directory URLs` });
  }
  if (cas[0] !== undefined && cas[0] in eab && (isSet(config.eab_kid) || isSet(config.eab_hmac_key))) {
    ctx.addIssue({ code: 'custom', path: ['eab', cas[0]], message: 'the first CA\'s binding is given twice: here and in eab_kid/eab_hmac_key; keep one' });
  }
}

/** Sentinel or Cluster, each with what it needs. */
function redisChecks(redis: Raw, ctx: z.RefinementCtx): void {
  const issue = (key: string, message: string) => ctx.addIssue({ code: 'custom', path: ['storage_config', 'redis', key], message });
  if (isSet(redis.sentinels) && isSet(redis.cluster_nodes)) issue('cluster_nodes', 'sentinels and cluster_nodes exclude each other: Redis Sentinel or Redis Cluster, not both');
  if (isSet(redis.sentinels) && !isSet(redis.sentinel_master)) issue('sentinels', 'sentinels needs sentinel_master: the master name the sentinels monitor');
  if (!isSet(redis.sentinels) && isSet(redis.sentinel_master)) issue('sentinel_master', 'sentinel_master needs sentinels: the addresses of the sentinels to ask');
  if (!isSet(redis.sentinels) && isSet(redis.sentinel_password)) issue('sentinel_password', 'sentinel_password needs sentinels');
  if (isSet(redis.cluster_nodes) && typeof redis.database === 'number' && redis.database !== 0) issue('database', 'Redis Cluster has database 0 only');
}

function etcdChecks(etcd: Raw, ctx: z.RefinementCtx): void {
  const issue = (path: string[], message: string) => ctx.addIssue({ code: 'custom', path: ['storage_config', 'etcd', ...path], message });
  if (isSet(etcd.username) !== isSet(etcd.password)) {
    issue([isSet(etcd.username) ? 'username' : 'password'], 'username and password go together: set both or neither');
  }
  const tls = section(etcd.tls);
  if (isSet(tls.cert) !== isSet(tls.key)) {
    issue(['tls', isSet(tls.cert) ? 'cert' : 'key'], 'tls.cert and tls.key go together: a client certificate needs its key');
  }
  const endpoints = Array.isArray(etcd.endpoints) ? etcd.endpoints.filter((e): e is string => typeof e === 'string') : [];
  const plain = endpoints.filter((url) => url.startsWith('http:'));
  if (plain.length > 0 && plain.length < endpoints.length) issue(['endpoints'], 'endpoints mix http:// and https://: use one scheme for every member');
}

/**
 * A TCP admin listener is a remote root shell for certificates: never
 * without a credential. tls.cert + key alone give HTTPS for a token; with
 * client_ca, client certificates are required (mutual TLS).
 */
function adminChecks(admin: Raw, ctx: z.RefinementCtx): void {
  const tls = section(admin.tls);
  const issue = (path: string[], message: string) => ctx.addIssue({ code: 'custom', path: ['admin', ...path], message });
  if (isSet(tls.cert) !== isSet(tls.key)) {
    issue(['tls', isSet(tls.cert) ? 'cert' : 'key'], 'admin.tls.cert and admin.tls.key go together');
  }
  const mutual = isSet(tls.client_ca);
  if (mutual && !(isSet(tls.cert) && isSet(tls.key))) {
    issue(['tls', 'client_ca'], 'mutual TLS needs the server\'s own admin.tls.cert and admin.tls.key too');
  }
  if (mutual && Array.isArray(tls.allowed_subjects) && tls.allowed_subjects.length === 0) {
    issue(['tls', 'client_ca'], 'admin.tls.allowed_subjects is empty: name the client identities (email, CN or DNS name) that may use the API');
  }
  const credential = isSet(admin.token_file) || mutual;
  if (!isSet(admin.listen)) {
    if (credential || isSet(tls.cert)) {
      const key = isSet(admin.token_file) ? 'token_file' : 'tls';
      issue([key], `admin.${key} applies to the TCP listener: set admin.listen too (the unix socket needs no credential)`);
    }
    return;
  }
  if (!credential) {
    issue(['listen'], 'a TCP admin listener needs admin.token_file or mutual TLS (admin.tls.cert, key, client_ca): acmed will not open its API to the network without a credential');
  }
}

/**
 * An IP address is proved only by http-01 (RFC 8738 §7 rules out dns-01;
 * tls-alpn-01 acmed does not answer), so it cannot share a certificate with
 * a wildcard (dns-01 only) or stand in one that says `challenge: dns-01`.
 * One challenge type per certificate: names that would need dns-01 beside
 * an address go in a certificate of their own.
 */
function ipAddressChecks(names: string[], challenge: unknown, wildcardAt: number, issue: (at: number, message: string) => void): void {
  const ipAt = names.findIndex((n) => isIpAddress(normalizedOrSelf(n)));
  if (ipAt < 0) return;
  if (challenge === 'dns-01') {
    issue(ipAt, `${names[ipAt]} is an IP address: dns-01 cannot prove it (RFC 8738), only http-01; put it in a certificate without "challenge: dns-01"`);
  } else if (wildcardAt >= 0) {
    issue(ipAt, `${names[ipAt]} is an IP address, proved only by http-01, and ${names[wildcardAt]} only by dns-01: put them in separate certificates`);
  }
}

function normalizedOrSelf(name: string): string {
  try {
    return normalizeHostname(name);
  } catch {
    return name;
  }
}

/**
 * Every certificate's challenge must be one acmed can answer: a wildcard
 * name only by dns-01, and dns-01 only with a `dns` section. Problems point
 * at the name (or the `challenge` key) they are about. Two certificates
 * stored under one name (a wildcard's files drop the "*.") are refused too.
 */
function challengeChecks(config: Raw, ctx: z.RefinementCtx): void {
  const hasDns = isSet(config.dns);
  const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
  const dnsNeeded = 'dns-01 needs a "dns" section (provider rfc2136 or exec); see README "dns-01"';
  if (section(config.challenge).type === 'dns-01' && !hasDns) issue(['challenge', 'type'], dnsNeeded);
  const storedAs = new Map<string, number>();
  const certificates = Array.isArray(config.certificates) ? config.certificates : [];
  certificates.forEach((raw, i) => {
    const cert = section(raw);
    const names = Array.isArray(cert.names) ? cert.names.filter((n): n is string => typeof n === 'string') : [];
    const wildcardAt = names.findIndex((n) => n.startsWith('*.'));
    if (wildcardAt >= 0 && !hasDns) {
      issue(['certificates', i, 'names', wildcardAt], `${names[wildcardAt]} is a wildcard name: it needs dns-01, and ${dnsNeeded}`);
    } else if (wildcardAt >= 0 && cert.challenge === 'http-01') {
      issue(['certificates', i, 'names', wildcardAt], `${names[wildcardAt]} is a wildcard name: http-01 cannot prove it; remove "challenge: http-01" or use dns-01`);
    } else if (cert.challenge === 'dns-01' && !hasDns) {
      issue(['certificates', i, 'challenge'], dnsNeeded);
    }
    ipAddressChecks(names, cert.challenge, wildcardAt, (at, message) => issue(['certificates', i, 'names', at], message));
    if (names.length === 0) return;
    const name = storageName(names[0]!);
    const other = storedAs.get(name);
    if (other !== undefined) issue(['certificates', i, 'names', 0], `certificates ${other + 1} and ${i + 1} would both be stored as ${name}; give one of them another first name`);
    else storedAs.set(name, i);
  });
}
