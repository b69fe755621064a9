/**
 * Comparing two replicate groups (the seeds of setting A against the seeds of setting B): for each
 * final measure, the means, the difference (or, for ratio-valued measures, the geometric-mean ratio)
 * with its 95 % interval, a two-sided p-value and a verdict. The statistics are significance.ts;
 * this file decides what is compared, how runs pair up, and what happens to runs without a value.
 *
 * - Paired by seed when both sides have the same seeds: run i of A and run i of B saw the same
 *   batches in the same order, so the per-seed differences cancel that part of the noise (paired
 *   t-test, plus the exact sign-flip p for n <= 12 and the exact Wilcoxon p). Otherwise unpaired
 *   (Welch's t-test).
 * - Ratio-valued measures (steps to a target, the validation-loss fluctuation) are compared on the
 *   log scale: "B needs 0.24x the steps, 95 % CI 0.19x-0.31x".
 * - A run without a value (diverged: no test accuracy; never reached the target) is left out of that
 *   measure's test and named: the measure says how many of the runs have it (k of n), and paired
 *   tests use the seeds where both runs have it.
 * - Several comparisons in one command (one per setting): Holm's correction across the settings,
 *   measure by measure (`applyHolm`); `p_adjusted` is what the verdict uses.
 */
import { fixed } from '../store/csv-format.js';
import type { MetricsRow } from '../store/metrics.js';
import { formatSeeds, groupValue, settingOf, type GroupValue, type ReplicateGroup } from './replicates.js';
import { datasetOf, formatValue, sameValue, type LoadedRun } from './results.js';
import {
  differenceInterval,
  formatP,
  holm,
  logRatioComparison,
  pairedComparison,
  verdict,
  welchComparison,
  type Comparison,
  type PairedComparison,
  type Verdict,
  type WelchComparison,
} from './significance.js';
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
import { formatTable, thin } from './table.js';

/** A configuration key whose value differs between two runs or groups. */
export interface ConfigDiff {
  key: string;
  a: unknown;
  b: unknown;
}

export interface CompareOptions {
  /** Validation accuracies to measure steps to; default: the dataset's (DEFAULT_TARGETS). */
  targets?: number[];
  /** Says where `targets` came from (default `--target`; empty for none). */
  targetsWhy?: string;
  /** Training-loss levels to measure steps to (replicate groups: how fast the training loss falls). */
  lossTargets?: number[];
}

/** One side of a comparison: a replicate group. */
export interface GroupRef {
  /** The sweep folder. */
  dir: string;
  label: string;
  spec: string;
  n: number;
  seeds: (number | null)[];
  /** Run ids, in seed order. */
  runs: string[];
  status: Record<string, number>;
  /** The last logged step of the longest run. */
  steps: number | null;
  dataset: string | null;
}

/** The values of one measure on one side, run by run in seed order (null: the run has none). */
export interface SideValues {
  seeds: (number | null)[];
  runs: string[];
  values: (number | null)[];
}

export type Design = 'paired' | 'unpaired';

/** One measure compared between the groups. */
export interface MeasureComparison {
  /** `test_acc`, `val_loss_fluctuation`, `steps_to_val_acc>=0.95`, `match_val_acc`, ... */
  name: string;
  /** For people: `test acc`, `steps to val_acc >= 0.95 (default for mnist)`. */
  label: string;
  /** difference: B - A; ratio: geometric-mean ratio B / A, tested on the log scale. */
  scale: 'difference' | 'ratio';
  higher_is_better: boolean;
  design: Design;
  a: SideValues;
  b: SideValues;
  /** Values that entered the test (paired: the seeds where both runs have one, so n_a = n_b). */
  n_a: number;
  n_b: number;
  /** Arithmetic means and sample standard deviations of the values that entered the test. */
  mean_a: number | null;
  mean_b: number | null;
  std_a: number | null;
  std_b: number | null;
  /** Ratio measures: the geometric means. */
  geo_mean_a: number | null;
  geo_mean_b: number | null;
  /** difference: mean(B) - mean(A); ratio: geoMean(B) / geoMean(A). */
  estimate: number | null;
  /** 95 % interval of `estimate` (not adjusted for multiple comparisons). */
  ci95_low: number | null;
  ci95_high: number | null;
  t: number | null;
  df: number | null;
  /** Two-sided p of the t-test (paired, or Welch). */
  p: number | null;
  /** Paired designs: the exact sign-flip permutation p (n <= 12) and the exact Wilcoxon p (of the differences, or the log ratios). */
  p_sign_flip: number | null;
  p_wilcoxon: number | null;
  /** Holm-adjusted p over the `holm_m` comparisons of this measure in one command; p itself when holm_m is 1. */
  p_adjusted: number | null;
  holm_m: number;
  /** `not tested`: no value on a side (for example no seed reached the target on one side). */
  verdict: Verdict | 'not tested';
  verdict_text: string;
  /** Ratio measures: the effect in words (`B reaches it in 4.1x fewer steps (95% CI 3.2x-5.3x)`). */
  summary: string | null;
  /** Runs left out and why (`seed 3: no value in B (diverged)`), and for targets how many seeds reached it. */
  note: string | null;
}

