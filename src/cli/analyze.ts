import fs from 'node:fs';
import path from 'node:path';
import { Command, Option } from 'commander';
import { InputError } from '../util/errors.js';
import { writeFileAtomic } from '../util/files.js';
import {
  chartRows,
  chartSpec,
  metricTitle,
  renderPng,
  renderSvg,
  termChartOf,
  X_AXES,
  type VegaLiteSpec,
  type XAxis,
} from '../analyze/chart.js';
import {
  INSTRUMENT_TITLES,
  instrumentChartSpec,
  instrumentLayers,
  instrumentTermCharts,
} from '../analyze/instrument-chart.js';
import { loadInstrument, missingInstrumentLine } from '../analyze/instruments.js';
import { INSTRUMENT_NAMES, type InstrumentName } from '../spec/types.js';
import { diffCsv, diffJson, diffSweeps, diffWithin, formatDiff, worsePairs } from '../analyze/diff.js';
import { formatListing, listResults } from '../analyze/ls.js';
import { buildReport, reportHtml, reportMarkdown } from '../analyze/report.js';
import { loadResults, loadSweep, type DamageNotes, type LoadedRun } from '../analyze/results.js';
import { COMPARED_VALUES, METRICS, type ComparedValue, type Metric } from '../analyze/stats.js';
import { sweepChartSpec, sweepPoints, sweepTermCharts } from '../analyze/sweep-chart.js';
import { configKeyPaths } from '../spec/schema.js';

const collect = (value: string, previous: string[]) => [...previous, value];

/** `--target 0.9,0.95 --target 0.97`: validation accuracies in (0, 1]. */
function parseTargets(values: string[]): number[] | undefined {
  if (values.length === 0) return undefined;
  return values.flatMap((v) =>
    v.split(',').map((s) => {
      const t = Number(s);
      if (s.trim() === '' || !Number.isFinite(t) || t <= 0 || t > 1)
        throw new InputError(`--target ${v}`, `"${s}" is not a validation accuracy in (0, 1]`);
      return t;
    }),
  );
}

/** The names given to --metric (comma lists or repeated), or the default; naming nothing is refused. */
function metricNames(values: string[], fallback: string, allowed: readonly string[]): string[] {
  if (values.length === 0) return [fallback];
  const list = values
    .flatMap((v) => v.split(','))
    .map((s) => s.trim())
    .filter(Boolean);
  if (list.length === 0)
    throw new InputError(`--metric '${values.join(',')}'`, `names no metric; allowed: ${allowed.join(', ')}`);
  return list;
}

/** One line per damaged file the readers read in part or left out (they go on with the rest). */
function reportDamage(damage: DamageNotes): void {
  for (const line of new Set(damage)) console.error(`bnx: ${line}`);
  damage.length = 0;
}

function parseMetrics(values: string[]): Metric[] {
  const list = metricNames(values, 'val_acc', METRICS);
  for (const m of list) {
    if (!(METRICS as readonly string[]).includes(m))
      throw new InputError(`--metric ${m}`, `unknown metric; allowed: ${METRICS.join(', ')}`);
  }
  return [...new Set(list)] as Metric[];
}

function positive(name: string, value: string, max = Infinity): number {
  const x = Number(value);
  if (!Number.isFinite(x) || x <= 0 || x > max)
    throw new InputError(`${name} ${value}`, `must be a number > 0${max < Infinity ? ` and <= ${max}` : ''}`);
  return x;
}

function ensureParent(file: string): void {
  const dir = path.dirname(path.resolve(file));
  if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory()) throw new InputError(file, `${dir} is not a directory`);
  fs.mkdirSync(dir, { recursive: true });
}

const useColor = () => Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;

interface PlotOptions {
  metric: string[];
  /** A time axis (step, epoch, time) or a swept configuration key (train.lr). */
  x: string;
  logX?: boolean;
  out: string[];
  term: boolean;
  logY: boolean;
  title?: string;
  scale: string;
  instrument?: InstrumentName;
  layer: string[];
}

/** What `bnx plot` draws: the vega-lite spec, the terminal charts, and the default file name. */
interface Plot {
  name: string;
  spec(): VegaLiteSpec;
  term(): string[];
}

