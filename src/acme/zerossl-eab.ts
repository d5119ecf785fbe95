/**
 * ZeroSSL requires an external account binding, and hands one out for an
 * email address without a ZeroSSL login (as the Kong plugin uses it): when
 * `api_uri` is ZeroSSL's directory and no `eab_kid`/`eab_hmac_key` is
 * configured, acmed asks for one with `account_email`, once, and keeps it
 * in storage beside the account.
 */
import https from 'node:https';
import { keys } from '../storage/keys.js';
import type { Storage } from '../storage/storage.js';
import { AcmeAccountError } from './errors.js';

export const ZEROSSL_EAB_ENDPOINT = 'https://api.zerossl.com/acme/eab-credentials-email';

export interface ExternalAccountBinding {
  kid: string;
  hmacKey: string;
}

export function isZeroSsl(directoryUrl: string): boolean {
  try {
    return new URL(directoryUrl).hostname === 'acme.zerossl.com';
  } catch {
    return false;
  }
}

/** The stored binding, or a new one from ZeroSSL's endpoint (stored before it is used). */
export async function zeroSslEab(opts: { email: string; storage: Storage; endpoint?: string; ca?: string | Buffer; timeoutMs?: number }): Promise<ExternalAccountBinding> {
  const stored = await opts.storage.get(keys.zeroSslEab);
  if (stored) {
    try {
      const parsed = JSON.parse(stored) as ExternalAccountBinding;
      if (parsed.kid && parsed.hmacKey) return parsed;
    } catch { /* asked again below */ }
  }
  const endpoint = opts.endpoint ?? ZEROSSL_EAB_ENDPOINT;
  const answer = await postForm(endpoint, `email=${encodeURIComponent(opts.email)}`, opts.ca, opts.timeoutMs ?? 15_000)
    .catch((err: Error) => { throw new AcmeAccountError(`cannot get ZeroSSL EAB credentials from ${endpoint}: ${err.message}`); });
  const body = answer as { success?: boolean; eab_kid?: unknown; eab_hmac_key?: unknown; error?: { type?: string; code?: number } };
  if (body.success !== true || typeof body.eab_kid !== 'string' || typeof body.eab_hmac_key !== 'string') {
    const why = body.error?.type ? `${body.error.type}${body.error.code ? ` (${body.error.code})` : ''}` : 'no eab_kid/eab_hmac_key in the answer';
    throw new AcmeAccountError(`ZeroSSL refused EAB credentials for ${opts.email}: ${why}`);
  }
  const binding = { kid: body.eab_kid, hmacKey: body.eab_hmac_key };
  await opts.storage.set(keys.zeroSslEab, JSON.stringify(binding));
  return binding;
}

function postForm(url: string, form: string, ca: string | Buffer | undefined, timeoutMs: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, {
      method: 'POST', ca, timeout: timeoutMs,
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(form) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => { text += c; });
      res.on('end', () => {
        try {
          resolve(JSON.parse(text));
        } catch {
          reject(new Error(`HTTP ${res.statusCode}, not JSON`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
    req.on('error', reject);
    req.end(form);
  });
}
