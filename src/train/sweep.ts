import fs from 'node:fs';
import path from 'node:path';
import { loadDataset, type Dataset } from '../data/index.js';
import { canonicalJson, type PlannedRun } from '../spec/expand.js';
import { describeFault } from '../store/files.js';
import { withLock, tryLock } from '../store/lock.js';
import { MetricsWriter } from '../store/metrics.js';
import { RUN_FILES, readRecord, specDir, writeConfig, writeRecord, writeSummary, type RunRecord, type RunStatus } from '../store/runs.js';
import { checkIdentity, readIndex, registerInvocation, SWEEP_LOCK, writeIndex } from '../store/sweep-index.js';
import { saveWeights } from '../model/index.js';
import { BNX_VERSION } from '../version.js';
import { describeBackend, type BackendInfo } from './backend.js';
import { DivergedError, InterruptedError, totalSteps, train, type TrainHooks } from './loop.js';

/** What the CLI shows while a sweep runs. */
export interface SweepReporter {
  skip(run: PlannedRun, index: number, count: number, why: string): void;
  start(run: PlannedRun, index: number, count: number, steps: number): void;
  step(step: number, loss: number): void;
  /** One line about the run being trained (e.g. why it trains on the eager engine). */
  note?(line: string): void;
  finish(record: RunRecord): void;
}

export interface SweepOptions {
  /** Results root: runs go to `<out>/<spec name>/<run id>/` unless `dir` is given. */
  out: string;
  /** The sweep folder itself (for `--new`); defaults to `<out>/<spec name>`. */
  dir?: string;
  backend: BackendInfo;
  /** States whose runs are (re)trained; others are skipped. Default: pending, interrupted, failed. */
  rerun?: ReadonlySet<RunStatus>;
  reporter?: SweepReporter;
  /** Checked between steps: true stops the current run (marked interrupted) and the sweep. */
  shouldStop?: () => boolean;
  /** Recorded in sweep.json: the spec file, its text, the overrides, the shard. */
  invocation?: { spec: string; specText: string; overrides: string[]; shard: string | null };
}

export interface SweepResult {
  dir: string;
  summary: string;
  records: RunRecord[];
  skipped: number;
  /** Runs that ended failed (diverged is a result, not a failure). */
  failed: number;
  interrupted: boolean;
}

export const DEFAULT_RERUN: ReadonlySet<RunStatus> = new Set<RunStatus>(['pending', 'interrupted', 'failed']);
export const ALL_STATES: readonly RunStatus[] = ['pending', 'running', 'completed', 'failed', 'diverged', 'interrupted'];

/**
 * Trains the planned runs into their sweep folder. Safe to rerun and to run from several processes
 * at once: each run is claimed with a lock file; runs in a state outside `rerun` (by default
 * completed and diverged ones) are skipped; a run left `running` by a dead process counts as
 * interrupted. Metrics rows are appended whole; run.json, summary.csv and sweep.json are replaced
 * atomically, so a crash at any moment leaves only complete files.
 */
export async function runSweep(runs: PlannedRun[], opts: SweepOptions): Promise<SweepResult> {
  if (runs.length === 0) throw new Error('no runs to train');
  const dir = opts.dir ?? specDir(opts.out, runs[0].config.name);
  const rerun = opts.rerun ?? DEFAULT_RERUN;
  fs.mkdirSync(dir, { recursive: true });
  withLock(path.join(dir, SWEEP_LOCK), () => {
    const index = readIndex(dir, runs[0].config.name);
    checkIdentity(dir, index, runs);
    const inv = opts.invocation;
    writeIndex(dir, registerInvocation(index, runs, {
      at: new Date().toISOString(),
      spec: inv?.spec ?? '',
      spec_text: inv?.specText ?? '',
      overrides: inv?.overrides ?? [],
      shard: inv?.shard ?? null,
      runs: runs.map((r) => r.id),
    }));
    for (const run of runs) {
      const runDir = path.join(dir, run.id);
      if (!fs.existsSync(path.join(runDir, RUN_FILES.record))) {
        fs.mkdirSync(runDir, { recursive: true });
        writeConfig(runDir, run.config);
        writeRecord(runDir, newRecord(run, 'pending', opts.backend, null));
      }
    }
  });

  const datasets = new Map<string, Dataset>();
  const records: RunRecord[] = [];
  let skipped = 0;
  let failed = 0;
  let interrupted = false;
  for (const [i, run] of runs.entries()) {
    if (opts.shouldStop?.()) {
      interrupted = true;
      break;
    }
    const runDir = path.join(dir, run.id);
    const lock = tryLock(path.join(runDir, '.lock'));
    if (!lock.ok) {
      opts.reporter?.skip(run, i, runs.length, `running in another process (pid ${lock.owner.pid} on ${lock.owner.host})`);
      skipped++;
      continue;
    }
    try {
      // Read the state only once the lock is ours: another process may have just finished it.
      // Under the lock, `running` means its process died: it was interrupted.
      const previous = readRecord(runDir);
      const state: RunStatus = previous.status === 'running' ? 'interrupted' : previous.status;
      if (!rerun.has(state)) {
        opts.reporter?.skip(run, i, runs.length, `${state}, skipped (${state === 'completed' ? '--force reruns it' : `--rerun ${state} reruns it`})`);
        records.push(previous);
        skipped++;
        continue;
      }
      const record = await trainOne(run, runDir, datasets, opts, i, runs.length);
      records.push(record);
      if (record.status === 'failed') failed++;
      if (record.status === 'interrupted') interrupted = true;
    } finally {
      lock.release();
    }
    withLock(path.join(dir, SWEEP_LOCK), () => writeSummary(dir));
    if (interrupted) break;
  }
  const summary = withLock(path.join(dir, SWEEP_LOCK), () => writeSummary(dir));
  return { dir, summary, records, skipped, failed, interrupted };
}

