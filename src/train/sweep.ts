import fs from 'node:fs';
import path from 'node:path';
import { loadDataset, type Dataset } from '../data/index.js';
import { canonicalJson, type PlannedRun } from '../spec/expand.js';
import { MetricsWriter } from '../store/metrics.js';
import { RUN_FILES, readRecord, specDir, writeConfig, writeRecord, writeSummary, type RunRecord } from '../store/runs.js';
import { BNX_VERSION } from '../version.js';
import { describeBackend, type BackendInfo } from './backend.js';
import { totalSteps, train, type TrainHooks } from './loop.js';

/** What the CLI shows while a sweep runs. */
export interface SweepReporter {
  skip(run: PlannedRun, index: number, count: number): void;
  start(run: PlannedRun, index: number, count: number, steps: number): void;
  step(step: number, loss: number): void;
  finish(record: RunRecord): void;
}

export interface SweepOptions {
  /** Results root: runs go to `<out>/<spec name>/<run id>/`. */
  out: string;
  backend: BackendInfo;
  /** Rerun runs that already completed in the results folder. */
  force?: boolean;
  reporter?: SweepReporter;
}

export interface SweepResult {
  dir: string;
  summary: string;
  records: RunRecord[];
  skipped: number;
  failed: number;
}

/**
 * Trains every planned run in order into the results folder, refreshing summary.csv after each.
 * A run that already completed there is skipped (unless `force`); a run that throws is recorded as
 * failed and the sweep goes on.
 */
export function runSweep(runs: PlannedRun[], opts: SweepOptions): SweepResult {
  if (runs.length === 0) throw new Error('no runs to train');
  const dir = specDir(opts.out, runs[0].config.name);
  const datasets = new Map<string, Dataset>();
  const records: RunRecord[] = [];
  let skipped = 0;
  let failed = 0;
  runs.forEach((run, index) => {
    const runDir = path.join(dir, run.id);
    if (!opts.force && fs.existsSync(path.join(runDir, RUN_FILES.record)) && readRecord(runDir).status === 'completed') {
      opts.reporter?.skip(run, index, runs.length);
      records.push(readRecord(runDir));
      skipped++;
      return;
    }
    const dataKey = canonicalJson(run.config.data);
    let data = datasets.get(dataKey);
    if (!data) {
      data = loadDataset(run.config.data);
      datasets.set(dataKey, data);
    }
    const record = trainOne(run, runDir, data, opts, index, runs.length);
    if (record.status === 'failed') failed++;
    records.push(record);
    writeSummary(dir);
  });
  return { dir, summary: writeSummary(dir), records, skipped, failed };
}

function trainOne(run: PlannedRun, runDir: string, data: Dataset, opts: SweepOptions, index: number, count: number): RunRecord {
  fs.mkdirSync(runDir, { recursive: true });
  const b = opts.backend;
  const steps = totalSteps(run.config, data.train.n);
  const record: RunRecord = {
    id: run.id,
    spec: run.config.name,
    hash: run.hash,
    status: 'running',
    params: run.params,
    seed: run.config.seed,
    started_at: new Date().toISOString(),
    ended_at: null,
    wall_time_s: null,
    steps_total: steps,
    steps_done: 0,
    backend: describeBackend(b),
    versions: { bnx: BNX_VERSION, tensorflow: b.tensorflow, tfjs: b.tfjs, tfjs_node: b.tfjsNode, node: process.versions.node },
    dataset: { name: data.name, source: data.source, train: data.train.n, val: data.val.n, test: data.test.n },
    parameters: null,
    final: null,
    best: null,
    test: null,
    error: null,
    config: run.config,
  };
  writeConfig(runDir, run.config);
  writeRecord(runDir, record);
  const writer = new MetricsWriter(path.join(runDir, RUN_FILES.metrics));
  const started = performance.now();
  opts.reporter?.start(run, index, count, steps);
  const hooks: TrainHooks = {
    onRow: (row) => {
      writer.append(row);
      record.steps_done = row.step;
    },
    onStep: (step, _total, loss) => opts.reporter?.step(step, loss),
  };
  try {
    const result = train(run.config, data, hooks);
    Object.assign(record, { status: 'completed', steps_done: result.steps, final: result.final, best: result.best, test: result.test, parameters: result.parameters });
  } catch (e) {
    record.status = 'failed';
    record.error = e instanceof Error ? e.message : String(e);
  } finally {
    writer.close();
    record.ended_at = new Date().toISOString();
    record.wall_time_s = Math.round((performance.now() - started) / 100) / 10;
    writeRecord(runDir, record);
  }
  opts.reporter?.finish(record);
  return record;
}
