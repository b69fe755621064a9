import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import {
  describeSample,
  differenceInterval,
  formatP,
  holm,
  logRatioComparison,
  pairedComparison,
  tCdf,
  tQuantile,
  verdict,
  welchComparison,
} from '../src/analyze/significance.js';
import { ROOT } from './helpers.js';

/** The project's SciPy reference, beside the repository (`../shared/reference/`) where it is checked out in the workplace. */
const SHARED_REFERENCE = path.join(ROOT, '..', 'shared', 'reference', 'stats-vectors.json');
/** A copy in the repository, so that a clone anywhere (CI, a temp dir) tests against the same numbers. */
const VENDORED_REFERENCE = path.join(ROOT, 'test', 'fixtures', 'stats-vectors.json');

interface PairedCase {
  kind: 'paired';
  name: string;
  a: number[];
  b: number[];
  n: number;
  mean_diff: number;
  sd_diff: number;
  t: number;
  df: number;
  p_t: number;
  ci95_low: number;
  ci95_high: number;
  p_signflip_exact: number;
  p_wilcoxon_exact: number;
}
interface WelchCase {
  kind: 'welch';
  name: string;
  a: number[];
  b: number[];
  mean_diff: number;
  t: number;
  df: number;
  p_t: number;
  ci95_low: number;
  ci95_high: number;
}
interface LogRatioCase {
  kind: 'log_ratio';
  name: string;
  a: number[];
  b: number[];
  geo_mean_ratio: number;
  ci95_low: number;
  ci95_high: number;
  p_t: number;
  df: number;
}
interface Reference {
  cases: (PairedCase | WelchCase | LogRatioCase)[];
  t_quantiles: { df: number; q: number; t: number }[];
  holm: { p: number[]; adjusted: number[] };
}

/** The shared reference when it is there, else the repository's copy (checked equal below). */
const reference = JSON.parse(
  fs.readFileSync(fs.existsSync(SHARED_REFERENCE) ? SHARED_REFERENCE : VENDORED_REFERENCE, 'utf8'),
) as Reference;

/** Relative tolerance against SciPy (float64 both sides; observed errors are ~1e-15). */
const TOL = 1e-10;

/**
 * Checks |actual - expected| <= TOL * |expected| for each named quantity (none of the reference's
 * expected values is 0) and returns a `name rel-error` line for the test's diagnostics.
 */
function closeAll(checks: [string, number, number][], where: string): string {
  return checks
    .map(([what, actual, expected]) => {
      assert.ok(
        expected !== 0 && Number.isFinite(expected),
        `${where} ${what}: expected ${expected} is not usable for a relative check`,
      );
      const rel = Math.abs(actual - expected) / Math.abs(expected);
      assert.ok(rel <= TOL, `${where} ${what}: ${actual} vs SciPy ${expected} (relative error ${rel})`);
      return `${what} ${rel.toExponential(1)}`;
    })
    .join(', ');
}

