import fs from 'node:fs';
import path from 'node:path';
import { DamagedFileError, InputError } from '../util/errors.js';
import { isAlive } from '../util/process.js';
import { checkWeightsFiles, WEIGHT_FILES } from '../model/weights-format.js';
import { readMetrics } from './metrics.js';
import { withLock } from './lock.js';
import { listRuns, RUN_FILES, type RunRecord } from './runs.js';
import { pointLabel, readIndex, SWEEP_INDEX, SWEEP_LOCK, writeIndex, type SweepIndex } from './sweep-index.js';
import { writeSummary } from './runs.js';

/** A run's outcome is final: merging may replace anything else, never these. */
const isFinal = (r: RunRecord) => r.status === 'completed' || r.status === 'diverged';

/** Spec folders under a path: the path itself if it holds runs or a sweep.json, else its sub-folders that do. */
export function findSpecDirs(root: string): string[] {
  const isSpecDir = (d: string) => fs.existsSync(path.join(d, SWEEP_INDEX)) || listRuns(d).length > 0;
  if (!fs.existsSync(root) || !fs.statSync(root).isDirectory())
    throw new InputError(root, 'is not a directory of bnx results');
  if (isSpecDir(root)) return [root];
  const dirs = fs
    .readdirSync(root, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => path.join(root, e.name))
    .filter(isSpecDir);
  if (dirs.length === 0) throw new InputError(root, 'holds no bnx results (no <spec>/<run>/run.json below it)');
  return dirs;
}

/** The real path of `p`, or of its nearest existing ancestor joined with the rest (symlinks resolved). */
function realPath(p: string): string {
  const abs = path.resolve(p);
  if (fs.existsSync(abs)) return fs.realpathSync(abs);
  const parent = path.dirname(abs);
  return parent === abs ? abs : path.join(realPath(parent), path.basename(abs));
}

const isInside = (inner: string, outer: string) => {
  const rel = path.relative(outer, inner);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
};

/**
 * A run is copied only if every file bnx wrote in it reads back whole: run.json (already read),
 * metrics.csv row by row, every CSV ending with a complete line, and the weights matching their
 * manifest. A torn or garbage file is a DamagedFileError naming it: merge copies nothing then.
 */
function checkRunFiles(dir: string): void {
  const metrics = path.join(dir, RUN_FILES.metrics);
  if (fs.existsSync(metrics)) readMetrics(metrics);
  for (const name of fs.readdirSync(dir)) {
    if (!name.endsWith('.csv') || name === RUN_FILES.metrics) continue;
    const text = fs.readFileSync(path.join(dir, name), 'utf8');
    if (text !== '' && !text.endsWith('\n'))
      throw new DamagedFileError(path.join(dir, name), 'the last line is cut short (a process killed mid-write)');
  }
  if (Object.values(WEIGHT_FILES).some((f) => fs.existsSync(path.join(dir, f)))) checkWeightsFiles(dir);
}

/** `.<run id>.merge-<pid>`: a run being copied in; left behind only by a merge that was killed. */
const MERGE_TMP = /^\.(.+)\.merge-(\d+)$/;

function sameResult(a: { dir: string; record: RunRecord }, b: { dir: string; record: RunRecord }): boolean {
  if (a.record.hash !== b.record.hash || a.record.status !== b.record.status) return false;
  const metrics = (d: string) => fs.readFileSync(path.join(d, RUN_FILES.metrics));
  return metrics(a.dir).equals(metrics(b.dir));
}

export interface MergeReport {
  copied: string[];
  identical: string[];
  /** Runs not merged because they did not finish where they were found. */
  unfinished: string[];
  specs: string[];
}

/**
 * Combines results written by shards (or machines) into one results root. Finished runs are copied;
 * a run present twice must be the same result (same config hash, status and metrics.csv bytes), and
 * a grid point may not map to two configurations: on any conflict nothing is written.
 */