/** Mean curves: the mean (and spread) of each metric over a group's runs at one step. */
export interface CurvePoint {
  n: number;
  mean: number;
  std: number | null;
}
export interface MeanStepRow {
  step: number;
  a: Record<Metric, CurvePoint | null>;
  b: Record<Metric, CurvePoint | null>;
}

/** Two replicate groups compared (a "setting": BN against no BN at lr 0.5, over seeds 1-5). */
export interface GroupComparison {
  label: string;
  a: GroupRef;
  b: GroupRef;
  /** Config keys that differ between the groups (seed aside). */
  config: ConfigDiff[];
  design: Design;
  /** Why the design: `both sides have seeds 1-5` or what differs. */
  design_why: string;
  measures: MeasureComparison[];
  curves: MeanStepRow[];
}

/** Marks a measure whose t-test had no spread (see compareMeasure). */
export const NO_SPREAD = 'the t-test has no spread';

/** The measures compared on the log scale (as ratios); the other compared values are differences. */
const RATIO_VALUES: readonly ComparedValue[] = ['val_loss_fluctuation'];

export const VALUE_LABELS: Record<ComparedValue, string> = {
  final_train_loss: 'final train_loss',
  final_val_loss: 'final val_loss',
  final_val_acc: 'final val_acc',
  best_val_loss: 'best val_loss',
  best_val_acc: 'best val_acc',
  test_loss: 'test loss',
  test_acc: 'test acc',
  val_loss_fluctuation: 'val_loss fluctuation',
};

function statusOf(runs: LoadedRun[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of runs) {
    const s = r.record?.status ?? 'unknown';
    out[s] = (out[s] ?? 0) + 1;
  }
  return out;
}

export function groupRef(g: ReplicateGroup, label: string): GroupRef {
  const steps = g.runs.map((r) => r.metrics.at(-1)?.step ?? null).filter((s): s is number => s !== null);
  return {
    dir: g.dir,
    label,
    spec: g.spec,
    n: g.runs.length,
    seeds: g.seeds,
    runs: g.runs.map((r) => r.id),
    status: statusOf(g.runs),
    steps: steps.length > 0 ? Math.max(...steps) : null,
    dataset: datasetOf(g.runs[0]),
  };
}

/** Keys whose values differ between the groups' settings (seed aside). */
export function settingDiff(a: ReplicateGroup, b: ReplicateGroup): ConfigDiff[] {
  if (!a.runs[0].record || !b.runs[0].record) return [];
  const ca = settingOf(a.runs[0]);
  const cb = settingOf(b.runs[0]);
  const keys = [...new Set([...Object.keys(ca), ...Object.keys(cb)])];
  return keys.filter((k) => !sameValue(ca[k], cb[k])).map((k) => ({ key: k, a: ca[k], b: cb[k] }));
}

/** Paired when both sides have the same seeds, each once, and more than one run. */
export function designOf(a: ReplicateGroup, b: ReplicateGroup): { design: Design; why: string } {
  const clean = (s: (number | null)[]) => s.every((x) => x !== null) && new Set(s).size === s.length;
  const same = a.seeds.length === b.seeds.length && a.seeds.every((s, i) => s === b.seeds[i]);
  if (same && clean(a.seeds) && a.seeds.length > 1)
    return {
      design: 'paired',
      why: `paired by seed: both sides have seeds ${formatSeeds(a.seeds)} (the same batch order); paired t-test on the per-seed differences`,
    };
  const why =
    !clean(a.seeds) || !clean(b.seeds)
      ? 'a side has runs without a seed (bare CSVs) or a seed twice'
      : `A has seeds ${formatSeeds(a.seeds) || '-'}, B has seeds ${formatSeeds(b.seeds) || '-'}`;
  return { design: 'unpaired', why: `unpaired (Welch's t-test): ${why}` };
}

const side = (g: ReplicateGroup, values: (number | null)[]): SideValues => ({
  seeds: g.seeds,
  runs: g.runs.map((r) => r.id),
  values,
});

const usable = (x: number | null, ratio: boolean): x is number => x !== null && Number.isFinite(x) && (!ratio || x > 0);

/** Why runs were left out of a measure, for its note. */
function leftOut(a: SideValues, b: SideValues, design: Design, ratio: boolean, why: string): string | null {
  const lines: string[] = [];
  const name = (s: SideValues, i: number) => (s.seeds[i] !== null ? `seed ${s.seeds[i]}` : s.runs[i]);
  for (const [tag, s] of [
    ['A', a],
    ['B', b],
  ] as const) {
    const idx = s.values.map((v, i) => (usable(v, ratio) ? -1 : i)).filter((i) => i >= 0);
    if (idx.length === 0) continue;
    if (idx.length === s.values.length) {
      lines.push(`${tag}: no run has a value (${why})`);
      continue;
    }
    const seeds = idx.map((i) => s.seeds[i]);
    const names = seeds.every((x) => x !== null)
      ? `seed${idx.length > 1 ? 's' : ''} ${formatSeeds(seeds)}`
      : idx.map((i) => name(s, i)).join(', ');
    lines.push(`${tag}: ${names} ${idx.length === 1 ? 'has' : 'have'} no value (${why})`);
  }
  if (lines.length === 0) return null;
  const tail = design === 'paired' ? 'left out with the other side of their seed' : 'left out';
  return `${lines.join('; ')} (${tail})`;
}