describe('significance against the SciPy float64 reference', () => {
  it('the repository copy of the reference equals the shared one (where the shared one is present)', (t) => {
    if (!fs.existsSync(SHARED_REFERENCE))
      return t.skip(`${SHARED_REFERENCE} is not here; the tests use ${VENDORED_REFERENCE}`);
    assert.equal(fs.readFileSync(VENDORED_REFERENCE, 'utf8'), fs.readFileSync(SHARED_REFERENCE, 'utf8'));
  });

  it('the reference has every kind of case', () => {
    const kinds = new Set(reference.cases.map((c) => c.kind));
    assert.deepEqual([...kinds].sort(), ['log_ratio', 'paired', 'welch']);
    assert.ok(reference.t_quantiles.length > 0 && reference.holm.p.length > 0);
  });

  for (const c of reference.cases) {
    if (c.kind === 'paired') {
      it(`${c.name}: ttest_rel(b, a), its interval, sign-flip and Wilcoxon p`, (t) => {
        const r = pairedComparison(c.a, c.b);
        assert.equal(r.n, c.n);
        assert.equal(r.df, c.df);
        t.diagnostic(
          closeAll(
            [
              ['mean_diff', r.meanDiff, c.mean_diff],
              ['sd_diff', r.sdDiff, c.sd_diff],
              ['t', r.t, c.t],
              ['p_t', r.p, c.p_t],
              ['ci95_low', r.ci95_low, c.ci95_low],
              ['ci95_high', r.ci95_high, c.ci95_high],
            ],
            c.name,
          ),
        );
        // Counts over 2^n patterns: exact binary fractions on both sides.
        assert.equal(r.pSignFlip, c.p_signflip_exact, `${c.name} p_signflip_exact`);
        assert.equal(r.pWilcoxon, c.p_wilcoxon_exact, `${c.name} p_wilcoxon_exact`);
        assert.ok(Math.abs(r.meanA - mean(c.a)) === 0 && Math.abs(r.meanB - mean(c.b)) === 0);
      });
    } else if (c.kind === 'welch') {
      it(`${c.name}: ttest_ind(b, a, equal_var=False) and its interval`, (t) => {
        const r = welchComparison(c.a, c.b);
        assert.equal(r.nA, c.a.length);
        assert.equal(r.nB, c.b.length);
        t.diagnostic(
          closeAll(
            [
              ['mean_diff', r.meanDiff, c.mean_diff],
              ['t', r.t, c.t],
              ['df', r.df, c.df],
              ['p_t', r.p, c.p_t],
              ['ci95_low', r.ci95_low, c.ci95_low],
              ['ci95_high', r.ci95_high, c.ci95_high],
            ],
            c.name,
          ),
        );
      });
    } else {
      it(`${c.name}: ttest_1samp(ln(b / a), 0), ratio exp(mean) and interval exp(low), exp(high)`, (t) => {
        const r = logRatioComparison(c.a, c.b);
        assert.equal(r.paired, true);
        assert.equal(r.df, c.df);
        t.diagnostic(
          closeAll(
            [
              ['geo_mean_ratio', r.ratio, c.geo_mean_ratio],
              ['ci95_low', r.ci95_low, c.ci95_low],
              ['ci95_high', r.ci95_high, c.ci95_high],
              ['p_t', r.p, c.p_t],
            ],
            c.name,
          ),
        );
        // The geometric-mean ratio of the sides is the geometric mean of the per-seed ratios.
        assert.ok(Math.abs(r.geoMeanB / r.geoMeanA - r.ratio) <= 1e-12 * r.ratio);
      });
    }
  }

  it('t quantiles: tQuantile(q, df) for every (df, q) in t_quantiles, and tCdf inverts it', (t) => {
    const checks: [string, number, number][] = [];
    for (const { df, q, t: expected } of reference.t_quantiles) {
      checks.push([`t(${q}, ${df})`, tQuantile(q, df), expected]);
      checks.push([`cdf(t(${q}, ${df}))`, tCdf(expected, df), q]);
    }
    t.diagnostic(closeAll(checks, 't_quantiles'));
  });

  it('holm: the reference family, adjusted in input order', (t) => {
    const adjusted = holm(reference.holm.p);
    assert.equal(adjusted.length, reference.holm.adjusted.length);
    t.diagnostic(
      closeAll(
        adjusted.map((v, i) => [`adjusted[${i}]`, v, reference.holm.adjusted[i]]),
        'holm',
      ),
    );
  });
});

/**
 * Further SciPy values for what the shared reference does not cover, computed with SciPy 1.17.1 /
 * NumPy 2.4.6 (float64) by the calls named in each test.
 */
