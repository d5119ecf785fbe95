// The fault suite's summary: one row per scenario, columns padded to fit,
// numbers right-aligned, the notes column last and unpadded.

export interface SummaryRow {
  scenario: string;
  runs: number;
  failures: number;
  orders: number;
  /** '?' when a run ended before it could count. */
  lost: number | '?';
  notes: string;
}

const COLUMNS: { title: string; key: keyof SummaryRow; numeric: boolean }[] = [
  { title: 'scenario', key: 'scenario', numeric: false },
  { title: 'runs', key: 'runs', numeric: true },
  { title: 'failures', key: 'failures', numeric: true },
  { title: 'ACME orders', key: 'orders', numeric: true },
  { title: 'certs lost', key: 'lost', numeric: true },
  { title: 'notes', key: 'notes', numeric: false },
];

export function formatTable(rows: SummaryRow[]): string {
  const cells = rows.map((row) => COLUMNS.map((c) => String(row[c.key])));
  const widths = COLUMNS.map((c, i) => Math.max(c.title.length, ...cells.map((r) => r[i].length)));
  const line = (values: string[]) => values.map((v, i) => {
    if (i === COLUMNS.length - 1) return v;
    return COLUMNS[i].numeric ? v.padStart(widths[i]) : v.padEnd(widths[i]);
  }).join('  ').trimEnd();
  const rule = widths.map((w, i) => '-'.repeat(i === COLUMNS.length - 1 ? Math.min(w, 40) : w)).join('  ');
  return [line(COLUMNS.map((c) => c.title)), rule, ...cells.map(line)].join('\n');
}
