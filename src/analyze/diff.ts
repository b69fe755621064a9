import { stringify } from 'csv-stringify/sync';
import { InputError } from '../util/errors.js';
import { fixed } from '../store/csv-format.js';
import type { MetricsRow } from '../store/metrics.js';
import {
  datasetOf,
  formatValue,
  runConfig,
  runLabels,
  sameValue,
  shortKeys,
  varyingKeys,
  type LoadedRun,
  type LoadedSweep,
} from './results.js';
import {
  bestOf,
  COMPARED_VALUES,
  defaultTarget,
  fmt,
  fmtDelta,
  fmtInt,
  higherIsBetter,
  METRICS,
  runValues,
  stepsToReach,
  type ComparedValue,
  type Metric,
} from './stats.js';
import {
  applyHolm,
  compareGroups,
  comparisonCsvRows,
  formatComparison,
  GROUP_CSV_COLUMNS,
  type CompareOptions,
  type ConfigDiff,
  type GroupComparison,
} from './compare.js';
import { groupLabels, groupReplicates, groupVaryingKeys, settingOf, type ReplicateGroup } from './replicates.js';
import { formatTable, thin } from './table.js';

export { thin } from './table.js';
export type { ConfigDiff } from './compare.js';

export interface RunRef {
  path: string;
  id: string;
  spec: string;
  status: string | null;
  /** Last logged step. */
  steps: number | null;
  dataset: string | null;
}

/** One step logged by both runs, with each run's metrics there (null where not logged). */
export interface StepRow {
  step: number;
  a: Record<Metric, number | null>;
  b: Record<Metric, number | null>;
}

export interface ValueDiff {
  name: ComparedValue;
  a: number | null;
  b: number | null;
  /** b - a */
  diff: number | null;
  /** For best_*: the step of each run's best. */
  a_step: number | null;
  b_step: number | null;
  better: 'a' | 'b' | 'same' | null;
}

/**
 * Steps each run takes to reach a level. `kind: 'target'`: a fixed validation accuracy (`--target`
 * or the dataset's default). `kind: 'match'`: the level the worse run ends up at (its best), which
 * both runs reach: the paper's "same accuracy in N times fewer steps". `ratio` = a_step / b_step, so
 * a ratio above 1 means B gets there in that many times fewer steps.
 */
export interface TargetDiff {
  kind: 'target' | 'match';
  metric: Metric;
  target: number;
  /** `default for mnist`, `--target`, `A's best`, ... */
  why: string;
  a_step: number | null;
  b_step: number | null;
  ratio: number | null;
}

export interface PairDiff {
  /** What the pair has in common that tells it from other pairs (sweep diffs), or `A vs B`. */
  label: string;
  a: RunRef;
  b: RunRef;
  config: ConfigDiff[];
  /**
   * When the configs are identical: the run.json `numerics` fields (engine, TensorFlow, bnx,
   * threads, CPU) that differ, which then explain any difference in the numbers; empty when they
   * are equal (the numbers should then be the same bytes), null when either run did not record them.
   */
  numerics: ConfigDiff[] | null;
  steps: StepRow[];
  values: ValueDiff[];
  targets: TargetDiff[];
}

export interface Diff {
  a: string;
  b: string;
  /** Config keys runs (or replicate groups) were matched on (sweep diffs). */
  matched_on: string[];
  /** Keys that are constant within each side but differ between them (sweep diffs; seed aside). */
  sweep_difference: ConfigDiff[];
  /** Single runs compared with single runs, run against run. */
  pairs: PairDiff[];
  /** Replicate groups compared (a side with more than one seed): statistics over the seeds. */
  comparisons: GroupComparison[];
  /** How the p-values of several comparisons are corrected; null for one comparison. */
  multiple_comparisons: string | null;
  unmatched_a: RunRef[];
  unmatched_b: RunRef[];
  /** What makes the comparison doubtful (runs trained on different datasets), one line each. */
  notes: string[];
}

/** A note for each pair of datasets compared with each other: their metrics measure different tasks. */
function datasetNotes(pairs: PairDiff[], groupPairs: [ReplicateGroup, ReplicateGroup][] = []): string[] {
  const seen = new Set<string>();
  const sides = [
    ...pairs.map((p) => [p.a.dataset, p.b.dataset]),
    ...groupPairs.map(([x, y]) => [datasetOf(x.runs[0]), datasetOf(y.runs[0])]),
  ];
  for (const [da, db] of sides) if (da && db && da !== db) seen.add(`${da}\0${db}`);
  return [...seen].map((k) => {
    const [da, db] = k.split('\0');
    return `A trained on ${da} and B on ${db}: different datasets, so the numbers below compare different tasks, not the configurations alone`;
  });
}

