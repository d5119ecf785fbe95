/**
 * The query of `GET /acme/certificates`: `limit` and `after` page through
 * the list in host order; `status` (comma-separated states),
 * `expiring_within` (a duration: "7d", "12h", "30m", "90s"; a bare number is
 * days) and Kong's `invalid_only` filter it. A bad value is a 400 that says
 * what is accepted, never an empty list.
 */
import type { ListQuery } from '../daemon/listing.js';
import type { CertificateState } from '../daemon/status.js';
import { HttpError, truthy } from './http-util.js';

export const MAX_PAGE = 10_000;
const STATES: readonly CertificateState[] = ['valid', 'expired', 'missing', 'renewing', 'failed'];
const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

export function parseListQuery(params: URLSearchParams): ListQuery {
  const query: ListQuery = {};
  const limit = params.get('limit');
  if (limit !== null) {
    const n = Number(limit);
    if (!/^\d+$/.test(limit) || n < 1 || n > MAX_PAGE) throw new HttpError(400, `limit must be a whole number from 1 to ${MAX_PAGE}, not ${JSON.stringify(limit)}`);
    query.limit = n;
  }
  const after = params.get('after');
  if (after !== null && after !== '') query.after = after;
  const status = params.get('status');
  if (status !== null && status !== '') {
    const wanted = status.split(',').map((s) => s.trim());
    const unknown = wanted.filter((s) => !STATES.includes(s as CertificateState));
    if (unknown.length > 0) throw new HttpError(400, `unknown status ${unknown.join(', ')}; use ${STATES.join(', ')}`);
    query.states = new Set(wanted as CertificateState[]);
  }
  const within = params.get('expiring_within');
  if (within !== null && within !== '') query.expiringWithinMs = parseDuration(within);
  if (truthy(params.get('invalid_only'))) query.invalidOnly = true;
  return query;
}

function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)([smhd]?)$/.exec(text.trim());
  if (!m) throw new HttpError(400, `expiring_within must be a duration such as 7d, 12h, 30m or 90s (a bare number is days), not ${JSON.stringify(text)}`);
  return Number(m[1]) * UNIT_MS[(m[2] || 'd') as keyof typeof UNIT_MS];
}
