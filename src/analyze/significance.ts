/**
 * Significance for replicate groups: does treatment B (e.g. with BN) differ from baseline A
 * (e.g. without BN) beyond seed-to-seed noise? A replicate group is a set of runs that differ only
 * in `seed`; each function takes one number per run (a final accuracy, steps to a target, ...).
 *
 * Conventions, the same as the SciPy reference (test/fixtures/stats-vectors.json):
 * - a is the baseline, b the treatment; differences are b - a, ratios b / a;
 * - tests are two-sided, intervals are 95 % t intervals;
 * - `pairedComparison` = scipy.stats.ttest_rel(b, a), `welchComparison` =
 *   scipy.stats.ttest_ind(b, a, equal_var=False), `logRatioComparison` = ttest_1samp(ln(b / a), 0)
 *   (or Welch on ln b, ln a when unpaired), each with `.confidence_interval(0.95)`.
 *
 * Degenerate input follows SciPy, so that every number can be checked against it:
 * - n < 2 on a side that needs a spread: sd, t, p and the interval are NaN (SciPy: nan). The means
 *   are still given.
 * - No spread (all paired differences equal; both Welch sides constant): t = +-Infinity and p = 0
 *   with an interval of zero width when the difference is not 0, and t = NaN, p = NaN with the
 *   interval [0, 0] when it is. p = 0 here is the t-test having no variance to work with, not
 *   certainty: `verdict` says so, and `pSignFlip` (at least 2 / 2^n) is the honest small-sample
 *   figure for paired data.
 * - Non-finite values (a diverged run's NaN loss, an unreached target) are rejected with a
 *   RangeError naming the side and index, never filtered: dropping the runs that failed would
 *   bias the comparison towards the side that fails more. The caller decides what to do with them
 *   (and says so). Empty groups, paired groups of unequal length and non-positive values in a
 *   ratio comparison are rejected the same way.
 *
 * Distributions come from @stdlib (matches SciPy to ~1e-15 on the reference's t quantiles); the
 * sign-flip permutation test, the exact Wilcoxon distribution and Holm's step are written here.
 * Pure functions: no TensorFlow, no I/O.
 */
import { createRequire } from 'node:module';
import type TCdf from '@stdlib/stats-base-dists-t-cdf';
import type TQuantile from '@stdlib/stats-base-dists-t-quantile';

// Loaded on first use: the two packages load about 400 @stdlib modules, which would otherwise
// slow every command that merely imports analyze (`bnx --help` among them) by a third.
const require = createRequire(import.meta.url);
let tCdfStdlib: typeof TCdf | undefined;
let tQuantileStdlib: typeof TQuantile | undefined;

/** Two-sided level of every interval here. */
const CONFIDENCE = 0.95;
/** Largest n for which `pSignFlip` enumerates all 2^n sign patterns (4,096 at 12). */
export const SIGN_FLIP_MAX_N = 12;
/** Largest n for which `pWilcoxon` is given (SciPy's own limit for its exact method under 'auto'). */
export const WILCOXON_MAX_N = 50;

/** Quantile of Student's t distribution with `df` degrees of freedom (df > 0, may be fractional). NaN for df <= 0 or NaN. */
export function tQuantile(p: number, df: number): number {
  tQuantileStdlib ??= require('@stdlib/stats-base-dists-t-quantile') as typeof TQuantile;
  return tQuantileStdlib(p, df);
}

/** Cumulative distribution of Student's t: P(T <= t). tCdf(-Infinity, df) = 0, NaN for df <= 0 or NaN. */
export function tCdf(t: number, df: number): number {
  tCdfStdlib ??= require('@stdlib/stats-base-dists-t-cdf') as typeof TCdf;
  return tCdfStdlib(t, df);
}

/** Two-sided p of a t statistic, 2 P(T <= -|t|): no cancellation for small p, 0 for infinite t, NaN for NaN t. */
function twoSidedP(t: number, df: number): number {
  return Math.min(1, 2 * tCdf(-Math.abs(t), df));
}

/** Summary of one replicate group. */
export interface Sample {
  n: number;
  mean: number;
  /** Sample standard deviation (n - 1 in the denominator); NaN for n = 1. */
  std: number;
  /** mean -+ halfWidth: the 95 % t interval for the mean; NaN for n = 1. */
  ci95_low: number;
  ci95_high: number;
  /** t_{0.975, n-1} * std / sqrt(n); NaN for n = 1, 0 when all values are equal. */
  halfWidth: number;
}