describe('significance against further SciPy values', () => {
  const byName = (name: string) => {
    const c = reference.cases.find((k) => k.name === name);
    assert.ok(c, `no case ${name} in the reference`);
    return c;
  };

  it('unpaired log ratio = ttest_ind(ln b, ln a, equal_var=False) on the log_ratio cases', () => {
    // name: [ratio, exp(ci.low), exp(ci.high), p, df]
    const scipy: Record<string, number[]> = {
      'fluct-ratio-n8': [
        1.5429104531952662, 1.1508696328231467, 2.0684989843198363, 0.008000736017683084, 10.144954845905787,
      ],
      'steps-ratio-n5': [
        0.200866425796651, 0.15004390684965105, 0.2689034287327033, 1.6343839976014292e-6, 7.8356983187074,
      ],
    };
    for (const [name, [ratio, low, high, p, df]] of Object.entries(scipy)) {
      const c = byName(name);
      const r = logRatioComparison(c.a, c.b, 'unpaired');
      assert.equal(r.paired, false);
      closeAll(
        [
          ['ratio', r.ratio, ratio],
          ['ci95_low', r.ci95_low, low],
          ['ci95_high', r.ci95_high, high],
          ['p', r.p, p],
          ['df', r.df, df],
        ],
        `${name} unpaired`,
      );
    }
  });

  it('describeSample = mean, std(ddof=1) and ttest_1samp(x, 0).confidence_interval(0.95)', () => {
    const s = describeSample(byName('test-acc-n5').b);
    assert.equal(s.n, 5);
    closeAll(
      [
        ['mean', s.mean, 0.9530385150143867],
        ['std', s.std, 0.005154945645639444],
        ['ci95_low', s.ci95_low, 0.946637804593499],
        ['ci95_high', s.ci95_high, 0.9594392254352745],
        ['halfWidth', s.halfWidth, (0.9594392254352745 - 0.946637804593499) / 2],
      ],
      'describeSample',
    );
  });

  it('n = 2 paired: ttest_rel([0.91, 0.95], [0.90, 0.92]); wilcoxon exact p = 0.5; sign-flip p = 0.5', () => {
    const r = pairedComparison([0.9, 0.92], [0.91, 0.95]);
    assert.equal(r.df, 1);
    closeAll(
      [
        ['t', r.t, 2.0000000000000058],
        ['p', r.p, 0.2951672353008658],
        ['ci95_low', r.ci95_low, -0.10706204736174638],
        ['ci95_high', r.ci95_high, 0.1470620473617463],
      ],
      'n = 2',
    );
    assert.equal(r.pWilcoxon, 0.5);
    assert.equal(r.pSignFlip, 0.5);
  });

  it('Welch with one constant side: ttest_ind([0.93] * 3, [0.90, 0.92, 0.91, 0.95], equal_var=False), df = 3', () => {
    const r = welchComparison([0.9, 0.92, 0.91, 0.95], [0.93, 0.93, 0.93]);
    assert.equal(r.sdB, 0);
    closeAll(
      [
        ['t', r.t, 0.925820099772564],
        ['p', r.p, 0.4228262617720969],
        ['df', r.df, 3],
        ['ci95_low', r.ci95_low, -0.024374348818582914],
        ['ci95_high', r.ci95_high, 0.044374348818583154],
      ],
      'welch constant side',
    );
  });
});

