import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { DamagedFileError, InputError } from '../util/errors.js';
import { canonicalJson, type PlannedRun } from '../spec/expand.js';
import { writeFileAtomic } from '../util/files.js';
import { listRuns, readRecord, RUN_FILES } from './runs.js';

/**
 * sweep.json: the identity of a results folder. Every grid point ever run into the folder (its
 * label: the run id without the hash) maps to the configuration hash it was trained with, and every
 * invocation is recorded with its spec and overrides. Rerunning a changed spec adds new points
 * and keeps the old ones; a point whose configuration changed is refused instead of being mixed in.
 * Spec texts are kept once each, by their sha256: rerunning a spec adds a line, not a copy of it.
 */
export interface SweepIndex {
  name: string;
  points: Record<string, { id: string; hash: string }>;
  /** Each distinct spec text the folder was run with, by the sha256 (hex) of the text. */
  specs: Record<string, string>;
  invocations: Invocation[];
}

export interface Invocation {
  at: string;
  spec: string;
  /** The spec's text is `specs[spec_sha256]`. */
  spec_sha256: string;
  overrides: string[];
  shard: string | null;
  runs: string[];
}

export const SWEEP_INDEX = 'sweep.json';
/** Lock guarding sweep.json and summary.csv of one results folder. */
export const SWEEP_LOCK = '.sweep.lock';

/** `norm=batch_lr=0.5` for run id `norm=batch_lr=0.5_1a2b3c4d`. */
export const pointLabel = (run: { id: string; hash: string }) => run.id.slice(0, -(run.hash.length + 1));

export const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

const DAMAGED_INDEX_HINT =
  'bnx will not write over it: restore it, or move it away (the run folders are enough to resume; the record of past invocations goes with it)';

/**
 * Reads sweep.json, checking its shape: an empty, truncated or garbage file is a DamagedFileError
 * naming it. Files written before spec texts were kept by hash (each invocation with its
 * `spec_text`) are read into the current form.
 */
export function readIndex(dir: string, name: string): SweepIndex {
  const file = path.join(dir, SWEEP_INDEX);
  const damaged = (why: string) => new DamagedFileError(file, why, DAMAGED_INDEX_HINT);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { name, points: {}, specs: {}, invocations: [] };
    if (code === 'EISDIR') throw damaged('a folder, where the sweep.json file belongs');
    throw e;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw damaged(`not valid JSON (${(e as Error).message}; ${text.length} bytes)`);
  }
  const isMap = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (!isMap(raw)) throw damaged(`not a JSON object (${Array.isArray(raw) ? 'a list' : typeof raw})`);
  if (!isMap(raw.points)) throw damaged('"points" is missing or not an object');
  for (const [label, p] of Object.entries(raw.points))
    if (!isMap(p) || typeof p.id !== 'string' || typeof p.hash !== 'string')
      throw damaged(`point "${label}" has no id and hash`);
  if (!Array.isArray(raw.invocations)) throw damaged('"invocations" is missing or not a list');
  if (raw.specs !== undefined && !isMap(raw.specs)) throw damaged('"specs" is not an object');
  const specs = { ...((raw.specs ?? {}) as Record<string, string>) };
  const invocations = raw.invocations.map((inv: unknown, i: number): Invocation => {
    if (!isMap(inv)) throw damaged(`invocation ${i + 1} is not an object`);
    const { spec_text: specText, ...rest } = inv;
    if (typeof specText === 'string') {
      const sha = sha256(specText);
      specs[sha] = specText;
      return { ...(rest as unknown as Invocation), spec_sha256: sha };
    }
    return inv as unknown as Invocation;
  });
  return {
    name: typeof raw.name === 'string' ? raw.name : name,
    points: raw.points as SweepIndex['points'],
    specs,
    invocations,
  };
}

export function writeIndex(dir: string, index: SweepIndex): void {
  writeFileAtomic(path.join(dir, SWEEP_INDEX), `${JSON.stringify(index, null, 2)}\n`);
}

/**
 * What `bnx run` checks of a sweep folder before it writes anything (and again under the folder's
 * lock): the folder is a folder, sweep.json and every run.json in it can be read, no planned run's
 * folder is a file, and no grid point changed its configuration (checkIdentity). Returns sweep.json.
 */
export function checkSweepFolder(dir: string, runs: PlannedRun[]): SweepIndex {
  const stat = fs.statSync(dir, { throwIfNoEntry: false });
  if (stat && !stat.isDirectory())
    throw new InputError(
      dir,
      "exists and is not a directory (it is where this spec's runs go); move it away, or write elsewhere with --out DIR or --new",
    );
  const index = readIndex(dir, runs[0]?.config.name ?? path.basename(dir));
  for (const run of runs) {
    const runDir = path.join(dir, run.id);
    const st = fs.statSync(runDir, { throwIfNoEntry: false });
    if (st && !st.isDirectory())
      throw new InputError(runDir, `exists and is not a directory (the folder of run ${run.id}); move it away`);
  }
  listRuns(dir); // a damaged run.json throws, naming it
  checkIdentity(dir, index, runs);
  return index;
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

/** Records an invocation and its points in the index (call under the sweep lock, after checkIdentity). */
export function registerInvocation(
  index: SweepIndex,
  runs: PlannedRun[],
  invocation: Omit<Invocation, 'spec_sha256'> & { spec_text: string },
): SweepIndex {
  const points = { ...index.points };
  for (const run of runs) points[pointLabel(run)] = { id: run.id, hash: run.hash };
  const { at, spec, spec_text: specText, overrides, shard, runs: ids } = invocation;
  const sha = sha256(specText);
  return {
    ...index,
    points,
    specs: { ...index.specs, [sha]: specText },
    invocations: [...index.invocations, { at, spec, spec_sha256: sha, overrides, shard, runs: ids }],
  };
}