/**
 * Mean, sample standard deviation and 95 % t interval of one group (scipy.stats.ttest_1samp(x,
 * popmean).confidence_interval(0.95)). With one value the spread is unknown: std, the interval and
 * halfWidth are NaN (null once written as JSON).
 */
export function describeSample(values: readonly number[]): Sample {
  checkValues(values, 'values');
  const s = oneSample(values);
  return { n: s.n, mean: s.mean, std: s.sd, ci95_low: s.low, ci95_high: s.high, halfWidth: s.halfWidth };
}

/** B against A on the same seeds: scipy.stats.ttest_rel(b, a), plus two distribution-free p-values. */
export interface PairedComparison {
  kind: 'paired';
  /** Number of pairs (seeds). */
  n: number;
  meanA: number;
  meanB: number;
  /** mean(b - a). */
  meanDiff: number;
  /** Sample standard deviation of b - a. */
  sdDiff: number;
  t: number;
  /** n - 1. */
  df: number;
  /** Two-sided p of the paired t-test. */
  p: number;
  /** 95 % interval for the mean difference. */
  ci95_low: number;
  ci95_high: number;
  /**
   * Exact sign-flip permutation p: the share of the 2^n patterns of signs on the differences whose
   * |mean| is at least the observed one (ties, within rounding, count as extreme). Assumes only
   * that each difference is symmetric about 0 under "no effect", so it holds for any distribution;
   * its smallest possible value is 2 / 2^n (0.25 at n = 3, 0.0625 at n = 5). Null above
   * SIGN_FLIP_MAX_N pairs.
   */
  pSignFlip: number | null;
  /**
   * Exact Wilcoxon signed-rank p, scipy.stats.wilcoxon(b, a, method="exact"). Null when a
   * difference is 0 or two |differences| are equal (there SciPy's 'exact' is not the textbook exact
   * distribution and bnx does not imitate it), and above WILCOXON_MAX_N pairs.
   */
  pWilcoxon: number | null;
}

/** Paired comparison of B against A, run i of each sharing a seed. a and b must have the same length. */
export function pairedComparison(a: readonly number[], b: readonly number[]): PairedComparison {
  checkPaired(a, b);
  const d = b.map((bi, i) => bi - a[i]);
  const s = oneSample(d);
  return {
    kind: 'paired',
    n: s.n,
    meanA: mean(a),
    meanB: mean(b),
    meanDiff: s.mean,
    sdDiff: s.sd,
    t: s.t,
    df: s.df,
    p: s.p,
    ci95_low: s.low,
    ci95_high: s.high,
    pSignFlip: signFlipP(d),
    pWilcoxon: wilcoxonP(d),
  };
}

/** B against A with no pairing (different seeds or group sizes): scipy.stats.ttest_ind(b, a, equal_var=False). */
export interface WelchComparison {
  kind: 'welch';
  nA: number;
  nB: number;
  meanA: number;
  meanB: number;
  /** Sample standard deviations of each side (NaN for one value). */
  sdA: number;
  sdB: number;
  /** mean(b) - mean(a). */
  meanDiff: number;
  t: number;
  /**
   * Welch–Satterthwaite degrees of freedom (fractional). NaN when both sides have no spread or a
   * side has one value: SciPy then substitutes 1, which only keeps p and the interval defined (p = 0
   * and a zero-width interval for constant sides that differ); those are the same here.
   */
  df: number;
  p: number;
  ci95_low: number;
  ci95_high: number;
}

/** Welch's unequal-variance t-test of B against A, for groups that do not share seeds. */
export function welchComparison(a: readonly number[], b: readonly number[]): WelchComparison {
  checkValues(a, 'a');
  checkValues(b, 'b');
  const w = welch(a, b);
  return {
    kind: 'welch',
    nA: a.length,
    nB: b.length,
    meanA: w.meanA,
    meanB: w.meanB,
    sdA: w.sdA,
    sdB: w.sdB,
    meanDiff: w.diff,
    t: w.t,
    df: w.df,
    p: w.p,
    ci95_low: w.low,
    ci95_high: w.high,
  };
}

/**
 * B against A for a positive, ratio-scaled measure (steps to a target, a fluctuation): effects there
 * are multiplicative ("BN needs a fifth of the steps"), and such measures are skewed, so the test
 * runs on logarithms. The ratio is the geometric-mean ratio geoMeanB / geoMeanA, which for paired
 * runs is also the geometric mean of the per-seed ratios b_i / a_i.
 */
