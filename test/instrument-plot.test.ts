import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { CommanderError } from 'commander';
import { PNG } from 'pngjs';
import { renderSvg } from '../src/analyze/chart.js';
import { instrumentChartSpec, instrumentTermCharts } from '../src/analyze/instrument-chart.js';
import { loadSweep } from '../src/analyze/results.js';
import { buildProgram } from '../src/cli/main.js';
import { InputError } from '../src/util/errors.js';
import { loadInstrument, readInstrumentCsv } from '../src/analyze/index.js';
import { bnx, ROOT, tmpDir } from './helpers.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- vega-lite specs, read as untyped JSON
type VegaJson = Record<string, any>;

// The fixture sweep (a BN and a no-BN run written by bnx) copied to a temp folder, with instrument
// CSVs added to its run directories as the instruments write them.
const FIXTURE = path.join(ROOT, 'test', 'fixtures', 'results', 'fixture');
const LAYERS = ['hidden1', 'hidden2'];
const STEPS = Array.from({ length: 20 }, (_, i) => 20 * (i + 1));

function csv(file: string, header: string[], rows: (string | number)[][]): void {
  fs.writeFileSync(file, [header, ...rows].map((r) => `${r.join(',')}\n`).join(''));
}

/**
 * Without BN the percentiles drift (the median climbs, the band widens); with BN they stay put:
 * the shape of the paper's Figure 1(b,c).
 */
function activationRows(drift: boolean): (string | number)[][] {
  return STEPS.flatMap((step) =>
    LAYERS.map((layer) => {
      const t = step / 400;
      const p50 = drift ? 3 * t : 0.05;
      const half = drift ? 1 + 2 * t : 1;
      return [step, layer, (p50 - half).toFixed(4), p50.toFixed(4), (p50 + half).toFixed(4)];
    }),
  );
}

function makeResults(): { sweep: string; none: string; batch: string } {
  const sweep = path.join(tmpDir('bnx-instrument-plot-'), 'fixture');
  fs.cpSync(FIXTURE, sweep, { recursive: true });
  const runOf = (norm: string) =>
    path.join(
      sweep,
      fs.readdirSync(sweep).find((d) => d.startsWith(`norm=${norm}_`))!,
    );
  const none = runOf('none');
  const batch = runOf('batch');
  for (const [dir, isBn] of [
    [none, false],
    [batch, true],
  ] as const) {
    csv(path.join(dir, 'activation_percentiles.csv'), ['step', 'layer', 'p15', 'p50', 'p85'], activationRows(!isBn));
    csv(
      path.join(dir, 'ics.csv'),
      ['step', 'layer', 'l2', 'cosine', 'grad_norm'],
      STEPS.flatMap((step) =>
        LAYERS.map((layer, i) => [
          step,
          layer,
          (0.1 + i * 0.05 + (isBn ? 0.02 : 0)).toFixed(5),
          (0.9 - step / 4000).toFixed(5),
          '0.5',
        ]),
      ),
    );
    const sizes = [0.25, 0.5, 1, 2, 4];
    csv(
      path.join(dir, 'smoothness.csv'),
      ['step', 'step_size', 'loss', 'loss_change', 'grad_change', 'beta'],
      [100, 200, 300, 400].flatMap((step) =>
        sizes.map((s) => {
          const spread = isBn ? 0.02 : 0.3;
          return [
            step,
            s,
            (1 - step / 1000 + spread * s).toFixed(5),
            (spread * s).toFixed(5),
            (spread * s * 2).toFixed(5),
            (spread * 2).toFixed(5),
          ];
        }),
      ),
    );
  }
  // Only the BN run measured the eval gap: the other run is named as lacking it.
  csv(
    path.join(batch, 'eval_gap.csv'),
    ['step', 'val_loss_train_mode', 'val_loss_inference', 'gap'],
    STEPS.map((s) => [s, '0.5', '0.45', '0.05']),
  );
  return { sweep, none, batch };
}

/** Runs bnx's commands in this process (spawning node costs half a second each): bad input -> exit code 2, as bin/bnx.js does. */
async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const saved = { log: console.log, error: console.error };
  console.log = (...a: unknown[]) => void out.push(`${a.join(' ')}\n`);
  console.error = (...a: unknown[]) => void err.push(`${a.join(' ')}\n`);
  let code: number;
  process.exitCode = undefined;
  try {
    const program = buildProgram().exitOverride();
    for (const c of program.commands)
      c.exitOverride().configureOutput({ writeErr: (s) => void err.push(s), writeOut: (s) => void out.push(s) });
    await program.parseAsync(['node', 'bnx', ...args]);
    code = Number(process.exitCode ?? 0);
  } catch (e) {
    if (e instanceof InputError) err.push(`bnx: ${e.message}\n`);
    else if (!(e instanceof CommanderError)) throw e;
    code = 2;
  } finally {
    Object.assign(console, saved);
    process.exitCode = undefined;
  }
  return { code, stdout: out.join(''), stderr: err.join('') };
}

