/** Plain-text tables for the terminal: columns padded to their widest cell, numbers right-aligned. */
export function formatTable(
  header: string[],
  rows: string[][],
  opts: { indent?: string; align?: ('l' | 'r')[] } = {},
): string {
  const all = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...all.map((r) => (r[c] ?? '').length)));
  const numeric = /^[-+]?[\d,]*\.?\d+(e[-+]?\d+)?( ?[%x×s])?$|^-$|^(nan|inf|-inf)$/i;
  const align =
    opts.align ??
    header.map((_, c) =>
      rows.length > 0 && rows.every((r) => numeric.test((r[c] ?? '').replace(/ @[\d,]+$/, ''))) ? 'r' : 'l',
    );
  const line = (r: string[]) =>
    (opts.indent ?? '') +
    r
      .map((cell, c) => (align[c] === 'r' ? (cell ?? '').padStart(widths[c]) : (cell ?? '').padEnd(widths[c])))
      .join('  ')
      .trimEnd();
  return all.map(line).join('\n');
}

/** A Markdown (GFM) table; pipes in cells are escaped. */
export function markdownTable(header: string[], rows: string[][]): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  return [
    `| ${header.map(esc).join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}

/** Picks about `n` rows evenly, always keeping the first and the last. */
export function thin<T>(rows: T[], n: number): T[] {
  if (rows.length <= n) return rows;
  const idx = new Set<number>();
  for (let i = 0; i < n; i++) idx.add(Math.round((i * (rows.length - 1)) / (n - 1)));
  return [...idx].sort((x, y) => x - y).map((i) => rows[i]);
}