export interface LogRatioComparison {
  kind: 'log_ratio';
  /** Paired: one-sample t on ln(b_i / a_i). Unpaired: Welch on ln a against ln b. */
  paired: boolean;
  nA: number;
  nB: number;
  /** Arithmetic means, for tables that list every kind of comparison side by side. */
  meanA: number;
  meanB: number;
  geoMeanA: number;
  geoMeanB: number;
  /** mean(ln b) - mean(ln a). */
  meanLogRatio: number;
  /** exp(meanLogRatio) = geoMeanB / geoMeanA: below 1 means B is smaller. */
  ratio: number;
  /** 95 % interval for the ratio: exp of the interval for meanLogRatio. */
  ci95_low: number;
  ci95_high: number;
  t: number;
  /** n - 1 when paired; Welch–Satterthwaite (NaN when degenerate, as in WelchComparison) when not. */
  df: number;
  p: number;
}

/**
 * Ratio comparison of B against A (all values > 0). 'paired' (run i of each sharing a seed):
 * scipy.stats.ttest_1samp(ln(b / a), 0). 'unpaired': scipy.stats.ttest_ind(ln b, ln a,
 * equal_var=False), for sides that do not share seeds.
 */
export function logRatioComparison(
  a: readonly number[],
  b: readonly number[],
  pairing: 'paired' | 'unpaired' = 'paired',
): LogRatioComparison {
  if (pairing === 'paired') checkPaired(a, b);
  else {
    checkValues(a, 'a');
    checkValues(b, 'b');
  }
  checkPositive(a, 'a');
  checkPositive(b, 'b');
  const common = {
    kind: 'log_ratio' as const,
    paired: pairing === 'paired',
    nA: a.length,
    nB: b.length,
    meanA: mean(a),
    meanB: mean(b),
    geoMeanA: Math.exp(mean(a.map(Math.log))),
    geoMeanB: Math.exp(mean(b.map(Math.log))),
  };
  if (pairing === 'paired') {
    const s = oneSample(b.map((bi, i) => Math.log(bi / a[i])));
    return {
      ...common,
      meanLogRatio: s.mean,
      ratio: Math.exp(s.mean),
      ci95_low: Math.exp(s.low),
      ci95_high: Math.exp(s.high),
      t: s.t,
      df: s.df,
      p: s.p,
    };
  }
  const w = welch(a.map(Math.log), b.map(Math.log));
  return {
    ...common,
    meanLogRatio: w.diff,
    ratio: Math.exp(w.diff),
    ci95_low: Math.exp(w.low),
    ci95_high: Math.exp(w.high),
    t: w.t,
    df: w.df,
    p: w.p,
  };
}

export type Comparison = PairedComparison | WelchComparison | LogRatioComparison;

/**
 * Holm's step-down adjustment for a family of m tests (e.g. one per metric or per sweep cell):
 * sort p ascending, adjusted_(k) = max over j <= k of min(1, (m - j) p_(j)) (j from 0), returned
 * in the input order. Rejecting where adjusted < alpha keeps the chance of any false "B better"
 * in the family below alpha. Equal p-values keep their input order (the result is the same either
 * way). A NaN p (an undefined test) stays NaN, still counts in m (dropping it would make the others
 * look stronger) and is placed last, where it cannot lower anything. Throws on p outside [0, 1].
 */
export function holm(pValues: readonly number[]): number[] {
  pValues.forEach((p, i) => {
    if (!Number.isNaN(p) && !(p >= 0 && p <= 1)) throw new RangeError(`holm: p[${i}] = ${p} is not a probability`);
  });
  const m = pValues.length;
  const key = (p: number) => (Number.isNaN(p) ? Infinity : p);
  const order = pValues.map((_, i) => i).sort((i, j) => key(pValues[i]) - key(pValues[j]) || i - j);
  const adjusted = new Array<number>(m);
  let running = 0;
  order.forEach((idx, j) => {
    const p = pValues[idx];
    if (Number.isNaN(p)) {
      adjusted[idx] = NaN;
      return;
    }
    running = Math.max(running, Math.min(1, (m - j) * p));
    adjusted[idx] = running;
  });
  return adjusted;
}

export type Verdict = 'B better' | 'A better' | 'no significant difference';

/**
 * The call a table prints for one comparison: B better / A better when p < alpha (which side is
 * better follows the sign of the difference, or of ln ratio, and `higherIsBetter`), else no
 * significant difference. `text` is one line with the p-value and n, and says when the t-test was
 * degenerate: `no significant difference (p = 0.21, n = 5)`, `B better (p = 0.00043, n = 5)`,
 * `B better (p = 0: no spread, t-test degenerate; n = 3)`, `no significant difference (p undefined: n = 1)`.
 */