export function mergeResults(sources: string[], out: string): MergeReport {
  if (fs.existsSync(out) && !fs.statSync(out).isDirectory())
    throw new InputError(`--out ${out}`, 'exists and is not a directory');
  const report: MergeReport = { copied: [], identical: [], unfinished: [], specs: [] };
  const outReal = realPath(out);
  for (const source of sources)
    for (const specDir of findSpecDirs(source)) {
      if (isInside(outReal, realPath(specDir)))
        throw new InputError(
          `--out ${out}`,
          `is inside ${specDir}, a sweep folder merge reads from (a run folder, or a folder in one); give a folder outside the sources`,
        );
    }
  // Plan everything first, so that a conflict found late still leaves `out` untouched.
  const plan = new Map<string, { index: SweepIndex; runs: Map<string, { dir: string; record: RunRecord }> }>();
  const claim = (name: string, where: string, run: { dir: string; record: RunRecord }, points: Map<string, string>) => {
    const label = pointLabel(run.record);
    const known = points.get(label);
    if (known && known !== run.record.hash) {
      throw new InputError(
        where,
        `run ${label} has configuration ${run.record.hash} here but ${known} elsewhere in ${name}; these are results of different specs`,
      );
    }
    points.set(label, run.record.hash);
  };
  const pointsBySpec = new Map<string, Map<string, string>>();
  const target = (name: string) => path.join(out, name);
  for (const source of sources) {
    for (const specDir of findSpecDirs(source)) {
      const name = path.basename(specDir);
      if (path.resolve(specDir) === path.resolve(target(name))) continue;
      if (!plan.has(name)) {
        if (fs.existsSync(target(name)) && !fs.statSync(target(name)).isDirectory())
          throw new InputError(target(name), 'exists and is not a directory; merge writes the runs of this spec there');
        const existing = fs.existsSync(target(name)) ? listRuns(target(name)) : [];
        const points = new Map<string, string>();
        for (const r of existing) claim(name, target(name), r, points);
        pointsBySpec.set(name, points);
        plan.set(name, {
          index: readIndex(target(name), name),
          runs: new Map(existing.filter((r) => isFinal(r.record)).map((r) => [r.record.id, r])),
        });
      }
      const entry = plan.get(name)!;
      const points = pointsBySpec.get(name)!;
      for (const run of listRuns(specDir)) {
        if (!isFinal(run.record)) {
          report.unfinished.push(`${run.dir} (${run.record.status})`);
          continue;
        }
        claim(name, run.dir, run, points);
        checkRunFiles(run.dir);
        const have = entry.runs.get(run.record.id);
        if (have && !sameResult(have, run)) {
          throw new InputError(
            run.dir,
            `conflicts with ${have.dir}: the same run with different results (status or metrics.csv differ); merge refuses to pick one`,
          );
        }
        if (have) {
          if (!report.identical.includes(run.record.id)) report.identical.push(run.record.id);
        } else {
          entry.runs.set(run.record.id, run);
        }
      }
      const index = readIndex(specDir, name);
      entry.index = {
        ...entry.index,
        points: { ...entry.index.points, ...index.points },
        specs: { ...entry.index.specs, ...index.specs },
        invocations: [...entry.index.invocations, ...index.invocations],
      };
    }
  }

  for (const [name, { index, runs }] of plan) {
    const dir = target(name);
    fs.mkdirSync(dir, { recursive: true });
    withLock(path.join(dir, SWEEP_LOCK), () => {
      for (const name of fs.readdirSync(dir)) {
        const m = MERGE_TMP.exec(name);
        if (m && !isAlive(Number(m[2]))) fs.rmSync(path.join(dir, name), { recursive: true, force: true });
      }
      for (const run of runs.values()) {
        const dest = path.join(dir, run.record.id);
        if (path.resolve(run.dir) === path.resolve(dest)) continue;
        // Copy beside the destination, then swap in by rename: a crash leaves the old or the new run whole.
        // Hidden files (locks, temporary files) are the source process's, not the run's.
        const tmp = path.join(dir, `.${run.record.id}.merge-${process.pid}`);
        try {
          fs.rmSync(tmp, { recursive: true, force: true });
          fs.cpSync(run.dir, tmp, {
            recursive: true,
            filter: (src) => src === run.dir || !path.basename(src).startsWith('.'),
          });
          fs.rmSync(dest, { recursive: true, force: true });
          fs.renameSync(tmp, dest);
        } catch (e) {
          fs.rmSync(tmp, { recursive: true, force: true });
          throw e;
        }
        report.copied.push(run.record.id);
      }
      writeIndex(dir, index);
      writeSummary(dir);
    });
    report.specs.push(dir);
  }
  return report;
}
