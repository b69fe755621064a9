import fs from 'node:fs';
import { DamagedFileError } from '../util/errors.js';
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

/** A metrics.csv read back: its rows, and what was wrong with the file (null when nothing was). */
export interface MetricsRead {
  rows: MetricsRow[];
  damage: string | null;
}

const isCell = (s: string) =>
  s === '' || s === 'nan' || s === 'inf' || s === '-inf' || /^-?\d+(\.\d+)?(e[-+]?\d+)?$/i.test(s);

/**
 * Parses the text of a metrics.csv, line by line. MetricsWriter writes each row as one whole line
 * ending in a newline, so text after the last newline is a row cut short: what a killed process
 * leaves, and what `tail -f` shows while a row is written. It is left out and reported as damage;
 * so is the rest of the file from a row that does not parse. The rows before are kept. A complete
 * first line that is not the header means the file is no metrics.csv at all: `header` false.
 */
export function parseMetrics(text: string): MetricsRead & { header: boolean } {
  const lines = text.split('\n');
  const torn = lines.pop() as string; // '' when the file ends with a newline, as bnx writes it
  if (lines.length === 0)
    return { rows: [], damage: text === '' ? 'empty (no header)' : 'the header is cut short', header: true };
  if (lines[0].replace(/\r$/, '') !== METRICS_COLUMNS.join(',')) return { rows: [], damage: null, header: false };
  const rows: MetricsRow[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i].replace(/\r$/, '');
    if (line === '') continue;
    const cells = line.split(',');
    if (cells.length !== METRICS_COLUMNS.length || !cells.every(isCell) || cells[0] === '' || !/^\d+$/.test(cells[0])) {
      const shown = line.length > 40 ? `${line.slice(0, 40)}...` : line;
      return {
        rows,
        damage: `line ${i + 1} is not a metrics row ("${shown}"); read the ${rows.length} row(s) before it`,
        header: true,
      };
    }
    rows.push({
      step: Number(cells[0]),
      epoch: Number(cells[1]),
      train_loss: parseCell(cells[2]) ?? NaN,
      train_acc: parseCell(cells[3]) ?? NaN,
      val_loss: parseCell(cells[4]),
      val_acc: parseCell(cells[5]),
      lr: Number(cells[6]),
    });
  }
  const damage =
    torn === ''
      ? null
      : `the last line is cut short (a run still writing it, or a process killed mid-write); read the ${rows.length} complete row(s) before it`;
  return { rows, damage, header: true };
}

/** Reads a metrics.csv written by MetricsWriter; a damaged or foreign file is a DamagedFileError. */
export function readMetrics(file: string): MetricsRow[] {
  const { rows, damage, header } = parseMetrics(fs.readFileSync(file, 'utf8'));
  if (!header)
    throw new DamagedFileError(file, `not a bnx metrics CSV (the header must be ${METRICS_COLUMNS.join(',')})`);
  if (damage) throw new DamagedFileError(file, damage);
  return rows;
}
