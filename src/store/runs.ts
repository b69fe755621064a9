import fs from 'node:fs';
import path from 'node:path';
import { stringify } from 'csv-stringify/sync';
import { stringify as toYaml } from 'yaml';
import { getPath } from '../spec/load.js';
import type { RunConfig } from '../spec/types.js';
import type { Numerics } from '../train/backend.js';
import { fixed } from './csv-format.js';
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

export function readRecord(dir: string): RunRecord {
  const record = JSON.parse(fs.readFileSync(path.join(dir, RUN_FILES.record), 'utf8')) as RunRecord;
  record.instruments ??= null;
  record.numerics ??= null;
  return record;
}

/** Every run under a spec folder (sub-folders holding a run.json), sorted by start time then id. */
export function listRuns(dir: string): { dir: string; record: RunRecord }[] {
  if (!fs.existsSync(dir)) return [];
  const runs = fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && fs.existsSync(path.join(dir, e.name, RUN_FILES.record)))
    .map((e) => ({ dir: path.join(dir, e.name), record: readRecord(path.join(dir, e.name)) }));
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
  const runs = listRuns(dir).map((r) => r.record);
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
