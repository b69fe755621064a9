import fs from 'node:fs';
import path from 'node:path';
import { InputError } from '../util/errors.js';
import { METRICS_COLUMNS, parseMetrics, type MetricsRow } from '../store/metrics.js';
import { listRuns, readRecord, RUN_FILES, type RunRecord } from '../store/runs.js';

/** One run read back from disk: its record (when there is a run.json) and its metrics rows. */
export interface LoadedRun {
  /** The run directory, or the metrics CSV's path for a bare CSV. */
  path: string;
  /** Run id (run.json's `id`; for a bare CSV, its file name without `.csv`). */
  id: string;
  /** Spec name (empty for a bare CSV). */
  spec: string;
  /** run.json, or null for a bare metrics CSV. */
  record: RunRecord | null;
  metrics: MetricsRow[];
}

/** A sweep: the runs of one spec folder (or a single run / CSV given on its own). */
export interface LoadedSweep {
  path: string;
  kind: 'sweep' | 'run' | 'csv';
  runs: LoadedRun[];
}

/**
 * Where the readers put one line per damaged file they read in part or left out (`file: what is
 * wrong`): a metrics.csv whose last line is cut short, a run.json that is not one. The command
 * prints them (reportDamage); the analysis goes on with what could be read.
 */
export type DamageNotes = string[];

function readRecordChecked(dir: string): RunRecord {
  try {
    return readRecord(dir);
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(path.join(dir, RUN_FILES.record), `cannot read the run record: ${(e as Error).message}`);
  }
}

/**
 * Reads a metrics CSV written by bnx, checking its header first so another CSV gets a clear error.
 * A last line cut short (a run being written, or killed mid-write) or a row that does not parse is
 * noted in `damage` and the rows before it are returned.
 */
export function readMetricsChecked(file: string, damage: DamageNotes = []): MetricsRow[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EISDIR') {
      damage.push(`${file}: damaged: a folder, where the metrics.csv file belongs; no rows read`);
      return [];
    }
    throw new InputError(file, `cannot read: ${code ?? (e as Error).message}`);
  }
  const read = parseMetrics(text);
  if (!read.header) {
    throw new InputError(file, `not a bnx metrics CSV: the header must be ${METRICS_COLUMNS.join(',')}`);
  }
  if (read.damage) damage.push(`${file}: ${read.damage}`);
  return read.rows;
}

/** Loads one run directory (holding run.json; metrics.csv may be missing for a pending run). */
export function loadRunDir(dir: string, record = readRecordChecked(dir), damage: DamageNotes = []): LoadedRun {
  const file = path.join(dir, RUN_FILES.metrics);
  const metrics = fs.existsSync(file) ? readMetricsChecked(file, damage) : [];
  return { path: dir, id: record.id, spec: record.spec, record, metrics };
}

/** Loads a bare metrics CSV; if it sits in a run directory, that run is loaded instead. */
export function loadCsv(file: string, damage: DamageNotes = []): LoadedRun {
  const dir = path.dirname(file);
  if (path.basename(file) === RUN_FILES.metrics && fs.existsSync(path.join(dir, RUN_FILES.record)))
    return loadRunDir(dir, undefined, damage);
  return {
    path: file,
    id: path.basename(file).replace(/\.csv$/i, ''),
    spec: '',
    record: null,
    metrics: readMetricsChecked(file, damage),
  };
}

const isRunDir = (dir: string) => fs.existsSync(path.join(dir, RUN_FILES.record));

/** The runs of a sweep folder; a run whose run.json is damaged is left out and noted. */
function sweepRuns(dir: string, damage: DamageNotes): LoadedRun[] {
  const entries = listRuns(dir, (e) => damage.push(`${e.file}: damaged: ${e.why}; left out`));
  return entries.map((r) => loadRunDir(r.dir, r.record, damage));
}

/**
 * Reads what a path names: a run directory (holding run.json), a sweep directory (a spec's results
 * folder, whose sub-folders are runs) or a metrics CSV. Anything else is an InputError. Damaged
 * files read in part or left out are noted in `damage`.
 */
export function loadSweep(p: string, damage: DamageNotes = []): LoadedSweep {
  if (!fs.existsSync(p)) throw new InputError(p, 'no such file or directory');
  const stat = fs.statSync(p);
  if (stat.isFile()) {
    const run = loadCsv(p, damage);
    return { path: p, kind: run.record ? 'run' : 'csv', runs: [run] };
  }
  if (isRunDir(p)) return { path: p, kind: 'run', runs: [loadRunDir(p, undefined, damage)] };
  const skipped: DamageNotes = [];
  const runs = sweepRuns(p, skipped);
  damage.push(...skipped);
  if (runs.length === 0) {
    if (skipped.length > 0) {
      throw new InputError(
        p,
        `no run to read: ${skipped[0].replace(/; left out$/, '')}${skipped.length > 1 ? ` (and ${skipped.length - 1} more damaged run(s))` : ''}`,
      );
    }
    const hint = findSweeps(p).length > 0 ? '; it holds sweeps further down: name one (bnx ls lists them)' : '';
    throw new InputError(
      p,
      `not a run directory, sweep directory or metrics.csv (no run.json in it or its sub-folders)${hint}`,
    );
  }
  return { path: p, kind: 'sweep', runs };
}

