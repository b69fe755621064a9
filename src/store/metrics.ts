import fs from 'node:fs';
import { stringify } from 'csv-stringify/sync';
import { parse } from 'csv-parse/sync';
import { fixed, parseCell, significant } from './csv-format.js';

/** Columns of metrics.csv, in order. val_* are empty on rows without an evaluation. */
export const METRICS_COLUMNS = ['step', 'epoch', 'train_loss', 'train_acc', 'val_loss', 'val_acc', 'lr'] as const;

export interface MetricsRow {
  step: number;
  /** Fractional epochs completed: step * batch_size / training examples. */
  epoch: number;
  /** Mean training loss / accuracy over the mini-batches since the previous row. */
  train_loss: number;
  train_acc: number;
  val_loss: number | null;
  val_acc: number | null;
  lr: number;
}

/**
 * Appends metrics rows to a CSV file as they are produced: each row is one write(2) of a whole line,
 * so `tail -f` shows progress and a killed process leaves only complete rows.
 */
export class MetricsWriter {
  private fd: number;
  /** Bytes of complete lines written: on a failed write the file is cut back to this. */
  private length = 0;

  constructor(readonly file: string) {
    this.fd = fs.openSync(file, 'w');
    this.writeLine([...METRICS_COLUMNS]);
  }

  append(row: MetricsRow): void {
    this.writeLine([
      String(row.step),
      fixed(row.epoch, 4),
      fixed(row.train_loss),
      fixed(row.train_acc),
      fixed(row.val_loss),
      fixed(row.val_acc),
      significant(row.lr),
    ]);
  }

  /** Flushes to disk (rows are already in the OS's cache as each is written) and closes. */
  close(): void {
    if (this.fd < 0) return;
    const fd = this.fd;
    this.fd = -1;
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }

  private writeLine(cells: string[]): void {
    const line = Buffer.from(stringify([cells]));
    try {
      let done = 0;
      while (done < line.length) done += fs.writeSync(this.fd, line, done, line.length - done);
      this.length += line.length;
    } catch (e) {
      // Disk full mid-line: drop the partial line so the file stays a valid CSV.
      try {
        fs.ftruncateSync(this.fd, this.length);
      } catch {
        // Nothing more can be done; the error below says what happened.
      }
      (e as NodeJS.ErrnoException).path ??= this.file;
      throw e;
    }
  }
}

/** Reads a metrics.csv written by MetricsWriter. */
export function readMetrics(file: string): MetricsRow[] {
  const records = parse(fs.readFileSync(file, 'utf8'), { columns: true, skip_empty_lines: true }) as Record<string, string>[];
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