/**
 * Compares one measure. `pairsOf` gives the values in test order: paired designs use the seeds
 * where both runs have a usable value.
 */
function compareMeasure(
  name: string,
  label: string,
  scale: 'difference' | 'ratio',
  up: boolean,
  design: Design,
  a: SideValues,
  b: SideValues,
  /** Why a run can lack the value: `diverged or unfinished`, `never reached it`. */
  why: string,
): MeasureComparison {
  const ratio = scale === 'ratio';
  let xa: number[];
  let xb: number[];
  if (design === 'paired') {
    const keep = a.values.map((v, i) => usable(v, ratio) && usable(b.values[i], ratio));
    xa = a.values.filter((_, i) => keep[i]) as number[];
    xb = b.values.filter((_, i) => keep[i]) as number[];
  } else {
    xa = a.values.filter((v): v is number => usable(v, ratio));
    xb = b.values.filter((v): v is number => usable(v, ratio));
  }
  const note = leftOut(a, b, design, ratio, why);
  const da = xa.length > 0 ? groupValue(xa, xa.map(String)) : null;
  const db = xb.length > 0 ? groupValue(xb, xb.map(String)) : null;
  const geo = (xs: number[]) =>
    ratio && xs.length > 0 ? Math.exp(xs.reduce((s, x) => s + Math.log(x), 0) / xs.length) : null;
  const base: MeasureComparison = {
    name,
    label,
    scale,
    higher_is_better: up,
    design,
    a,
    b,
    n_a: xa.length,
    n_b: xb.length,
    mean_a: da?.mean ?? null,
    mean_b: db?.mean ?? null,
    std_a: da?.std ?? null,
    std_b: db?.std ?? null,
    geo_mean_a: geo(xa),
    geo_mean_b: geo(xb),
    estimate: null,
    ci95_low: null,
    ci95_high: null,
    t: null,
    df: null,
    p: null,
    p_sign_flip: null,
    p_wilcoxon: null,
    p_adjusted: null,
    holm_m: 1,
    verdict: 'not tested',
    verdict_text: '',
    summary: null,
    note,
  };
  if (xa.length === 0 || xb.length === 0) {
    const reason =
      design === 'paired' && a.values.some((v) => usable(v, ratio)) && b.values.some((v) => usable(v, ratio))
        ? 'no seed has a value on both sides'
        : `no run of ${xa.length === 0 ? 'A' : 'B'} has a value (${why})`;
    // The verdict text says it when a side has no value at all; partial gaps stay in the note.
    const whole = (sv: SideValues) => !sv.values.some((v) => usable(v, ratio));
    return { ...base, note: whole(a) || whole(b) ? null : note, verdict_text: `not tested: ${reason}` };
  }
  const num = (x: number) => (Number.isNaN(x) ? null : x);
  // Values that are all the same up to rounding (steps counted in whole evaluations often are):
  // the t-test then has no spread to work with, its p means nothing, and the note says so.
  const tested =
    design === 'paired'
      ? [xb.map((y, i) => (ratio ? Math.log(y / xa[i]) : y - xa[i]))]
      : [ratio ? xa.map(Math.log) : xa, ratio ? xb.map(Math.log) : xb];
  const flat = (xs: number[]) =>
    xs.length > 1 && Math.max(...xs) - Math.min(...xs) <= 1e-9 * Math.max(1e-300, ...xs.map(Math.abs));
  if (tested.every(flat)) {
    const why =
      design === 'paired'
        ? `every seed gives the same ${ratio ? 'ratio' : 'difference'}`
        : 'each side has one value in every run';
    const honest = design === 'paired' ? 'the sign-flip p is the honest figure' : 'read the means, not the p';
    base.note = `${why}: ${NO_SPREAD} (its p is degenerate); ${honest}${base.note ? `; ${base.note}` : ''}`;
  }
  if (scale === 'difference') {
    const c: PairedComparison | WelchComparison =
      design === 'paired' ? pairedComparison(xa, xb) : welchComparison(xa, xb);
    return withVerdict({
      ...base,
      estimate: c.meanDiff,
      ci95_low: num(c.ci95_low),
      ci95_high: num(c.ci95_high),
      t: num(c.t),
      df: num(c.df),
      p: num(c.p),
      p_sign_flip: c.kind === 'paired' ? c.pSignFlip : null,
      p_wilcoxon: c.kind === 'paired' ? c.pWilcoxon : null,
      p_adjusted: num(c.p),
    });
  }
  const c = logRatioComparison(xa, xb, design === 'paired' ? 'paired' : 'unpaired');
  // The distribution-free p-values of the log ratios (paired: the sign of ln(b_i / a_i)).
  const logs = design === 'paired' ? pairedComparison(xa.map(Math.log), xb.map(Math.log)) : null;
  return withVerdict({
    ...base,
    estimate: c.ratio,
    ci95_low: num(c.ci95_low),
    ci95_high: num(c.ci95_high),
    t: num(c.t),
    df: num(c.df),
    p: num(c.p),
    p_sign_flip: logs?.pSignFlip ?? null,
    p_wilcoxon: logs?.pWilcoxon ?? null,
    p_adjusted: num(c.p),
  });
}

