import fs from 'node:fs';
import path from 'node:path';
import { stringify } from 'csv-stringify/sync';
import { stringify as toYaml } from 'yaml';
import { getPath } from '../spec/load.js';
import type { RunConfig } from '../spec/types.js';
import type { Numerics } from '../train/backend.js';
import { fixed } from './csv-format.js';
import { DamagedFileError } from '../util/errors.js';
import { writeFileAtomic } from '../util/files.js';

/**
 * pending: planned, not started; running: a process is training it (or died doing so, which a
 * rerun treats as interrupted); completed; diverged: the loss became NaN/Inf or exceeded
 * train.max_loss (a result); failed: an error (data, disk, bug); interrupted: stopped by a signal.
 */
export type RunStatus = 'pending' | 'running' | 'completed' | 'failed' | 'diverged' | 'interrupted';

/** run.json: what ran, on what, and how it ended. */
export interface RunRecord {
  id: string;
  spec: string;
  /** sha256 prefix of the resolved config (name excluded). */
  hash: string;
  status: RunStatus;
  /** The keys set by the grid or the command line, with this run's values. */
  params: Record<string, unknown>;
  seed: number;
  started_at: string;
  ended_at: string | null;
  wall_time_s: number | null;
  steps_total: number;
  steps_done: number;
  backend: string;
  /** The training engine (`train.engine`): `graph` or `eager`; null until training starts. */
  engine: 'graph' | 'eager' | null;
  versions: { bnx: string; tensorflow: string | null; tfjs: string; tfjs_node: string | null; node: string };
  /**
   * What the run's numbers depend on besides its config: the engine, the TensorFlow build, bnx,
   * the intra-op threads, the CPU. Same id and same numerics: same bytes, however the run was
   * scheduled. Null in run.json files written before bnx recorded it.
   */
  numerics: Numerics | null;
  dataset: { name: string; source: string; train: number; val: number; test: number } | null;
  parameters: number | null;
  final: { train_loss: number; val_loss: number; val_acc: number } | null;
  best: { val_loss: number; val_loss_step: number; val_acc: number; val_acc_step: number } | null;
  test: { loss: number; acc: number } | null;
  /** Where the loss blew up, for diverged runs. */
  diverged: { step: number; loss: number } | null;
  error: string | null;
  /**
   * The enabled instruments' cost (null when none is enabled, and in run.json files written before
   * instruments existed): seconds spent measuring, and their share of the run's wall time.
   */
  instruments: Record<string, { seconds: number; share: number }> | null;
  config: RunConfig;
}

/** Files of one run directory. */
export const RUN_FILES = { config: 'config.yaml', metrics: 'metrics.csv', record: 'run.json' } as const;

/** `<out>/<spec name>`: the folder of one spec's runs and its summary.csv. */
export function specDir(out: string, specName: string): string {
  return path.join(out, specName);
}

export function writeRecord(dir: string, record: RunRecord): void {
  // JSON cannot hold NaN/Infinity: a diverged loss is recorded as null.
  writeFileAtomic(path.join(dir, RUN_FILES.record), `${JSON.stringify(record, null, 2)}\n`);
}

export function writeConfig(dir: string, config: RunConfig): void {
  writeFileAtomic(path.join(dir, RUN_FILES.config), toYaml(config));
}

const STATES: readonly string[] = ['pending', 'running', 'completed', 'failed', 'diverged', 'interrupted'];

/** What to do about a run.json that cannot be read (DamagedFileError names it): restore it, or move the run away. */
export const DAMAGED_RECORD_HINT =
  'bnx will not write over it: restore it, or move its run folder out of the sweep folder (a rerun then trains that run afresh)';

/**
 * Reads a run.json, checking that it is one: a truncated, garbage or misshapen file (or a folder
 * named run.json) is a DamagedFileError naming it. Files of older bnx versions lack some keys.
 */
