/**
 * Rules that span several keys. They run even when some field failed its own
 * check (zod's `when`), so they see a partly parsed object: every value is
 * tested for what it is before it is used.
 */
import type { z } from 'zod';

type Raw = Record<string, unknown>;

function section(value: unknown): Raw {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Raw) : {};
}

const isSet = (value: unknown) => value !== null && value !== undefined;

export function crossFieldChecks(config: Raw, ctx: z.RefinementCtx): void {
  if (config.cluster === true && config.storage === 'memory') {
    ctx.addIssue({ code: 'custom', path: ['storage'], message: 'memory storage lives in one process; several instances (cluster: true) need file, redis, consul or vault' });
  }
  if (isSet(config.eab_kid) !== isSet(config.eab_hmac_key)) {
    // Point at the one that is set: the missing one has no line to point at.
    const present = isSet(config.eab_kid) ? 'eab_kid' : 'eab_hmac_key';
    ctx.addIssue({ code: 'custom', path: [present], message: 'eab_kid and eab_hmac_key go together: set both or neither' });
  }
  adminChecks(section(config.admin), ctx);
}

/** A TCP admin listener is a remote root shell for certificates: never without a credential. */
function adminChecks(admin: Raw, ctx: z.RefinementCtx): void {
  const tls = section(admin.tls);
  const tlsKeys = ['cert', 'key', 'client_ca'] as const;
  const tlsSet = tlsKeys.filter((k) => isSet(tls[k]));
  if (tlsSet.length > 0 && tlsSet.length < tlsKeys.length) {
    const missing = tlsKeys.filter((k) => !isSet(tls[k])).map((k) => `admin.tls.${k}`).join(', ');
    ctx.addIssue({ code: 'custom', path: ['admin', 'tls', tlsSet[0]], message: `mutual TLS needs admin.tls.cert, key and client_ca together; missing ${missing}` });
  }
  if (!isSet(admin.listen)) {
    if (isSet(admin.token_file) || tlsSet.length > 0) {
      const key = isSet(admin.token_file) ? 'token_file' : 'tls';
      ctx.addIssue({ code: 'custom', path: ['admin', key], message: `admin.${key} applies to the TCP listener: set admin.listen too (the unix socket needs no credential)` });
    }
    return;
  }
  if (!isSet(admin.token_file) && tlsSet.length === 0) {
    ctx.addIssue({ code: 'custom', path: ['admin', 'listen'], message: 'a TCP admin listener needs admin.token_file or admin.tls (cert, key, client_ca): acmed will not open its API to the network without a credential' });
  }
  const subjects = tls.allowed_subjects;
  if (tlsSet.length === tlsKeys.length && Array.isArray(subjects) && subjects.length === 0) {
    ctx.addIssue({ code: 'custom', path: ['admin', 'tls', 'client_ca'], message: 'admin.tls.allowed_subjects is empty: name the client identities (email, CN or DNS name) that may use the API' });
  }
}
