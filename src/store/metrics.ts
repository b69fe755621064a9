import fs from 'node:fs';
import { parse } from 'csv-parse/sync';
import { fixed, parseCell, significant } from './csv-format.js';
import { CsvLines } from './csv-lines.js';
import type { MetricsRow } from '../train/metrics.js';

/** Columns of metrics.csv, in order. val_* are empty on rows without an evaluation. */
export const METRICS_COLUMNS = ['step', 'epoch', 'train_loss', 'train_acc', 'val_loss', 'val_acc', 'lr'] as const;

export type { MetricsRow };

/** Appends metrics rows to a CSV file as they are produced, each a whole line (see CsvLines). */
export class MetricsWriter {
  private readonly lines: CsvLines;

  constructor(readonly file: string) {
    this.lines = new CsvLines(file, METRICS_COLUMNS);
  }

  append(row: MetricsRow): void {
    this.lines.append([
      [
        String(row.step),
        fixed(row.epoch, 4),
        fixed(row.train_loss),
        fixed(row.train_acc),
        fixed(row.val_loss),
        fixed(row.val_acc),
        significant(row.lr),
      ],
    ]);
  }

  /** Flushes to disk and closes. */
  close(): void {
    this.lines.close();
  }
}

/** Reads a metrics.csv written by MetricsWriter. */
export function readMetrics(file: string): MetricsRow[] {
  const records = parse(fs.readFileSync(file, 'utf8'), { columns: true, skip_empty_lines: true }) as Record<
    string,
    string
  >[];
  return records.map((r) => ({
    step: Number(r.step),
    epoch: Number(r.epoch),
    train_loss: parseCell(r.train_loss) ?? NaN,
    train_acc: parseCell(r.train_acc) ?? NaN,
    val_loss: parseCell(r.val_loss),
    val_acc: parseCell(r.val_acc),
    lr: Number(r.lr),
  }));
}