export type DiffOptions = CompareOptions;

const ref = (r: LoadedRun): RunRef => ({
  path: r.path,
  id: r.id,
  spec: r.spec,
  status: r.record?.status ?? null,
  steps: r.metrics.at(-1)?.step ?? null,
  dataset: datasetOf(r),
});

function configDiff(a: LoadedRun, b: LoadedRun): ConfigDiff[] {
  if (!a.record || !b.record) return [];
  const ca = runConfig(a);
  const cb = runConfig(b);
  const keys = [...new Set([...Object.keys(ca), ...Object.keys(cb)])];
  return keys.filter((k) => !sameValue(ca[k], cb[k])).map((k) => ({ key: k, a: ca[k], b: cb[k] }));
}

const pick = (row: MetricsRow | undefined) =>
  Object.fromEntries(METRICS.map((m) => [m, row ? row[m] : null])) as Record<Metric, number | null>;

function stepRows(a: LoadedRun, b: LoadedRun): StepRow[] {
  const bySteps = new Map(b.metrics.map((r) => [r.step, r]));
  return a.metrics
    .filter((r) => bySteps.has(r.step))
    .map((r) => ({ step: r.step, a: pick(r), b: pick(bySteps.get(r.step)) }));
}

function better(name: string, a: number | null, b: number | null): ValueDiff['better'] {
  if (a === null || b === null || !Number.isFinite(a) || !Number.isFinite(b)) return null;
  if (a === b) return 'same';
  const up = higherIsBetter(name);
  return b > a === up ? 'b' : 'a';
}

function ratio(a: number | null, b: number | null): number | null {
  return a !== null && b !== null && b > 0 ? a / b : null;
}

function targetDiffs(a: LoadedRun, b: LoadedRun, opts: DiffOptions): TargetDiff[] {
  const out: TargetDiff[] = [];
  const dataset = datasetOf(a) ?? datasetOf(b);
  const targets = opts.targets ?? [defaultTarget(dataset)];
  const why = opts.targets ? (opts.targetsWhy ?? '--target') : dataset ? `default for ${dataset}` : 'default';
  for (const t of targets) {
    const as = stepsToReach(a.metrics, 'val_acc', t);
    const bs = stepsToReach(b.metrics, 'val_acc', t);
    out.push({ kind: 'target', metric: 'val_acc', target: t, why, a_step: as, b_step: bs, ratio: ratio(as, bs) });
  }
  // The paper's measure: the level the worse run reaches at its best, which both runs reach.
  for (const metric of ['val_acc', 'train_loss'] as const) {
    const ba = bestOf(a.metrics, metric);
    const bb = bestOf(b.metrics, metric);
    if (!ba || !bb) continue;
    const up = higherIsBetter(metric);
    const aWorse = up ? ba.value <= bb.value : ba.value >= bb.value;
    const level = aWorse ? ba.value : bb.value;
    const as = stepsToReach(a.metrics, metric, level);
    const bs = stepsToReach(b.metrics, metric, level);
    const whose = aWorse ? "A's" : "B's";
    out.push({
      kind: 'match',
      metric,
      target: level,
      why: `${whose} ${up ? 'best' : 'lowest'}`,
      a_step: as,
      b_step: bs,
      ratio: ratio(as, bs),
    });
  }
  return out;
}

/** Compares two runs: config keys that differ, metrics at matching steps, final/best values, steps to targets. */
export function diffRuns(a: LoadedRun, b: LoadedRun, opts: DiffOptions = {}, label = 'A vs B'): PairDiff {
  const va = runValues(a);
  const vb = runValues(b);
  const values = COMPARED_VALUES.map((name): ValueDiff => {
    const x = va[name];
    const y = vb[name];
    const stepKey = `${name}_step` as keyof typeof va;
    return {
      name,
      a: x,
      b: y,
      diff: x !== null && y !== null ? y - x : null,
      a_step: name.startsWith('best_') ? (va[stepKey] as number | null) : null,
      b_step: name.startsWith('best_') ? (vb[stepKey] as number | null) : null,
      better: better(name, x, y),
    };
  });
  const config = configDiff(a, b);
  return {
    label,
    a: ref(a),
    b: ref(b),
    config,
    numerics: config.length === 0 ? numericsDiff(a, b) : null,
    steps: stepRows(a, b),
    values,
    targets: targetDiffs(a, b, opts),
  };
}