export function verdict(
  c: Comparison,
  higherIsBetter: boolean,
  alpha = 0.05,
  /** What the p-value is called in `text`: `p`, or `Holm p` when `c.p` is an adjusted one. */
  pName = 'p',
): { verdict: Verdict; text: string } {
  const effect = c.kind === 'log_ratio' ? c.meanLogRatio : c.meanDiff;
  const n =
    c.kind === 'paired' ? `n = ${c.n}` : c.kind === 'log_ratio' && c.paired ? `n = ${c.nA}` : `n = ${c.nA} vs ${c.nB}`;
  const significant = c.p < alpha && effect !== 0;
  const v: Verdict = !significant
    ? 'no significant difference'
    : effect > 0 === higherIsBetter
      ? 'B better'
      : 'A better';
  let detail: string;
  if (Number.isNaN(c.p)) {
    const tooFew = c.kind === 'paired' ? c.n < 2 : c.kind === 'log_ratio' && c.paired ? c.nA < 2 : c.nA < 2 || c.nB < 2;
    detail = tooFew ? `${pName} undefined: ${n}` : `${pName} undefined: no spread and no difference; ${n}`;
  } else if (!Number.isFinite(c.t)) {
    detail = `${pName} = ${formatP(c.p)}: no spread, t-test degenerate; ${n}`;
  } else {
    detail = `${pName} = ${formatP(c.p)}, ${n}`;
  }
  return { verdict: v, text: `${v} (${detail})` };
}

/**
 * The interval for the mean difference of a paired or Welch comparison at another confidence level
 * than 95 % (scipy's `.confidence_interval(confidence)`): e.g. Bonferroni's 1 - 0.05 / m when one
 * decision rests on m intervals at once. At 0.95 it is the comparison's own ci95.
 */
export function differenceInterval(c: PairedComparison | WelchComparison, confidence: number): [number, number] {
  if (!(confidence > 0 && confidence < 1)) throw new RangeError(`confidence ${confidence} is not in (0, 1)`);
  let se: number;
  let df: number;
  if (c.kind === 'paired') {
    se = c.sdDiff / Math.sqrt(c.n);
    df = c.df;
  } else {
    se = Math.sqrt(c.sdA ** 2 / c.nA + c.sdB ** 2 / c.nB);
    df = Number.isNaN(c.df) ? 1 : c.df; // as welch(): SciPy's stand-in when the df is undefined
  }
  const half = tQuantile(0.5 + confidence / 2, df) * se;
  return [c.meanDiff - half, c.meanDiff + half];
}

/** A p-value for a table: two significant digits (0.21, 0.018, 0.00043), exponent below 1e-4 (1.1e-5); 0 as 0. */
export function formatP(p: number): string {
  if (Number.isNaN(p)) return 'NaN';
  if (p === 0) return '0';
  return p >= 1e-4 ? String(Number(p.toPrecision(2))) : p.toExponential(1);
}

// --- internals ---

function mean(xs: readonly number[]): number {
  let sum = 0;
  for (const x of xs) sum += x;
  return sum / xs.length;
}

/** Sample standard deviation, two-pass (as numpy's std(ddof=1)); NaN for one value. */
function sampleSd(xs: readonly number[], m: number): number {
  if (xs.length < 2) return NaN;
  let ss = 0;
  for (const x of xs) ss += (x - m) ** 2;
  return Math.sqrt(ss / (xs.length - 1));
}

interface OneSample {
  n: number;
  mean: number;
  sd: number;
  t: number;
  df: number;
  p: number;
  low: number;
  high: number;
  halfWidth: number;
}

/** scipy.stats.ttest_1samp(x, 0) with its 95 % interval; the degenerate cases fall out of IEEE arithmetic as in SciPy. */
function oneSample(x: readonly number[]): OneSample {
  const n = x.length;
  const m = mean(x);
  const sd = sampleSd(x, m);
  const se = sd / Math.sqrt(n);
  const df = n - 1;
  const t = m / se; // +-Infinity when sd = 0 and m != 0, NaN for 0 / 0 or n = 1
  const halfWidth = tQuantile(0.5 + CONFIDENCE / 2, df) * se; // NaN for df = 0
  return { n, mean: m, sd, t, df, p: twoSidedP(t, df), low: m - halfWidth, high: m + halfWidth, halfWidth };
}

interface Welch {
  meanA: number;
  meanB: number;
  sdA: number;
  sdB: number;
  diff: number;
  t: number;
  df: number;
  p: number;
  low: number;
  high: number;
}

