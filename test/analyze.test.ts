import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'csv-parse/sync';
import { PNG } from 'pngjs';
import { chartSpec, renderPng, renderSvg, termChartOf } from '../src/analyze/chart.js';
import { diffCsv, diffSweeps, diffWithin, formatDiff, worsePairs } from '../src/analyze/diff.js';
import { formatListing, listResults } from '../src/analyze/ls.js';
import { buildReport, reportHtml } from '../src/analyze/report.js';
import { loadResults, loadSweep, runLabels } from '../src/analyze/results.js';
import { fluctuation, stepsToReach } from '../src/analyze/stats.js';
import { sweepChartSpec, sweepPoints } from '../src/analyze/sweep-chart.js';
import { CommanderError } from 'commander';
import { buildProgram } from '../src/cli/main.js';
import { InputError } from '../src/util/errors.js';
import { readMetrics, type MetricsRow } from '../src/store/metrics.js';
import { bnx, ROOT, tmpDir } from './helpers.js';

// Results written by bnx itself from test/fixtures/analyze-spec.yaml (see its header to regenerate):
// a BN-vs-no-BN sweep at lr 0.5, and the same sweep at lr 0.2.
const FIX = path.join(ROOT, 'test', 'fixtures');
const SWEEP = path.join(FIX, 'results', 'fixture');
const SWEEP_LR = path.join(FIX, 'results-lr', 'fixture');
const runDir = (sweep: string, norm: string) => {
  const name = fs.readdirSync(sweep).find((d) => d.startsWith(`norm=${norm}_`));
  assert.ok(name, `no norm=${norm} run in ${sweep}`);
  return path.join(sweep, name);
};
const NONE = runDir(SWEEP, 'none');
const BATCH = runDir(SWEEP, 'batch');

/** The first step with val_acc >= t, computed directly from metrics.csv. */
const firstAt = (dir: string, t: number) =>
  readMetrics(path.join(dir, 'metrics.csv')).find((r) => r.val_acc !== null && r.val_acc >= t)?.step ?? null;
const bestAcc = (dir: string) =>
  Math.max(...readMetrics(path.join(dir, 'metrics.csv')).flatMap((r) => (r.val_acc === null ? [] : [r.val_acc])));

/**
 * Runs bnx's commands in this process (spawning node for each costs about half a second of CPU):
 * output captured, bad input turned into exit code 2 and one line as bin/bnx.js does. A few tests
 * below spawn the real executable to check that wiring.
 */
async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const saved = { log: console.log, error: console.error, out: process.stdout.write, err: process.stderr.write };
  console.log = (...a: unknown[]) => void out.push(`${a.join(' ')}\n`);
  console.error = (...a: unknown[]) => void err.push(`${a.join(' ')}\n`);
  process.stdout.write = ((chunk: string) => out.push(String(chunk)) > 0) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string) => err.push(String(chunk)) > 0) as typeof process.stderr.write;
  process.exitCode = undefined;
  let code: number;
  try {
    const program = buildProgram().exitOverride();
    for (const c of program.commands) c.exitOverride();
    await program.parseAsync(['node', 'bnx', ...args]);
    code = Number(process.exitCode ?? 0);
  } catch (e) {
    if (e instanceof InputError) {
      err.push(`bnx: ${e.message}\n`);
      code = 2;
    } else if (e instanceof CommanderError) {
      code = 2;
    } else {
      throw e;
    }
  } finally {
    Object.assign(console, { log: saved.log, error: saved.error });
    process.stdout.write = saved.out;
    process.stderr.write = saved.err;
    process.exitCode = undefined;
  }
  return { code, stdout: out.join(''), stderr: err.join('') };
}

const row = (step: number, val_loss: number | null, val_acc: number | null = null): MetricsRow => ({
  step,
  epoch: step / 10,
  train_loss: 1,
  train_acc: 0.5,
  val_loss,
  val_acc,
  lr: 0.1,
});

