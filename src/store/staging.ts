import fs from 'node:fs';
import path from 'node:path';
import { WEIGHT_FILES } from '../model/weights-format.js';
import { INSTRUMENT_NAMES } from '../spec/types.js';
import { instrumentCsvPath } from './instrument-csv.js';
import { tryLock } from './lock.js';
import { readRecord, RUN_FILES } from './runs.js';
import { RUN_LOCK } from './sweep-folder.js';
import { TENSORBOARD_SUBDIR } from './tensorboard.js';

/**
 * Retraining a run that has a result (`--force`, `--rerun completed`) never touches that result
 * until the new one is complete: the run trains into `<sweep>/.staging/<id>.new`, and only a
 * completed or diverged outcome is swapped in, as a whole folder (swapIn). Interrupted or failed,
 * the staged folder is dropped and the previous result stays as it was. Readers never see a mix
 * of the two: at any moment the run folder is the old one or the new one (or, for the instant
 * between two renames, absent).
 */
export const STAGING_DIR = '.staging';

export function stagingPaths(sweepDir: string, id: string): { fresh: string; old: string } {
  const staging = path.join(sweepDir, STAGING_DIR);
  return { fresh: path.join(staging, `${id}.new`), old: path.join(staging, `${id}.old`) };
}

/** Names bnx writes in a run folder; anything else there (bnx export's `export/`, notes) is the user's. */
function isBnxFile(name: string): boolean {
  return (
    name.startsWith('.') ||
    name === TENSORBOARD_SUBDIR ||
    (Object.values(RUN_FILES) as string[]).includes(name) ||
    (Object.values(WEIGHT_FILES) as string[]).includes(name) ||
    INSTRUMENT_NAMES.some((i) => path.basename(instrumentCsvPath('', i)) === name)
  );
}

const exists = (p: string) => fs.existsSync(p);

/** The user's files of the previous run folder move into the new one: nothing of theirs is lost. */
function carryOver(from: string, to: string): void {
  for (const name of fs.readdirSync(from))
    if (!isBnxFile(name) && !exists(path.join(to, name))) fs.renameSync(path.join(from, name), path.join(to, name));
}

/**
 * Swaps a completed retraining in (call under the sweep lock, holding the run's lock): the previous
 * folder moves to `.old`, its lock file into the staged folder (so the run stays locked), the staged
 * folder takes the run's place, the user's files follow, `.old` is removed. A fault before the new
 * folder is in place puts the previous one back and throws; a crash is repaired by recoverSwap.
 */
export function swapIn(sweepDir: string, id: string): void {
  const runDir = path.join(sweepDir, id);
  const { fresh, old } = stagingPaths(sweepDir, id);
  fs.rmSync(old, { recursive: true, force: true });
  fs.renameSync(runDir, old);
  try {
    if (exists(path.join(old, RUN_LOCK))) fs.renameSync(path.join(old, RUN_LOCK), path.join(fresh, RUN_LOCK));
    fs.renameSync(fresh, runDir);
  } catch (e) {
    if (exists(path.join(fresh, RUN_LOCK))) fs.renameSync(path.join(fresh, RUN_LOCK), path.join(old, RUN_LOCK));
    fs.renameSync(old, runDir);
    throw e;
  }
  carryOver(old, runDir);
  fs.rmSync(old, { recursive: true, force: true });
  removeEmptyStaging(sweepDir);
}

const isFinal = (dir: string) => {
  try {
    const status = readRecord(dir).status;
    return status === 'completed' || status === 'diverged';
  } catch {
    return false;
  }
};

/**
 * Repairs what a process killed during swapIn left (call under the sweep lock, which swapIn holds:
 * any half-way state seen here is a dead process's). With no run folder, the staged one is put in
 * place if its run had ended, else the previous one; a leftover `.old` gives the user's files to
 * the run folder and goes. A staged folder nobody trains any more is removed.
 */
export function recoverSwap(sweepDir: string, id: string): void {
  const runDir = path.join(sweepDir, id);
  const { fresh, old } = stagingPaths(sweepDir, id);
  if (!exists(runDir)) {
    if (isFinal(fresh)) fs.renameSync(fresh, runDir);
    else if (exists(old)) fs.renameSync(old, runDir);
  }
  if (exists(old) && exists(runDir)) {
    carryOver(old, runDir);
    fs.rmSync(old, { recursive: true, force: true });
  }
  if (exists(fresh) && exists(runDir)) {
    // Someone training it holds the run's lock; a staged folder without a live owner is stale.
    const lock = tryLock(path.join(runDir, RUN_LOCK));
    if (lock.ok) {
      try {
        fs.rmSync(fresh, { recursive: true, force: true });
      } finally {
        lock.release();
      }
    }
  }
}

/** Removes the staging folder once nothing is staged in it. */
export function removeEmptyStaging(sweepDir: string): void {
  try {
    fs.rmdirSync(path.join(sweepDir, STAGING_DIR));
  } catch {
    // Absent, or something is staged: either is fine.
  }
}