function numericsDiff(a: LoadedRun, b: LoadedRun): ConfigDiff[] | null {
  const [na, nb] = [a.record?.numerics, b.record?.numerics];
  if (!na || !nb) return null;
  return (Object.keys(na) as (keyof typeof na)[])
    .filter((k) => na[k] !== nb[k])
    .map((k) => ({ key: k, a: na[k], b: nb[k] }));
}

/**
 * Pairs the runs of two sweeps. Runs are matched on the keys that vary inside either sweep and take
 * values on both sides (`model.norm` in two BN-vs-no-BN sweeps); keys that are constant on each side
 * but differ between them are the sweeps' difference. A single run on one side is matched against
 * the other side the same way.
 */
export function pairSweeps(
  a: LoadedSweep,
  b: LoadedSweep,
): {
  pairs: [LoadedRun, LoadedRun][];
  matchedOn: string[];
  sweepDifference: ConfigDiff[];
  unmatchedA: LoadedRun[];
  unmatchedB: LoadedRun[];
} {
  if (a.runs.length === 1 && b.runs.length === 1) {
    return { pairs: [[a.runs[0], b.runs[0]]], matchedOn: [], sweepDifference: [], unmatchedA: [], unmatchedB: [] };
  }
  if (a.runs.some((r) => !r.record) || b.runs.some((r) => !r.record)) {
    throw new InputError(
      a.runs.some((r) => !r.record) ? a.path : b.path,
      'a bare metrics CSV can only be compared with one other run',
    );
  }
  const within = [...new Set([...varyingKeys(a.runs), ...varyingKeys(b.runs)])];
  return matchOnVaryingKeys(a.runs, b.runs, within, runConfig);
}

/**
 * The pairing rule of pairSweeps and pairGroups, for runs or replicate groups alike: items are matched
 * on the keys in `within` (those that vary inside either side) that take values on both sides, each
 * item of B used once; keys outside `within` that differ between the first items of each side are the
 * sweeps' difference.
 */
function matchOnVaryingKeys<T>(
  a: T[],
  b: T[],
  within: string[],
  configOf: (item: T) => Record<string, unknown>,
): { pairs: [T, T][]; matchedOn: string[]; sweepDifference: ConfigDiff[]; unmatchedA: T[]; unmatchedB: T[] } {
  const configsA = a.map(configOf);
  const configsB = b.map(configOf);
  const matchedOn = within.filter((k) => configsA.some((ca) => configsB.some((cb) => sameValue(ca[k], cb[k]))));
  const sweepDifference: ConfigDiff[] = [];
  const keys = [...new Set([...Object.keys(configsA[0]), ...Object.keys(configsB[0])])];
  for (const k of keys) {
    if (within.includes(k)) continue;
    if (!sameValue(configsA[0][k], configsB[0][k]))
      sweepDifference.push({ key: k, a: configsA[0][k], b: configsB[0][k] });
  }
  const used = new Set<number>();
  const pairs: [T, T][] = [];
  const unmatchedA: T[] = [];
  a.forEach((item, i) => {
    const j = configsB.findIndex((cb, j) => !used.has(j) && matchedOn.every((k) => sameValue(configsA[i][k], cb[k])));
    if (j < 0) {
      unmatchedA.push(item);
      return;
    }
    used.add(j);
    pairs.push([item, b[j]]);
  });
  const unmatchedB = b.filter((_, j) => !used.has(j));
  return { pairs, matchedOn, sweepDifference, unmatchedA, unmatchedB };
}

/**
 * Within one sweep, the BN-vs-no-BN pairs: runs that differ only in `model.norm`, the `none` run as
 * A and each normalized run as B.
 */
export function normPairs(runs: LoadedRun[]): [LoadedRun, LoadedRun][] {
  const keys = varyingKeys(runs).filter((k) => k !== 'model.norm');
  const pairs: [LoadedRun, LoadedRun][] = [];
  const withRecord = runs.filter((r) => r.record);
  for (const base of withRecord.filter((r) => r.record!.config.model.norm === 'none')) {
    const cb = runConfig(base);
    for (const other of withRecord) {
      if (other.record!.config.model.norm === 'none') continue;
      const co = runConfig(other);
      if (keys.every((k) => sameValue(cb[k], co[k]))) pairs.push([base, other]);
    }
  }
  return pairs;
}

