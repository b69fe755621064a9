import fs from 'node:fs';
import path from 'node:path';
import { InputError } from '../util/errors.js';
import { canonicalJson, type PlannedRun } from '../spec/expand.js';
import { writeFileAtomic } from '../util/files.js';
import { readRecord, RUN_FILES } from './runs.js';

/**
 * sweep.json: the identity of a results folder. Every grid point ever run into the folder (its
 * label: the run id without the hash) maps to the configuration hash it was trained with, and every
 * invocation is recorded with its spec text and overrides. Rerunning a changed spec adds new points
 * and keeps the old ones; a point whose configuration changed is refused instead of being mixed in.
 */
export interface SweepIndex {
  name: string;
  points: Record<string, { id: string; hash: string }>;
  invocations: {
    at: string;
    spec: string;
    spec_text: string;
    overrides: string[];
    shard: string | null;
    runs: string[];
  }[];
}

export const SWEEP_INDEX = 'sweep.json';
/** Lock guarding sweep.json and summary.csv of one results folder. */
export const SWEEP_LOCK = '.sweep.lock';

/** `norm=batch_lr=0.5` for run id `norm=batch_lr=0.5_1a2b3c4d`. */
export const pointLabel = (run: { id: string; hash: string }) => run.id.slice(0, -(run.hash.length + 1));

export function readIndex(dir: string, name: string): SweepIndex {
  const file = path.join(dir, SWEEP_INDEX);
  if (!fs.existsSync(file)) return { name, points: {}, invocations: [] };
  return JSON.parse(fs.readFileSync(file, 'utf8')) as SweepIndex;
}

export function writeIndex(dir: string, index: SweepIndex): void {
  writeFileAtomic(path.join(dir, SWEEP_INDEX), `${JSON.stringify(index, null, 2)}\n`);
}

/** Leaf keys whose values differ between two configurations: `train.lr 0.5 -> 0.1`. */
export function configDifferences(a: unknown, b: unknown, prefix = ''): string[] {
  const isMap = (v: unknown) => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (isMap(a) && isMap(b)) {
    const keys = [...new Set([...Object.keys(a as object), ...Object.keys(b as object)])];
    return keys.flatMap((k) =>
      configDifferences(
        (a as Record<string, unknown>)[k],
        (b as Record<string, unknown>)[k],
        prefix ? `${prefix}.${k}` : k,
      ),
    );
  }
  return canonicalJson(a) === canonicalJson(b) ? [] : [`${prefix} ${canonicalJson(a)} -> ${canonicalJson(b)}`];
}

/**
 * Refuses runs whose grid point already exists in the folder with a different configuration.
 * `where` names the folder in the error; nothing is written.
 */
export function checkIdentity(dir: string, index: SweepIndex, runs: PlannedRun[]): void {
  for (const run of runs) {
    const known = index.points[pointLabel(run)];
    if (!known || known.hash === run.hash) continue;
    let what = `hash ${known.hash} -> ${run.hash}`;
    const oldDir = path.join(dir, known.id);
    if (fs.existsSync(path.join(oldDir, RUN_FILES.record))) {
      const diffs = configDifferences(readRecord(oldDir).config, run.config).filter((d) => !d.startsWith('name '));
      if (diffs.length > 0)
        what = diffs.slice(0, 3).join(', ') + (diffs.length > 3 ? `, and ${diffs.length - 3} more` : '');
    }
    throw new InputError(
      dir,
      `run ${pointLabel(run)} exists here with a different configuration (${what}); ` +
        'write to another results root with --out DIR, or to a fresh folder beside this one with --new',
    );
  }
}

/** Records an invocation's points in the index (call under the sweep lock, after checkIdentity). */
export function registerInvocation(
  index: SweepIndex,
  runs: PlannedRun[],
  invocation: SweepIndex['invocations'][number],
): SweepIndex {
  const points = { ...index.points };
  for (const run of runs) points[pointLabel(run)] = { id: run.id, hash: run.hash };
  return { ...index, points, invocations: [...index.invocations, invocation] };
}
