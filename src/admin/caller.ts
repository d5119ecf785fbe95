/**
 * Who is calling the admin API, and may they. The unix socket's caller is
 * trusted (the socket is 0600). On the TCP listener a caller proves itself
 * with the bearer token, a client certificate whose identity is allowed, or
 * both when both are configured.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type http from 'node:http';
import type { TLSSocket } from 'node:tls';

export interface CallerPolicy {
  /** SHA-256 of the bearer token; hashing first makes the compare constant-time whatever the lengths. */
  tokenDigest?: Buffer;
  /** Set when client certificates are required (mutual TLS). */
  allowedSubjects?: ReadonlySet<string>;
}

export type CallerCheck =
  | { ok: true; caller: string }
  | { ok: false; status: 401 | 403; message: string; caller: string };

export function tokenDigest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

export function checkCaller(req: http.IncomingMessage, policy: CallerPolicy): CallerCheck {
  const parts: string[] = [];
  if (policy.allowedSubjects) {
    const socket = req.socket as TLSSocket;
    // The handshake already refused certificates from other CAs; this is the belt to its braces.
    if (!socket.authorized) return { ok: false, status: 401, message: 'a client certificate signed by admin.tls.client_ca is required', caller: 'tls:none' };
    const identities = certificateIdentities(socket.getPeerCertificate());
    const allowed = identities.find((id) => policy.allowedSubjects!.has(id));
    if (!allowed) {
      return { ok: false, status: 403, message: `client certificate ${identities[0] ?? '(no identity)'} is not in admin.tls.allowed_subjects`, caller: `cert:${identities[0] ?? '?'}` };
    }
    parts.push(`cert:${allowed}`);
  }
  if (policy.tokenDigest) {
    const header = req.headers.authorization ?? '';
    const presented = /^Bearer\s+(.+)$/i.exec(header)?.[1]?.trim();
    if (!presented || !timingSafeEqual(tokenDigest(presented), policy.tokenDigest)) {
      return { ok: false, status: 401, message: presented ? 'the bearer token is wrong' : 'a bearer token is required (Authorization: Bearer …)', caller: parts[0] ?? 'tcp' };
    }
    parts.push('token');
  }
  return { ok: true, caller: parts.join('+') };
}

/**
 * A certificate's identities in the order Kong's mTLS plugin matches
 * consumers: email (SAN, then the subject's emailAddress), CN, DNS SANs.
 */
export function certificateIdentities(cert: { subject?: object; subjectaltname?: string }): string[] {
  const sans = (cert.subjectaltname ?? '').split(/,\s*/).filter(Boolean);
  const san = (kind: string) => sans.filter((s) => s.startsWith(`${kind}:`)).map((s) => s.slice(kind.length + 1));
  const field = (name: string) => {
    const value = (cert.subject as Record<string, string | string[] | undefined> | undefined)?.[name];
    return value === undefined ? [] : Array.isArray(value) ? value : [value];
  };
  return [...new Set([...san('email'), ...field('emailAddress'), ...field('CN'), ...san('DNS')])];
}