function pairLabel(a: LoadedRun, b: LoadedRun, matchedOn: string[]): string {
  if (matchedOn.length === 0) {
    const [la, lb] = runLabels([a, b]);
    return `${la} vs ${lb}`;
  }
  const short = shortKeys(matchedOn);
  const c = runConfig(a);
  return matchedOn.map((k) => `${short.get(k)}=${formatValue(c[k])}`).join(', ');
}

/**
 * Pairs the replicate groups of two sweeps, as pairSweeps pairs runs: groups are matched on the keys
 * that vary between the groups inside either sweep (seed aside) and take values on both sides; keys
 * constant on each side but different between them are the sweeps' difference.
 */
export function pairGroups(
  a: { path: string; groups: ReplicateGroup[] },
  b: { path: string; groups: ReplicateGroup[] },
): {
  pairs: [ReplicateGroup, ReplicateGroup][];
  matchedOn: string[];
  sweepDifference: ConfigDiff[];
  unmatchedA: ReplicateGroup[];
  unmatchedB: ReplicateGroup[];
} {
  if (a.groups.length === 1 && b.groups.length === 1) {
    return { pairs: [[a.groups[0], b.groups[0]]], matchedOn: [], sweepDifference: [], unmatchedA: [], unmatchedB: [] };
  }
  const bare = [a, b].find((s) => s.groups.some((g) => !g.runs[0].record));
  if (bare) throw new InputError(bare.path, 'a bare metrics CSV can only be compared with one other run');
  const within = [...new Set([...groupVaryingKeys(a.groups), ...groupVaryingKeys(b.groups)])];
  return matchOnVaryingKeys(a.groups, b.groups, within, (g) => settingOf(g.runs[0]));
}

/** What `bnx diff SWEEP` compares against: the groups with this value of this key (`model.norm=none`). */
export interface Baseline {
  key: string;
  value: string;
}
export const NORM_BASELINE: Baseline = { key: 'model.norm', value: 'none' };

/** A config value equals a baseline value as written on the command line: `0.001` equals 1e-3. */
function isValue(actual: unknown, wanted: string): boolean {
  if (formatValue(actual) === wanted) return true;
  const n = Number(wanted);
  return typeof actual === 'number' && wanted.trim() !== '' && Number.isFinite(n) && n === actual;
}

/**
 * `--baseline KEY=VALUE`: the full config key for KEY (a dotted key, or a leaf such as `eps` that
 * names one key of the runs) and VALUE, checked against the groups' configurations.
 */
export function parseBaseline(text: string, groups: ReplicateGroup[]): Baseline {
  const eq = text.indexOf('=');
  const where = `--baseline ${text}`;
  if (eq <= 0) throw new InputError(where, 'expected key=value, e.g. model.norm=none or model.batch_norm.eps=0.001');
  const name = text.slice(0, eq);
  const value = text.slice(eq + 1);
  const configs = groups.filter((g) => g.runs[0].record).map((g) => settingOf(g.runs[0]));
  const keys = [...new Set(configs.flatMap((c) => Object.keys(c)))];
  // A leaf such as `eps` ends several keys (batch, layer and group norm each have one); the one that
  // varies between the groups is the one meant.
  const varying = groupVaryingKeys(groups);
  let leafs = keys.filter((k) => k.endsWith(`.${name}`));
  if (leafs.length > 1 && leafs.filter((k) => varying.includes(k)).length === 1)
    leafs = leafs.filter((k) => varying.includes(k));
  const key = keys.includes(name) ? name : leafs.length === 1 ? leafs[0] : null;
  if (key === null)
    throw new InputError(
      where,
      leafs.length > 1 ? `"${name}" is ambiguous (${leafs.join(', ')})` : `no run has the configuration key "${name}"`,
    );
  if (!configs.some((c) => isValue(c[key], value))) {
    const seen = [...new Set(configs.map((c) => formatValue(c[key])))];
    throw new InputError(where, `no run has ${key}=${value} (the runs have ${seen.join(', ')})`);
  }
  return { key, value };
}

/**
 * Within one sweep's replicate groups, the pairs against a baseline: each group with
 * `baseline.key` = `baseline.value` (A) against every group that differs from it only in that key
 * (B). By default the BN-vs-no-BN pairs: `model.norm=none` against each normalized group.
 */
