import fs from 'node:fs';
import path from 'node:path';
import { loadDataset, type Dataset } from '../data/index.js';
import { canonicalJson, type PlannedRun } from '../spec/expand.js';
import { describeFault, isSystemError, removeStaleTempFiles, writeFileExclusive } from '../util/files.js';
import { withLock, tryLock } from './lock.js';
import { recoverSwap, removeEmptyStaging, STAGING_DIR, stagingPaths, swapIn } from './staging.js';
import { MetricsWriter } from './metrics.js';
import { InstrumentCsv, instrumentColumns, instrumentCsvPath } from './instrument-csv.js';
import type { InstrumentName, RunConfig } from '../spec/types.js';
import { enabledInstruments } from '../train/instruments/index.js';
import { TensorBoardWriter, tensorboardDir } from './tensorboard.js';
import { RUN_FILES, readRecord, specDir, writeConfig, writeRecord, type RunRecord, type RunStatus } from './runs.js';
import {
  allRunsEnded,
  registerSweep,
  RUN_LOCK,
  SUMMARY_FILE,
  writeSweepSummary,
  type Invocation,
} from './sweep-folder.js';
import { checkSweepFolder, SWEEP_LOCK } from './sweep-index.js';
import { saveWeights } from '../model/index.js';
import { BNX_VERSION } from '../util/version.js';
import { describeBackend, numericsOf, type BackendInfo } from '../train/backend.js';
import { trainingGroups } from '../train/groups.js';
import {
  DivergedError,
  InterruptedError,
  totalSteps,
  trainGroup,
  type RunHooks,
  type TrainResult,
} from '../train/loop.js';

/** What the CLI shows while a sweep runs. */
export interface SweepReporter {
  skip(run: PlannedRun, index: number, count: number, why: string): void;
  start(run: PlannedRun, index: number, count: number, steps: number): void;
  /** A group of several runs starts (one engine steps the runs at these indices); `step` then reports the group. */
  startGroup?(runs: PlannedRun[], indices: number[], count: number, steps: number): void;
  step(step: number, loss: number): void;
  /** One line about the run being trained (e.g. why it trains on the eager engine). */
  note?(line: string): void;
  /** A run ended; `kept`: it was a retraining that did not complete, and its previous result stays. */
  finish(record: RunRecord, kept?: boolean): void;
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
  /**
   * `--tensorboard <dir>`: every run also writes TensorBoard event files, into
   * `<dir>/<sweep folder name>/<run id>/`. Output only: not part of the runs' configs or ids.
   */
  tensorboard?: string;
  /** false: every run trains alone (`--no-fuse`); by default runs that can train together do (see trainingGroups). */
  fuse?: boolean;
  /**
   * Recorded in sweep.json: the spec file, its text, the overrides, the shard. A shard (`--shard`:
   * a Slurm array task, a worker) writes sweep.json only if its runs are new there (the launcher,
   * `export-job --slurm` and the --workers parent register the whole grid first), and rebuilds
   * summary.csv only if it finds every run of the folder ended.
   */
  invocation?: Invocation;
}

export interface SweepResult {
  dir: string;
  /** `<dir>/summary.csv`. */
  summary: string;
  /** Whether this call rebuilt summary.csv (a shard does only when it finds the folder's runs all ended). */
  summaryWritten: boolean;
  records: RunRecord[];
  skipped: number;
  /** Runs that ended failed (diverged is a result, not a failure). */
  failed: number;
  interrupted: boolean;
  /** Why summary.csv could not be written (the runs are saved; the next bnx run rewrites it), or null. */
  summaryFault: string | null;
}

