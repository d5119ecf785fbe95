/**
 * `acmed list`: pages through `GET /acme/certificates` (1,000 rows at a
 * time) and writes each page as it arrives, so neither the daemon nor the CLI
 * ever holds 100,000 rows. `--json` is still one JSON array.
 */
import type { CertificateStatus } from '../admin/wire.js';
import { styleText } from 'node:util';
import type { CaState } from '../renewal/ca-backoff.js';
import { adminRequest, expectOk } from './admin-client.js';
import type { AdminTarget } from './admin-target.js';
import { formatCaBackoff, tableLines } from './format.js';

const PAGE = 1_000;

export interface ListFlags {
  json?: boolean;
  status?: string;
  expiringWithin?: string;
}

export async function listCertificates(target: AdminTarget, flags: ListFlags, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  const filters = new URLSearchParams({ limit: String(PAGE) });
  if (flags.status) filters.set('status', flags.status);
  if (flags.expiringWithin) filters.set('expiring_within', flags.expiringWithin);
  const widths: number[] = [];
  // Colour only for a person at a terminal (and never with NO_COLOR): scripts and pipes get plain text.
  const color = Boolean((out as NodeJS.WriteStream).isTTY) && !process.env.NO_COLOR;
  let after: string | null = null;
  let count = 0;
  for (let first = true; first || after !== null; first = false) {
    const query = new URLSearchParams(filters);
    if (after !== null) query.set('after', after);
    const page = expectOk(await adminRequest<{ data: CertificateStatus[]; next: string | null; ca?: CaState }>(
      target, 'GET', `/acme/certificates?${query}`));
    // The CA's backoff goes to stderr, so scripts reading stdout are unaffected.
    if (first && page.ca && !page.ca.up) process.stderr.write(`${formatCaBackoff(page.ca)}\n`);
    const text = flags.json
      ? jsonRows(page.data, count === 0)
      : colour(tableLines(page.data, widths, count === 0), page.data, count === 0, color).map((line) => `${line}\n`).join('');
    count += page.data.length;
    await write(out, text);
    after = page.next;
  }
  if (flags.json) await write(out, count === 0 ? '[]\n' : '\n]\n');
  else if (count === 0) await write(out, 'no certificates\n');
}

function write(out: NodeJS.WritableStream, text: string): Promise<void> {
  if (text === '' || out.write(text)) return Promise.resolve();
  return new Promise((resolve) => out.once('drain', () => resolve()));
}

const WEEK_MS = 7 * 24 * 3600 * 1000;

/** Failing and expired rows in red, expiring within a week in yellow; the header (first line of the first page) as is. */
function colour(lines: string[], rows: CertificateStatus[], withHeader: boolean, enabled: boolean): string[] {
  if (!enabled) return lines;
  const offset = withHeader ? 1 : 0;
  return lines.map((line, i) => {
    const row = rows[i - offset];
    if (!row) return line;
    if (row.status === 'failed' || row.status === 'expired' || row.status === 'missing') return styleText('red', line);
    if (row.not_after && Date.parse(row.not_after) - Date.now() < WEEK_MS) return styleText('yellow', line);
    return line;
  });
}

/**
 * A page's rows as the next elements of one pretty-printed JSON array: the
 * page stringified whole, its brackets cut off (a third of the time of a
 * stringify and re-indent per row, at 100,000 rows).
 */
function jsonRows(rows: CertificateStatus[], first: boolean): string {
  if (rows.length === 0) return '';
  const array = JSON.stringify(rows, null, 2);
  return `${first ? '[\n' : ',\n'}${array.slice(2, -2)}`;
}