export function baselinePairs(
  groups: ReplicateGroup[],
  baseline: Baseline = NORM_BASELINE,
): [ReplicateGroup, ReplicateGroup][] {
  const keys = groupVaryingKeys(groups).filter((k) => k !== baseline.key);
  const pairs: [ReplicateGroup, ReplicateGroup][] = [];
  const withRecord = groups.filter((g) => g.runs[0].record);
  const isBase = (g: ReplicateGroup) => isValue(settingOf(g.runs[0])[baseline.key], baseline.value);
  for (const base of withRecord.filter(isBase)) {
    const cb = settingOf(base.runs[0]);
    for (const other of withRecord) {
      if (isBase(other)) continue;
      const co = settingOf(other.runs[0]);
      if (keys.every((k) => sameValue(cb[k], co[k]))) pairs.push([base, other]);
    }
  }
  return pairs;
}

/** The BN-vs-no-BN pairs of replicate groups: groups that differ only in `model.norm`, `none` as A. */
export const normGroupPairs = (groups: ReplicateGroup[]) => baselinePairs(groups, NORM_BASELINE);

/** A group pair's label (the matched keys' values) and its sides' labels. */
function groupPairLabels(
  x: ReplicateGroup,
  y: ReplicateGroup,
  matchedOn: string[],
): { label: string; a: string; b: string } {
  const [la, lb] = groupLabels([x, y]);
  if (matchedOn.length === 0) return { label: `${la} vs ${lb}`, a: la, b: lb };
  const short = shortKeys(matchedOn);
  const c = runConfig(x.runs[0]);
  return { label: matchedOn.map((k) => `${short.get(k)}=${formatValue(c[k])}`).join(', '), a: la, b: lb };
}

const MULTIPLE = (n: number) =>
  n > 1
    ? `Holm's correction over the ${n} settings compared, each measure separately (p_adjusted; the verdicts use it); intervals are unadjusted 95% intervals`
    : null;

/** Runs single-run pairs through diffRuns and replicate groups through compareGroups, then Holm over the groups. */
function comparePairs(
  pairs: [ReplicateGroup, ReplicateGroup][],
  opts: DiffOptions,
  labelOf: (x: ReplicateGroup, y: ReplicateGroup) => { label: string; a: string; b: string },
): { pairs: PairDiff[]; comparisons: GroupComparison[] } {
  const single: PairDiff[] = [];
  const comparisons: GroupComparison[] = [];
  for (const [x, y] of pairs) {
    const labels = labelOf(x, y);
    if (x.runs.length === 1 && y.runs.length === 1) single.push(diffRuns(x.runs[0], y.runs[0], opts, labels.label));
    else comparisons.push(compareGroups(x, y, opts, labels));
  }
  applyHolm(comparisons);
  return { pairs: single, comparisons };
}

const groupRunRefs = (groups: ReplicateGroup[]) => groups.flatMap((g) => g.runs.map(ref));

/**
 * `bnx diff A B`: two runs, two sweeps (matched setting by setting), or a run and a sweep. Sides
 * with replicates (runs that differ only in seed) are compared as groups: one comparison per setting.
 */
export function diffSweeps(a: LoadedSweep, b: LoadedSweep, opts: DiffOptions = {}): Diff {
  const m = pairGroups(
    { path: a.path, groups: groupReplicates(a.runs) },
    { path: b.path, groups: groupReplicates(b.runs) },
  );
  const single = m.pairs.every(([x, y]) => x.runs.length === 1 && y.runs.length === 1);
  // Runs alone keep the labels they always had (what differs between the two runs).
  const labelOf = (x: ReplicateGroup, y: ReplicateGroup) => {
    if (!single) return groupPairLabels(x, y, m.matchedOn);
    const [la, lb] = runLabels([x.runs[0], y.runs[0]]);
    return { label: pairLabel(x.runs[0], y.runs[0], m.matchedOn), a: la, b: lb };
  };
  const { pairs, comparisons } = comparePairs(m.pairs, opts, labelOf);
  return {
    a: a.path,
    b: b.path,
    matched_on: m.matchedOn,
    sweep_difference: m.sweepDifference,
    pairs,
    comparisons,
    multiple_comparisons: MULTIPLE(comparisons.length),
    unmatched_a: groupRunRefs(m.unmatchedA),
    unmatched_b: groupRunRefs(m.unmatchedB),
    notes: datasetNotes(pairs, m.pairs),
  };
}