describe('significance on degenerate input', () => {
  it('n = 1: means given, spread, t, p and interval NaN (as SciPy); verdict says p is undefined', () => {
    const s = describeSample([0.93]);
    assert.equal(s.n, 1);
    assert.equal(s.mean, 0.93);
    for (const v of [s.std, s.ci95_low, s.ci95_high, s.halfWidth]) assert.ok(Number.isNaN(v));
    const r = pairedComparison([0.9], [0.95]);
    assert.equal(r.df, 0);
    assert.ok(Math.abs(r.meanDiff - 0.05) < 1e-15);
    for (const v of [r.sdDiff, r.t, r.p, r.ci95_low, r.ci95_high]) assert.ok(Number.isNaN(v));
    assert.equal(r.pSignFlip, 1);
    assert.equal(r.pWilcoxon, 1);
    assert.deepEqual(verdict(r, true), {
      verdict: 'no significant difference',
      text: 'no significant difference (p undefined: n = 1)',
    });
    const w = welchComparison([0.9], [0.95, 0.96, 0.94]);
    for (const v of [w.t, w.df, w.p, w.ci95_low, w.ci95_high]) assert.ok(Number.isNaN(v));
    assert.equal(verdict(w, true).text, 'no significant difference (p undefined: n = 1 vs 3)');
  });

  it('zero variance, nonzero difference: t = Infinity, p = 0, zero-width interval (as SciPy); the verdict flags it', () => {
    const r = pairedComparison([1, 2, 3], [2, 3, 4]);
    assert.equal(r.sdDiff, 0);
    assert.equal(r.t, Infinity);
    assert.equal(r.p, 0);
    assert.equal(r.ci95_low, 1);
    assert.equal(r.ci95_high, 1);
    assert.equal(r.pSignFlip, 0.25, 'the sign-flip p cannot go below 2 / 2^n');
    assert.equal(r.pWilcoxon, null, 'equal |d| are ties');
    assert.deepEqual(verdict(r, true), {
      verdict: 'B better',
      text: 'B better (p = 0: no spread, t-test degenerate; n = 3)',
    });
    assert.equal(verdict(r, false).verdict, 'A better');
    // Welch with both sides constant: SciPy's df placeholder 1 gives p = 0 and [diff, diff]; df reported NaN.
    const w = welchComparison([1, 1], [2, 2, 2]);
    assert.equal(w.t, Infinity);
    assert.equal(w.p, 0);
    assert.ok(Number.isNaN(w.df));
    assert.deepEqual([w.ci95_low, w.ci95_high], [1, 1]);
    // A constant ratio (both sides hit the target at the same eval steps in every seed).
    const lr = logRatioComparison([2000, 2000, 2000], [500, 500, 500]);
    assert.equal(lr.ratio, 0.25);
    assert.equal(lr.p, 0);
    assert.equal(verdict(lr, false).verdict, 'B better');
  });

  it('zero variance, zero difference: t and p NaN, interval [0, 0] (as SciPy); no significant difference', () => {
    const r = pairedComparison([0.9, 0.91, 0.92], [0.9, 0.91, 0.92]);
    assert.ok(Number.isNaN(r.t) && Number.isNaN(r.p));
    assert.deepEqual([r.ci95_low, r.ci95_high], [0, 0]);
    assert.equal(r.pSignFlip, 1);
    assert.equal(r.pWilcoxon, null, 'zero differences');
    assert.equal(verdict(r, true).text, 'no significant difference (p undefined: no spread and no difference; n = 3)');
    const w = welchComparison([1, 1], [1, 1, 1]);
    assert.ok(Number.isNaN(w.t) && Number.isNaN(w.p));
    assert.deepEqual([w.ci95_low, w.ci95_high], [0, 0]);
  });

  it('sign-flip p counts ties as extreme, including sums that tie only up to rounding', () => {
    // d = [1, 1, -1, 1]: sum 2; |sum| >= 2 for 10 of 16 patterns (4 plus-one, 1 all-plus, and their mirrors).
    assert.equal(pairedComparison([0, 0, 0, 0], [1, 1, -1, 1]).pSignFlip, 10 / 16);
    // Decimal differences tie in exact arithmetic but not always in float64: d = [0.3, -0.7, -0.1,
    // 0.1] has |sum| 0.4, and in exact arithmetic 14 of the 16 patterns reach it (only the two with
    // sum +-0.2 do not). Compared naively in float64, two of the tying patterns come out a few ulps
    // below the observed sum and would be missed (12 / 16).
    assert.equal(pairedComparison([0, 0, 0, 0], [0.3, -0.7, -0.1, 0.1]).pSignFlip, 14 / 16);
    // Integer-valued steps (exact sums) with ties: d = [200, 200, -200, 400, 200], |sum| 800,
    // against a brute-force count.
    const d = [200, 200, -200, 400, 200];
    let extreme = 0;
    for (let mask = 0; mask < 32; mask++) {
      const sum = d.reduce((acc, x, i) => acc + (mask & (1 << i) ? -x : x), 0);
      if (Math.abs(sum) >= 800) extreme++;
    }
    assert.equal(pairedComparison([0, 0, 0, 0, 0], d).pSignFlip, extreme / 32);
    assert.equal(
      pairedComparison(new Array<number>(13).fill(0), new Array<number>(13).fill(1)).pSignFlip,
      null,
      'above 12 pairs',
    );
  });

  it('rejects empty groups, unequal pairs, non-finite values and non-positive ratios', () => {
    assert.throws(() => describeSample([]), /values: no values/);
    assert.throws(() => pairedComparison([1, 2], [1]), /one b per a: 2 a, 1 b/);
    assert.throws(() => pairedComparison([1, NaN], [1, 2]), /a\[1\] = NaN: every value must be finite/);
    assert.throws(() => welchComparison([1, 2], [1, Infinity]), /b\[1\] = Infinity/);
    assert.throws(() => logRatioComparison([1, 2], [1, 0]), /b\[1\] = 0: a ratio comparison needs values > 0/);
    assert.throws(() => logRatioComparison([-1, 2], [1, 3], 'unpaired'), /a\[0\] = -1/);
  });
});

