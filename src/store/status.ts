import fs from 'node:fs';
import path from 'node:path';
import { inspectLock, type LockOwner } from './lock.js';
import { readRecord, RUN_FILES, type RunRecord, type RunStatus } from './runs.js';
import { readIndex, SWEEP_INDEX } from './sweep-index.js';
import { RUN_LOCK } from './sweep-folder.js';
import { stagingPaths } from './staging.js';

/**
 * The live state of a sweep folder, read from its files only (run.json, the tail of metrics.csv,
 * run locks, sweep.json), so that any process on any host that sees the folder can follow a sweep
 * that others train: `bnx status`, and the Slurm launcher's progress display.
 */

/** A run's state as a reader sees it: `running` only while its process holds the run's lock. */
export type LiveState = RunStatus;

export interface RunProgress {
  id: string;
  /** The run's folder (absent: a point of sweep.json that no process has started). */
  dir: string;
  state: LiveState;
  /** run.json says running but no live process holds the run's lock: it was interrupted. */
  orphaned: boolean;
  /**
   * A run with a result that is being trained again (`--force`, `--rerun`): the new attempt trains
   * in the staging folder, and its progress is what this reports; the previous result stays in
   * place until the new one completes.
   */
  retraining: boolean;
  /** Steps trained: the last metrics row of a running run; all steps of a completed one. */
  step: number;
  /** Steps the run trains, when known (run.json once it started; `train.steps` of its config). */
  total: number | null;
  /** Seconds left for a running run, from its speed so far. */
  etaS: number | null;
  /** Steps per second of a running run. */
  rate: number | null;
  error: string | null;
  /** Who trains it (running runs). */
  holder: LockOwner | null;
  record: RunRecord | null;
}

export interface SweepProgress {
  dir: string;
  runs: RunProgress[];
  counts: Record<LiveState, number>;
  /** Steps trained by runs that completed, diverged or are running. */
  stepsDone: number;
  /** Steps of every run whose length is known. */
  stepsTotal: number;
  /** Runs whose length is not known (points of sweep.json that no process has started). */
  unknownLength: number;
  /** Seconds until every run has ended at the current speed (null: nothing runs). */
  etaS: number | null;
}

const STATES: readonly LiveState[] = ['pending', 'running', 'completed', 'diverged', 'failed', 'interrupted'];

/** The step of the last complete row of a metrics.csv, reading only its tail (0: none yet). */
export function lastLoggedStep(file: string): number {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return 0;
  }
  try {
    const size = fs.fstatSync(fd).size;
    const length = Math.min(size, 4096);
    const buf = Buffer.alloc(length);
    fs.readSync(fd, buf, 0, length, size - length);
    const lines = buf.toString('utf8').split('\n');
    // The last element follows the final newline: empty, or a row still being written.
    for (let i = lines.length - 2; i >= 0; i--) {
      const step = Number.parseInt(lines[i].slice(0, lines[i].indexOf(',')), 10);
      if (Number.isInteger(step)) return step;
    }
    return 0;
  } finally {
    fs.closeSync(fd);
  }
}

function progressOf(id: string, dir: string, now: number, plannedSteps: number | null): RunProgress {
  const base: RunProgress = {
    id,
    dir,
    state: 'pending',
    orphaned: false,
    retraining: false,
    step: 0,
    total: plannedSteps,
    etaS: null,
    rate: null,
    error: null,
    holder: null,
    record: null,
  };
  let record: RunRecord;
  try {
    record = readRecord(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return base;
    return { ...base, state: 'failed', error: `cannot read ${path.join(dir, RUN_FILES.record)}` };
  }
  const total = totalSteps(record, plannedSteps);
  const p: RunProgress = { ...base, state: record.status, total, error: record.error, record };
  const lock = () => inspectLock(path.join(dir, RUN_LOCK));
  if (record.status === 'running') {
    const held = lock();
    if (held.state === 'held') return running(p, held.owner, record, dir, now);
    return { ...p, state: 'interrupted', orphaned: true, step: lastLoggedStep(path.join(dir, RUN_FILES.metrics)) };
  }
  p.step = record.steps_done;
  // Retrained while it has a result: the run's folder keeps the previous result (and the lock), the
  // new attempt trains in the staging folder.
  const staged = stagingPaths(path.dirname(dir), id).fresh;
  let attempt: RunRecord;
  try {
    attempt = readRecord(staged);
  } catch {
    return p;
  }
  const held = attempt.status === 'running' ? lock() : null;
  if (held?.state !== 'held') return p;
  return { ...running(p, held.owner, attempt, staged, now), retraining: true };
}

function totalSteps(record: RunRecord, plannedSteps: number | null): number | null {
  return record.steps_total > 0 ? record.steps_total : (record.config?.train?.steps ?? plannedSteps);
}

/** A run its lock's holder is training: its step from the tail of metrics.csv, its speed and ETA. */
function running(p: RunProgress, holder: LockOwner, record: RunRecord, dir: string, now: number): RunProgress {
  const step = lastLoggedStep(path.join(dir, RUN_FILES.metrics));
  const total = totalSteps(record, p.total);
  const elapsed = (now - Date.parse(record.started_at)) / 1000;
  const rate = step > 0 && elapsed > 0 ? step / elapsed : null;
  const etaS = rate !== null && total !== null ? Math.max(0, (total - step) / rate) : null;
  return { ...p, state: 'running', total, holder, step, rate, etaS };
}

/**
 * Reads a sweep folder's runs: every run folder, and every point of sweep.json without one
 * (pending: no process has started it). With `only`, just those run ids, in that order (the
 * launcher's grid), with `plannedSteps` for the length of runs not started yet.
 */
export function readSweepProgress(
  dir: string,
  only?: readonly string[],
  plannedSteps?: ReadonlyMap<string, number | null>,
): SweepProgress {
  const now = Date.now();
  let ids: string[];
  if (only) ids = [...only];
  else {
    const folders = fs.existsSync(dir)
      ? fs
          .readdirSync(dir, { withFileTypes: true })
          .filter((e) => e.isDirectory() && fs.existsSync(path.join(dir, e.name, RUN_FILES.record)))
          .map((e) => e.name)
      : [];
    const points = fs.existsSync(path.join(dir, SWEEP_INDEX))
      ? Object.values(readIndex(dir, path.basename(dir)).points).map((p) => p.id)
      : [];
    ids = [...new Set([...points, ...folders])].sort();
  }
  const runs = ids.map((id) => progressOf(id, path.join(dir, id), now, plannedSteps?.get(id) ?? null));
  const counts = Object.fromEntries(STATES.map((s) => [s, 0])) as Record<LiveState, number>;
  let stepsDone = 0;
  let stepsTotal = 0;
  let unknownLength = 0;
  let remaining = 0;
  let speed = 0;
  for (const r of runs) {
    counts[r.state]++;
    if (r.total !== null) stepsTotal += r.total;
    else unknownLength++;
    // A diverged run stopped early: its remaining steps are never trained, so they count as done.
    if (r.state === 'completed' || r.state === 'diverged') stepsDone += r.total ?? r.step;
    else if (r.state === 'running') {
      stepsDone += r.step;
      speed += r.rate ?? 0;
    }
    if (r.state === 'running' || r.state === 'pending') remaining += Math.max(0, (r.total ?? 0) - r.step);
  }
  const etaS = speed > 0 && unknownLength === 0 ? remaining / speed : null;
  return { dir, runs, counts, stepsDone, stepsTotal, unknownLength, etaS };
}

/** `1:05:09`, `4:09`, `12 s`. */
export function formatDuration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}