/** The significance.ts comparison a measure stands for, rebuilt from its numbers (for `verdict`). */
function asComparison(m: MeasureComparison): Comparison {
  const p = m.p_adjusted ?? NaN;
  const t = m.t ?? NaN;
  if (m.scale === 'ratio')
    return {
      kind: 'log_ratio',
      paired: m.design === 'paired',
      nA: m.n_a,
      nB: m.n_b,
      meanA: m.mean_a ?? NaN,
      meanB: m.mean_b ?? NaN,
      geoMeanA: m.geo_mean_a ?? NaN,
      geoMeanB: m.geo_mean_b ?? NaN,
      meanLogRatio: Math.log(m.estimate ?? NaN),
      ratio: m.estimate ?? NaN,
      ci95_low: m.ci95_low ?? NaN,
      ci95_high: m.ci95_high ?? NaN,
      t,
      df: m.df ?? NaN,
      p,
    };
  if (m.design === 'paired')
    return {
      kind: 'paired',
      n: m.n_a,
      meanA: m.mean_a ?? NaN,
      meanB: m.mean_b ?? NaN,
      meanDiff: m.estimate ?? NaN,
      sdDiff: NaN,
      t,
      df: m.df ?? NaN,
      p,
      ci95_low: m.ci95_low ?? NaN,
      ci95_high: m.ci95_high ?? NaN,
      pSignFlip: m.p_sign_flip,
      pWilcoxon: m.p_wilcoxon,
    };
  return {
    kind: 'welch',
    nA: m.n_a,
    nB: m.n_b,
    meanA: m.mean_a ?? NaN,
    meanB: m.mean_b ?? NaN,
    sdA: m.std_a ?? NaN,
    sdB: m.std_b ?? NaN,
    meanDiff: m.estimate ?? NaN,
    t,
    df: m.df ?? NaN,
    p,
    ci95_low: m.ci95_low ?? NaN,
    ci95_high: m.ci95_high ?? NaN,
  };
}

/** Sets verdict, verdict_text and summary from p_adjusted (Holm when holm_m > 1). */
function withVerdict(m: MeasureComparison): MeasureComparison {
  if (m.estimate === null) return m;
  const pName = m.holm_m > 1 ? `Holm p over ${m.holm_m} settings` : 'p';
  const v = verdict(asComparison(m), m.higher_is_better, 0.05, pName);
  return { ...m, verdict: v.verdict, verdict_text: v.text, summary: ratioSummary(m) };
}

const times = (x: number) => `${x >= 10 ? x.toFixed(1) : x.toFixed(2)}x`;

/** The effect of a ratio measure in words. */
function ratioSummary(m: MeasureComparison): string | null {
  if (m.scale !== 'ratio' || m.estimate === null) return null;
  const r = m.estimate;
  const [lo, hi] = [m.ci95_low, m.ci95_high];
  const ci = (f: (x: number) => number, x: number | null, y: number | null) =>
    x !== null && y !== null ? ` (95% CI ${times(f(x))}-${times(f(y))})` : '';
  if (m.name.startsWith('steps_to_') || m.name.startsWith('match_')) {
    if (r <= 1) return `B gets there in ${times(1 / r)} fewer steps${ci((x) => 1 / x, hi, lo)}`;
    return `B needs ${times(r)} the steps of A${ci((x) => x, lo, hi)}`;
  }
  return `B's is ${times(r)} A's${ci((x) => x, lo, hi)}`;
}

/** Runs' values of a metric at each step: mean and spread over the runs that logged a finite value there. */
export function meanCurve(runs: LoadedRun[], metric: Metric): Map<number, CurvePoint> {
  const byStep = new Map<number, number[]>();
  for (const r of runs)
    for (const row of r.metrics) {
      const v = row[metric];
      if (v === null || v === undefined || !Number.isFinite(v)) continue;
      const list = byStep.get(row.step);
      if (list) list.push(v);
      else byStep.set(row.step, [v]);
    }
  const out = new Map<number, CurvePoint>();
  for (const [step, xs] of [...byStep.entries()].sort((p, q) => p[0] - q[0])) {
    const g = groupValue(xs, xs.map(String));
    out.set(step, { n: xs.length, mean: g.mean!, std: g.std });
  }
  return out;
}

