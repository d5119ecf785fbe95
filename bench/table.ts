// One row of the `npm run bench` table: a measure, acmed's number, the peer's
// number measured in the same run (when a peer applies), the ratio and the
// target. Every bench part returns rows; bench/run.ts prints them as one
// markdown table.

export interface BenchRow {
  /** What is measured, with its unit: "bulk issuance (certificates/s)". */
  measure: string;
  acmed: number;
  /** Peer name and its number; omitted when no peer does this. */
  peer?: { name: string; value: number };
  /**
   * The target, as text for the table ("<= 1 s", ">= 0.6x nginx"), and
   * whether acmed's number met it; omitted when the row is informational.
   */
  target?: { text: string; met: boolean };
  /** Digits after the point when printing (default 2). */
  digits?: number;
  /** Extra detail printed in the notes column (p99, sizes, …). */
  note?: string;
}

/** acmed's number against the peer's, as "0.49x" (acmed / peer). */
export function ratioText(row: BenchRow): string {
  if (!row.peer || row.peer.value === 0) return '';
  return `${(row.acmed / row.peer.value).toFixed(2)}x`;
}

export function markdownTable(rows: BenchRow[]): string {
  const lines = [
    '| measure | acmed | peer | acmed / peer | target | met | notes |',
    '|---|---:|---:|---:|---|---|---|',
  ];
  for (const row of rows) {
    const digits = row.digits ?? 2;
    lines.push(`| ${[
      row.measure,
      row.acmed.toFixed(digits),
      row.peer ? `${row.peer.value.toFixed(digits)} (${row.peer.name})` : '',
      ratioText(row),
      row.target?.text ?? '',
      row.target ? (row.target.met ? 'yes' : '**no**') : '',
      row.note ?? '',
    ].join(' | ')} |`);
  }
  return lines.join('\n');
}
