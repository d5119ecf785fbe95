/** Human output for the certificate commands. */
import type { CertificateStatus, DaemonSummary, IssueResult, PassSummary } from '../admin/wire.js';
import type { CaState } from '../renewal/ca-backoff.js';

export function formatOutcome(outcome: IssueResult): string {
  const verb = outcome.issued ? 'issued' : 'already valid:';
  const lines = [
    `${verb} ${outcome.names.join(', ')}`,
    `  files:   ${outcome.location}`,
    `  expires: ${outcome.not_after}`,
  ];
  if (outcome.dns_propagation_ms !== null) {
    lines.push(`  dns-01:  TXT records visible on every DNS server after ${(outcome.dns_propagation_ms / 1000).toFixed(1)} s`);
  }
  if (outcome.deploy_hook) {
    const hook = outcome.deploy_hook;
    lines.push(`  deploy hook: ${hook.ok ? 'ok' : hook.timed_out ? 'timed out' : `failed (exit ${hook.exit_code})`}`);
  }
  return lines.join('\n');
}

export function formatPass(result: PassSummary): string {
  const lines = [`checked ${result.checked}: ${result.renewed.length} renewed, ${result.not_due} not due, `
    + `${result.backed_off.length} in backoff, ${result.failed.length} failed`];
  for (const name of result.renewed) lines.push(`  renewed   ${name}`);
  for (const name of result.backed_off) lines.push(`  backoff   ${name}`);
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
    ...(row.ca ? [`CA:       ${row.ca}`] : []),
    ...(row.location ? [`files:    ${row.location}`] : []),
    `managed:  ${row.managed ? 'yes (renewed by acmed)' : 'no (not in certificates or domains: kept, not renewed)'}`,
    `renew at: ${row.renew_at ? `${row.renew_at} (${row.renew_reason})` : row.not_after ? '-' : 'as soon as possible (no certificate yet)'}`,
    ...(row.pending_order ? [`order:    ${row.pending_order} (placed, not finished; resumed by the next attempt)`] : []),
    ...(row.last_error ? [`failures: ${row.failures}`, `error:    ${row.last_error}`, `backoff:  ${row.backoff_until ?? '-'}`] : []),
  ].join('\n');
}

export function formatCaBackoff(ca: CaState): string {
  return `CA unreachable (${ca.failures} failure${ca.failures === 1 ? '' : 's'}, last: ${ca.lastError ?? '-'}); `
    + `orders wait and resume by themselves after ${ca.until ?? '-'}`;
}

export function formatSummary(s: DaemonSummary): string {
  const states = Object.entries(s.certificates.by_status).filter(([, n]) => n > 0).map(([state, n]) => `${n} ${state}`).join(', ');
  return [
    `acmed ${s.version}, up ${formatDuration(s.uptime_seconds)} (since ${s.started_at})`,
    `config:       ${s.config ?? '-'}`,
    ...(s.cas ?? [s.ca]).map((ca, i) => `${i === 0 ? 'CA:          ' : '             '} ${ca.url} ${ca.up ? 'up' : `DOWN (${ca.last_error ?? 'no answer'}; next try after ${ca.until ?? '-'})`}`),
    `storage:      ${s.storage.kind} ${s.storage.up ? 'up' : 'DOWN'}`,
    `certificates: ${s.certificates.total}${states ? ` (${states})` : ''}`,
    `next renewal: ${s.next_renewal ? `${s.next_renewal.name} at ${s.next_renewal.at}` : '-'}`,
    `orders now:   ${s.running_orders}`,
  ].join('\n');
}

function formatDuration(seconds: number): string {
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  return d > 0 ? `${d}d ${h}h` : h > 0 ? `${h}h ${m}m` : `${m}m ${Math.floor(seconds % 60)}s`;
}

/** `key: value` lines for a flat record (account details), arrays joined. */
export function formatFields(data: Record<string, unknown>): string {
  const width = Math.max(...Object.keys(data).map((k) => k.length)) + 1;
  return Object.entries(data).map(([k, v]) => `${`${k}:`.padEnd(width + 1)}${Array.isArray(v) ? v.join(', ') : v ?? '-'}`).join('\n');
}