export const DEFAULT_RERUN: ReadonlySet<RunStatus> = new Set<RunStatus>(['pending', 'interrupted', 'failed']);
export const ALL_STATES: readonly RunStatus[] = [
  'pending',
  'running',
  'completed',
  'failed',
  'diverged',
  'interrupted',
];

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
  // Everything that would refuse the sweep is checked before anything is written (again under the
  // lock, when sweep.json is written).
  checkSweepFolder(dir, runs);
  const sharded = opts.invocation?.shard != null;
  registerSweep(dir, runs, opts.invocation, { always: !sharded });
  /** Runs whose folder could not be set up (a full disk, an immutable folder), with the fault. */
  const unregistered = setUpRuns(dir, runs, opts.backend);

  const datasets = new Map<string, Dataset>();
  const records: RunRecord[] = [];
  let skipped = 0;
  let failed = 0;
  let interrupted = false;
  /** Locks run i for this process, or skips it (null): running elsewhere, or in a state outside `rerun`. */
  const claim = (i: number): ClaimedRun | null => {
    const run = runs[i];
    const runDir = path.join(dir, run.id);
    let lock: ReturnType<typeof tryLock>;
    try {
      lock = tryLock(path.join(runDir, RUN_LOCK));
    } catch (e) {
      // Another process is swapping its retrained run folder in (it is back in an instant): that process has the run.
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      opts.reporter?.skip(run, i, runs.length, 'being replaced by another process');
      skipped++;
      return null;
    }
    if (!lock.ok) {
      const who = lock.owner ? ` (pid ${lock.owner.pid} on ${lock.owner.host})` : '';
      opts.reporter?.skip(run, i, runs.length, `running in another process${who}`);
      skipped++;
      return null;
    }
    try {
      // Only the run's lock holder writes its files: under the lock, a temporary file there is a
      // dead writer's (a process killed mid-write).
      removeStaleTempFiles(runDir);
      // Read the state only once the lock is ours: another process may have just finished it.
      // Under the lock, `running` means its process died: it was interrupted.
      const previous = readRecord(runDir);
      const state: RunStatus = previous.status === 'running' ? 'interrupted' : previous.status;
      if (rerun.has(state)) {
        // A result is retrained beside itself and swapped in only when the new one is complete.
        const staged = state === 'completed' || state === 'diverged';
        const writeDir = staged ? stagingPaths(dir, run.id).fresh : runDir;
        return { run, runDir, writeDir, sweepDir: dir, staged, index: i, release: () => lock.release() };
      }
      opts.reporter?.skip(
        run,
        i,
        runs.length,
        `${state}, skipped (${state === 'completed' ? '--force reruns it' : `--rerun ${state} reruns it`})`,
      );
      records.push(previous);
      skipped++;
    } catch (e) {
      lock.release();
      throw e;
    }
    lock.release();
    return null;
  };
  // Runs that can train together (see trainingGroups) do, one engine stepping them all; the others alone.
  const groups = opts.fuse === false ? runs.map((_, i) => [i]) : trainingGroups(runs.map((r) => r.config));
  for (const group of groups) {
    if (opts.shouldStop?.()) {
      interrupted = true;
      break;
    }
    const claimed: ClaimedRun[] = [];
    try {
      for (const i of group) {
        let c: ClaimedRun | null;
        const setup = unregistered.get(runs[i].id);
        try {
          if (setup) throw setup;
          c = claim(i);
        } catch (e) {
          // The run's own folder is at fault (a full disk, an immutable folder): that run fails, the sweep goes on.
          if (!isSystemError(e)) throw e;
          const record = newRecord(runs[i], 'failed', opts.backend, null);
          record.error = `${setup ? 'cannot set up its folder' : 'cannot lock the run'}: ${describeFault(e)}`;
          opts.reporter?.finish(record);
          records.push(record);
          failed++;
          continue;
        }
        if (c) claimed.push(c);
      }
      const trained = claimed.length > 0 ? await trainClaimed(claimed, datasets, opts, runs.length) : [];
      for (const record of trained) {
        records.push(record);
        if (record.status === 'failed') failed++;
        if (record.status === 'interrupted') interrupted = true;
      }
    } finally {
      for (const c of claimed) c.release();
    }
    if (interrupted) break;
  }
  // summary.csv is rebuilt from the run folders once, at the end, not after every run: with a
  // thousand array tasks on one folder, that lock would be the bottleneck. A shard rebuilds it
  // only when every run of the folder has ended (the last tasks to end do); the command that
  // followed the shards (the Slurm launcher, the --workers parent) rebuilds it at its end too.
  // It is derived from the run folders: a fault writing it is reported, and the runs stay saved.
  let summaryWritten = false;
  let summaryFault: string | null = null;
  try {
    if (!sharded || allRunsEnded(dir)) {
      writeSweepSummary(dir);
      summaryWritten = true;
    }
  } catch (e) {
    if (!isSystemError(e)) throw e;
    summaryFault = describeFault(e);
  }
  const summary = path.join(dir, SUMMARY_FILE);
  return { dir, summary, records, skipped, failed, interrupted, summaryWritten, summaryFault };
}

/**
 * Sets up each run's folder (createPending) without the folder lock, and returns the runs whose
 * folder could not be set up, with the fault: that run fails when its turn comes, the others
 * train. A `.staging` folder means a retraining is in progress or a process died swapping one in:
 * then the half-way states are repaired first, under the folder lock that swapIn holds (so that
 * what is seen is never a live swap).
 */