describe('analysis statistics', () => {
  it('fluctuation: std of step-to-step changes over the last half of training', () => {
    // Steps 60..100 are the last half (>= 50): values 1, 3, 2, 4, 3 -> changes +2, -1, +2, -1.
    const rows = [row(20, 9), row(40, 5), row(60, 1), row(80, 3), row(90, 2), row(95, 4), row(100, 3)];
    const changes = [2, -1, 2, -1];
    const mean = 0.5;
    const expected = Math.sqrt(changes.reduce((a, c) => a + (c - mean) ** 2, 0) / 3);
    assert.ok(Math.abs(fluctuation(rows)! - expected) < 1e-12);
    // A steady descent does not fluctuate, however steep.
    assert.equal(fluctuation([10, 20, 30, 40, 50, 60].map((s) => row(s, 100 - s))), 0);
    assert.equal(fluctuation([row(10, 1), row(20, 1)]), null);
  });

  it('steps to reach a level: at or above for accuracies, at or below for losses', () => {
    const rows = [row(10, 2, 0.3), row(20, 1, 0.7), row(30, 0.5, 0.95), row(40, 0.7, 0.9)];
    assert.equal(stepsToReach(rows, 'val_acc', 0.7), 20);
    assert.equal(stepsToReach(rows, 'val_acc', 0.99), null);
    assert.equal(stepsToReach(rows, 'val_loss', 0.6), 30);
  });
});

describe('bnx ls', () => {
  it('lists runs with their varying parameters, values and fluctuation', () => {
    const rows = listResults(loadResults(path.join(FIX, 'results')));
    assert.deepEqual(rows.map((r) => r.params['model.norm']).sort(), ['batch', 'none']);
    const batch = rows.find((r) => r.params['model.norm'] === 'batch')!;
    const record = JSON.parse(fs.readFileSync(path.join(BATCH, 'run.json'), 'utf8'));
    assert.equal(batch.id, record.id);
    assert.equal(batch.status, 'completed');
    assert.equal(batch.steps, 400);
    assert.equal(batch.best_val_acc, record.best.val_acc);
    assert.equal(batch.test_acc, record.test.acc);
    assert.ok(batch.val_loss_fluctuation !== null && batch.val_loss_fluctuation > 0);
    const text = formatListing(rows);
    assert.match(text, /spec\s+run id\s+norm\s+status\s+steps/);
    for (const r of rows) assert.ok(text.includes(r.id));
  });

  it('the CLI filters, sorts, prints JSON and lists every sweep under a results root', async () => {
    // --runs: one row per run (without it, one per replicate group; see replicates.test.ts).
    const res = bnx(['ls', FIX, '--json', '--runs', '--sort=-test_acc']);
    assert.equal(res.code, 0, res.stderr);
    const rows = JSON.parse(res.stdout) as { id: string; test_acc: number; spec: string }[];
    // results/fixture and results-lr/fixture (2 runs each), results-seeds/quick and /fixture (10 each).
    assert.equal(rows.length, 24, 'every fixture sweep');
    assert.ok(rows.every((r) => typeof r.test_acc === 'number'));
    assert.deepEqual(
      rows.map((r) => r.test_acc),
      [...rows.map((r) => r.test_acc)].sort((a, b) => b - a),
    );
    const filtered = await cli(['ls', path.join(FIX, 'results'), '--filter', 'norm=batch']);
    assert.equal(filtered.code, 0, filtered.stderr);
    assert.ok(filtered.stdout.includes(path.basename(BATCH)) && !filtered.stdout.includes(path.basename(NONE)));
    const bad = bnx(['ls', SWEEP, '--filter', 'nrom=batch']); // the real executable: exit 2, one line
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^bnx: --filter nrom=batch: unknown key "nrom"/);
    assert.equal(bad.stderr.trim().split('\n').length, 1);
  });
});