function meanCurves(a: ReplicateGroup, b: ReplicateGroup): MeanStepRow[] {
  const ca = Object.fromEntries(METRICS.map((m) => [m, meanCurve(a.runs, m)])) as Record<
    Metric,
    Map<number, CurvePoint>
  >;
  const cb = Object.fromEntries(METRICS.map((m) => [m, meanCurve(b.runs, m)])) as Record<
    Metric,
    Map<number, CurvePoint>
  >;
  const stepsOf = (g: ReplicateGroup) => new Set(g.runs.flatMap((r) => r.metrics.map((row: MetricsRow) => row.step)));
  const sb = stepsOf(b);
  const steps = [...stepsOf(a)].filter((s) => sb.has(s)).sort((p, q) => p - q);
  const pick = (c: Record<Metric, Map<number, CurvePoint>>, step: number) =>
    Object.fromEntries(METRICS.map((m) => [m, c[m].get(step) ?? null])) as Record<Metric, CurvePoint | null>;
  return steps.map((step) => ({ step, a: pick(ca, step), b: pick(cb, step) }));
}

/** A steps-to-target measure with how many seeds of each side reach the target (k of n), never dropped. */
function withReachCounts(m: MeasureComparison, sa: (number | null)[], sb: (number | null)[]): MeasureComparison {
  const k = (xs: (number | null)[]) => xs.filter((x) => x !== null).length;
  const counts = `seeds reaching it: A ${k(sa)}/${sa.length}, B ${k(sb)}/${sb.length}`;
  const only =
    k(sa) === 0 && k(sb) > 0
      ? `only B reaches it (${k(sb)}/${sb.length} seeds; A 0/${sa.length})`
      : k(sb) === 0 && k(sa) > 0
        ? `only A reaches it (${k(sa)}/${sa.length} seeds; B 0/${sb.length})`
        : null;
  return { ...m, summary: m.summary ?? only, note: m.note ? `${counts}; ${m.note}` : counts };
}

/** Compares two replicate groups on every final measure, steps to targets, and mean curves. */
export function compareGroups(
  a: ReplicateGroup,
  b: ReplicateGroup,
  opts: CompareOptions = {},
  labels: { label: string; a: string; b: string } = { label: 'A vs B', a: 'A', b: 'B' },
): GroupComparison {
  const { design, why } = designOf(a, b);
  const va = a.runs.map(runValues);
  const vb = b.runs.map(runValues);
  const measures: MeasureComparison[] = [];
  for (const name of COMPARED_VALUES) {
    const ratio = RATIO_VALUES.includes(name);
    measures.push(
      compareMeasure(
        name,
        VALUE_LABELS[name],
        ratio ? 'ratio' : 'difference',
        higherIsBetter(name),
        design,
        side(
          a,
          va.map((v) => v[name]),
        ),
        side(
          b,
          vb.map((v) => v[name]),
        ),
        ratio ? 'too few evaluations in the last half, or a value of 0' : 'diverged or unfinished',
      ),
    );
  }
  // Steps to each target: every run's first evaluation at or above it; a run that never gets there has none.
  const dataset = datasetOf(a.runs[0]) ?? datasetOf(b.runs[0]);
  const targets = opts.targets ?? [defaultTarget(dataset)];
  const why2 = opts.targets ? (opts.targetsWhy ?? '--target') : dataset ? `default for ${dataset}` : 'default';
  for (const t of targets) {
    const sa = a.runs.map((r) => stepsToReach(r.metrics, 'val_acc', t));
    const sb = b.runs.map((r) => stepsToReach(r.metrics, 'val_acc', t));
    const m = compareMeasure(
      `steps_to_val_acc>=${t}`,
      `steps to val_acc >= ${fmt(t)}${why2 ? ` (${why2})` : ''}`,
      'ratio',
      false,
      design,
      side(a, sa),
      side(b, sb),
      'never reached it',
    );
    measures.push(withReachCounts(m, sa, sb));
  }
  for (const t of opts.lossTargets ?? []) {
    const sa = a.runs.map((r) => stepsToReach(r.metrics, 'train_loss', t));
    const sb = b.runs.map((r) => stepsToReach(r.metrics, 'train_loss', t));
    const m = compareMeasure(
      `steps_to_train_loss<=${t}`,
      `steps to train_loss <= ${fmt(t)}`,
      'ratio',
      false,
      design,
      side(a, sa),
      side(b, sb),
      'never reached it',
    );
    measures.push(withReachCounts(m, sa, sb));
  }
  // Paired: the paper's "same level in fewer steps", seed by seed: the level the worse run of each pair reaches.
  if (design === 'paired') {
    for (const metric of ['val_acc', 'train_loss'] as const) {
      const pa: (number | null)[] = [];
      const pb: (number | null)[] = [];
      a.runs.forEach((ra, i) => {
        const rb = b.runs[i];
        const ba = bestOf(ra.metrics, metric);
        const bb = bestOf(rb.metrics, metric);
        if (!ba || !bb) {
          pa.push(null);
          pb.push(null);
          return;
        }
        const up = higherIsBetter(metric);
        const level = (up ? ba.value <= bb.value : ba.value >= bb.value) ? ba.value : bb.value;
        pa.push(stepsToReach(ra.metrics, metric, level));
        pb.push(stepsToReach(rb.metrics, metric, level));
      });
      measures.push(
        compareMeasure(
          `match_${metric}`,
          `steps to the worse run's ${higherIsBetter(metric) ? 'best' : 'lowest'} ${metric} (per seed)`,
          'ratio',
          false,
          design,
          side(a, pa),
          side(b, pb),
          `no ${metric} logged`,
        ),
      );
    }
  }
  return {
    label: labels.label,
    a: groupRef(a, labels.a),
    b: groupRef(b, labels.b),
    config: settingDiff(a, b),
    design,
    design_why: why,
    measures,
    curves: meanCurves(a, b),
  };
}