/**
 * `bnx diff SWEEP`: the BN-vs-no-BN pairs inside one sweep (replicate groups that differ only in
 * model.norm, one comparison per setting); a sweep of exactly two runs or two groups is compared as
 * it is.
 */
export function diffWithin(sweep: LoadedSweep, opts: DiffOptions & { baseline?: string } = {}): Diff {
  const groups = groupReplicates(sweep.runs);
  const baseline = opts.baseline !== undefined ? parseBaseline(opts.baseline, groups) : NORM_BASELINE;
  let pairs = baselinePairs(groups, baseline);
  if (pairs.length === 0 && groups.length === 2 && opts.baseline === undefined) pairs = [[groups[0], groups[1]]];
  if (pairs.length === 0) {
    const what = groups.length < sweep.runs.length ? ` in ${groups.length} replicate group(s)` : '';
    throw new InputError(
      sweep.path,
      `has ${sweep.runs.length} run(s)${what} and no pair that differs only in ${baseline.key} from ${baseline.key}=${baseline.value}; compare against another setting with --baseline KEY=VALUE (model.batch_norm.eps=0.001), or name two runs or sweeps: bnx diff A B`,
    );
  }
  const keys = groupVaryingKeys(groups).filter((k) => k !== baseline.key);
  const { pairs: single, comparisons } = comparePairs(pairs, opts, (x, y) => {
    const [lx, ly] =
      x.runs.length === 1 && y.runs.length === 1 ? runLabels([x.runs[0], y.runs[0]]) : groupLabels([x, y]);
    const common = groupPairLabels(x, y, keys).label;
    return { label: keys.length > 0 ? `${common}: ${lx} vs ${ly}` : `${lx} vs ${ly}`, a: lx, b: ly };
  });
  return {
    a: sweep.path,
    b: sweep.path,
    matched_on: keys,
    sweep_difference: [],
    pairs: single,
    comparisons,
    multiple_comparisons: MULTIPLE(comparisons.length),
    unmatched_a: [],
    unmatched_b: [],
    notes: datasetNotes(single, pairs),
  };
}

// ---------------------------------------------------------------------------------------------
// --fail-if-worse

/**
 * Where B is worse than A on one compared value by more than `tolerance` (a B value that is missing
 * or not finite counts as worse). Returns one message per worse pair.
 */
