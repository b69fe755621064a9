import path from 'node:path';
import { canonicalJson } from '../spec/expand.js';
import { formatValue, runConfig, runLabels, shortKeys, varyingKeys, type LoadedRun } from './results.js';
import { describeSample } from './significance.js';

/**
 * A replicate group: runs of one sweep folder and spec whose resolved configurations differ only in
 * `seed` (`seeds:` in a spec, `--seeds N` or `--set seed=1,2,3`). Its runs are the seeds of one
 * setting; statistics over them separate an effect from seed-to-seed noise. A bare metrics CSV (no
 * run.json, so no configuration) is a group of its own.
 */
export interface ReplicateGroup {
  /** The sweep folder, spec and configuration without `seed`: equal keys, one group. */
  key: string;
  spec: string;
  /** The sweep folder the runs are in. */
  dir: string;
  /** The runs, in seed order. */
  runs: LoadedRun[];
  /** Each run's seed (null for a bare CSV). */
  seeds: (number | null)[];
}

export const seedOf = (run: LoadedRun): number | null => run.record?.config.seed ?? null;

/** The run's configuration without `seed`: what its replicates share. */
export function settingOf(run: LoadedRun): Record<string, unknown> {
  const c = runConfig(run);
  delete c.seed;
  return c;
}

/** Groups runs into replicate groups, in order of each group's first run; runs in a group in seed order. */
export function groupReplicates(runs: LoadedRun[]): ReplicateGroup[] {
  const byKey = new Map<string, ReplicateGroup>();
  const groups: ReplicateGroup[] = [];
  for (const run of runs) {
    const dir = path.dirname(run.path);
    const key = run.record ? canonicalJson([dir, run.spec, settingOf(run)]) : canonicalJson(['csv', run.path]);
    let g = byKey.get(key);
    if (!g) {
      g = { key, spec: run.spec, dir, runs: [], seeds: [] };
      byKey.set(key, g);
      groups.push(g);
    }
    g.runs.push(run);
  }
  for (const g of groups) {
    g.runs.sort((a, b) => (seedOf(a) ?? 0) - (seedOf(b) ?? 0));
    g.seeds = g.runs.map(seedOf);
  }
  return groups;
}

/** Whether any group has more than one run: then the reading commands show groups, not runs. */
export const hasReplicates = (groups: ReplicateGroup[]): boolean => groups.some((g) => g.runs.length > 1);

/** Config keys that tell the groups apart (seed excluded), in the order of varyingKeys. */
export function groupVaryingKeys(groups: ReplicateGroup[]): string[] {
  return varyingKeys(groups.flatMap((g) => g.runs)).filter((k) => k !== 'seed');
}

/**
 * A label for each group, made of what differs between the groups (`norm=batch, lr=0.5`), as
 * runLabels does for runs; groups of one run keep their run's label.
 */
export function groupLabels(groups: ReplicateGroup[]): string[] {
  if (!hasReplicates(groups)) return runLabels(groups.map((g) => g.runs[0]));
  const keys = groupVaryingKeys(groups);
  const short = shortKeys(keys);
  const specs = new Set(groups.map((g) => g.spec));
  const labels = groups.map((g) => {
    const parts: string[] = [];
    if (specs.size > 1 && g.spec) parts.push(g.spec);
    const rep = g.runs[0];
    if (rep.record && keys.length > 0) {
      const c = runConfig(rep);
      parts.push(keys.map((k) => `${short.get(k)}=${formatValue(c[k])}`).join(', '));
    } else if (!rep.record) {
      parts.push(rep.id);
    }
    return parts.join(': ') || g.spec || rep.id;
  });
  if (new Set(labels).size === labels.length) return labels;
  return groups.map((g, i) => `${labels[i]} (${g.dir})`);
}

/** Seeds as people write them: `1-5`, `1, 3, 7`, `1-3, 8`. */
export function formatSeeds(seeds: (number | null)[]): string {
  const xs = [...new Set(seeds.filter((s): s is number => s !== null))].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < xs.length;) {
    let j = i;
    while (j + 1 < xs.length && xs[j + 1] === xs[j] + 1) j++;
    parts.push(j >= i + 2 ? `${xs[i]}-${xs[j]}` : xs.slice(i, j + 1).join(', '));
    i = j + 1;
  }
  return parts.join(', ');
}

/**
 * One value over a replicate group: n runs have it; mean, sample standard deviation and 95 % t
 * interval of the mean (significance.describeSample) over those. A run without the value (a
 * diverged run has no test accuracy; an unfinished one no final value) is counted in `runs` and
 * named in `missing`, never dropped silently. With one value the spread is null.
 */
export interface GroupValue {
  /** Runs that have a finite value. */
  n: number;
  /** Runs in the group. */
  runs: number;
  mean: number | null;
  std: number | null;
  ci95_low: number | null;
  ci95_high: number | null;
  /** Half the 95 % interval's width: the `±` of `bnx ls`. */
  half_width: number | null;
  /** Ids of the runs without a finite value. */
  missing: string[];
}

const finiteOrNull = (x: number) => (Number.isFinite(x) ? x : null);

export function groupValue(values: (number | null)[], ids: string[]): GroupValue {
  const present = values.filter((v): v is number => v !== null && Number.isFinite(v));
  const missing = ids.filter((_, i) => values[i] === null || !Number.isFinite(values[i]!));
  if (present.length === 0)
    return {
      n: 0,
      runs: values.length,
      mean: null,
      std: null,
      ci95_low: null,
      ci95_high: null,
      half_width: null,
      missing,
    };
  const s = describeSample(present);
  return {
    n: s.n,
    runs: values.length,
    mean: s.mean,
    std: finiteOrNull(s.std),
    ci95_low: finiteOrNull(s.ci95_low),
    ci95_high: finiteOrNull(s.ci95_high),
    half_width: finiteOrNull(s.halfWidth),
    missing,
  };
}
