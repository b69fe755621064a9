import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { PNG } from 'pngjs';
import { bandRows, chartSpec, renderPng, renderSvg } from '../src/analyze/chart.js';
import { compareGroups, worseGroups, type GroupComparison, type MeasureComparison } from '../src/analyze/compare.js';
import { diffCsv, diffSweeps, diffWithin, formatDiff } from '../src/analyze/diff.js';
import { formatGroupListing, listGroups } from '../src/analyze/ls.js';
import { buildReport, reportMarkdown } from '../src/analyze/report.js';
import { groupLabels, groupReplicates, groupValue } from '../src/analyze/replicates.js';
import { loadSweep, type LoadedRun, type LoadedSweep } from '../src/analyze/results.js';
import { holm } from '../src/analyze/significance.js';
import { sweepCells, sweepChartSpec, sweepPoints } from '../src/analyze/sweep-chart.js';
import { bnx, ROOT, tmpDir } from './helpers.js';

// Results written by bnx itself (see test/fixtures/analyze-spec.yaml for the command lines):
//   quick:   ./bin/bnx.js run experiments/quick.yaml --seeds 5 --out test/fixtures/results-seeds
//            (the same runs as --set seed=1,2,3,4,5): 300 steps, 3 evaluations, BN vs none, seeds 1-5
//   fixture: ./bin/bnx.js run test/fixtures/analyze-spec.yaml --seeds 5 --out test/fixtures/results-seeds
//            400 steps, an evaluation every 20 (so the fluctuation is defined), BN vs none, seeds 1-5
const SEEDS = path.join(ROOT, 'test', 'fixtures', 'results-seeds');
const QUICK = path.join(SEEDS, 'quick');
const FIXTURE = path.join(SEEDS, 'fixture');

const measure = (c: GroupComparison, name: string): MeasureComparison => {
  const m = c.measures.find((x) => x.name === name);
  assert.ok(m, `no measure ${name}`);
  return m;
};

