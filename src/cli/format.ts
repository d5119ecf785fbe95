/** Human output for the certificate commands. */
import type { CertificateStatus } from '../admin/api.js';
import type { IssueOutcome } from '../daemon/issuer.js';
import type { CaState } from '../renewal/ca-backoff.js';
import type { PassResult } from '../renewal/renewer.js';

export function formatOutcome(outcome: IssueOutcome): string {
  const verb = outcome.issued ? 'issued' : 'already valid:';
  const lines = [
    `${verb} ${outcome.names.join(', ')}`,
    `  files:   ${outcome.location}`,
    `  expires: ${outcome.notAfter}`,
  ];
  if (outcome.dnsPropagationMs !== undefined) {
    lines.push(`  dns-01:  TXT records visible on every DNS server after ${(outcome.dnsPropagationMs / 1000).toFixed(1)} s`);
  }
  if (outcome.deployHook) {
    const hook = outcome.deployHook;
    lines.push(`  deploy hook: ${hook.ok ? 'ok' : hook.timedOut ? 'timed out' : `failed (exit ${hook.exitCode})`}`);
  }
  return lines.join('\n');
}

export function formatPass(result: PassResult): string {
  const lines = [`checked ${result.checked}: ${result.renewed.length} renewed, ${result.notDue} not due, `
    + `${result.backedOff.length} in backoff, ${result.failed.length} failed`];
  for (const name of result.renewed) lines.push(`  renewed   ${name}`);
  for (const name of result.backedOff) lines.push(`  backoff   ${name}`);
  for (const f of result.failed) lines.push(`  failed    ${f.name}: ${f.error}`);
  return lines.join('\n');
}

const TABLE_HEADER = ['HOST', 'STATUS', 'EXPIRES', 'NAMES'];

/**
 * The `acmed list` table, one page at a time: `widths` carries the column
 * widths from page to page (they only grow), and the header comes with the
 * first page.
 */
export function tableLines(rows: CertificateStatus[], widths: number[], withHeader: boolean): string[] {
  const lines = rows.map((r) => [r.host, r.status, r.not_after ?? '-', r.names.join(',')]);
  const shown = withHeader ? [TABLE_HEADER, ...lines] : lines;
  TABLE_HEADER.forEach((_, i) => {
    widths[i] = Math.max(widths[i] ?? 0, ...shown.map((l) => l[i].length));
  });
  return shown.map((cols) => cols.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd());
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
    `renew at: ${row.renew_at ? `${row.renew_at} (${row.renew_reason})` : row.not_after ? '-' : 'as soon as possible (no certificate yet)'}`,
    ...(row.pending_order ? [`order:    ${row.pending_order} (placed, not finished; resumed by the next attempt)`] : []),
    ...(row.last_error ? [`failures: ${row.failures}`, `error:    ${row.last_error}`, `backoff:  ${row.backoff_until ?? '-'}`] : []),
  ].join('\n');
}

export function formatCaBackoff(ca: CaState): string {
  return `CA unreachable (${ca.failures} failure${ca.failures === 1 ? '' : 's'}, last: ${ca.lastError ?? '-'}); `
    + `orders wait and resume by themselves after ${ca.until ?? '-'}`;
}