function setUpRuns(dir: string, runs: PlannedRun[], backend: BackendInfo): Map<string, unknown> {
  const unregistered = new Map<string, unknown>();
  const setUp = () => {
    for (const run of runs) {
      try {
        createPending(dir, run, backend);
      } catch (e) {
        if (!isSystemError(e)) throw e;
        unregistered.set(run.id, e);
      }
    }
  };
  if (!fs.existsSync(path.join(dir, STAGING_DIR))) {
    setUp();
    return unregistered;
  }
  withLock(path.join(dir, SWEEP_LOCK), () => {
    for (const run of runs) recoverSwap(dir, run.id);
    setUp();
    removeEmptyStaging(dir);
  });
  return unregistered;
}

/**
 * A run's folder, config.yaml and a pending run.json, unless its run.json exists. run.json is
 * created with link() (writeFileExclusive): a process that started training the run meanwhile
 * is never overwritten, and no lock is needed.
 */
function createPending(dir: string, run: PlannedRun, backend: BackendInfo): void {
  const runDir = path.join(dir, run.id);
  const record = path.join(runDir, RUN_FILES.record);
  if (fs.existsSync(record)) return;
  fs.mkdirSync(runDir, { recursive: true });
  writeConfig(runDir, run.config);
  writeFileExclusive(record, `${JSON.stringify(newRecord(run, 'pending', backend, null), null, 2)}\n`);
}

/** run.json's `instruments`: seconds per instrument (ms precision) and their share of the wall time. */
function instrumentOverhead(
  seconds: Partial<Record<InstrumentName, number>> | null,
  wall: number,
): RunRecord['instruments'] {
  if (!seconds) return null;
  return Object.fromEntries(
    Object.entries(seconds).map(([name, s]) => [
      name,
      { seconds: Math.round((s as number) * 1000) / 1000, share: Math.round(((s as number) / wall) * 10000) / 10000 },
    ]),
  );
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
    versions: {
      bnx: BNX_VERSION,
      tensorflow: b.tensorflow,
      tfjs: b.tfjs,
      tfjs_node: b.tfjsNode,
      node: process.versions.node,
    },
    numerics: numericsOf(b, null, BNX_VERSION),
    dataset: data
      ? { name: data.name, source: data.source, train: data.train.n, val: data.val.n, test: data.test.n }
      : null,
    parameters: null,
    final: null,
    best: null,
    test: null,
    diverged: null,
    error: null,
    instruments: null,
    config: run.config,
  };
}

/**
 * With `train.tensorboard` or `--tensorboard`: opens the run's event file and chains the run's
 * hooks to also write its metrics rows and instrument measurements there. The caller closes it.
 */
function openTensorBoard(claimed: ClaimedRun, opts: SweepOptions, hooks: RunHooks): TensorBoardWriter | null {
  if (!claimed.run.config.train.tensorboard && !opts.tensorboard) return null;
  // Under --tensorboard DIR the events go to DIR/<sweep>/<run id>; a staged retraining keeps them
  // in its staged folder until it is swapped in (settle), so that the previous events stay meanwhile.
  const board = TensorBoardWriter.open(
    opts.tensorboard && !claimed.staged
      ? tensorboardDir(claimed.runDir, opts.tensorboard)
      : tensorboardDir(claimed.writeDir, null),
  );
  const { onRow, onInstrument } = hooks;
  hooks.onRow = (row) => {
    onRow?.(row);
    board.metrics(row);
  };
  hooks.onInstrument = (name, step, rows, activations) => {
    onInstrument?.(name, step, rows, activations);
    board.instrument(name, step, rows, activations);
  };
  return board;
}

/** A run locked by this process for training. */
interface ClaimedRun {
  run: PlannedRun;
  /** The run's folder in the sweep folder. */
  runDir: string;
  /** Where it is written: its folder, or (staged) its staging folder while a previous result stays in place. */
  writeDir: string;
  sweepDir: string;
  /** Retraining a completed or diverged run: swapped in when the new outcome is final, dropped otherwise. */
  staged: boolean;
  /** Its place in the sweep's list of runs. */
  index: number;
  release(): void;
}

/** The run's data, loaded once per data config of the sweep. */
function datasetFor(run: PlannedRun, datasets: Map<string, Dataset>): Dataset {
  // data.augment acts on training batches, not on the loaded arrays: runs differing only in it share the data.
  const dataKey = canonicalJson({ ...run.config.data, augment: null });
  let data = datasets.get(dataKey);
  if (!data) {
    data = loadDataset(run.config.data);
    datasets.set(dataKey, data);
  }
  return data;
}