/** |actual - expected| <= tol, with a message naming the quantity. */
function close(actual: number | null, expected: number, tol: number, what: string): void {
  assert.ok(actual !== null, `${what}: null, expected ${expected}`);
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: ${actual} vs SciPy ${expected}`);
}

/** A copy of a sweep's runs with some fields changed (a second setting, other seeds, a diverged run). */
function variant(runs: LoadedRun[], change: (run: LoadedRun) => void): LoadedRun[] {
  return runs.map((r) => {
    const copy = structuredClone(r);
    change(copy);
    return copy;
  });
}

describe('replicates: bnx diff on seeds (the acceptance numbers against SciPy)', () => {
  it('quick.yaml with seeds 1-5: the test-accuracy comparison is ttest_rel(b, a) on the per-seed test accuracies of summary.csv', () => {
    // The per-seed test accuracies in test/fixtures/results-seeds/quick/summary.csv:
    const a = [0.956, 0.96, 0.962, 0.964, 0.96]; // norm=none, seeds 1-5
    const b = [0.958, 0.976, 0.974, 0.98, 0.974]; // norm=batch, seeds 1-5
    const summary = fs.readFileSync(path.join(QUICK, 'summary.csv'), 'utf8').trim().split('\n');
    const cols = summary[0].split(',');
    const acc = (norm: string, seed: number) =>
      Number(
        summary
          .slice(1)
          .map((l) => l.split(','))
          .find((r) => r[cols.indexOf('model.norm')] === norm && r[cols.indexOf('seed')] === String(seed))![
          cols.indexOf('test_acc')
        ],
      );
    assert.deepEqual(
      [1, 2, 3, 4, 5].map((s) => acc('none', s)),
      a,
    );
    assert.deepEqual(
      [1, 2, 3, 4, 5].map((s) => acc('batch', s)),
      b,
    );
    // SciPy 1.17.1: r = scipy.stats.ttest_rel(b, a); r.confidence_interval(0.95); the exact
    // sign-flip p by enumerating the 2^5 sign patterns of b - a.
    const scipy = {
      mean_diff: 0.01200000000000001,
      ci95_low: 0.004759916956912573,
      ci95_high: 0.01924008304308745,
      p: 0.010017375052780568,
      sign_flip: 0.0625,
    };
    const res = bnx(['diff', QUICK, '--json']);
    assert.equal(res.code, 0, res.stderr);
    const diff = JSON.parse(res.stdout) as { comparisons: GroupComparison[]; pairs: unknown[] };
    assert.equal(diff.pairs.length, 0, 'no seed-by-seed pages');
    assert.equal(diff.comparisons.length, 1, 'one comparison for the one setting');
    const m = measure(diff.comparisons[0], 'test_acc');
    assert.equal(m.design, 'paired');
    assert.equal(m.n_a, 5);
    assert.deepEqual(m.a.values, a);
    assert.deepEqual(m.b.values, b);
    close(m.estimate, scipy.mean_diff, 1e-4, 'mean difference');
    close(m.ci95_low, scipy.ci95_low, 1e-4, 'ci95_low');
    close(m.ci95_high, scipy.ci95_high, 1e-4, 'ci95_high');
    close(m.p, scipy.p, 1e-4, 'p');
    // Float64 on both sides: far closer than the acceptance's 1e-4.
    close(m.estimate, scipy.mean_diff, 1e-12, 'mean difference (1e-12)');
    close(m.p, scipy.p, 1e-12, 'p (1e-12)');
    assert.equal(m.p_sign_flip, scipy.sign_flip);
    assert.equal(m.verdict, 'B better');
    assert.equal(m.verdict_text, 'B better (p = 0.01, n = 5)');
  });

  it('the validation-loss fluctuation is a ratio: ttest_1samp(log(b / a), 0) and exp of its interval', () => {
    // Per-seed fluctuations recomputed from metrics.csv in Python (std, ddof=1, of the step-to-step
    // val_loss changes over the rows with step >= last step / 2), then
    // r = scipy.stats.ttest_1samp(numpy.log(b / a), 0); exp(mean), exp(r.confidence_interval(0.95)).
    const scipy = {
      ratio: 3.4390194124417994,
      low: 1.7452199449885661,
      high: 6.776712902641634,
      p: 0.007201352214464782,
    };
    const [none, batch] = groupReplicates(loadSweep(FIXTURE).runs);
    const c = compareGroups(none, batch);
    const m = measure(c, 'val_loss_fluctuation');
    assert.equal(m.scale, 'ratio');
    close(m.estimate, scipy.ratio, 1e-9, 'ratio');
    close(m.ci95_low, scipy.low, 1e-9, 'low');
    close(m.ci95_high, scipy.high, 1e-9, 'high');
    close(m.p, scipy.p, 1e-9, 'p');
    assert.equal(m.verdict, 'A better', 'BN fluctuates more: lower is better');
    assert.match(m.summary!, /B's is 3\.44x A's \(95% CI 1\.75x-6\.78x\)/);
  });

  it('sides without the same seeds are compared unpaired: ttest_ind(b, a, equal_var=False)', () => {
    const runs = loadSweep(FIXTURE).runs;
    const [none, batch] = groupReplicates(runs);
    // B's seeds made 11-15: the same numbers, no longer paired.
    const [shifted] = groupReplicates(
      variant(batch.runs, (r) => {
        r.record!.config.seed += 10;
        r.id = r.id.replace(/seed=(\d)/, (_m, s: string) => `seed=${Number(s) + 10}`);
      }),
    );
    const c = compareGroups(none, shifted);
    assert.equal(c.design, 'unpaired');
    assert.match(c.design_why, /A has seeds 1-5, B has seeds 11-15/);
    const m = measure(c, 'test_acc');
    // SciPy 1.17.1: scipy.stats.ttest_ind(b, a, equal_var=False) and its confidence_interval(0.95),
    // a = [0.81, 0.815, 0.795, 0.825, 0.815], b = [0.91, 0.89, 0.885, 0.885, 0.875].
    close(m.estimate, 0.07699999999999996, 1e-12, 'diff');
    close(m.ci95_low, 0.05943042523927366, 1e-9, 'low');
    close(m.ci95_high, 0.09456957476072625, 1e-9, 'high');
    close(m.p, 9.189565587225344e-6, 1e-12, 'p');
    close(m.df, 7.787428234947731, 1e-9, 'df');
    assert.equal(m.p_sign_flip, null, 'no sign-flip p without pairs');
    assert.equal(
      c.measures.some((x) => x.name.startsWith('match_')),
      false,
      'per-seed levels need pairs',
    );
  });

  it('a run without a value is counted, named and left out with its pair, never silently', () => {
    const runs = loadSweep(FIXTURE).runs;
    const diverged = variant(runs, (r) => {
      if (r.record!.config.model.norm === 'batch' && r.record!.config.seed === 3) {
        r.record!.status = 'diverged';
        r.record!.test = null;
        r.metrics = r.metrics.slice(0, 5).map((row) => ({ ...row, train_loss: NaN }));
      }
    });
    const [none, batch] = groupReplicates(diverged);
    const c = compareGroups(none, batch);
    const m = measure(c, 'test_acc');
    assert.equal(m.n_a, 4, 'seed 3 left out on both sides');
    assert.equal(m.b.values[2], null);
    assert.match(m.note!, /B: seed 3 has no value \(diverged or unfinished\)/);
    assert.match(formatDiff(diffWithin({ path: FIXTURE, kind: 'sweep', runs: diverged })), /test acc\s+4 of 5/);
    const listed = listGroups(diverged).find((g) => g.params['model.norm'] === 'batch')!;
    assert.equal(listed.values.test_acc.n, 4);
    assert.equal(listed.values.test_acc.runs, 5);
    assert.deepEqual(listed.values.test_acc.missing, [batch.runs[2].id]);
    assert.match(formatGroupListing([listed]), /\(4\/5\)/);
    assert.match(formatGroupListing([listed]), /4 completed, 1 diverged/);
    // --fail-if-worse: a B seed without the value where A's has one fails, as on single runs.
    const gate = worseGroups(c.measures.length > 0 ? [c] : [], 'test_acc', 0);
    assert.equal(gate.worse.length, 1);
    assert.match(gate.worse[0], /1 of B's 5 runs have no test_acc/);
  });

  it('several settings: one comparison each, p-values Holm-adjusted across them per measure, said where printed', () => {
    const runs = loadSweep(FIXTURE).runs;
    // A second learning rate: copies of the runs under train.lr 0.7 (their own replicate groups).
    const lr = variant(runs, (r) => {
      r.record!.config.train.lr = 0.7;
      r.record!.params['train.lr'] = 0.7;
      r.id = `lr=0.7_${r.id}`;
      r.path = `${r.path}-lr`;
    });
    for (const r of runs) r.record!.params['train.lr'] = 0.5;
    const sweep: LoadedSweep = { path: FIXTURE, kind: 'sweep', runs: [...runs, ...lr] };
    const diff = diffWithin(sweep);
    assert.equal(diff.comparisons.length, 2);
    assert.deepEqual(
      diff.comparisons.map((c) => c.label.split(':')[0]),
      ['lr=0.5', 'lr=0.7'],
    );
    const ps = diff.comparisons.map((c) => measure(c, 'test_acc').p!);
    const adjusted = holm(ps);
    diff.comparisons.forEach((c, i) => {
      const m = measure(c, 'test_acc');
      assert.equal(m.holm_m, 2);
      assert.equal(m.p_adjusted, adjusted[i]);
      assert.match(m.verdict_text, /Holm p over 2 settings = /);
    });
    assert.match(diff.multiple_comparisons!, /Holm's correction over the 2 settings/);
    const text = formatDiff(diff);
    assert.match(text, /p \(Holm, 2 settings\)/);
    assert.match(text, /2 settings compared: Holm's correction/);
    // The CSV carries the numbers, the adjusted p among them.
    const csv = diffCsv(diff);
    const header = csv.split('\n')[0].split(',');
    for (const col of [
      'n_a',
      'n_b',
      'std_a',
      'ci95_low',
      'ci95_high',
      'p',
      'p_adjusted',
      'holm_m',
      'p_sign_flip',
      'verdict',
    ])
      assert.ok(header.includes(col), `${col} in the CSV header`);
    const row = csv
      .split('\n')
      .map((l) => l.split(','))
      .find((r) => r[2] === 'value' && r[3] === 'test_acc')!;
    assert.equal(Number(row[header.indexOf('holm_m')]), 2);
    assert.ok(Math.abs(Number(row[header.indexOf('p_adjusted')]) - adjusted[0]) < 1e-8);
  });

  it('bnx diff SWEEP prints one comparison per setting, with the design, the interval and the sign-flip p', () => {
    const res = bnx(['diff', FIXTURE]);
    assert.equal(res.code, 0, res.stderr);
    assert.equal((res.stdout.match(/^== /gm) ?? []).length, 1, 'one page, not five');
    assert.match(res.stdout, /paired by seed: both sides have seeds 1-5/);
    assert.match(res.stdout, /mean curves: each metric's mean over the seeds/);
    assert.match(
      res.stdout,
      /test acc\s+5\s+0\.8120\s+0\.8890\s+\+0\.0770\s+\[\+0\.0548, \+0\.0992\]\s+0\.00065\s+0\.063\s+B better/,
    );
    assert.match(res.stdout, /steps to val_acc >= 0\.9000 .*only B reaches it \(5\/5 seeds; A 0\/5\)/);
    assert.match(res.stdout, /sign-flip p: exact permutation p/);
    // Two sweep folders: the groups are matched on the keys that vary inside them.
    const a = tmpDir();
    const b = tmpDir();
    for (const d of fs.readdirSync(FIXTURE)) {
      if (!d.startsWith('norm=')) continue;
      const dest = path.join(d.startsWith('norm=none') ? a : b, 'fixture', d);
      fs.cpSync(path.join(FIXTURE, d), dest, { recursive: true });
    }
    const two = diffSweeps(loadSweep(path.join(a, 'fixture')), loadSweep(path.join(b, 'fixture')));
    assert.equal(two.comparisons.length, 1);
    assert.deepEqual(two.comparisons[0].config, [{ key: 'model.norm', a: 'none', b: 'batch' }]);
    assert.equal(two.comparisons[0].design, 'paired');
  });

  it('bnx diff SWEEP --baseline KEY=VALUE compares every setting against that one (the sides swap, the numbers follow)', () => {
    // model.norm=batch as the baseline: A is BN, B no BN, so B - A is the default comparison negated.
    const res = bnx(['diff', FIXTURE, '--baseline', 'norm=batch']);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /^== norm=batch vs norm=none ==$/m);
    assert.match(
      res.stdout,
      /test acc\s+5\s+0\.8890\s+0\.8120\s+-0\.0770\s+\[-0\.0992, -0\.0548\]\s+0\.00065\s+0\.063\s+A better/,
    );
    // Several settings: the baseline's key (train.lr here) is what differs; every other key matches.
    const runs = loadSweep(FIXTURE).runs;
    const lr = variant(runs, (r) => {
      r.record!.config.train.lr = 0.7;
      r.record!.params['train.lr'] = 0.7;
      r.id = `lr=0.7_${r.id}`;
      r.path = `${r.path}-lr`;
    });
    const sweep: LoadedSweep = { path: FIXTURE, kind: 'sweep', runs: [...runs, ...lr] };
    const diff = diffWithin(sweep, { baseline: 'train.lr=0.5' });
    assert.equal(diff.comparisons.length, 2);
    for (const c of diff.comparisons) assert.deepEqual(c.config, [{ key: 'train.lr', a: 0.5, b: 0.7 }]);
    assert.deepEqual(diff.comparisons.map((c) => c.label.split(':')[0]).sort(), ['norm=batch', 'norm=none']);
    // A value is matched as a number (5e-1 is 0.5), and a leaf names its key when one key ends in it.
    assert.equal(diffWithin(sweep, { baseline: 'lr=5e-1' }).comparisons.length, 2);
    // Bad baselines: exit 2, one line naming the flag and what is allowed.
    for (const [arg, why] of [
      ['lr=9', /--baseline lr=9: no run has train\.lr=9 \(the runs have 0\.5\)/],
      ['eps=1', /"eps" is ambiguous \(model\.batch_norm\.eps, model\.layer_norm\.eps, model\.group_norm\.eps\)/],
      ['norm', /--baseline norm: expected key=value/],
      ['nothing=1', /no run has the configuration key "nothing"/],
    ] as const) {
      const bad = bnx(['diff', FIXTURE, '--baseline', arg]);
      assert.equal(bad.code, 2, bad.stderr);
      assert.match(bad.stderr, why);
      assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
    }
    const two = bnx(['diff', FIXTURE, FIXTURE, '--baseline', 'norm=none']);
    assert.equal(two.code, 2);
    assert.match(two.stderr, /is for one sweep/);
  });

  it('bnx report --baseline: the verdict table compares against that setting', async () => {
    const report = await buildReport(loadSweep(FIXTURE), { baseline: 'model.norm=batch' });
    assert.equal(report.comparisons.length, 1);
    const md = reportMarkdown(report, (n) => `r-${n}.svg`);
    assert.match(
      md,
      /\| test acc \| 5 \| 0\.8890 \| 0\.8120 \| -0\.0770 \| \[-0\.0992, -0\.0548\] \| 0\.00065 \| 0\.063 \| (.*) better \|/,
    );
    const res = bnx(['report', FIXTURE, '-o', path.join(tmpDir(), 'r.md'), '--baseline', 'norm=nope']);
    assert.equal(res.code, 2);
    assert.match(res.stderr, /no run has model\.norm=nope \(the runs have none, batch\)/);
  });

  it('--fail-if-worse on replicates fails only when B is significantly worse, and says why it passes otherwise', () => {
    const a = tmpDir();
    const b = tmpDir();
    for (const d of fs.readdirSync(FIXTURE)) {
      if (!d.startsWith('norm=')) continue;
      fs.cpSync(path.join(FIXTURE, d), path.join(d.startsWith('norm=batch') ? a : b, 'fixture', d), {
        recursive: true,
      });
    }
    // A = BN, B = no BN: B's test accuracy is lower by 0.077, 95% CI [-0.099, -0.055].
    const worse = bnx([
      'diff',
      path.join(a, 'fixture'),
      path.join(b, 'fixture'),
      '--fail-if-worse',
      '--metric',
      'test_acc',
    ]);
    assert.equal(worse.code, 1, worse.stderr);
    assert.match(
      worse.stderr,
      /bnx diff: worse: B's test_acc is significantly worse than A's: mean B - A -0\.0770, 95% interval \[-0\.0992, -0\.0548\], tolerance 0\.0000, n = 5 pairs/,
    );
    // A tolerance inside the interval: worse on average, not significantly beyond the tolerance.
    const tolerated = bnx([
      'diff',
      path.join(a, 'fixture'),
      path.join(b, 'fixture'),
      '--fail-if-worse',
      '--metric',
      'test_acc',
      '--tolerance',
      '0.06',
    ]);
    assert.equal(tolerated.code, 0, tolerated.stderr);
    assert.match(
      tolerated.stderr,
      /bnx diff: not failing: B's mean test_acc is worse than A's but not significantly beyond the tolerance/,
    );
    assert.equal(
      bnx(['diff', path.join(b, 'fixture'), path.join(a, 'fixture'), '--fail-if-worse', '--metric', 'test_acc']).code,
      0,
    );
  });
});

describe('replicates: bnx ls', () => {
  it('one row per replicate group with n = 5 (none, batch); --runs lists the ten runs', () => {
    const res = bnx(['ls', QUICK]);
    assert.equal(res.code, 0, res.stderr);
    const rows = res.stdout.split('\n').filter((l) => l.startsWith('quick '));
    assert.equal(rows.length, 2);
    assert.match(rows[0], /^quick\s+none\s+5\s+5 completed\s+300\s+0\.1010 ± 0\.0042/);
    assert.match(rows[1], /^quick\s+batch\s+5\s+5 completed/);
    assert.match(res.stdout, /±: half-width of the 95% t-interval of the mean over a group's seeds/);
    assert.match(res.stdout, /seeds: 1-5 in every group/);
    const runs = bnx(['ls', QUICK, '--runs']);
    assert.equal(runs.code, 0, runs.stderr);
    assert.equal(runs.stdout.split('\n').filter((l) => l.startsWith('quick ')).length, 10);
  });

  it('--json carries n, mean, std and the 95% interval of every column (scipy.stats.ttest_1samp(x, 0).confidence_interval)', () => {
    const res = bnx(['ls', QUICK, '--json']);
    assert.equal(res.code, 0, res.stderr);
    const groups = JSON.parse(res.stdout) as ReturnType<typeof listGroups>;
    assert.equal(groups.length, 2);
    const none = groups.find((g) => g.params['model.norm'] === 'none')!;
    assert.equal(none.n, 5);
    assert.deepEqual(none.seeds, [1, 2, 3, 4, 5]);
    assert.equal(none.runs.length, 5);
    const v = none.values.test_acc;
    // SciPy 1.17.1 / NumPy on a = [0.956, 0.96, 0.962, 0.964, 0.96]: a.mean(), a.std(ddof=1),
    // scipy.stats.ttest_1samp(a, 0).confidence_interval(0.95).
    close(v.mean, 0.9603999999999999, 1e-12, 'mean');
    close(v.std, 0.0029664793948382677, 1e-12, 'std');
    close(v.ci95_low, 0.9567166293340159, 1e-12, 'ci95_low');
    close(v.ci95_high, 0.9640833706659839, 1e-12, 'ci95_high');
    assert.equal(v.n, 5);
    assert.deepEqual(v.missing, []);
    // The quick spec evaluates 3 times: no fluctuation (it needs two changes in the last half), said as 0 of 5.
    assert.equal(none.values.val_loss_fluctuation.n, 0);
    assert.equal(none.values.val_loss_fluctuation.runs, 5);
    // --runs --json: the run listing as before.
    const runs = JSON.parse(bnx(['ls', QUICK, '--runs', '--json', '--sort=-test_acc']).stdout) as {
      test_acc: number;
    }[];
    assert.equal(runs.length, 10);
    assert.deepEqual(
      runs.map((r) => r.test_acc),
      [...runs.map((r) => r.test_acc)].sort((x, y) => y - x),
    );
  });

  it('groupValue: one value has no spread; a value missing in every run is 0 of n', () => {
    assert.deepEqual(groupValue([0.5], ['a']), {
      n: 1,
      runs: 1,
      mean: 0.5,
      std: null,
      ci95_low: null,
      ci95_high: null,
      half_width: null,
      missing: [],
    });
    const none = groupValue([null, NaN], ['a', 'b']);
    assert.equal(none.n, 0);
    assert.deepEqual(none.missing, ['a', 'b']);
  });
});

describe('replicates: bnx plot and report', () => {
  const runs = loadSweep(QUICK).runs;

  it('bnx plot results/quick: two mean lines with shaded 95% bands, labelled in the legend', async () => {
    const svg = await renderSvg(chartSpec(runs, { metrics: ['val_acc'], title: 'quick' }));
    assert.equal((svg.match(/aria-roledescription="line mark"/g) ?? []).length, 2, 'a mean line per group');
    assert.equal((svg.match(/aria-roledescription="area mark"/g) ?? []).length, 2, 'a band per group');
    // The legend's title is several lines (tspans): the key, what the line is, what the band is.
    for (const t of ['>none<', '>batch<', '>norm<', '>line: mean of 5 seeds<', '>band: 95% t-interval of the mean<'])
      assert.ok(svg.includes(t), `${t} in the SVG`);
    // The PNG shows the bands: pixels of BN's orange (#f58518) at the band's 22% opacity on white.
    const png = PNG.sync.read(await renderPng(svg, { scale: 1 }));
    let band = 0;
    for (let i = 0; i < png.data.length; i += 4) {
      const [r, g, b] = [png.data[i], png.data[i + 1], png.data[i + 2]];
      if (Math.abs(r - 253) <= 3 && Math.abs(g - 226) <= 4 && Math.abs(b - 204) <= 5) band++;
    }
    assert.ok(band > 2000, `${band} pale-orange band pixels`);
  });

  it('the band is the 95% t-interval by default; std, minmax and none; --runs adds every seed', async () => {
    const groups = groupReplicates(runs);
    const labels = groupLabels(groups);
    const at = (rows: ReturnType<typeof bandRows>, kind: string) =>
      rows.find((r) => r.kind === kind && r.series === labels[1] && r.x === 200)!;
    const values = groups[1].runs.map((r) => r.metrics.find((m) => m.step === 200)!.val_acc!);
    const ci = at(bandRows(groups, labels, runs, { metrics: ['val_acc'] }), 'band');
    const g = groupValue(values, values.map(String));
    assert.equal(ci.lo, g.ci95_low);
    assert.equal(ci.hi, g.ci95_high);
    const mm = at(bandRows(groups, labels, runs, { metrics: ['val_acc'], band: 'minmax' }), 'band');
    assert.equal(mm.lo, Math.min(...values));
    assert.equal(mm.hi, Math.max(...values));
    const sd = at(bandRows(groups, labels, runs, { metrics: ['val_acc'], band: 'std' }), 'band');
    assert.ok(Math.abs(sd.hi! - sd.lo! - 2 * g.std!) < 1e-12);
    assert.equal(at(bandRows(groups, labels, runs, { metrics: ['val_acc'] }), 'mean').n, 5);
    const none = await renderSvg(chartSpec(runs, { metrics: ['val_acc'], band: 'none' }));
    assert.equal((none.match(/aria-roledescription="area mark"/g) ?? []).length, 0);
    const thin = await renderSvg(chartSpec(runs, { metrics: ['val_acc'], showRuns: true }));
    assert.equal((thin.match(/aria-roledescription="line mark"/g) ?? []).length, 2 + 10, 'means and every seed');
    assert.ok(thin.includes('thin lines: each seed'));
  });

  it('a band stays within the values its metric can take: accuracies in [0, 1], losses >= 0', () => {
    // Seeds near the ceiling and the floor: the symmetric t-interval of their mean reaches past both.
    const accs = [1, 1, 0.99, 1, 0.9];
    const losses = [0.001, 0.001, 0.05, 0.001, 0.002];
    const edge = variant(runs, (r) => {
      const i = (r.record!.seed - 1) % 5;
      for (const m of r.metrics)
        if (m.step === 200) {
          m.val_acc = accs[i];
          m.train_loss = losses[i];
        }
    });
    const groups = groupReplicates(edge);
    const labels = groupLabels(groups);
    const g = groupValue(accs, accs.map(String));
    assert.ok(g.ci95_high! > 1, 'the raw interval passes 1');
    const rows = bandRows(groups, labels, edge, { metrics: ['val_acc', 'train_loss'] });
    const band = (metric: string) => rows.find((r) => r.kind === 'band' && r.x === 200 && r.metric.includes(metric))!;
    assert.equal(band('acc').hi, 1);
    assert.equal(band('acc').lo, g.ci95_low);
    assert.equal(band('loss').lo, 0);
    const points = accs.map((y, i) => ({ series: 'batch', value: 'test_acc', x: 0.5, y, run: `r${i}` }));
    const [cell] = sweepCells(points, 'ci');
    assert.equal(cell.hi, 1);
    assert.equal(cell.lo, g.ci95_low);
  });

  it('the CLI: --band and --runs, and the PNG is written', () => {
    const out = path.join(tmpDir(), 'quick');
    const res = bnx(['plot', QUICK, '-o', out, '--band', 'minmax', '--runs']);
    assert.equal(res.code, 0, res.stderr);
    assert.ok(fs.readFileSync(`${out}.svg`, 'utf8').includes('band: lowest to highest seed'));
    assert.ok(PNG.sync.read(fs.readFileSync(`${out}.png`)).width > 0);
    const bad = bnx(['plot', QUICK, '--band', 'iqr']);
    assert.equal(bad.code, 2);
  });

  it('--x <config key> with replicates: the mean over the seeds at each x with error bars', async () => {
    const fixture = loadSweep(FIXTURE).runs;
    const lr = variant(fixture, (r) => {
      r.record!.config.train.lr = 0.7;
      r.id = `lr=0.7_${r.id}`;
      r.path = `${r.path}-lr`;
    });
    const both = [...fixture, ...lr];
    const { points } = sweepPoints(both, { key: 'train.lr', values: ['test_acc'] });
    assert.deepEqual(
      [...new Set(points.map((p) => p.series))].sort(),
      ['norm=batch', 'norm=none'],
      'seeds are not series',
    );
    const cells = sweepCells(points, 'ci');
    assert.equal(cells.length, 4);
    const cell = cells.find((c) => c.series === 'norm=none' && c.x === 0.5)!;
    assert.equal(cell.n, 5);
    close(cell.mean, 0.812, 1e-12, 'mean test_acc of none at lr 0.5');
    const svg = await renderSvg(sweepChartSpec(both, { key: 'train.lr', values: ['test_acc'] }));
    assert.ok(svg.includes('bars: 95% t-interval of the mean'));
    assert.equal((svg.match(/aria-roledescription="line mark"/g) ?? []).length, 2);
  });

  it('bnx report: headlines with intervals and n, the verdict table, banded charts', async () => {
    const report = await buildReport(loadSweep(FIXTURE));
    assert.ok(report.groups && report.groups.length === 2);
    assert.equal(report.comparisons.length, 1);
    const lines = report.headlines[0].lines.join('\n');
    assert.match(
      lines,
      /Test accuracy after training: 0\.8890 ± 0\.0161 \(n = 5\) with BN, 0\.8120 ± 0\.0136 \(n = 5\) with no BN; BN - no BN = \+0\.0770, 95% CI \[\+0\.0548, \+0\.0992\], p = 0\.00065 \(paired t-test; sign-flip p = 0\.063\): BN better\./,
    );
    assert.match(lines, /fluctuation .*BN\/no BN = 3\.44x, 95% CI \[1\.75x, 6\.78x\]/);
    const md = reportMarkdown(report, (n) => `r-${n}.svg`);
    assert.match(md, /## Replicate groups/);
    assert.match(md, /### Verdicts/);
    assert.match(
      md,
      /\| test acc \| 5 \| 0\.8120 \| 0\.8890 \| \+0\.0770 \| \[\+0\.0548, \+0\.0992\] \| 0\.00065 \| 0\.063 \| BN better \|/,
    );
    assert.match(md, /band: 95% t-interval of the mean/);
    for (const c of report.charts) assert.ok(/aria-roledescription="area mark"/.test(c.svg), `${c.name} has bands`);
  });
});

describe('seeds in specs and on the command line', () => {
  const spec = (extra: string) => {
    const dir = tmpDir();
    const file = path.join(dir, 'spec.yaml');
    fs.writeFileSync(
      file,
      `name: s\ndata: { dataset: synthetic, synthetic: { features: 4, classes: 2, train_size: 100, test_size: 20 }, val_size: 20 }\nmodel: { hidden: [4] }\ntrain: { steps: 2, batch_size: 10 }\n${extra}`,
    );
    return file;
  };
  const seedsOf = (args: string[]) => {
    const res = bnx(['plan', ...args, '--json']);
    assert.equal(res.code, 0, res.stderr);
    return (JSON.parse(res.stdout) as { config: { seed: number } }[]).map((r) => r.config.seed);
  };

  it('seeds: N is seeds 1..N; --seeds N replaces it; --set seed=... too', () => {
    assert.deepEqual(seedsOf([spec('seeds: 3\n')]), [1, 2, 3]);
    assert.deepEqual(seedsOf([spec('seeds: [4, 9]\n')]), [4, 9]);
    assert.deepEqual(seedsOf([spec('seeds: 3\n'), '--seeds', '5']), [1, 2, 3, 4, 5]);
    assert.deepEqual(seedsOf([spec(''), '--seeds', '2']), [1, 2]);
    assert.deepEqual(seedsOf([spec('seeds: 3\n'), '--set', 'seed=7,8']), [7, 8]);
    // --seeds N names each run by its seed, as --set seed=1,...,N does: the same run ids.
    const ids = (args: string[]) =>
      (JSON.parse(bnx(['plan', ...args, '--json']).stdout) as { id: string }[]).map((r) => r.id);
    assert.deepEqual(ids([spec(''), '--seeds', '3']), ids([spec(''), '--set', 'seed=1,2,3']));
    assert.deepEqual(ids([spec('seeds: 3\n')]), ids([spec(''), '--seeds', '3']));
  });

  it('bad seeds: exit 2 and one line', () => {
    for (const [args, message] of [
      [[spec('seeds: 0\n')], /seeds is 0; give N \(the seeds 1\.\.N, N from 1 to 1000\) or a list of seeds/],
      [[spec('seeds: [1, 1]\n')], /seed 1 is listed twice/],
      [[spec(''), '--seeds', 'x'], /^bnx: --seeds x: must be an integer from 1 to 1000/],
      [[spec(''), '--seeds', '2', '--set', 'seed=1,2'], /^bnx: --seeds 2: give --seeds or --set seed, not both/],
    ] as const) {
      const res = bnx(['plan', ...args]);
      assert.equal(res.code, 2, `${args.join(' ')}: ${res.stderr}`);
      assert.equal(res.stderr.trim().split('\n').length, 1, res.stderr);
      assert.match(res.stderr, message);
    }
  });
});