function metricsPlot(runs: LoadedRun[], opts: PlotOptions, ctx: { width: number; specs: string[] }): Plot {
  if (opts.layer.length > 0)
    throw new InputError(
      `--layer ${opts.layer.join(',')}`,
      'layers are chosen for --instrument activation_percentiles or ics only',
    );
  if (!isTimeAxis(opts.x)) return sweepPlot(runs, opts.x, opts, ctx);
  if (opts.logX !== undefined)
    throw new InputError('--log-x', 'a log x axis is for --x <config key> (train.lr, train.batch_size)');
  const x: XAxis = opts.x;
  const requested = parseMetrics(opts.metric);
  // A panel with no finite value would be drawn with NaN axes: left out, and said so; nothing at all is refused.
  const metrics = requested.filter((m) => chartRows(runs, { metrics: [m], x, logY: opts.logY }).length > 0);
  if (metrics.length === 0)
    throw new InputError(
      runsWhere(runs),
      `nothing to draw: no run has a finite ${requested.join(' or ')}${opts.logY ? ' above 0 (--log-y)' : ''}${divergedNote(runs)}`,
    );
  const empty = requested.filter((m) => !metrics.includes(m));
  if (empty.length > 0)
    console.error(`bnx plot: left out ${empty.join(', ')}: no run has a finite value of it${divergedNote(runs)}`);
  const title =
    opts.title ??
    `${ctx.specs.join(', ') || 'bnx'}: ${metrics.map((m) => metricTitle(m, runs).replace(/ \(\w+\)$/, '')).join(' and ')}`;
  return {
    name: `${ctx.specs.join('+') || 'bnx'}-${metrics.join('+')}`,
    spec: () => chartSpec(runs, { metrics, x, logY: opts.logY, title }),
    term: () => metrics.map((m) => termChartOf(runs, m, { x, logY: opts.logY, color: useColor(), width: ctx.width })),
  };
}

/** ` (3 of 4 runs diverged)`, or nothing: why values may be missing. */
function divergedNote(runs: LoadedRun[]): string {
  const diverged = runs.filter((r) => r.record?.status === 'diverged').length;
  if (diverged === 0) return '';
  return diverged === runs.length ? ' (every run diverged)' : ` (${diverged} of ${runs.length} runs diverged)`;
}

const CONFIG_KEYS = configKeyPaths();
const isTimeAxis = (x: string): x is XAxis => (X_AXES as readonly string[]).includes(x);

/**
 * `--x <config key>`: a run value (test_acc by default, or --metric from COMPARED_VALUES) against
 * a swept key, one line per combination of the other swept keys. Runs without the value (diverged)
 * are named on stderr.
 */
function sweepPlot(runs: LoadedRun[], key: string, opts: PlotOptions, ctx: { width: number; specs: string[] }): Plot {
  if (!CONFIG_KEYS.includes(key)) {
    throw new InputError(
      `--x ${key}`,
      `not an x axis: use ${X_AXES.join(', ')}, or a configuration key the runs sweep (train.lr, train.batch_size, model.batch_norm.eps)`,
    );
  }
  const list = metricNames(opts.metric, 'test_acc', COMPARED_VALUES);
  for (const v of list) {
    if (!(COMPARED_VALUES as readonly string[]).includes(v))
      throw new InputError(
        `--metric ${v}`,
        `with --x ${key}, what to plot is a run value: ${COMPARED_VALUES.join(', ')}`,
      );
  }
  const values = [...new Set(list)] as ComparedValue[];
  const chartOpts = {
    key,
    values,
    logX: opts.logX,
    logY: opts.logY,
    title: opts.title ?? `${ctx.specs.join(', ') || 'bnx'}: ${values.join(' and ')} against ${key}`,
  };
  const { missing, points } = sweepPoints(runs, chartOpts);
  if (points.length === 0)
    throw new InputError(
      runsWhere(runs),
      `nothing to draw: no run has a finite ${values.join(' or ')}${divergedNote(runs)}`,
    );
  if (missing.length > 0)
    console.error(
      `bnx plot: left out: ${missing.slice(0, 6).join('; ')}${missing.length > 6 ? `; and ${missing.length - 6} more` : ''}`,
    );
  return {
    name: `${ctx.specs.join('+') || 'bnx'}-${values.join('+')}-by-${key}`,
    spec: () => sweepChartSpec(runs, chartOpts),
    term: () => sweepTermCharts(runs, { ...chartOpts, color: useColor(), width: ctx.width }),
  };
}