describe('holm, verdict and formatP', () => {
  it('holm: monotone in the sorted order, capped at 1, NaN kept and counted in m', () => {
    assert.deepEqual(holm([]), []);
    assert.deepEqual(holm([0.5, 0.3]), [0.6, 0.6]);
    assert.deepEqual(holm([0.02, 0.02, 0.02]), [0.06, 0.06, 0.06]);
    const withNaN = holm([0.01, NaN, 0.02]);
    assert.ok(Number.isNaN(withNaN[1]));
    assert.deepEqual([withNaN[0], withNaN[2]], [0.03, 0.04]);
    assert.throws(() => holm([0.1, 1.2]), /p\[1\] = 1.2 is not a probability/);
  });

  it('verdict: direction from the sign and higherIsBetter, p from the test, n in the text', () => {
    const ref = reference.cases.find((c) => c.name === 'test-acc-n10') as PairedCase;
    assert.deepEqual(verdict(pairedComparison(ref.a, ref.b), true), {
      verdict: 'B better',
      text: 'B better (p = 1.1e-5, n = 10)',
    });
    assert.equal(verdict(pairedComparison(ref.a, ref.b), false).verdict, 'A better');
    const none = reference.cases.find((c) => c.name === 'no-difference-n6') as PairedCase;
    assert.deepEqual(verdict(pairedComparison(none.a, none.b), true), {
      verdict: 'no significant difference',
      text: 'no significant difference (p = 0.44, n = 6)',
    });
    const w = reference.cases.find((c) => c.name === 'welch-5-vs-7') as WelchCase;
    assert.equal(verdict(welchComparison(w.a, w.b), false).text, 'no significant difference (p = 0.11, n = 5 vs 7)');
    // Steps to target: fewer is better, BN needs a fifth of the steps.
    const steps = reference.cases.find((c) => c.name === 'steps-ratio-n5') as LogRatioCase;
    assert.equal(verdict(logRatioComparison(steps.a, steps.b), false).text, 'B better (p = 0.00043, n = 5)');
    assert.equal(
      verdict(logRatioComparison(steps.a, steps.b, 'unpaired'), false).text,
      'B better (p = 1.6e-6, n = 5 vs 5)',
    );
    // alpha is a parameter: p = 0.058 passes at 0.1, not at 0.05.
    const n5 = reference.cases.find((c) => c.name === 'test-acc-n5') as PairedCase;
    assert.equal(verdict(pairedComparison(n5.a, n5.b), true).verdict, 'no significant difference');
    assert.equal(verdict(pairedComparison(n5.a, n5.b), true, 0.1).verdict, 'B better');
  });

  it('formatP: two significant digits, exponent below 1e-4', () => {
    assert.deepEqual([0.21, 0.2149, 0.018, 0.00043, 0.0001, 0.000011, 1.0926e-5, 1, 0, NaN].map(formatP), [
      '0.21',
      '0.21',
      '0.018',
      '0.00043',
      '0.0001',
      '1.1e-5',
      '1.1e-5',
      '1',
      '0',
      'NaN',
    ]);
  });
});

function mean(xs: number[]): number {
  return xs.reduce((s, x) => s + x, 0) / xs.length;
}

describe('differenceInterval: the mean difference at another confidence level', () => {
  it('reproduces every reference interval at 0.95, and SciPy at 0.99', (t) => {
    for (const c of reference.cases) {
      if (c.kind === 'log_ratio') continue;
      const r = c.kind === 'paired' ? pairedComparison(c.a, c.b) : welchComparison(c.a, c.b);
      const [lo, hi] = differenceInterval(r, 0.95);
      assert.ok(Math.abs(lo - r.ci95_low) <= 1e-12 * Math.max(1, Math.abs(lo)), `${c.name} low`);
      assert.ok(Math.abs(hi - r.ci95_high) <= 1e-12 * Math.max(1, Math.abs(hi)), `${c.name} high`);
    }
    const byName = (name: string) => reference.cases.find((k) => k.name === name)!;
    // SciPy 1.17.1: scipy.stats.ttest_rel(b, a).confidence_interval(0.99) on test-acc-n5, and
    // scipy.stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.99) on welch-5-vs-7.
    const paired = byName('test-acc-n5');
    const welch = byName('welch-5-vs-7');
    t.diagnostic(
      closeAll(
        [
          [
            'paired 0.99 low',
            differenceInterval(pairedComparison(paired.a, paired.b), 0.99)[0],
            -0.0024900297479440855,
          ],
          ['paired 0.99 high', differenceInterval(pairedComparison(paired.a, paired.b), 0.99)[1], 0.009113220034527376],
          ['welch 0.99 low', differenceInterval(welchComparison(welch.a, welch.b), 0.99)[0], -0.08783765562302631],
          ['welch 0.99 high', differenceInterval(welchComparison(welch.a, welch.b), 0.99)[1], 0.028434523122297328],
        ],
        'differenceInterval',
      ),
    );
    assert.throws(() => differenceInterval(pairedComparison(paired.a, paired.b), 1), RangeError);
  });
});
