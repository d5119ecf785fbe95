/**
 * `acmed list`: pages through `GET /acme/certificates` (1,000 rows at a
 * time) and writes each page as it arrives, so neither the daemon nor the CLI
 * ever holds 100,000 rows. `--json` is still one JSON array.
 */
import type { CertificateStatus } from '../admin/api.js';
import type { CaState } from '../renewal/ca-backoff.js';
import { adminRequest, expectOk } from './admin-client.js';
import { formatCaBackoff, tableLines } from './format.js';

const PAGE = 1_000;

export interface ListFlags {
  json?: boolean;
  status?: string;
  expiringWithin?: string;
}

export async function listCertificates(socketPath: string, flags: ListFlags, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  const filters = new URLSearchParams({ limit: String(PAGE) });
  if (flags.status) filters.set('status', flags.status);
  if (flags.expiringWithin) filters.set('expiring_within', flags.expiringWithin);
  const widths: number[] = [];
  let after: string | null = null;
  let count = 0;
  for (let first = true; first || after !== null; first = false) {
    const query = new URLSearchParams(filters);
    if (after !== null) query.set('after', after);
    const page = expectOk(await adminRequest<{ data: CertificateStatus[]; next: string | null; ca?: CaState }>(
      socketPath, 'GET', `/acme/certificates?${query}`));
    // The CA's backoff goes to stderr, so scripts reading stdout are unaffected.
    if (first && page.ca && !page.ca.up) process.stderr.write(`${formatCaBackoff(page.ca)}\n`);
    const text = flags.json
      ? page.data.map((row, i) => `${count + i === 0 ? '[\n' : ',\n'}${JSON.stringify(row, null, 2).replace(/^/gm, '  ')}`).join('')
      : tableLines(page.data, widths, count === 0).map((line) => `${line}\n`).join('');
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