describe('bnx diff', () => {
  it('two runs: config difference, matching steps, values, steps to target and their ratio', () => {
    const diff = diffSweeps(loadSweep(NONE), loadSweep(BATCH), { targets: [0.8] });
    assert.equal(diff.pairs.length, 1);
    const p = diff.pairs[0];
    assert.deepEqual(p.config, [{ key: 'model.norm', a: 'none', b: 'batch' }]);
    assert.equal(p.steps.length, 20, 'both runs log every 20 steps to 400');
    const acc = p.values.find((v) => v.name === 'best_val_acc')!;
    assert.equal(acc.a, bestAcc(NONE));
    assert.equal(acc.b, bestAcc(BATCH));
    const t = p.targets.find((x) => x.kind === 'target')!;
    assert.equal(t.target, 0.8);
    assert.equal(t.a_step, firstAt(NONE, 0.8));
    assert.equal(t.b_step, firstAt(BATCH, 0.8));
    assert.equal(t.ratio, t.a_step! / t.b_step!);
    // Same accuracy in fewer steps: the level is the worse run's best, which both reach.
    const m = p.targets.find((x) => x.kind === 'match' && x.metric === 'val_acc')!;
    assert.equal(m.target, Math.min(bestAcc(NONE), bestAcc(BATCH)));
    assert.equal(m.a_step, firstAt(NONE, m.target));
    assert.equal(m.b_step, firstAt(BATCH, m.target));
    const text = formatDiff(diff);
    assert.match(text, /model\.norm\s+none\s+batch/);
    assert.match(
      text,
      new RegExp(
        `val_acc >= 0\\.8000 \\(--target\\)\\s+${t.a_step}\\s+${t.b_step}\\s+B: ${t.ratio!.toFixed(2)}x fewer steps`,
      ),
    );
  });

  it('the default target depends on the dataset (synthetic: 0.9)', () => {
    const p = diffSweeps(loadSweep(NONE), loadSweep(BATCH)).pairs[0];
    const t = p.targets.find((x) => x.kind === 'target')!;
    assert.equal(t.target, 0.9);
    assert.equal(t.why, 'default for synthetic');
  });

  it('two sweeps: runs matched on the parameters they share, the sweep difference shown', () => {
    const diff = diffSweeps(loadSweep(SWEEP), loadSweep(SWEEP_LR));
    assert.deepEqual(diff.matched_on, ['model.norm']);
    assert.deepEqual(diff.sweep_difference, [{ key: 'train.lr', a: 0.5, b: 0.2 }]);
    assert.equal(diff.pairs.length, 2);
    for (const p of diff.pairs) {
      assert.equal(p.a.id.split('_')[0], p.b.id.split('_')[0], `${p.a.id} paired with ${p.b.id}`);
      assert.deepEqual(p.config, [{ key: 'train.lr', a: 0.5, b: 0.2 }]);
    }
    // One sweep: its BN-vs-no-BN pair.
    const within = diffWithin(loadSweep(SWEEP));
    assert.equal(within.pairs.length, 1);
    assert.equal(within.pairs[0].a.id, path.basename(NONE));
  });

  it('--csv and --json outputs for scripts', async () => {
    const csv = await cli(['diff', NONE, BATCH, '--csv', '--target', '0.8']);
    assert.equal(csv.code, 0, csv.stderr);
    const rows = parse(csv.stdout, { columns: true }) as Record<string, string>[];
    assert.deepEqual(Object.keys(rows[0]), [
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
    ]);
    assert.deepEqual(
      rows.filter((r) => r.section === 'config').map((r) => [r.name, r.a, r.b]),
      [['model.norm', 'none', 'batch']],
    );
    const target = rows.find((r) => r.section === 'target')!;
    assert.equal(Number(target.a_step), firstAt(NONE, 0.8));
    assert.equal(rows.filter((r) => r.section === 'step' && r.name === 'val_acc').length, 20);
    const json = await cli(['diff', SWEEP, SWEEP_LR, '--json']);
    assert.equal(json.code, 0, json.stderr);
    assert.equal(JSON.parse(json.stdout).pairs.length, 2);
    assert.equal(
      diffCsv(diffSweeps(loadSweep(NONE), loadSweep(BATCH))),
      diffCsv(diffSweeps(loadSweep(NONE), loadSweep(BATCH))),
    );
  });

  it('--fail-if-worse exits 1 only when B is worse', async () => {
    const diff = diffSweeps(loadSweep(NONE), loadSweep(BATCH));
    assert.deepEqual(worsePairs(diff, 'best_val_acc'), [], 'BN is better on the fixture');
    const worse = await cli(['diff', BATCH, NONE, '--fail-if-worse', '--metric', 'best_val_acc']);
    assert.equal(worse.code, 1, worse.stderr);
    assert.match(worse.stderr, /worse: B's best_val_acc/);
    const tolerated = await cli([
      'diff',
      BATCH,
      NONE,
      '--fail-if-worse',
      '--metric',
      'best_val_acc',
      '--tolerance',
      '0.5',
    ]);
    assert.equal(tolerated.code, 0, tolerated.stderr);
    assert.equal((await cli(['diff', NONE, BATCH, '--fail-if-worse'])).code, 0);
  });

  it('bad input: exit 2 and one line', async () => {
    const dir = tmpDir();
    const notCsv = path.join(dir, 'x.csv');
    fs.writeFileSync(notCsv, 'a,b\n1,2\n');
    for (const args of [
      ['diff', path.join(dir, 'missing'), BATCH],
      ['diff', notCsv, BATCH],
      ['diff', NONE, BATCH, '--target', '1.5'],
      ['diff', dir, BATCH],
    ]) {
      const res = await cli(args);
      assert.equal(res.code, 2, `${args.join(' ')}: ${res.stderr}`);
      assert.equal(res.stderr.trim().split('\n').length, 1, res.stderr);
      assert.match(res.stderr, /^bnx: /);
    }
    assert.throws(() => loadSweep(notCsv), InputError);
  });
});

describe('bnx plot', () => {
  const runs = loadSweep(SWEEP).runs;

  it('the SVG has one line path per run and the legend names', async () => {
    const svg = await renderSvg(chartSpec(runs, { metrics: ['val_acc'] }));
    const lines = svg.match(/<path[^>]*aria-roledescription="line mark"/g) ?? [];
    assert.equal(lines.length, runs.length);
    const texts = [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
    assert.ok(texts.includes('none') && texts.includes('batch'), `legend entries in ${texts.join('|')}`);
    assert.ok(texts.includes('norm'), 'legend title');
    assert.ok(texts.includes('validation accuracy (val_acc)'), 'y axis title');
    assert.deepEqual(runLabels(runs).sort(), ['norm=batch', 'norm=none']);
    // Two metrics: one panel each, one path per run in each.
    const two = await renderSvg(chartSpec(runs, { metrics: ['train_loss', 'val_loss'] }));
    assert.equal((two.match(/<path[^>]*aria-roledescription="line mark"/g) ?? []).length, 2 * runs.length);
  });

  it('the PNG decodes and has the SVG size times the scale', async () => {
    const svg = await renderSvg(chartSpec(runs, { metrics: ['val_loss'], width: 300, height: 200 }));
    const [w, h] = [Number(/<svg[^>]*width="(\d+)"/.exec(svg)![1]), Number(/<svg[^>]*height="(\d+)"/.exec(svg)![1])];
    const png = PNG.sync.read(await renderPng(svg, { scale: 2 }));
    assert.equal(png.width, 2 * w);
    assert.equal(png.height, 2 * h);
    // Text and lines are drawn: many non-white pixels, including the two line colours.
    let dark = 0;
    for (let i = 0; i < png.data.length; i += 4)
      if (png.data[i] < 100 && png.data[i + 1] < 100 && png.data[i + 2] < 100) dark++;
    assert.ok(dark > 500, `${dark} dark pixels (axis labels)`);
  });

  it('the CLI writes SVG and PNG, and draws in the terminal', async () => {
    const out = path.join(tmpDir(), 'charts', 'acc');
    const res = await cli(['plot', SWEEP, '-o', out, '--metric', 'val_acc']);
    assert.equal(res.code, 0, res.stderr);
    const svg = fs.readFileSync(`${out}.svg`, 'utf8');
    const png = PNG.sync.read(fs.readFileSync(`${out}.png`));
    assert.equal(png.width, 2 * Number(/<svg[^>]*width="(\d+)"/.exec(svg)![1]));
    const term = await cli(['plot', SWEEP, '--term', '--metric', 'val_loss']);
    assert.equal(term.code, 0, term.stderr);
    assert.match(term.stdout, /validation loss \(val_loss\) vs training step/);
    assert.match(term.stdout, /\* norm=none {3}\+ norm=batch/);
    assert.ok((term.stdout.match(/\+/g) ?? []).length > 20, 'the BN line is drawn');
    assert.equal((await cli(['plot', SWEEP, '--metric', 'val_accc'])).code, 2);
    assert.equal((await cli(['plot', SWEEP, '-o', 'x.jpg'])).code, 2);
    const text = termChartOf(runs, 'train_loss', { width: 60, height: 8 });
    assert.equal(text.split('\n').length, 1 + 8 + 3, 'title, 8 rows, axis, ticks, legend');
  });

  it('--x <config key> plots run values against the swept key, one line per other swept value', async () => {
    // The two fixture sweeps together: train.lr 0.2 and 0.5, each with norm none and batch.
    const both = [...loadSweep(SWEEP).runs, ...loadSweep(SWEEP_LR).runs];
    const { points, numericX } = sweepPoints(both, { key: 'train.lr', values: ['test_acc'] });
    assert.ok(numericX);
    assert.deepEqual([...new Set(points.map((p) => p.series))].sort(), ['norm=batch', 'norm=none']);
    assert.deepEqual(points.map((p) => p.x).sort(), [0.2, 0.2, 0.5, 0.5]);
    for (const p of points) {
      const run = both.find(
        (r) => r.record?.config.train.lr === p.x && `norm=${r.record?.config.model.norm}` === p.series,
      );
      assert.equal(p.y, run?.record?.test?.acc);
    }
    const svg = await renderSvg(sweepChartSpec(both, { key: 'train.lr', values: ['test_acc', 'final_train_loss'] }));
    assert.equal(
      (svg.match(/<path[^>]*aria-roledescription="line mark"/g) ?? []).length,
      2 * 2,
      'two panels, a line per norm',
    );
    const out = path.join(tmpDir(), 'by-lr');
    const res = await cli(['plot', SWEEP, SWEEP_LR, '--x', 'train.lr', '-o', out, '--term']);
    assert.equal(res.code, 0, res.stderr);
    assert.ok(fs.existsSync(`${out}.svg`) && fs.existsSync(`${out}.png`));
    assert.match(res.stdout, /test_acc[\s\S]*train\.lr[\s\S]*norm=none {3}\+ norm=batch/);
    // A key that follows x (a linked axis: batch size with lr) is not a series of its own.
    const linked = both.map((r) => {
      const copy = structuredClone(r);
      copy.record!.config.train.batch_size = r.record!.config.train.lr === 0.5 ? 50 : 20;
      return copy;
    });
    assert.deepEqual(
      [...new Set(sweepPoints(linked, { key: 'train.lr', values: ['test_acc'] }).points.map((p) => p.series))].sort(),
      ['norm=batch', 'norm=none'],
    );
    const bad = [
      ['--x', 'train.lrr'],
      ['--x', 'model.hidden'],
      ['--x', 'train.lr', '--metric', 'val_acc'],
      ['--x', 'step', '--log-x'],
    ];
    for (const args of bad) {
      const r = await cli(['plot', SWEEP, SWEEP_LR, ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
  });
});

describe('bnx report', () => {
  it('the HTML report is self-contained and renders in headless Chromium, not blank', async () => {
    const chromium = process.env.BNX_CHROMIUM || '/usr/bin/chromium';
    assert.ok(fs.existsSync(chromium), `${chromium} is missing: run node scripts/test-setup.mjs (npm test does)`);
    const dir = tmpDir();
    const html = reportHtml(await buildReport(loadSweep(SWEEP)));
    // Nothing to fetch: no scripts, links, images or fonts from elsewhere (SVG namespaces are not fetched).
    assert.doesNotMatch(html.replace(/xmlns(:\w+)?="[^"]*"/g, ''), /https?:|<script|<link|<img|@import|url\((?!#)/);
    assert.match(html, /<svg[^>]*>/);
    assert.match(html, /Headline numbers/);
    const file = path.join(dir, 'report.html');
    fs.writeFileSync(file, html);
    const shot = path.join(dir, 'shot.png');
    const res = spawnSync(
      chromium,
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        `--user-data-dir=${path.join(dir, 'profile')}`,
        `--screenshot=${shot}`,
        '--window-size=1100,1400',
        '--hide-scrollbars',
        `file://${file}`,
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    assert.ok(fs.existsSync(shot), `no screenshot: exit ${res.status}\n${res.stderr}`);
    const png = PNG.sync.read(fs.readFileSync(shot));
    assert.equal(png.width, 1100);
    const colours = new Set<number>();
    let nonWhite = 0;
    let blue = 0;
    let orange = 0;
    for (let i = 0; i < png.data.length; i += 4) {
      const [r, g, b] = [png.data[i], png.data[i + 1], png.data[i + 2]];
      colours.add((r << 16) | (g << 8) | b);
      if (r < 245 || g < 245 || b < 245) nonWhite++;
      // The chart's two lines: vega's default #4c78a8 (blue) and #f58518 (orange), anti-aliased.
      if (Math.abs(r - 0x4c) < 30 && Math.abs(g - 0x78) < 30 && Math.abs(b - 0xa8) < 30) blue++;
      if (Math.abs(r - 0xf5) < 30 && Math.abs(g - 0x85) < 30 && Math.abs(b - 0x18) < 40) orange++;
    }
    const share = nonWhite / (png.width * png.height);
    assert.ok(share > 0.02 && share < 0.9, `${(share * 100).toFixed(1)}% non-white pixels`);
    assert.ok(colours.size > 50, `${colours.size} distinct colours`);
    assert.ok(blue > 100 && orange > 100, `chart lines drawn: ${blue} blue, ${orange} orange pixels`);
  });

  it('the CLI writes .html and .md (with the charts as SVG files beside it)', async () => {
    const dir = tmpDir();
    const html = await cli(['report', SWEEP, '-o', path.join(dir, 'r.html')]);
    assert.equal(html.code, 0, html.stderr);
    assert.match(fs.readFileSync(path.join(dir, 'r.html'), 'utf8'), /Diff: no BN vs BN/);
    const md = await cli(['report', SWEEP, '-o', path.join(dir, 'md', 'r.md')]);
    assert.equal(md.code, 0, md.stderr);
    const text = fs.readFileSync(path.join(dir, 'md', 'r.md'), 'utf8');
    for (const name of ['r-accuracy.svg', 'r-loss.svg']) {
      assert.ok(text.includes(`](${name})`), `${name} referenced`);
      assert.match(fs.readFileSync(path.join(dir, 'md', name), 'utf8'), /^<svg/);
    }
    assert.match(text, /\| val_loss fluctuation \|/);
    assert.equal((await cli(['report', SWEEP, '-o', path.join(dir, 'r.pdf')])).code, 2);
  });
});