/**
 * Holm's correction across the comparisons one command makes, measure by measure: the family of
 * test_acc is test_acc at every setting compared. Measures are not pooled into one family: they are
 * views of the same runs (final and best accuracy move together), not separate questions.
 * Sets p_adjusted, holm_m and the verdicts.
 */
export function applyHolm(comparisons: GroupComparison[]): void {
  if (comparisons.length < 2) return;
  const names = [...new Set(comparisons.flatMap((c) => c.measures.map((m) => m.name)))];
  for (const name of names) {
    const family = comparisons.flatMap((c) => c.measures.filter((m) => m.name === name));
    if (family.length < 2) continue;
    const adjusted = holm(family.map((m) => m.p ?? NaN));
    family.forEach((m, i) => {
      m.p_adjusted = Number.isNaN(adjusted[i]) ? null : adjusted[i];
      m.holm_m = family.length;
      Object.assign(m, withVerdict(m));
    });
  }
}

// ---------------------------------------------------------------------------------------------
// --fail-if-worse on replicates

/**
 * Whether B is significantly worse than A on a value: the interval of B - A (on the value's own
 * scale, where --tolerance is given) lies beyond the tolerance on the bad side. With several
 * settings checked at once the intervals are Bonferroni's (level 1 - 0.05 / m), so the chance of
 * failing a check where B is fine stays below 5 % overall. A B run without the value where its A
 * counterpart has one (a diverged seed) counts as worse, as on single runs. Returns the failures and,
 * for each setting that passed with a worse mean, a line saying why it passed.
 */
export function worseGroups(
  comparisons: GroupComparison[],
  name: ComparedValue,
  tolerance: number,
): { worse: string[]; passed: string[] } {
  const worse: string[] = [];
  const passed: string[] = [];
  const m = comparisons.length;
  const level = 1 - 0.05 / m;
  const levelText =
    m > 1 ? `${(100 * level).toPrecision(3)}% interval (Bonferroni over ${m} settings)` : '95% interval';
  for (const c of comparisons) {
    const where = m > 1 ? `${c.label}: ` : '';
    const va = c.a.runs.map((_, i) => runValueOf(c, 'a', name, i));
    const vb = c.b.runs.map((_, i) => runValueOf(c, 'b', name, i));
    const missingB = vb.filter((v) => v === null).length;
    const missingA = va.filter((v) => v === null).length;
    const lostPairs =
      c.design === 'paired' ? vb.filter((v, i) => v === null && va[i] !== null).length : missingB - missingA;
    if (lostPairs > 0) {
      worse.push(
        `${where}${lostPairs} of B's ${c.b.n} runs have no ${name} where A's have one (diverged or unfinished)`,
      );
      continue;
    }
    const keep = c.design === 'paired' ? va.map((v, i) => v !== null && vb[i] !== null) : null;
    const xa = (keep ? va.filter((_, i) => keep[i]) : va).filter((v): v is number => v !== null);
    const xb = (keep ? vb.filter((_, i) => keep[i]) : vb).filter((v): v is number => v !== null);
    if (xa.length === 0 || xb.length === 0) continue;
    const cmp = c.design === 'paired' ? pairedComparison(xa, xb) : welchComparison(xa, xb);
    const [lo, hi] = differenceInterval(cmp, level);
    const up = higherIsBetter(name);
    // The bad side: B - A below -tolerance for accuracies, above +tolerance for losses.
    const significantlyWorse = up ? hi < -tolerance : lo > tolerance;
    const interval = `[${fmtDelta(lo)}, ${fmtDelta(hi)}]`;
    const n = c.design === 'paired' ? `n = ${xa.length} pairs` : `n = ${xa.length} vs ${xb.length}`;
    const text = `mean B - A ${fmtDelta(cmp.meanDiff)}, ${levelText} ${interval}, tolerance ${fmt(tolerance)}, ${n}`;
    if (significantlyWorse) worse.push(`${where}B's ${name} is significantly worse than A's: ${text}`);
    else if (up ? cmp.meanDiff < 0 : cmp.meanDiff > 0)
      passed.push(
        `${where}B's mean ${name} is worse than A's but not significantly beyond the tolerance (the interval reaches it): ${text}`,
      );
  }
  return { worse, passed };
}

function runValueOf(c: GroupComparison, s: 'a' | 'b', name: ComparedValue, i: number): number | null {
  const m = c.measures.find((x) => x.name === name);
  const v = m ? m[s].values[i] : null;
  return v !== null && Number.isFinite(v) ? v : null;
}