const marks = (svg: string, kind: 'area' | 'line') =>
  (svg.match(new RegExp(`<path[^>]*aria-roledescription="${kind} mark"`, 'g')) ?? []).length;
const texts = (svg: string) => [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);

describe('bnx plot --instrument', () => {
  const { sweep, none, batch } = makeResults();
  const runs = loadSweep(sweep).runs;

  it('reads instrument CSVs as the instruments write them, and rejects other CSVs', () => {
    const table = readInstrumentCsv(path.join(none, 'activation_percentiles.csv'), 'activation_percentiles');
    assert.deepEqual(table.columns, ['step', 'layer', 'p15', 'p50', 'p85']);
    assert.equal(table.rows.length, STEPS.length * LAYERS.length);
    assert.deepEqual(table.rows[1], { step: 20, layer: 'hidden2', values: { p15: -0.95, p50: 0.15, p85: 1.25 } });
    const bad = path.join(tmpDir(), 'ics.csv');
    csv(bad, ['step', 'layer', 'cosine'], [[1, 'hidden1', 0.5]]);
    assert.throws(
      () => readInstrumentCsv(bad, 'ics'),
      /not a bnx ics CSV: the header must be step,layer,l2,cosine,grad_norm/,
    );
    const loaded = loadInstrument(runs, 'eval_gap');
    assert.deepEqual(
      loaded.found.map((f) => f.run.path),
      [batch],
    );
    assert.deepEqual(
      loaded.missing.map((r) => r.path),
      [none],
    );
  });

  it('activation_percentiles: a band and a median line per run and layer, runs side by side on one y scale', async () => {
    const loaded = loadInstrument(runs, 'activation_percentiles');
    const spec = instrumentChartSpec(loaded, { title: 'percentiles' }) as { vconcat: VegaJson[] };
    assert.equal(spec.vconcat.length, LAYERS.length, 'one row per layer');
    for (const [i, row] of spec.vconcat.entries()) {
      assert.deepEqual(row.transform, [{ filter: { field: 'layer', equal: LAYERS[i] } }]);
      assert.equal(row.facet.column.field, 'run', 'one column per run');
      assert.equal(row.resolve, undefined, 'the columns of a row share the y scale');
      const [area, line] = row.spec.layer;
      assert.equal(area.mark.type, 'area');
      assert.deepEqual([area.encoding.y.field, area.encoding.y2.field, area.encoding.y.stack], ['lo', 'hi', null]);
      assert.equal(line.mark.type, 'line');
      assert.equal(line.encoding.y.field, 'mid');
      assert.equal(area.encoding.y.title, `${LAYERS[i]} (p15-p85 band, p50 line)`);
    }
    const svg = await renderSvg(spec);
    assert.equal(marks(svg, 'area'), runs.length * LAYERS.length, 'a band per run and layer');
    assert.equal(marks(svg, 'line'), runs.length * LAYERS.length, 'a median line per run and layer');
    assert.ok(texts(svg).includes('none') && texts(svg).includes('batch'), 'column headers name the runs');
    // The drifting band reaches higher than the stable one: both drawn on one scale.
    const points = (spec as unknown as { data: { values: { run: string; hi: number }[] } }).data.values;
    const top = (run: string) => Math.max(...points.filter((p) => p.run === run).map((p) => p.hi));
    assert.ok(top('none') > 2 * top('batch'), `${top('none')} vs ${top('batch')}`);

    const one = instrumentChartSpec(loaded, { layers: ['hidden2'] }) as VegaJson;
    assert.equal(one.vconcat, undefined);
    assert.equal(one.facet.column.field, 'run');
    assert.equal(marks(await renderSvg(one), 'area'), runs.length);
  });

  it('ics, smoothness and eval_gap render: lines per run, and Figure 4-style ranges as bands', async () => {
    const ics = await renderSvg(instrumentChartSpec(loadInstrument(runs, 'ics')));
    assert.equal(marks(ics, 'line'), LAYERS.length * 2 * runs.length, 'cosine and l2 per layer, a line per run');
    const smooth = instrumentChartSpec(loadInstrument(runs, 'smoothness')) as VegaJson;
    const values = smooth.data.values as {
      run: string;
      measure: string;
      step: number;
      lo: number | null;
      hi: number | null;
      mid: number | null;
    }[];
    const loss = values.find((v) => v.run === 'none' && v.measure.startsWith('loss landscape') && v.step === 100)!;
    assert.deepEqual(
      [loss.lo, loss.hi],
      [0.9 + 0.3 * 0.25, 0.9 + 0.3 * 4].map((x) => Number(x.toFixed(5))),
      'min..max of the loss over step sizes',
    );
    const svg = await renderSvg(smooth);
    assert.equal(marks(svg, 'area'), 2 * runs.length, 'loss and gradient-change ranges per run');
    assert.equal(marks(svg, 'line'), runs.length, 'beta is a line per run');
    const gap = await renderSvg(instrumentChartSpec(loadInstrument(runs, 'eval_gap')));
    assert.equal(marks(gap, 'line'), 1);
  });

  it('the CLI writes SVG and PNG for an instrument, and draws it in the terminal', async () => {
    const out = path.join(tmpDir(), 'charts', 'fig1bc');
    const res = await cli(['plot', sweep, '--instrument', 'activation_percentiles', '--layer', 'hidden2', '-o', out]);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stderr, '');
    const svg = fs.readFileSync(`${out}.svg`, 'utf8');
    assert.equal(marks(svg, 'area'), runs.length);
    assert.ok(
      texts(svg).includes('fixture: activation percentiles, inputs to the nonlinearity (hidden2)'),
      'default title',
    );
    const png = PNG.sync.read(fs.readFileSync(`${out}.png`));
    assert.equal(png.width, 2 * Number(/<svg[^>]*width="(\d+)"/.exec(svg)![1]));

    const term = await cli(['plot', sweep, '--instrument', 'activation_percentiles', '--layer', 'hidden2', '--term']);
    assert.equal(term.code, 0, term.stderr);
    assert.match(term.stdout, /norm=none, hidden2: input to the nonlinearity vs training step/);
    assert.match(term.stdout, /norm=batch, hidden2: input to the nonlinearity vs training step/);
    assert.match(term.stdout, /\* p85 {3}\+ p15 {3}o p50/);
    // Both runs' charts share the y range, so the two y axes are labelled alike.
    const tops = [...term.stdout.matchAll(/^ *(-?[\d.]+) ┤/gm)].map((m) => m[1]);
    assert.equal(tops.length, 6, 'three labelled rows per chart');
    assert.deepEqual(tops.slice(0, 3), tops.slice(3));
    const charts = instrumentTermCharts(loadInstrument(runs, 'smoothness'), { width: 70, height: 6 });
    assert.equal(charts.length, 3);
    assert.match(charts[0], /norm=none max {3}\+ norm=none min {3}o norm=batch max {3}x norm=batch min/);
  });

  it('names the runs that lack the CSV and how to record it; none having it is exit code 2', async () => {
    const some = await cli(['plot', sweep, '--instrument', 'eval_gap', '-o', path.join(tmpDir(), 'gap.svg')]);
    assert.equal(some.code, 0, some.stderr);
    const lines = some.stderr.trim().split('\n');
    assert.equal(lines.length, 1);
    assert.match(
      lines[0],
      new RegExp(
        `^bnx plot: 1 of 2 runs not plotted: no eval_gap.csv in ${path.basename(none)}: .*--set instruments=\\[eval_gap\\]`,
      ),
    );

    // The committed fixture has no instrument CSVs at all: the real executable exits 2 with one line.
    const res = bnx(['plot', FIXTURE, '--instrument', 'ics', '--term']);
    assert.equal(res.code, 2, res.stderr);
    assert.equal(res.stderr.trim().split('\n').length, 1, res.stderr);
    assert.match(
      res.stderr,
      /nothing to plot: no ics\.csv in norm=(none|batch)_\w+, norm=(none|batch)_\w+: record it by running the spec with --set instruments=\[ics\]/,
    );

    // A CSV with its header only: the run ended before the instrument's first measurement.
    fs.writeFileSync(path.join(none, 'eval_gap.csv'), 'step,val_loss_train_mode,val_loss_inference,gap\n');
    const record = JSON.parse(fs.readFileSync(path.join(none, 'run.json'), 'utf8'));
    record.config.instruments = { eval_gap: { enabled: true, every: 500 } };
    fs.writeFileSync(path.join(none, 'run.json'), JSON.stringify(record));
    const empty = await cli(['plot', none, '--instrument', 'eval_gap', '--term']);
    assert.equal(empty.code, 2);
    assert.match(
      empty.stderr,
      /nothing to plot: eval_gap\.csv has no rows yet in norm=none_\w+ \(it measures every 500 steps\): run longer or set --set instruments\.eval_gap\.every=N/,
    );
    fs.rmSync(path.join(none, 'eval_gap.csv'));

    assert.equal((await cli(['plot', sweep, '--instrument', 'ics', '--layer', 'hidden9', '--term'])).code, 2);
    assert.match(
      (await cli(['plot', sweep, '--instrument', 'eval_gap', '--layer', 'hidden1', '--term'])).stderr,
      /eval_gap has no layers/,
    );
    assert.equal((await cli(['plot', sweep, '--instrument', 'ics', '--metric', 'val_acc', '--term'])).code, 2);
    assert.equal((await cli(['plot', sweep, '--instrument', 'ics', '--x', 'epoch', '--term'])).code, 2);
    assert.equal((await cli(['plot', sweep, '--instrument', 'icss', '--term'])).code, 2);
  });
});