/**
 * An instrument's CSVs. Runs without the CSV are named on stderr and left out; if no run has it,
 * that line is the InputError.
 */
function instrumentPlot(
  runs: LoadedRun[],
  instrument: InstrumentName,
  opts: PlotOptions,
  ctx: { width: number; specs: string[] },
): Plot {
  if (opts.metric.length > 0)
    throw new InputError(
      `--metric ${opts.metric.join(',')} --instrument ${instrument}`,
      'choose one: a metric or an instrument',
    );
  if (opts.x !== 'step' || opts.logX !== undefined)
    throw new InputError(`--x ${opts.x}`, 'instrument CSVs are plotted against the training step only');
  const loaded = loadInstrument(runs, instrument);
  reportDamage(loaded.damage);
  const lacking = missingInstrumentLine(loaded);
  if (loaded.found.length === 0) throw new InputError(runsWhere(runs), lacking!);
  if (lacking) console.error(`bnx plot: ${lacking}`);
  const layers = opts.layer
    .flatMap((l) => l.split(','))
    .map((l) => l.trim())
    .filter(Boolean);
  // Checks --layer now, before any chart is drawn.
  instrumentLayers(loaded, layers);
  const found = loaded.found.map((f) => f.run);
  const specs = [...new Set(found.map((r) => r.spec).filter(Boolean))];
  const title =
    opts.title ??
    `${specs.join(', ') || 'bnx'}: ${INSTRUMENT_TITLES[instrument]}${layers.length > 0 ? ` (${layers.join(', ')})` : ''}`;
  const chartOpts = { layers, logY: opts.logY, title };
  return {
    name: `${specs.join('+') || 'bnx'}-${instrument}${layers.length > 0 ? `-${layers.join('+')}` : ''}`,
    spec: () => instrumentChartSpec(loaded, chartOpts),
    term: () => instrumentTermCharts(loaded, { ...chartOpts, color: useColor(), width: ctx.width }),
  };
}

/** Where the plotted runs are, for an error line: their common sweep folder, or the first run and a count. */
function runsWhere(runs: LoadedRun[]): string {
  const dirs = [...new Set(runs.map((r) => path.dirname(r.path)))];
  if (dirs.length === 1) return dirs[0];
  return runs.length === 1 ? runs[0].path : `${runs[0].path} and ${runs.length - 1} more`;
}