// ---------------------------------------------------------------------------------------------
// Output

const fmtSigned = (x: number | null) => (x === null ? '-' : fmtDelta(x));
const fmtP = (p: number | null) => (p === null ? '-' : formatP(p));

/** `[+0.0101, +0.0343]` or `[0.19x, 0.31x]`. */
export function fmtInterval(m: MeasureComparison): string {
  if (m.ci95_low === null || m.ci95_high === null) return '-';
  return m.scale === 'ratio'
    ? `[${times(m.ci95_low)}, ${times(m.ci95_high)}]`
    : `[${fmtSigned(m.ci95_low)}, ${fmtSigned(m.ci95_high)}]`;
}

export function fmtEstimate(m: MeasureComparison): string {
  if (m.estimate === null) return '-';
  return m.scale === 'ratio' ? times(m.estimate) : fmtDelta(m.estimate);
}

const fmtMeasureValue = (m: MeasureComparison, x: number | null) =>
  m.name.startsWith('steps_to_') || m.name.startsWith('match_') ? (x === null ? '-' : fmtInt(Math.round(x))) : fmt(x);

/** n as printed: `5` paired, `5 vs 4` unpaired, with `of 5` when runs were left out. */
function fmtN(m: MeasureComparison): string {
  const total = m.design === 'paired' ? m.a.values.length : null;
  if (m.design === 'paired') return m.n_a < total! ? `${m.n_a} of ${total}` : String(m.n_a);
  const of = (k: number, s: SideValues) => (k < s.values.length ? `${k}/${s.values.length}` : String(k));
  return `${of(m.n_a, m.a)} vs ${of(m.n_b, m.b)}`;
}

/** The p column's header: says when it is Holm-adjusted. */
export function pHeader(measures: MeasureComparison[]): string {
  const m = Math.max(1, ...measures.map((x) => x.holm_m));
  return m > 1 ? `p (Holm, ${m} settings)` : 'p';
}

/** Rows of the verdict table: measure, n, A, B, B - A or B / A, 95% CI, p, sign-flip p, verdict. */
export function verdictRows(measures: MeasureComparison[]): string[][] {
  return measures.map((m) => [
    m.label,
    fmtN(m),
    fmtMeasureValue(m, m.scale === 'ratio' ? m.geo_mean_a : m.mean_a),
    fmtMeasureValue(m, m.scale === 'ratio' ? m.geo_mean_b : m.mean_b),
    fmtEstimate(m),
    fmtInterval(m),
    fmtP(m.p_adjusted),
    fmtP(m.p_sign_flip),
    m.verdict,
  ]);
}

export const VERDICT_HEADER = (measures: MeasureComparison[]) => [
  '',
  'n',
  'A',
  'B',
  'B - A | B / A',
  '95% CI',
  pHeader(measures),
  'sign-flip p',
  'verdict',
];

const refLine = (r: GroupRef) => {
  const status = Object.entries(r.status)
    .map(([s, k]) => `${k} ${s}`)
    .join(', ');
  const seeds = formatSeeds(r.seeds);
  return `${r.dir}: ${r.label}  (${r.n} run(s)${seeds ? `, seeds ${seeds}` : ''}; ${status}${r.steps !== null ? `; ${fmtInt(r.steps)} steps` : ''})`;
};

/** The human-readable comparison of two replicate groups. */
export function formatComparison(c: GroupComparison, opts: { allSteps?: boolean; maxSteps?: number } = {}): string[] {
  const out: string[] = [`A  ${refLine(c.a)}`, `B  ${refLine(c.b)}`, ''];
  if (c.config.length > 0) {
    out.push(
      'config (keys that differ, seed aside)',
      formatTable(
        ['key', 'A', 'B'],
        c.config.map((d) => [d.key, formatValue(d.a), formatValue(d.b)]),
        { indent: '  ' },
      ),
      '',
    );
  }
  out.push(`design: ${c.design_why}`, '');
  const evalRows = c.curves.filter((r) => r.a.val_acc !== null || r.a.val_loss !== null);
  const base = evalRows.length > 0 && !opts.allSteps ? evalRows : c.curves;
  const shown = opts.allSteps ? base : thin(base, opts.maxSteps ?? 12);
  if (shown.length > 0) {
    const what = evalRows.length > 0 && !opts.allSteps ? 'evaluations' : 'logged steps';
    const note =
      shown.length < base.length
        ? `${shown.length} of ${base.length} ${what}; --all-steps for every logged step`
        : `${base.length} ${what}`;
    out.push(`mean curves: each metric's mean over the seeds at matching steps (${note})`);
    const cols: Metric[] = ['train_loss', 'val_loss', 'val_acc'];
    const cell = (p: CurvePoint | null) => (p === null ? '-' : fmt(p.mean));
    out.push(
      formatTable(
        ['step', ...cols.flatMap((m) => [`${m} A`, 'B'])],
        shown.map((r) => [fmtInt(r.step), ...cols.flatMap((m) => [cell(r.a[m]), cell(r.b[m])])]),
        { indent: '  ' },
      ),
      '',
    );
  }
  out.push(
    `final values: mean over the seeds; B - A with its 95% t-interval (ratio measures: geometric means and B / A)`,
    formatTable(VERDICT_HEADER(c.measures), verdictRows(c.measures), {
      indent: '  ',
      align: ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
    }),
  );
  const notes: string[] = [];
  for (const m of c.measures) {
    const lines = [m.summary ?? (m.verdict === 'not tested' ? m.verdict_text : null), m.note].filter(
      (x): x is string => x !== null && x !== '',
    );
    if (lines.length > 0) notes.push(`  ${m.label}: ${lines.join('; ')}`);
  }
  if (notes.length > 0) out.push('', ...notes);
  out.push('', ...STATISTICS_NOTES(c.measures));
  return out;
}