function completeRecord(record: RunRecord, result: TrainResult): void {
  Object.assign(record, {
    status: 'completed',
    engine: result.engine,
    steps_done: result.steps,
    final: result.final,
    best: result.best,
    test: result.test,
    parameters: result.parameters,
  });
}

/** How a run that threw ended: diverged (a result), interrupted, or failed. */
function failRecord(record: RunRecord, e: unknown): void {
  if (e instanceof DivergedError) {
    Object.assign(record, { status: 'diverged', steps_done: e.step, diverged: { step: e.step, loss: e.loss } });
  } else if (e instanceof InterruptedError) {
    record.status = 'interrupted';
  } else {
    record.status = 'failed';
    record.error = describeFault(e);
  }
}

/** Writes the run.json of a run that ended; if that fails, the run is failed. */
function writeFinalRecord(runDir: string, record: RunRecord): void {
  try {
    writeRecord(runDir, record);
  } catch (e) {
    // The disk may be full: the previous run.json (status running) stays intact, and a rerun
    // treats it as interrupted.
    record.status = 'failed';
    record.error = `${record.error ?? ''}${record.error ? '; ' : ''}cannot write run.json: ${describeFault(e)}`;
  }
}

/**
 * Trains the claimed runs of one group (`trainingGroups`; often a group of one). Each run gets its
 * record, config.yaml, metrics.csv, instrument CSVs, TensorBoard events and weights, as if it
 * trained alone; its wall time is the group's. A member that diverges is recorded diverged while
 * the others go on.
 */
async function trainClaimed(
  claimed: ClaimedRun[],
  datasets: Map<string, Dataset>,
  opts: SweepOptions,
  count: number,
): Promise<RunRecord[]> {
  const started = performance.now();
  const members = claimed.map((c) => new RunFiles(c, opts));
  /** Each member's outcome; a fault that ends the whole group (data, engine, interruption) ends those still without one. */
  const outcomes = new Map<RunFiles, TrainResult | Error>();
  try {
    const data = datasetFor(claimed[0].run, datasets);
    const steps = totalSteps(claimed[0].run.config, data.train.n);
    if (claimed.length > 1 && opts.reporter?.startGroup)
      opts.reporter.startGroup(
        claimed.map((c) => c.run),
        claimed.map((c) => c.index),
        count,
        steps,
      );
    else opts.reporter?.start(claimed[0].run, claimed[0].index, count, steps);
    // A run whose files cannot be opened (a full disk, a file where its folder should be) fails alone.
    const training: { files: RunFiles; hooks: RunHooks }[] = [];
    for (const files of members) {
      try {
        training.push({ files, hooks: files.open(data) });
      } catch (e) {
        outcomes.set(files, e instanceof Error ? e : new Error(String(e)));
      }
    }
    if (training.length > 0) {
      const results = await trainGroup(
        training.map((t) => t.files.config),
        data,
        {
          members: training.map((t) => t.hooks),
          onStep: (step, _total, loss) => opts.reporter?.step(step, loss),
          shouldStop: opts.shouldStop,
        },
      );
      training.forEach((t, k) => outcomes.set(t.files, results[k]));
    }
  } catch (e) {
    for (const m of members) if (!outcomes.has(m)) outcomes.set(m, e instanceof Error ? e : new Error(String(e)));
  }
  const wall = (performance.now() - started) / 1000;
  for (const m of members) {
    const outcome = outcomes.get(m) as TrainResult | Error;
    if (outcome instanceof Error) failRecord(m.record, outcome);
    else completeRecord(m.record, outcome);
    m.close(wall);
    const kept = m.settle();
    opts.reporter?.finish(m.record, kept);
  }
  return members.map((m) => m.record);
}

/**
 * What one trained run writes, whatever its group: run.json (running, then its outcome),
 * config.yaml, metrics.csv rows (counted in steps_done), one CSV per instrument (and their time in
 * run.json), TensorBoard events when asked, the engine once chosen, the trained weights.
 */
class RunFiles {
  record: RunRecord;
  private writer: MetricsWriter | null = null;
  private board: TensorBoardWriter | null = null;
  private readonly instrumentCsvs = new Map<InstrumentName, InstrumentCsv>();
  private instrumentSeconds: Partial<Record<InstrumentName, number>> | null = null;

  constructor(
    private readonly claimed: ClaimedRun,
    private readonly opts: SweepOptions,
  ) {
    this.record = newRecord(claimed.run, 'running', opts.backend, null);
  }