export function registerAnalyzeCommands(program: Command): void {
  program
    .command('ls')
    .description(
      'list runs: spec, run id, varying parameters, status, steps, final/best validation loss and accuracy, test accuracy, val_loss fluctuation, wall time',
    )
    .argument('[results]', 'a results folder (every sweep in it), a sweep folder or a run folder', 'results')
    .option('--json', 'print the runs as JSON', false)
    .option(
      '--sort <key>',
      'sort by a column (test_acc, best_val_acc, wall_time_s, ...) or config key; a leading - sorts descending (--sort=-test_acc)',
    )
    .option(
      '--filter <key=value>',
      'keep runs where a column or config key has this value (model.norm=batch, norm=batch, status=completed); repeatable',
      collect,
      [],
    )
    .action((dir: string, opts: { json: boolean; sort?: string; filter: string[] }, cmd: Command) => {
      const defaulted = cmd.args.length === 0;
      if (defaulted && !fs.existsSync(dir)) {
        if (opts.json) console.log('[]');
        else
          console.log(`no runs: ${dir}${path.sep} does not exist (bnx run writes there; or name a folder: bnx ls DIR)`);
        return;
      }
      const damage: DamageNotes = [];
      const runs = loadResults(dir, damage);
      reportDamage(damage);
      const rows = listResults(runs, { sort: opts.sort, filter: opts.filter });
      if (opts.json)
        console.log(JSON.stringify(rows, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2));
      else console.log(formatListing(rows));
    });

  program
    .command('diff')
    .description(
      'compare two runs, two sweeps (runs matched on the parameters they share) or a run and a sweep: config keys that differ, metrics at matching steps, final and best values, steps to a target accuracy and their ratio. With one sweep: its BN vs no-BN pairs',
    )
    .argument('<a>', 'run folder, sweep folder or metrics CSV (the baseline)')
    .argument('[b]', 'run folder, sweep folder or metrics CSV (compared against A)')
    .option(
      '--target <acc>',
      'validation accuracy to measure steps to; comma list or repeatable (default by dataset: mnist 0.95, fashion_mnist 0.85, cifar10 0.7, synthetic 0.9)',
      collect,
      [],
    )
    .option('--all-steps', 'show every step both runs logged, not about a dozen evaluations', false)
    .option('--json', 'print the diff as JSON', false)
    .option(
      '--csv',
      'print the diff as one long CSV table (a_run,b_run,section,name,step,a,b,diff,a_step,b_step,ratio)',
      false,
    )
    .option('--fail-if-worse', 'exit 1 if B is worse than A on --metric (beyond --tolerance), for CI', false)
    .addOption(
      new Option('--metric <value>', 'the value --fail-if-worse compares')
        .choices([...COMPARED_VALUES])
        .default('final_val_acc'),
    )
    .option('--tolerance <x>', 'how much worse B may be before --fail-if-worse fails', '0')
    .action(
      (
        a: string,
        b: string | undefined,
        opts: {
          target: string[];
          allSteps: boolean;
          json: boolean;
          csv: boolean;
          failIfWorse: boolean;
          metric: ComparedValue;
          tolerance: string;
        },
      ) => {
        if (opts.json && opts.csv) throw new InputError('--json --csv', 'choose one output format');
        const tolerance = Number(opts.tolerance);
        if (!Number.isFinite(tolerance) || tolerance < 0)
          throw new InputError(`--tolerance ${opts.tolerance}`, 'must be a number >= 0');
        const targets = parseTargets(opts.target);
        const damage: DamageNotes = [];
        const diff =
          b === undefined
            ? diffWithin(loadSweep(a, damage), { targets })
            : diffSweeps(loadSweep(a, damage), loadSweep(b, damage), { targets });
        reportDamage(damage);
        if (diff.pairs.length === 0)
          throw new InputError(
            `${a} ${b}`,
            'no runs to compare: no run of A matches a run of B on the parameters they share',
          );
        if (opts.json) process.stdout.write(diffJson(diff));
        else if (opts.csv) process.stdout.write(diffCsv(diff));
        else console.log(formatDiff(diff, { allSteps: opts.allSteps }));
        if (opts.failIfWorse) {
          const worse = worsePairs(diff, opts.metric, tolerance);
          for (const w of worse) console.error(`bnx diff: worse: ${w}`);
          if (worse.length > 0) process.exitCode = 1;
        }
      },
    );

  program
    .command('plot')
    .description(
      'line charts of runs, one line per run (legend: the parameters that differ), to SVG and PNG, or to the terminal with --term; --instrument plots an instrument CSV instead',
    )
    .argument('<runs...>', 'run folders, sweep folders or metrics CSVs')
    .option(
      '--metric <name>',
      `what to plot: ${METRICS.join(', ')}; a comma list or repeated gives one panel per metric (default val_acc); with --x <config key>: ${COMPARED_VALUES.join(', ')} (default test_acc)`,
      collect,
      [],
    )
    .option(
      '--x <axis>',
      "x axis: step, epoch, time (estimated from run.json: metrics.csv holds no clock times), or a swept config key (train.lr) to plot each run's final value against it",
      'step',
    )
    .option('--log-x', 'with --x <config key>: logarithmic x axis (default: when the values span a decade or more)')
    .option('--no-log-x', 'with --x <config key>: linear x axis')
    .option(
      '-o, --out <file>',
      'output file: .svg, .png, or a name without extension for both; repeatable (default: <spec>-<metric>.svg and .png here)',
      collect,
      [],
    )
    .option('--term', 'draw the chart in the terminal (no files unless -o is given)', false)
    .option('--log-y', 'logarithmic y axis', false)
    .option('--title <text>', 'chart title (default: spec and metric)')
    .option('--scale <n>', 'PNG pixels per SVG pixel', '2')
    .addOption(
      new Option(
        '--instrument <name>',
        'plot an instrument CSV of the runs instead of metrics: activation_percentiles as bands, ics, smoothness or eval_gap',
      ).choices([...INSTRUMENT_NAMES]),
    )
    .option(
      '--layer <name>',
      'with --instrument activation_percentiles or ics: only these layers (hidden3, conv1); comma list or repeatable',
      collect,
      [],
    )
    .action(async (paths: string[], opts: PlotOptions) => {
      const scale = positive('--scale', opts.scale, 8);
      const damage: DamageNotes = [];
      const runs: LoadedRun[] = paths.flatMap((p) => loadSweep(p, damage).runs);
      reportDamage(damage);
      const specs = [...new Set(runs.map((r) => r.spec).filter(Boolean))];
      const width = Math.min(Math.max(process.stdout.columns || Number(process.env.COLUMNS) || 100, 50), 160);
      const chart = opts.instrument
        ? instrumentPlot(runs, opts.instrument, opts, { width, specs })
        : metricsPlot(runs, opts, { width, specs });
      if (opts.term) for (const t of chart.term()) console.log(`${t}\n`);
      let outs = opts.out;
      if (outs.length === 0 && !opts.term) outs = [chart.name];
      if (outs.length === 0) return;
      const files: { file: string; kind: 'svg' | 'png' }[] = [];
      for (const o of outs) {
        const ext = path.extname(o).toLowerCase();
        if (ext === '.svg') files.push({ file: o, kind: 'svg' });
        else if (ext === '.png') files.push({ file: o, kind: 'png' });
        else if (ext === '') files.push({ file: `${o}.svg`, kind: 'svg' }, { file: `${o}.png`, kind: 'png' });
        else throw new InputError(`-o ${o}`, 'the file must end in .svg or .png (or have no extension for both)');
      }
      const svg = await renderSvg(chart.spec());
      for (const f of files) {
        ensureParent(f.file);
        if (f.kind === 'svg') writeFileAtomic(f.file, svg);
        else writeFileAtomic(f.file, await renderPng(svg, { scale }));
        console.log(`wrote ${f.file}`);
      }
    });

  program
    .command('report')
    .description(
      'one self-contained page for a sweep: headline numbers, accuracy and loss charts, the run table, the BN vs no-BN diff and the spec (.html, or .md with SVG charts beside it)',
    )
    .argument('<sweep>', 'a sweep folder (results/<spec name>) or a run folder')
    .option('-o, --out <file>', 'report file: .html or .md (default: <sweep>/report.html)')
    .addOption(new Option('--x <axis>', 'x axis of the charts').choices([...X_AXES]).default('step'))
    .option('--target <acc>', 'extra validation accuracies to measure steps to; comma list or repeatable', collect, [])
    .action(async (dir: string, opts: { out?: string; x: XAxis; target: string[] }) => {
      const out = opts.out ?? path.join(dir, 'report.html');
      const ext = path.extname(out).toLowerCase();
      if (!['.html', '.htm', '.md'].includes(ext))
        throw new InputError(`-o ${out}`, 'the report file must end in .html or .md');
      const targets = parseTargets(opts.target);
      const damage: DamageNotes = [];
      const sweep = loadSweep(dir, damage);
      reportDamage(damage);
      const report = await buildReport(sweep, { x: opts.x, targets });
      ensureParent(out);
      if (ext === '.md') {
        const base = path.basename(out, ext);
        const chartFile = (name: string) => `${base}-${name}.svg`;
        for (const c of report.charts) {
          const file = path.join(path.dirname(out), chartFile(c.name));
          writeFileAtomic(file, c.svg);
          console.log(`wrote ${file}`);
        }
        writeFileAtomic(out, reportMarkdown(report, chartFile));
      } else {
        writeFileAtomic(out, reportHtml(report));
      }
      console.log(`wrote ${out}`);
    });
}
