/**
 * The one pino logger. Redaction lives here so no caller can forget it: keys,
 * EAB secrets, tokens and key authorizations are censored by path, up to
 * three levels deep in a log object (pino has no "any depth" wildcard, so
 * callers log flat objects, never a whole config).
 */
import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger } from 'pino';

const SECRET_KEYS = [
  'privateKey', 'privkey', 'accountKey', 'key', 'keyPem', 'keyAuthorization', 'token',
  'eab_hmac_key', 'hmacKey', 'auth', 'password', 'sentinel_password', 'authorization', 'jwt',
];

export const REDACT_PATHS = [
  ...SECRET_KEYS,
  ...SECRET_KEYS.map((k) => `*.${k}`),
  ...SECRET_KEYS.map((k) => `*.*.${k}`),
  ...SECRET_KEYS.map((k) => `*.*.*.${k}`),
  'req.headers.authorization',
];

export function createLogger(level = 'info', destination?: DestinationStream): Logger {
  return pino({
    level,
    base: { service: 'acmed' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  }, destination);
}