/** scipy.stats.ttest_ind(b, a, equal_var=False) with its 95 % interval. */
function welch(a: readonly number[], b: readonly number[]): Welch {
  const meanA = mean(a);
  const meanB = mean(b);
  const sdA = sampleSd(a, meanA);
  const sdB = sampleSd(b, meanB);
  const vA = sdA ** 2 / a.length;
  const vB = sdB ** 2 / b.length;
  const se = Math.sqrt(vA + vB);
  const df = (vA + vB) ** 2 / (vA ** 2 / (a.length - 1) + vB ** 2 / (b.length - 1));
  // SciPy: "if df is undefined, variances are zero ... it doesn't matter what df is as long as it's
  // not NaN" and uses 1. That gives p = 0 for t = +-Infinity and a zero-width interval; the df
  // reported stays NaN.
  const dfTest = Number.isNaN(df) ? 1 : df;
  const diff = meanB - meanA;
  const t = diff / se;
  const halfWidth = tQuantile(0.5 + CONFIDENCE / 2, dfTest) * se;
  return {
    meanA,
    meanB,
    sdA,
    sdB,
    diff,
    t,
    df,
    p: twoSidedP(t, dfTest),
    low: diff - halfWidth,
    high: diff + halfWidth,
  };
}

/**
 * Exact sign-flip permutation p on |sum(d)| (equivalently |mean(d)|) over all 2^n sign patterns.
 * Sums that equal the observed one in exact arithmetic can differ in the last bits when added in
 * another order, so "at least as extreme" allows a rounding margin of 8 n eps sum|d|.
 */
function signFlipP(d: readonly number[]): number | null {
  const n = d.length;
  if (n > SIGN_FLIP_MAX_N) return null;
  let observed = 0;
  let scale = 0;
  for (const x of d) {
    observed += x;
    scale += Math.abs(x);
  }
  const threshold = Math.abs(observed) - 8 * n * Number.EPSILON * scale;
  const patterns = 2 ** n;
  let extreme = 0;
  for (let mask = 0; mask < patterns; mask++) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += mask & (1 << i) ? -d[i] : d[i];
    if (Math.abs(sum) >= threshold) extreme++;
  }
  return extreme / patterns;
}

/**
 * Exact two-sided Wilcoxon signed-rank p for differences with no zeros and no ties in |d|:
 * 2 P(W <= min(R+, R-)), capped at 1, where W is the sum of a random subset of the ranks 1..n.
 * The distribution is counted by dynamic programming over rank sums.
 */
function wilcoxonP(d: readonly number[]): number | null {
  const n = d.length;
  if (n === 0 || n > WILCOXON_MAX_N || d.some((x) => x === 0)) return null;
  const order = d.map((_, i) => i).sort((i, j) => Math.abs(d[i]) - Math.abs(d[j]));
  for (let k = 1; k < n; k++) if (Math.abs(d[order[k]]) === Math.abs(d[order[k - 1]])) return null;
  let rPlus = 0;
  order.forEach((idx, k) => {
    if (d[idx] > 0) rPlus += k + 1;
  });
  const total = (n * (n + 1)) / 2;
  const stat = Math.min(rPlus, total - rPlus);
  // counts[s] = number of subsets of {1..k} with rank sum s; exact integers up to 2^50 < 2^53.
  let counts = new Array<number>(total + 1).fill(0);
  counts[0] = 1;
  for (let k = 1; k <= n; k++) {
    const next = counts.slice();
    for (let s = k; s <= total; s++) next[s] += counts[s - k];
    counts = next;
  }
  let below = 0;
  for (let s = 0; s <= stat; s++) below += counts[s];
  return Math.min(1, (2 * below) / 2 ** n);
}

function checkValues(xs: readonly number[], side: string): void {
  if (xs.length === 0) throw new RangeError(`${side}: no values`);
  xs.forEach((x, i) => {
    if (!Number.isFinite(x))
      throw new RangeError(
        `${side}[${i}] = ${x}: every value must be finite (a diverged or unfinished run has to be handled before the comparison)`,
      );
  });
}

function checkPaired(a: readonly number[], b: readonly number[]): void {
  checkValues(a, 'a');
  checkValues(b, 'b');
  if (a.length !== b.length) throw new RangeError(`paired comparison needs one b per a: ${a.length} a, ${b.length} b`);
}

function checkPositive(xs: readonly number[], side: string): void {
  xs.forEach((x, i) => {
    if (!(x > 0)) throw new RangeError(`${side}[${i}] = ${x}: a ratio comparison needs values > 0`);
  });
}