export function readRecord(dir: string): RunRecord {
  const file = path.join(dir, RUN_FILES.record);
  const damaged = (why: string) => new DamagedFileError(file, why, DAMAGED_RECORD_HINT);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EISDIR') throw damaged('a folder, where a run.json file belongs');
    throw e;
  }
  let record: RunRecord;
  try {
    record = JSON.parse(text) as RunRecord;
  } catch (e) {
    throw damaged(`not valid JSON (${(e as Error).message}; ${text.length} bytes)`);
  }
  const fields = record as unknown as Record<string, unknown>;
  const isMap = (v: unknown) => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (!isMap(record)) throw damaged('not a JSON object');
  for (const key of ['id', 'spec', 'hash', 'started_at'] as const)
    if (typeof fields[key] !== 'string') throw damaged(`"${key}" is missing or not a string`);
  if (!STATES.includes(fields.status as string)) throw damaged(`"status" is ${JSON.stringify(fields.status)}`);
  if (!isMap(fields.params) || !isMap(fields.config)) throw damaged('"params" or "config" is missing');
  record.instruments ??= null;
  record.numerics ??= null;
  return record;
}

/**
 * Every run under a spec folder (sub-folders holding a run.json), sorted by start time then id.
 * Hidden folders (bnx's staging area, a merge in progress) are not runs. A damaged run.json throws,
 * unless `onDamaged` is given: it is then told, and the run left out.
 */
export function listRuns(dir: string, onDamaged?: (e: DamagedFileError) => void): { dir: string; record: RunRecord }[] {
  if (!fs.existsSync(dir)) return [];
  const runs: { dir: string; record: RunRecord }[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (!e.isDirectory() || e.name.startsWith('.') || !fs.existsSync(path.join(dir, e.name, RUN_FILES.record)))
      continue;
    try {
      runs.push({ dir: path.join(dir, e.name), record: readRecord(path.join(dir, e.name)) });
    } catch (err) {
      if (!(err instanceof DamagedFileError) || !onDamaged) throw err;
      onDamaged(err);
    }
  }
  return runs.sort(
    (a, b) => a.record.started_at.localeCompare(b.record.started_at) || a.record.id.localeCompare(b.record.id),
  );
}

export const SUMMARY_METRICS = [
  'steps',
  'final_train_loss',
  'final_val_loss',
  'final_val_acc',
  'best_val_loss',
  'best_val_acc',
  'best_val_acc_step',
  'test_loss',
  'test_acc',
  'wall_time_s',
] as const;

/**
 * Rewrites `<spec dir>/summary.csv` from every run.json in the folder, so runs written by earlier
 * invocations (a shell loop over `--set`) are included. Columns: run_id, status, one column per key
 * any run set by grid or command line (others' values read from their config), then the metrics.
 */
export function writeSummary(dir: string): string {
  // A damaged run.json was named when the sweep started (bnx run refuses it); the summary is of the others.
  const runs = listRuns(dir, () => undefined).map((r) => r.record);
  const keys: string[] = [];
  for (const r of runs) for (const k of Object.keys(r.params)) if (!keys.includes(k)) keys.push(k);
  const cell = (v: unknown) => (v === undefined || v === null ? '' : Array.isArray(v) ? JSON.stringify(v) : String(v));
  const rows = runs.map((r) => [
    r.id,
    r.status,
    ...keys.map((k) => cell(k in r.params ? r.params[k] : getPath(r.config, k))),
    String(r.steps_done),
    fixed(r.final?.train_loss),
    fixed(r.final?.val_loss),
    fixed(r.final?.val_acc),
    fixed(r.best?.val_loss),
    fixed(r.best?.val_acc),
    r.best ? String(r.best.val_acc_step) : '',
    fixed(r.test?.loss),
    fixed(r.test?.acc),
    fixed(r.wall_time_s, 1),
  ]);
  const file = path.join(dir, 'summary.csv');
  writeFileAtomic(file, stringify([['run_id', 'status', ...keys, ...SUMMARY_METRICS], ...rows]));
  return file;
}