function newRecord(run: PlannedRun, status: RunStatus, b: BackendInfo, data: Dataset | null): RunRecord {
  return {
    id: run.id,
    spec: run.config.name,
    hash: run.hash,
    status,
    params: run.params,
    seed: run.config.seed,
    started_at: new Date().toISOString(),
    ended_at: null,
    wall_time_s: null,
    steps_total: data ? totalSteps(run.config, data.train.n) : 0,
    steps_done: 0,
    backend: describeBackend(b),
    engine: null,
    versions: { bnx: BNX_VERSION, tensorflow: b.tensorflow, tfjs: b.tfjs, tfjs_node: b.tfjsNode, node: process.versions.node },
    dataset: data ? { name: data.name, source: data.source, train: data.train.n, val: data.val.n, test: data.test.n } : null,
    parameters: null,
    final: null,
    best: null,
    test: null,
    diverged: null,
    error: null,
    config: run.config,
  };
}

async function trainOne(run: PlannedRun, runDir: string, datasets: Map<string, Dataset>, opts: SweepOptions, index: number, count: number): Promise<RunRecord> {
  const started = performance.now();
  let record = newRecord(run, 'running', opts.backend, null);
  let writer: MetricsWriter | null = null;
  try {
    // data.augment acts on training batches, not on the loaded arrays: runs differing only in it share the data.
    const dataKey = canonicalJson({ ...run.config.data, augment: null });
    let data = datasets.get(dataKey);
    if (!data) {
      data = loadDataset(run.config.data);
      datasets.set(dataKey, data);
    }
    record = newRecord(run, 'running', opts.backend, data);
    opts.reporter?.start(run, index, count, record.steps_total);
    writeConfig(runDir, run.config);
    writeRecord(runDir, record);
    writer = new MetricsWriter(path.join(runDir, RUN_FILES.metrics));
    const rows = writer;
    const hooks: TrainHooks = {
      onRow: (row) => {
        rows.append(row);
        record.steps_done = row.step;
      },
      onStep: (step, _total, loss) => opts.reporter?.step(step, loss),
      shouldStop: opts.shouldStop,
      onTrained: (model) => saveWeights(model, runDir), // weights.json/.bin, for `bnx export`
      onEngine: (engine, note) => {
        record.engine = engine;
        writeRecord(runDir, record);
        if (note) opts.reporter?.note?.(note);
      },
    };
    const result = await train(run.config, data, hooks);
    Object.assign(record, { status: 'completed', engine: result.engine, steps_done: result.steps, final: result.final, best: result.best, test: result.test, parameters: result.parameters });
  } catch (e) {
    if (e instanceof DivergedError) {
      Object.assign(record, { status: 'diverged', steps_done: e.step, diverged: { step: e.step, loss: e.loss } });
    } else if (e instanceof InterruptedError) {
      record.status = 'interrupted';
    } else {
      record.status = 'failed';
      record.error = describeFault(e);
    }
  } finally {
    try {
      writer?.close();
    } catch (e) {
      record.status = 'failed';
      record.error ??= describeFault(e);
    }
    record.ended_at = new Date().toISOString();
    record.wall_time_s = Math.round((performance.now() - started) / 100) / 10;
    try {
      writeRecord(runDir, record);
    } catch (e) {
      // The disk may be full: the previous run.json (status running) stays intact, and a rerun
      // treats it as interrupted.
      record.status = 'failed';
      record.error = `${record.error ?? ''}${record.error ? '; ' : ''}cannot write run.json: ${describeFault(e)}`;
    }
  }
  opts.reporter?.finish(record);
  return record;
}