  get config(): RunConfig {
    return this.claimed.run.config;
  }

  /** Opens the run's files and returns the hooks that write them. */
  open(data: Dataset): RunHooks {
    const { run, writeDir: runDir, staged } = this.claimed;
    if (staged) {
      fs.rmSync(runDir, { recursive: true, force: true });
      fs.mkdirSync(runDir, { recursive: true });
    }
    const record = (this.record = newRecord(run, 'running', this.opts.backend, data));
    writeConfig(runDir, run.config);
    writeRecord(runDir, record);
    const writer = (this.writer = new MetricsWriter(path.join(runDir, RUN_FILES.metrics)));
    for (const name of enabledInstruments(run.config))
      this.instrumentCsvs.set(
        name,
        new InstrumentCsv(instrumentCsvPath(runDir, name), instrumentColumns(run.config, name)),
      );
    const hooks: RunHooks = {
      onRow: (row) => {
        writer.append(row);
        record.steps_done = row.step;
      },
      onEngine: (engine, note) => {
        record.engine = engine;
        record.numerics = numericsOf(this.opts.backend, engine, BNX_VERSION);
        writeRecord(runDir, record);
        if (note) this.opts.reporter?.note?.(note);
      },
      onTrained: (model) => saveWeights(model, runDir), // weights.json/.bin
      onInstrument: (name, _step, measured) => this.instrumentCsvs.get(name)?.append(measured),
      onInstrumentOverhead: (seconds) => (this.instrumentSeconds = seconds),
    };
    this.board = openTensorBoard(this.claimed, this.opts, hooks);
    return hooks;
  }

  /**
   * The end of the run however it ended: closes its files (a failure there fails the run), stamps
   * the end time, the wall time and the instruments' share of it, writes the final run.json.
   * Also on interruption and failure: what was logged stays readable.
   */
  close(wallSeconds: number): void {
    const record = this.record;
    // A staged retraining that could not even start has no folder to write to; the previous result speaks for the run.
    if (this.claimed.staged && !fs.existsSync(this.claimed.writeDir)) return;
    record.instruments = instrumentOverhead(this.instrumentSeconds, wallSeconds);
    try {
      try {
        this.board?.close();
        for (const csv of this.instrumentCsvs.values()) csv.close();
      } finally {
        this.writer?.close();
      }
    } catch (e) {
      record.status = 'failed';
      record.error ??= describeFault(e);
    }
    record.ended_at = new Date().toISOString();
    record.wall_time_s = Math.round(wallSeconds * 10) / 10;
    writeFinalRecord(this.claimed.writeDir, record);
  }

  /**
   * A staged retraining ends here: a final outcome (completed, diverged) replaces the previous
   * result as a whole; otherwise the staged folder is dropped. Returns true when the previous
   * result was kept.
   */
  settle(): boolean {
    const { staged, sweepDir, run, writeDir } = this.claimed;
    if (!staged) return false;
    const record = this.record;
    if (record.status === 'completed' || record.status === 'diverged') {
      try {
        withLock(path.join(sweepDir, SWEEP_LOCK), () => swapIn(sweepDir, run.id));
        this.moveEvents();
        return false;
      } catch (e) {
        if (!isSystemError(e)) throw e;
        record.status = 'failed';
        record.error = `cannot put the new result in place: ${describeFault(e)}`;
      }
    }
    try {
      fs.rmSync(writeDir, { recursive: true, force: true });
      removeEmptyStaging(sweepDir);
    } catch {
      // A leftover staged folder is removed by the next bnx run in this folder.
    }
    return true;
  }

  /** A swapped-in retraining's events (written in its folder) replace the previous ones under --tensorboard DIR. */
  private moveEvents(): void {
    const { runDir } = this.claimed;
    const events = tensorboardDir(runDir, null);
    if (!this.opts.tensorboard || !fs.existsSync(events)) return;
    const target = tensorboardDir(runDir, this.opts.tensorboard);
    try {
      fs.rmSync(target, { recursive: true, force: true });
      fs.mkdirSync(path.dirname(target), { recursive: true });
      // DIR may be on another file system, where a rename fails.
      fs.cpSync(events, target, { recursive: true });
      fs.rmSync(events, { recursive: true, force: true });
    } catch (e) {
      // The run's result is in place; its events stay beside it.
      if (!isSystemError(e)) throw e;
      this.opts.reporter?.note?.(
        `TensorBoard events left in ${events}: cannot move them to ${target}: ${describeFault(e)}`,
      );
    }
  }
}