/** What the table's statistics are, printed under it. */
export const STATISTICS_NOTES = (measures: MeasureComparison[]): string[] => {
  const m = Math.max(1, ...measures.map((x) => x.holm_m));
  const lines = [
    '  p: two-sided t-test (paired on the per-seed differences, or Welch); verdict: B or A better where p < 0.05, else no significant difference',
    '  sign-flip p: exact permutation p of the paired differences (every +- pattern of the seeds; assumes no normality; its floor is 2/2^n)',
    '  ratio measures (fluctuation, steps) are compared on the log scale: geometric means, B / A and its interval; below 1 means B is lower',
  ];
  if (m > 1)
    lines.push(
      `  p is Holm-adjusted over the ${m} settings this command compares (each measure separately); intervals are the plain 95% ones`,
    );
  return lines;
};

/** CSV rows of a group comparison (the long format of `bnx diff --csv`, extended columns). */
export function comparisonCsvRows(c: GroupComparison): string[][] {
  const ids = [`${c.a.dir}: ${c.a.label}`, `${c.b.dir}: ${c.b.label}`];
  const rows: string[][] = [];
  const num = (x: number | null | undefined, digits?: number) =>
    x === null || x === undefined ? '' : fixed(x, digits);
  const blank = (k: number) => Array<string>(k).fill('');
  for (const d of c.config) rows.push([...ids, 'config', d.key, '', formatValue(d.a), formatValue(d.b), ...blank(18)]);
  for (const r of c.curves)
    for (const m of METRICS) {
      const pa = r.a[m];
      const pb = r.b[m];
      if (!pa && !pb) continue;
      rows.push([
        ...ids,
        'mean_step',
        m,
        String(r.step),
        num(pa?.mean),
        num(pb?.mean),
        pa && pb ? num(pb.mean - pa.mean) : '',
        '',
        '',
        '',
        c.design,
        pa ? String(pa.n) : '',
        pb ? String(pb.n) : '',
        num(pa?.std),
        num(pb?.std),
        ...blank(9),
      ]);
    }
  // Every run's value: a row per seed pair (paired), or per run of each side (unpaired).
  for (const m of c.measures) {
    const k = Math.max(m.a.values.length, m.b.values.length);
    for (let i = 0; i < k; i++) {
      const pairRow = c.design === 'paired';
      const [ra, rb] = [m.a.runs[i], m.b.runs[i]];
      const [xa, xb] = [m.a.values[i], m.b.values[i]];
      const diff = pairRow && xa != null && xb != null && m.scale === 'difference' ? num(xb - xa) : '';
      const ratio = pairRow && xa != null && xb != null && m.scale === 'ratio' && xa > 0 ? num(xb / xa, 4) : '';
      rows.push([
        ra ?? '',
        rb ?? '',
        'run_value',
        m.name,
        '',
        num(xa),
        num(xb),
        diff,
        '',
        '',
        ratio,
        c.design,
        ...blank(13),
      ]);
    }
  }
  for (const m of c.measures) {
    rows.push([
      ...ids,
      m.scale === 'ratio' ? 'ratio' : 'value',
      m.name,
      '',
      num(m.scale === 'ratio' ? m.geo_mean_a : m.mean_a),
      num(m.scale === 'ratio' ? m.geo_mean_b : m.mean_b),
      m.scale === 'difference' ? num(m.estimate) : '',
      '',
      '',
      m.scale === 'ratio' ? num(m.estimate) : '',
      m.design,
      String(m.n_a),
      String(m.n_b),
      num(m.std_a),
      num(m.std_b),
      num(m.ci95_low),
      num(m.ci95_high),
      num(m.p, 8),
      num(m.p_adjusted, 8),
      String(m.holm_m),
      num(m.p_sign_flip, 8),
      num(m.p_wilcoxon, 8),
      m.verdict,
      m.note ?? '',
    ]);
  }
  return rows;
}

/** The extra CSV columns of group comparisons, after the single-run ones. */
export const GROUP_CSV_COLUMNS = [
  'design',
  'n_a',
  'n_b',
  'std_a',
  'std_b',
  'ci95_low',
  'ci95_high',
  'p',
  'p_adjusted',
  'holm_m',
  'p_sign_flip',
  'p_wilcoxon',
  'verdict',
  'note',
];

export type { GroupValue };
