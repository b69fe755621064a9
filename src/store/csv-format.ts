/**
 * Number formatting shared by every CSV bnx writes. Fixed precision, so that `diff` of two metrics
 * files shows real differences only: losses and accuracies with 6 decimals, epochs with 4, learning
 * rates with 6 significant digits. Non-finite values are written `nan`, `inf`, `-inf`.
 */
export function fixed(x: number | null | undefined, decimals = 6): string {
  if (x === null || x === undefined) return '';
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  const s = x.toFixed(decimals);
  return s === `-${(0).toFixed(decimals)}` ? s.slice(1) : s;
}

export function significant(x: number, digits = 6): string {
  if (!Number.isFinite(x)) return fixed(x);
  return String(Number(x.toPrecision(digits)));
}

/** Parses a number written by `fixed`; empty cells are null. */
export function parseCell(s: string): number | null {
  if (s === '') return null;
  if (s === 'nan') return NaN;
  if (s === 'inf') return Infinity;
  if (s === '-inf') return -Infinity;
  return Number(s);
}
