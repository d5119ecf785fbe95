/** Human output for the certificate commands. */
import type { CertificateStatus } from '../admin/api.js';
import type { IssueOutcome } from '../daemon/issuer.js';

export function formatOutcome(outcome: IssueOutcome): string {
  const verb = outcome.issued ? 'issued' : 'already valid:';
  return [
    `${verb} ${outcome.names.join(', ')}`,
    `  files:   ${outcome.location}`,
    `  expires: ${outcome.notAfter}`,
  ].join('\n');
}

export function formatTable(rows: CertificateStatus[]): string {
  if (rows.length === 0) return 'no certificates';
  const lines = rows.map((r) => [r.host, r.status, r.not_after ?? '-', r.names.join(',')]);
  const header = ['HOST', 'STATUS', 'EXPIRES', 'NAMES'];
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  return [header, ...lines].map((cols) => cols.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}

export function formatStatus(row: CertificateStatus): string {
  return [
    `host:     ${row.host}`,
    `names:    ${row.names.join(', ')}`,
    `status:   ${row.status}`,
    `expires:  ${row.not_after ?? '-'}`,
    `issued:   ${row.not_before ?? '-'}`,
    `serial:   ${row.serial_number ?? '-'}`,
    `issuer:   ${row.issuer_cn ?? '-'}`,
    `files:    ${row.location}`,
  ].join('\n');
}
