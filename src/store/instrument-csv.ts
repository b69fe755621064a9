import path from 'node:path';
import type { InstrumentName, RunConfig } from '../spec/types.js';
import { significant } from './csv-format.js';
import { CsvLines } from './csv-lines.js';

/** `<run dir>/<instrument name>.csv`. */
export function instrumentCsvPath(runDir: string, name: InstrumentName): string {
  return path.join(runDir, `${name}.csv`);
}

/**
 * The leading columns of each instrument's CSV, in order. activation_percentiles has one more
 * column per configured percentile after these (`p15`, `p50`, `p2.5`: see percentileColumn).
 * Here, not with the instruments, so that reading results does not load TensorFlow.
 */
export const INSTRUMENT_COLUMNS: Record<InstrumentName, readonly string[]> = {
  activation_percentiles: ['step', 'layer'],
  ics: ['step', 'layer', 'l2', 'cosine', 'grad_norm'],
  smoothness: ['step', 'step_size', 'loss', 'loss_change', 'grad_change', 'beta'],
  eval_gap: ['step', 'val_loss_train_mode', 'val_loss_inference', 'gap'],
};

/** `p15`, `p50`, `p85`, `p2.5`: the column of one configured percentile. */
export function percentileColumn(q: number): string {
  return `p${q}`;
}

/** The columns of a run's `<run dir>/<name>.csv`, in order. */
export function instrumentColumns(config: RunConfig, name: InstrumentName): string[] {
  const extra = name === 'activation_percentiles' ? config.instruments.activation_percentiles.percentiles.map(percentileColumn) : [];
  return [...INSTRUMENT_COLUMNS[name], ...extra];
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
    this.lines.append(rows.map((row) => {
      const keys = Object.keys(row);
      if (keys.join(',') !== this.columns.join(',')) throw new Error(`${this.file}: a row with columns ${keys.join(',')} (expected ${this.columns.join(',')})`);
      return keys.map((k) => cell(k, row[k]));
    }));
  }

  close(): void {
    this.lines.close();
  }
}

function cell(column: string, value: number | string): string {
  if (typeof value === 'string') return value;
  return column === 'step' ? String(value) : significant(value, DIGITS);
}
