import fs from 'node:fs';
import path from 'node:path';
import type { PlannedRun } from '../spec/expand.js';
import { removeStaleTempFiles } from '../util/files.js';
import { inspectLock, withLock } from './lock.js';
import { listRuns, writeSummary } from './runs.js';
import {
  checkIdentity,
  pointLabel,
  readIndex,
  registerInvocation,
  SWEEP_LOCK,
  writeIndex,
  type SweepIndex,
} from './sweep-index.js';

/**
 * The files of a sweep folder that every process training into it shares: sweep.json (written
 * when a grid is registered), summary.csv (rebuilt from the run folders at the end), and the run
 * locks that tell a live run from one whose process died. Light: no TensorFlow, for readers and
 * launchers.
 */

/** What sweep.json records of a command that trains into a folder. */
export interface Invocation {
  spec: string;
  specText: string;
  overrides: string[];
  shard: string | null;
}

/** A run folder's lock file: held by the process training the run (it moves with the folder when a retrained run is swapped in). */
export const RUN_LOCK = '.lock';
export const SUMMARY_FILE = 'summary.csv';

/**
 * Records a command's runs in sweep.json (under the folder lock), after refusing any point that
 * exists there with another configuration (InputError, nothing written). sweep.json is only ever
 * replaced whole, so it is first read without the lock: when every point is known with the same
 * hash and `always` is false (a shard of a grid registered before), nothing is written and the
 * lock is not taken.
 */
export function registerSweep(
  dir: string,
  grid: PlannedRun[],
  invocation: Invocation | undefined,
  opts: { always: boolean },
): void {
  const name = grid[0].config.name;
  fs.mkdirSync(dir, { recursive: true });
  const known = (index: SweepIndex) => grid.every((r) => index.points[pointLabel(r)]?.hash === r.hash);
  const seen = readIndex(dir, name);
  checkIdentity(dir, seen, grid);
  if (!opts.always && known(seen)) return;
  withLock(path.join(dir, SWEEP_LOCK), () => {
    // Under the lock, a temporary sweep.json or summary.csv is a dead writer's.
    removeStaleTempFiles(dir);
    const index = readIndex(dir, name);
    checkIdentity(dir, index, grid);
    if (!opts.always && known(index)) return;
    writeIndex(
      dir,
      registerInvocation(index, grid, {
        at: new Date().toISOString(),
        spec: invocation?.spec ?? '',
        spec_text: invocation?.specText ?? '',
        overrides: invocation?.overrides ?? [],
        shard: invocation?.shard ?? null,
        runs: grid.map((r) => r.id),
      }),
    );
  });
}

/** Rebuilds `<dir>/summary.csv` from its run folders, under the folder lock; returns its path. */
export function writeSweepSummary(dir: string): string {
  return withLock(path.join(dir, SWEEP_LOCK), () => writeSummary(dir));
}

/**
 * Whether every run of the folder has ended: every point of sweep.json has a run folder, none is
 * pending, and none is running in a live process (a `running` run.json whose lock is not held
 * was left by a process that died: it is over too).
 */
export function allRunsEnded(dir: string): boolean {
  const runs = listRuns(dir);
  const started = new Set(runs.map((r) => r.record.id));
  const index = readIndex(dir, path.basename(dir));
  if (Object.values(index.points).some((p) => !started.has(p.id))) return false;
  return runs.every(
    (r) =>
      r.record.status !== 'pending' &&
      (r.record.status !== 'running' || inspectLock(path.join(r.dir, RUN_LOCK)).state !== 'held'),
  );
}
