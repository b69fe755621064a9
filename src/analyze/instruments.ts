import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { InputError } from '../util/errors.js';
import { INSTRUMENT_NAMES, type InstrumentName } from '../spec/types.js';
import { parseCell } from '../store/csv-format.js';
import { INSTRUMENT_COLUMNS, instrumentCsvPath } from '../store/instrument-csv.js';
import type { LoadedRun } from './results.js';

/** The file an instrument writes into a run directory, next to metrics.csv. */
export const instrumentFile = (instrument: InstrumentName): string => path.basename(instrumentCsvPath('.', instrument));

/** One CSV row: `layer` for the per-layer instruments (else null), every other column as a number. */
export interface InstrumentRow {
  step: number;
  layer: string | null;
  /** Column -> value; `nan`/`inf` cells are NaN/Infinity and empty cells NaN. */
  values: Record<string, number>;
}

/** One run's CSV of one instrument. */
export interface InstrumentTable {
  instrument: InstrumentName;
  file: string;
  columns: string[];
  rows: InstrumentRow[];
  /** A last line cut short (left out; what a killed run leaves), or null. */
  damage: string | null;
}

/** A percentile column (`p2.5`) and its percentile (2.5). */
export interface PercentileColumn {
  column: string;
  q: number;
}

const PERCENTILE_COLUMN = /^p(\d+(?:\.\d+)?)$/;

/** The `p<q>` columns of an activation_percentiles header, by increasing percentile. */
export function percentileColumns(columns: readonly string[]): PercentileColumn[] {
  return columns
    .flatMap((column) => {
      const m = PERCENTILE_COLUMN.exec(column);
      return m ? [{ column, q: Number(m[1]) }] : [];
    })
    .sort((a, b) => a.q - b.q);
}

function headerProblem(instrument: InstrumentName, columns: string[]): string | null {
  const fixed = INSTRUMENT_COLUMNS[instrument];
  if (instrument === 'activation_percentiles') {
    const rest = columns.slice(fixed.length);
    const ok =
      fixed.every((c, i) => columns[i] === c) && rest.length > 0 && rest.every((c) => PERCENTILE_COLUMN.test(c));
    return ok ? null : `the header must be ${fixed.join(',')} and then one p<percentile> column each (p15,p50,p85)`;
  }
  return columns.join(',') === fixed.join(',') ? null : `the header must be ${fixed.join(',')}`;
}

/** Reads an instrument CSV written by bnx, checking its header so that another CSV gets a clear error. */
export function readInstrumentCsv(file: string, instrument: InstrumentName): InstrumentTable {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new InputError(file, `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  // bnx writes whole lines: text after the last newline is a row cut short (a killed process), left out.
  const end = text.lastIndexOf('\n') + 1;
  const damage =
    end < text.length
      ? `the last line is cut short (a run still writing it, or a process killed mid-write); left out`
      : null;
  let records: string[][];
  try {
    records = parse(text.slice(0, end), { skip_empty_lines: true }) as string[][];
  } catch (e) {
    throw new InputError(file, `not a valid CSV: ${(e as Error).message}`);
  }
  const columns = records[0] ?? [];
  const problem = headerProblem(instrument, columns);
  if (problem) throw new InputError(file, `not a bnx ${instrument} CSV: ${problem}`);
  const layerAt = columns.indexOf('layer');
  const rows = records.slice(1).map((cells, i): InstrumentRow => {
    const step = Number(cells[0]);
    if (cells[0] === '' || !Number.isInteger(step))
      throw new InputError(`${file}:${i + 2}`, `step "${cells[0]}" is not a whole number`);
    const values: Record<string, number> = {};
    columns.forEach((c, j) => {
      if (j !== 0 && j !== layerAt) values[c] = parseCell(cells[j]) ?? NaN;
    });
    return { step, layer: layerAt < 0 ? null : cells[layerAt], values };
  });
  return { instrument, file, columns, rows, damage };
}

/**
 * A run's CSV of an instrument, or null when the run did not record it (no file, or a bare
 * metrics CSV, which has no run directory to hold one).
 */
export function readInstrument(run: LoadedRun, instrument: InstrumentName): InstrumentTable | null {
  if (!run.record) return null;
  const file = instrumentCsvPath(run.path, instrument);
  return fs.existsSync(file) ? readInstrumentCsv(file, instrument) : null;
}

/** The runs that recorded an instrument, those without its CSV, and those whose CSV has no row yet. */
export interface InstrumentRuns {
  instrument: InstrumentName;
  found: { run: LoadedRun; table: InstrumentTable }[];
  /** No CSV: the instrument was not enabled (or the run is a bare metrics CSV). */
  missing: LoadedRun[];
  /** The header only: the run stopped before the instrument's first measurement (its `every`). */
  empty: LoadedRun[];
  /** One line per CSV read in part (`file: what is wrong`). */
  damage: string[];
}

export function loadInstrument(runs: LoadedRun[], instrument: InstrumentName): InstrumentRuns {
  if (!(INSTRUMENT_NAMES as readonly string[]).includes(instrument)) {
    throw new InputError(
      `--instrument ${instrument}`,
      `unknown instrument; instruments are ${INSTRUMENT_NAMES.join(', ')}`,
    );
  }
  const out: InstrumentRuns = { instrument, found: [], missing: [], empty: [], damage: [] };
  for (const run of runs) {
    const table = readInstrument(run, instrument);
    if (table?.damage) out.damage.push(`${table.file}: ${table.damage}`);
    if (!table) out.missing.push(run);
    else if (table.rows.length === 0) out.empty.push(run);
    else out.found.push({ run, table });
  }
  return out;
}

/** Run ids for a message: a few, then a count (a big sweep would flood the terminal). */
function someIds(runs: LoadedRun[]): string {
  const ids = runs.map((r) => r.id);
  return ids.length > 4 ? `${ids.slice(0, 4).join(', ')} and ${ids.length - 4} more` : ids.join(', ');
}

/**
 * One line saying which runs lack an instrument's rows and how to record them, or null when every
 * run has them.
 */
export function missingInstrumentLine(loaded: InstrumentRuns): string | null {
  const { instrument, found, missing, empty } = loaded;
  if (missing.length + empty.length === 0) return null;
  const file = instrumentFile(instrument);
  const parts: string[] = [];
  if (missing.length > 0) {
    parts.push(
      `no ${file} in ${someIds(missing)}: record it by running the spec with --set instruments=[${instrument}] (or instruments: [${instrument}] in the spec)`,
    );
  }
  if (empty.length > 0) {
    const every = [
      ...new Set(empty.map((r) => r.record?.config.instruments?.[instrument]?.every).filter((e) => e !== undefined)),
    ];
    const when =
      every.length > 0 ? `it measures every ${every.join(' or ')} steps` : 'the run ended before its first measurement';
    parts.push(
      `${file} has no rows yet in ${someIds(empty)} (${when}): run longer or set --set instruments.${instrument}.every=N`,
    );
  }
  const lacking = missing.length + empty.length;
  const lead = found.length === 0 ? 'nothing to plot' : `${lacking} of ${lacking + found.length} runs not plotted`;
  return `${lead}: ${parts.join('; ')}`;
}
