import path from 'node:path';
import type { InstrumentName } from '../spec/types.js';
export { INSTRUMENT_COLUMNS, instrumentColumns, percentileColumn } from '../train/instruments/columns.js';
import { significant } from './csv-format.js';
import { CsvLines } from './csv-lines.js';

/** `<run dir>/<instrument name>.csv`. */
export function instrumentCsvPath(runDir: string, name: InstrumentName): string {
  return path.join(runDir, `${name}.csv`);
}

/** Significant digits of instrument values: gradient norms and their changes span many orders of magnitude. */
const DIGITS = 7;

/**
 * One instrument's CSV: the header at creation, then each measurement's rows appended whole (one
 * write of complete lines: a crash leaves no half row). Cells: `step` as an integer, strings (layer
 * names) as they are, other numbers with 7 significant digits (`nan`, `inf` as in metrics.csv).
 */
export class InstrumentCsv {
  private readonly lines: CsvLines;

  constructor(
    readonly file: string,
    readonly columns: readonly string[],
  ) {
    this.lines = new CsvLines(file, columns);
  }

  append(rows: Record<string, number | string>[]): void {
    if (rows.length === 0) return;
    this.lines.append(
      rows.map((row) => {
        const keys = Object.keys(row);
        if (keys.join(',') !== this.columns.join(','))
          throw new Error(`${this.file}: a row with columns ${keys.join(',')} (expected ${this.columns.join(',')})`);
        return keys.map((k) => cell(k, row[k]));
      }),
    );
  }

  close(): void {
    this.lines.close();
  }
}

function cell(column: string, value: number | string): string {
  if (typeof value === 'string') return value;
  return column === 'step' ? String(value) : significant(value, DIGITS);
}