export function worsePairs(diff: Diff, name: ComparedValue, tolerance = 0): string[] {
  const out: string[] = [];
  for (const p of diff.pairs) {
    const v = p.values.find((x) => x.name === name)!;
    const where = diff.pairs.length > 1 ? `${p.label}: ` : '';
    if (v.b === null || !Number.isFinite(v.b)) {
      if (v.a !== null) out.push(`${where}B has no ${name} (A: ${fmt(v.a)})`);
      continue;
    }
    if (v.a === null || !Number.isFinite(v.a)) continue;
    const loss = higherIsBetter(name) ? v.a - v.b : v.b - v.a;
    if (loss > tolerance)
      out.push(
        `${where}B's ${name} ${fmt(v.b)} is worse than A's ${fmt(v.a)} (by ${fmt(loss)}; tolerance ${fmt(tolerance)})`,
      );
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Output

const VALUE_NAMES: Record<ComparedValue, string> = {
  final_train_loss: 'final train_loss',
  final_val_loss: 'final val_loss',
  final_val_acc: 'final val_acc',
  best_val_loss: 'best val_loss',
  best_val_acc: 'best val_acc',
  test_loss: 'test loss',
  test_acc: 'test acc',
  val_loss_fluctuation: 'val_loss fluctuation',
};

/** `5,000 vs 1,000`-style verdict on a ratio of steps. */
export function ratioText(t: TargetDiff): string {
  if (t.a_step === null && t.b_step === null) return 'neither reaches it';
  if (t.a_step === null) return 'only B reaches it';
  if (t.b_step === null) return 'only A reaches it';
  const r = t.ratio!;
  if (Math.abs(r - 1) < 1e-9) return 'same step';
  return r > 1 ? `B: ${r.toFixed(2)}x fewer steps` : `A: ${(1 / r).toFixed(2)}x fewer steps`;
}

export function targetName(t: TargetDiff): string {
  const op = higherIsBetter(t.metric) ? '>=' : '<=';
  return `${t.metric} ${op} ${fmt(t.target)}${t.why ? ` (${t.why})` : ''}`;
}

const refLine = (r: RunRef) =>
  `${r.path}  (${[r.status, r.steps !== null ? `${fmtInt(r.steps)} steps` : null].filter(Boolean).join(', ')})`;

/** The human-readable diff. */
export function formatDiff(diff: Diff, opts: { allSteps?: boolean; maxSteps?: number } = {}): string {
  const out: string[] = diff.notes.map((n) => `note: ${n}`);
  if (out.length > 0) out.push('');
  if (diff.sweep_difference.length > 0) {
    out.push(
      'sweeps differ in',
      formatTable(
        ['key', 'A', 'B'],
        diff.sweep_difference.map((d) => [d.key, formatValue(d.a), formatValue(d.b)]),
        { indent: '  ' },
      ),
      '',
    );
  }
  if (diff.matched_on.length > 0 && diff.a !== diff.b)
    out.push(`${diff.comparisons.length > 0 ? 'settings' : 'runs'} matched on: ${diff.matched_on.join(', ')}`, '');
  if (diff.multiple_comparisons)
    out.push(`${diff.comparisons.length} settings compared: ${diff.multiple_comparisons}`, '');
  const many = diff.pairs.length + diff.comparisons.length > 1 || diff.a === diff.b;
  for (const c of diff.comparisons) {
    if (many) out.push(`== ${c.label} ==`);
    out.push(...formatComparison(c, opts), '');
  }
  for (const p of diff.pairs) {
    if (many) out.push(`== ${p.label} ==`);
    out.push(`A  ${refLine(p.a)}`, `B  ${refLine(p.b)}`, '');
    out.push(...formatPair(p, opts), '');
  }
  for (const [side, runs] of [
    ['A', diff.unmatched_a],
    ['B', diff.unmatched_b],
  ] as const) {
    if (runs.length > 0)
      out.push(`no match in ${side === 'A' ? 'B' : 'A'} for ${side}'s ${runs.map((r) => r.id).join(', ')}`);
  }
  return out.join('\n').trimEnd();
}

function formatPair(p: PairDiff, opts: { allSteps?: boolean; maxSteps?: number }): string[] {
  const out: string[] = [];
  if (p.config.length > 0) {
    out.push(
      'config (keys that differ)',
      formatTable(
        ['key', 'A', 'B'],
        p.config.map((d) => [d.key, formatValue(d.a), formatValue(d.b)]),
        { indent: '  ' },
      ),
      '',
    );
  } else if (!p.a.spec || !p.b.spec) {
    out.push(`config: not known for ${!p.a.spec ? 'A' : 'B'} (a bare metrics CSV has no run.json)`, '');
  } else if (p.numerics && p.numerics.length > 0) {
    const what = p.numerics.map((d) => `${d.key} ${formatValue(d.a)} vs ${formatValue(d.b)}`).join('; ');
    out.push(
      `config: identical, but computed under different numerics (${what}): differences below come from that, not from the config`,
      '',
    );
  } else {
    out.push(
      `config: identical${p.numerics ? ', numerics identical (same engine, TensorFlow, bnx, threads and CPU: the numbers should be the same bytes)' : ''}`,
      '',
    );
  }
  const evalRows = p.steps.filter(
    (s) => (s.a.val_acc !== null || s.a.val_loss !== null) && (s.b.val_acc !== null || s.b.val_loss !== null),
  );
  const base = evalRows.length > 0 && !opts.allSteps ? evalRows : p.steps;
  const shown = opts.allSteps ? base : thin(base, opts.maxSteps ?? 12);
  if (shown.length > 0) {
    const what = evalRows.length > 0 && !opts.allSteps ? 'evaluations' : 'logged steps';
    const note =
      shown.length < base.length
        ? `${shown.length} of ${base.length} ${what} in common; --all-steps for every logged step`
        : `${base.length} ${what} in common`;
    out.push(`metrics at matching steps (${note})`);
    const cols: Metric[] = ['train_loss', 'val_loss', 'val_acc'];
    const header = ['step', ...cols.flatMap((c) => [`${c} A`, 'B'])];
    out.push(
      formatTable(
        header,
        shown.map((s) => [fmtInt(s.step), ...cols.flatMap((c) => [fmt(s.a[c]), fmt(s.b[c])])]),
        { indent: '  ' },
      ),
      '',
    );
  } else {
    out.push('metrics at matching steps: none (the runs log at different steps)', '');
  }
  out.push('final and best');
  out.push(
    formatTable(
      ['', 'A', 'B', 'B - A', ''],
      p.values.map((v) => {
        const at = (x: number | null, s: number | null) => (s !== null ? `${fmt(x)} @${fmtInt(s)}` : fmt(x));
        const verdict = v.better === 'same' ? 'same' : v.better ? `${v.better.toUpperCase()} better` : '';
        return [VALUE_NAMES[v.name], at(v.a, v.a_step), at(v.b, v.b_step), fmtDelta(v.diff), verdict];
      }),
      { indent: '  ', align: ['l', 'r', 'r', 'r', 'l'] },
    ),
  );
  out.push('  (fluctuation: std of step-to-step changes of val_loss over the last half of training)', '');
  const targets = p.targets.filter((t) => t.kind === 'target');
  const matches = p.targets.filter((t) => t.kind === 'match');
  const targetRow = (t: TargetDiff) => [targetName(t), fmtInt(t.a_step), fmtInt(t.b_step), ratioText(t)];
  out.push(
    'steps to target',
    formatTable(['', 'A', 'B', ''], targets.map(targetRow), { indent: '  ', align: ['l', 'r', 'r', 'l'] }),
  );
  if (matches.length > 0) {
    out.push(
      '',
      'same level in fewer steps (the level the worse run reaches)',
      formatTable(['', 'A', 'B', ''], matches.map(targetRow), { indent: '  ', align: ['l', 'r', 'r', 'l'] }),
    );
  }
  return out;
}

/**
 * The diff as one long CSV table: a row per config key, step x metric, value and target. With
 * replicate groups, more columns (GROUP_CSV_COLUMNS: n, std, interval, p, Holm, verdict) and the
 * sections `mean_step` (mean curves), `run_value` (every run's value), `value` and `ratio` (the
 * comparisons); a_run and b_run then name the groups (or, in run_value rows, the runs).
 */
export function diffCsv(diff: Diff): string {
  const groups = diff.comparisons.length > 0;
  const rows: string[][] = [
    [
      'a_run',
      'b_run',
      'section',
      'name',
      'step',
      'a',
      'b',
      'diff',
      'a_step',
      'b_step',
      'ratio',
      ...(groups ? GROUP_CSV_COLUMNS : []),
    ],
  ];
  for (const c of diff.comparisons) rows.push(...comparisonCsvRows(c));
  const step = (s: number | null) => (s === null ? '' : String(s));
  for (const d of diff.sweep_difference)
    rows.push(['', '', 'sweep', d.key, '', formatValue(d.a), formatValue(d.b), '', '', '', '']);
  for (const p of diff.pairs) {
    const ids = [p.a.id, p.b.id];
    for (const c of p.config)
      rows.push([...ids, 'config', c.key, '', formatValue(c.a), formatValue(c.b), '', '', '', '']);
    for (const s of p.steps) {
      for (const m of METRICS) {
        const a = s.a[m];
        const b = s.b[m];
        if (a === null && b === null) continue;
        rows.push([
          ...ids,
          'step',
          m,
          String(s.step),
          fixed(a),
          fixed(b),
          a !== null && b !== null ? fixed(b - a) : '',
          '',
          '',
          '',
        ]);
      }
    }
    for (const v of p.values)
      rows.push([
        ...ids,
        'value',
        v.name,
        '',
        fixed(v.a),
        fixed(v.b),
        fixed(v.diff),
        step(v.a_step),
        step(v.b_step),
        '',
      ]);
    for (const t of p.targets) {
      const op = higherIsBetter(t.metric) ? '>=' : '<=';
      rows.push([
        ...ids,
        t.kind,
        `${t.metric}${op}${fixed(t.target)}`,
        '',
        '',
        '',
        '',
        step(t.a_step),
        step(t.b_step),
        fixed(t.ratio, 4),
      ]);
    }
  }
  for (const r of diff.unmatched_a) rows.push([r.id, '', 'unmatched', '', '', '', '', '', '', '', '']);
  for (const r of diff.unmatched_b) rows.push(['', r.id, 'unmatched', '', '', '', '', '', '', '', '']);
  const width = rows[0].length;
  return stringify(rows.map((r) => (r.length < width ? [...r, ...Array<string>(width - r.length).fill('')] : r)));
}

/** The diff as JSON (non-finite numbers become null). */
export function diffJson(diff: Diff): string {
  return `${JSON.stringify(diff, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`;
}