/**
 * The sweep folders under a folder (a results root, or a folder of results roots), sorted by path:
 * folders whose sub-folders hold run.json files, searched `depth` levels down, skipping hidden
 * folders and node_modules.
 */
function findSweeps(root: string, depth = 3): string[] {
  const found: string[] = [];
  const walk = (dir: string, left: number) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    const subdirs = entries
      .filter((e) => e.isDirectory() && !e.name.startsWith('.') && e.name !== 'node_modules')
      .map((e) => path.join(dir, e.name));
    if (subdirs.some(isRunDir)) {
      found.push(dir);
      return;
    }
    if (left > 0) for (const d of subdirs) walk(d, left - 1);
  };
  walk(root, depth);
  return found.sort();
}

/**
 * Everything under a path for `bnx ls`: a results root (every sweep in it, also a few levels down),
 * a sweep, a run or a CSV. Damaged files read in part or left out are noted in `damage`.
 */
export function loadResults(p: string, damage: DamageNotes = []): LoadedRun[] {
  if (!fs.existsSync(p)) throw new InputError(p, 'no such file or directory');
  if (fs.statSync(p).isDirectory() && !isRunDir(p)) return findSweeps(p).flatMap((d) => sweepRuns(d, damage));
  return loadSweep(p, damage).runs;
}

// ---------------------------------------------------------------------------------------------
// Configurations: which keys differ, and labels made of them.

/** Flattens a nested config to dotted key paths; lists are values (compared as JSON). */
export function flattenConfig(obj: unknown, prefix = '', out: Record<string, unknown> = {}): Record<string, unknown> {
  if (obj !== null && typeof obj === 'object' && !Array.isArray(obj)) {
    for (const [k, v] of Object.entries(obj as Record<string, unknown>))
      flattenConfig(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (prefix) {
    out[prefix] = obj;
  }
  return out;
}

/** The run's flattened configuration, without `name` (the spec name is not a hyperparameter). */
export function runConfig(run: LoadedRun): Record<string, unknown> {
  if (!run.record) return {};
  const flat = flattenConfig(run.record.config);
  delete flat.name;
  return flat;
}

/** A config value as text: lists as `[a,b]`, null as `null`, a missing key as `-`. */
export function formatValue(v: unknown): string {
  if (v === undefined) return '-';
  if (v === null) return 'null';
  if (Array.isArray(v)) return `[${v.map(formatValue).join(',')}]`;
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

export const sameValue = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/**
 * Config keys whose values are not the same in every run, in a stable order: keys the runs' grids
 * and command lines set first (run.json `params`), then the rest in config order.
 */
export function varyingKeys(runs: LoadedRun[]): string[] {
  const configs = runs.filter((r) => r.record).map(runConfig);
  if (configs.length < 2) return [];
  const order: string[] = [];
  for (const r of runs) for (const k of Object.keys(r.record?.params ?? {})) if (!order.includes(k)) order.push(k);
  for (const c of configs) for (const k of Object.keys(c)) if (!order.includes(k)) order.push(k);
  return order.filter((k) => configs.some((c) => !sameValue(c[k], configs[0][k])));
}

/**
 * Short names for key paths: the leaf (`norm` for `model.norm`) unless two keys share it, as in
 * run ids.
 */
export function shortKeys(keys: string[]): Map<string, string> {
  const leaf = (k: string) => k.split('.').at(-1) ?? k;
  const counts = new Map<string, number>();
  for (const k of keys) counts.set(leaf(k), (counts.get(leaf(k)) ?? 0) + 1);
  return new Map(keys.map((k) => [k, counts.get(leaf(k))! > 1 ? k : leaf(k)]));
}

/**
 * A legend label for each run, made of what differs between them: `norm=batch, lr=0.5`. When the
 * runs come from several specs the spec name leads; when nothing in the configs tells them apart,
 * run ids (and then paths) do.
 */
export function runLabels(runs: LoadedRun[]): string[] {
  const keys = varyingKeys(runs);
  const short = shortKeys(keys);
  const specs = new Set(runs.map((r) => r.spec));
  const labels = runs.map((r) => {
    const parts: string[] = [];
    if (specs.size > 1 && r.spec) parts.push(r.spec);
    if (r.record && keys.length > 0 && keys.length <= 4) {
      const c = runConfig(r);
      parts.push(keys.map((k) => `${short.get(k)}=${formatValue(c[k])}`).join(', '));
    } else if (keys.length > 4 || !r.record) {
      parts.push(r.id);
    }
    return parts.join(': ') || r.id;
  });
  if (new Set(labels).size === labels.length) return labels;
  const ids = runs.map((r, i) => `${labels[i]} (${r.id})`);
  if (new Set(ids).size === ids.length) return ids;
  return runs.map((r, i) => `${labels[i]} (${r.path})`);
}

/** The dataset a run trained on, from its record. */
export const datasetOf = (run: LoadedRun): string | null => run.record?.config.data.dataset ?? null;
