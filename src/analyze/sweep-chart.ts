import { InputError } from '../util/errors.js';
import {
  bandCaption,
  bandOf,
  chartBase,
  clampBand,
  faceted,
  legendOf,
  termChart,
  type Band,
  type VegaLiteSpec,
} from './chart.js';
import { groupReplicates } from './replicates.js';
import { formatValue, runConfig, sameValue, shortKeys, varyingKeys, type LoadedRun } from './results.js';
import { runValues, type ComparedValue } from './stats.js';

/**
 * The chart of a sweep's outcome: one run value (test_acc, best_val_acc, final_train_loss, ...)
 * against a swept configuration key (train.lr, train.batch_size), one line per combination of the
 * other keys that differ (model.norm). Runs without the value (a diverged run has no test_acc) are
 * left out of their line and named.
 */
export interface SweepChartOptions {
  /** The configuration key on the x axis (a dotted key path). */
  key: string;
  values: ComparedValue[];
  logX?: boolean;
  logY?: boolean;
  title?: string;
  /** Replicates: the error bar around each mean (default ci: the 95 % t-interval of the mean). */
  band?: Band;
  /** Replicates: draw every seed's value as a small point too. */
  showRuns?: boolean;
}

export interface SweepPoint {
  series: string;
  value: string;
  x: number | string;
  y: number;
  /** The run the point is from. */
  run: string;
}

/** Replicates of one series at one x: the mean of the runs' values with its band. */
export interface SweepCell {
  series: string;
  value: string;
  x: number | string;
  mean: number;
  lo: number | null;
  hi: number | null;
  /** Runs with a value here. */
  n: number;
}

/** The points of the chart and the runs that have no value for some of `values`. */
export function sweepPoints(
  runs: LoadedRun[],
  opts: SweepChartOptions,
): { points: SweepPoint[]; numericX: boolean; missing: string[] } {
  const withRecord = runs.filter((r) => r.record);
  if (withRecord.length === 0)
    throw new InputError('plot', `--x ${opts.key} needs run folders (run.json holds each run's configuration)`);
  const xs = withRecord.map((r) => runConfig(r)[opts.key]);
  if (xs.every((x) => x === undefined))
    throw new InputError(`--x ${opts.key}`, `no run has the configuration key ${opts.key}`);
  const varying = varyingKeys(withRecord);
  if (!varying.includes(opts.key))
    throw new InputError(
      `--x ${opts.key}`,
      `every run has ${opts.key}=${formatValue(xs[0])}; it is not swept (swept here: ${varying.join(', ') || 'nothing'})`,
    );
  const numericX = xs.every((x) => typeof x === 'number');
  // The series: the other swept keys' values (`norm=batch`), as in a metric plot's legend; keys
  // that follow the x key (a linked axis: lr scaled with the batch size) are not series.
  const configs = withRecord.map(runConfig);
  const followsX = (k: string) =>
    xs.every((x, i) => configs.every((c, j) => !sameValue(xs[j], x) || sameValue(c[k], configs[i][k])));
  // Seeds are replicates, never series: their values are averaged (sweepCells).
  const others = varying.filter((k) => k !== opts.key && k !== 'seed' && !followsX(k));
  const short = shortKeys(others);
  const labels = configs.map((c) => {
    return others.length > 0 ? others.map((k) => `${short.get(k)}=${formatValue(c[k])}`).join(', ') : 'all runs';
  });
  const points: SweepPoint[] = [];
  const missing: string[] = [];
  withRecord.forEach((run, i) => {
    const values = runValues(run);
    for (const v of opts.values) {
      const y = values[v];
      if (y === null || !Number.isFinite(y) || (opts.logY && y <= 0)) {
        missing.push(`${run.id} (${run.record?.status ?? 'no record'}, no ${v})`);
        continue;
      }
      const x = xs[i];
      points.push({ series: labels[i], value: v, x: numericX ? (x as number) : formatValue(x), y, run: run.id });
    }
  });
  return { points, numericX, missing: [...new Set(missing)] };
}

/** x on a log scale when asked, or when positive numbers span a decade or more (learning rates, eps, batch sizes). */
function useLogX(points: SweepPoint[], numericX: boolean, asked: boolean | undefined): boolean {
  if (!numericX) return false;
  if (asked !== undefined) return asked;
  const xs = points.map((p) => p.x as number);
  return xs.length > 0 && xs.every((x) => x > 0) && Math.max(...xs) / Math.min(...xs) >= 10;
}

/** Points grouped by series, value and x: the mean and band of each cell's runs (cells in first-seen order). */
export function sweepCells(points: SweepPoint[], band: Band): SweepCell[] {
  const cells = new Map<string, { p: SweepPoint; ys: number[] }>();
  for (const p of points) {
    const key = JSON.stringify([p.series, p.value, p.x]);
    const cell = cells.get(key);
    if (cell) cell.ys.push(p.y);
    else cells.set(key, { p, ys: [p.y] });
  }
  return [...cells.values()].map(({ p, ys }) => {
    const b = bandOf(ys, band);
    const [lo, hi] = b.lo !== null && b.hi !== null ? clampBand(p.value, b.lo, b.hi) : [null, null];
    return { series: p.series, value: p.value, x: p.x, mean: b.mean, lo, hi, n: ys.length };
  });
}

/** Whether some cell has more than one run: then means with bands are drawn. */
const replicated = (points: SweepPoint[]) => sweepCells(points, 'none').some((c) => c.n > 1);

export function sweepChartSpec(runs: LoadedRun[], opts: SweepChartOptions): VegaLiteSpec {
  const { points, numericX } = sweepPoints(runs, opts);
  if (points.length === 0) throw new InputError('plot', `no run has a value for ${opts.values.join(', ')}`);
  if (replicated(points)) return bandedSweepSpec(runs, points, numericX, opts);
  const legend = legendOf([...new Set(points.map((p) => p.series))]);
  const rename = new Map([...new Set(points.map((p) => p.series))].map((s, i) => [s, legend.labels[i]]));
  const values = points.map((p) => ({ ...p, series: rename.get(p.series) }));
  const logX = useLogX(points, numericX, opts.logX);
  const single = opts.values.length === 1;
  const encoding = {
    x: numericX
      ? {
          field: 'x',
          type: 'quantitative',
          title: opts.key,
          scale: logX ? { type: 'log', nice: false } : { zero: false },
          axis: { format: '~g' },
        }
      : { field: 'x', type: 'ordinal', title: opts.key, sort: null },
    y: {
      field: 'y',
      type: 'quantitative',
      title: single ? opts.values[0] : null,
      scale: opts.logY ? { type: 'log' } : { zero: false },
    },
    color: {
      field: 'series',
      type: 'nominal',
      title: legend.title === 'run' ? 'runs' : legend.title,
      scale: { domain: legend.labels },
      legend: { labelLimit: 480 },
    },
  };
  const panel = { width: 480, height: 300, mark: { type: 'line', point: { size: 50 }, strokeWidth: 2 }, encoding };
  return faceted(chartBase(opts.title, values), panel, 'value', single ? null : opts.values);
}

/**
 * The sweep chart of replicates: per series, the mean over the seeds at each x as a line with
 * points, an error bar for the band, and (showRuns) every seed's value as a small point.
 */
function bandedSweepSpec(
  runs: LoadedRun[],
  points: SweepPoint[],
  numericX: boolean,
  opts: SweepChartOptions,
): VegaLiteSpec {
  const band = opts.band ?? 'ci';
  const cells = sweepCells(points, band);
  const seriesNames = [...new Set(cells.map((c) => c.series))];
  const legend = legendOf(seriesNames);
  const rename = new Map(seriesNames.map((s, i) => [s, legend.labels[i]]));
  const logX = useLogX(points, numericX, opts.logX);
  const logY = opts.logY ?? false;
  const values = [
    ...cells.map((c) => ({
      kind: 'mean',
      series: rename.get(c.series),
      value: c.value,
      x: c.x,
      y: c.mean,
      // A log axis cannot show a bar reaching 0: it stops at the mean's tenth.
      lo: c.lo !== null && logY && c.lo <= 0 ? c.mean / 10 : c.lo,
      hi: c.hi,
      n: c.n,
    })),
    ...(opts.showRuns
      ? points.map((p) => ({ kind: 'run', series: rename.get(p.series), value: p.value, x: p.x, y: p.y }))
      : []),
  ];
  const groups = groupReplicates(runs.filter((r) => points.some((p) => p.run === r.id)));
  const single = opts.values.length === 1;
  const x = numericX
    ? {
        field: 'x',
        type: 'quantitative',
        title: opts.key,
        scale: logX ? { type: 'log', nice: false } : { zero: false },
        axis: { format: '~g' },
      }
    : { field: 'x', type: 'ordinal', title: opts.key, sort: null };
  const yScale = logY ? { type: 'log' } : { zero: false };
  const yTitle = single ? opts.values[0] : null;
  const captions = bandCaption(groups, band, opts.showRuns ?? false).map((l) =>
    l
      .replace(/^line: mean/, 'points: mean')
      .replace(/^band:/, 'bars:')
      .replace(/^thin lines: each seed/, 'small points: each seed'),
  );
  const color = {
    field: 'series',
    type: 'nominal',
    title: [legend.title === 'run' ? 'runs' : legend.title, ...captions],
    scale: { domain: legend.labels },
    legend: { labelLimit: 480, titleLimit: 480 },
  };
  const only = (kind: string) => [{ filter: `datum.kind === '${kind}'` }];
  const layer = [
    ...(band !== 'none'
      ? [
          {
            transform: [...only('mean'), { filter: 'isValid(datum.lo) && isValid(datum.hi)' }],
            mark: { type: 'errorbar', ticks: true, thickness: 1.5 },
            encoding: {
              x,
              y: { field: 'lo', type: 'quantitative', title: yTitle, scale: yScale },
              y2: { field: 'hi' },
              color,
            },
          },
        ]
      : []),
    ...(opts.showRuns
      ? [
          {
            transform: only('run'),
            mark: { type: 'point', size: 18, opacity: 0.5, filled: true },
            encoding: { x, y: { field: 'y', type: 'quantitative', title: yTitle, scale: yScale }, color },
          },
        ]
      : []),
    {
      transform: only('mean'),
      mark: { type: 'line', point: { size: 50 }, strokeWidth: 2 },
      encoding: { x, y: { field: 'y', type: 'quantitative', title: yTitle, scale: yScale }, color },
    },
  ];
  const panel = { width: 480, height: 300, layer };
  return faceted(chartBase(opts.title, values), panel, 'value', single ? null : opts.values);
}

/** The same chart in the terminal, one per value. Non-numeric x values are placed at 0, 1, 2, ... */
export function sweepTermCharts(
  runs: LoadedRun[],
  opts: SweepChartOptions & { width?: number; color?: boolean },
): string[] {
  const { points, numericX } = sweepPoints(runs, opts);
  const logX = useLogX(points, numericX, opts.logX);
  const categories = [...new Set(points.map((p) => String(p.x)))];
  const xOf = (p: SweepPoint) =>
    numericX ? (logX ? Math.log10(p.x as number) : (p.x as number)) : categories.indexOf(String(p.x));
  return opts.values.map((v) => {
    // With replicates, each series' mean over the seeds at each x.
    const mine = replicated(points)
      ? sweepCells(
          points.filter((p) => p.value === v),
          'none',
        ).map((c) => ({ series: `${c.series} (mean)`, value: c.value, x: c.x, y: c.mean, run: '' }))
      : points.filter((p) => p.value === v);
    const series = [...new Set(mine.map((p) => p.series))].map((label) => ({
      label,
      points: mine.filter((p) => p.series === label).map((p) => ({ x: xOf(p), y: p.y })),
    }));
    const xLabel = `${opts.key}${logX ? ' (log10)' : ''}${numericX ? '' : `: ${categories.map((c, i) => `${i}=${c}`).join(' ')}`}`;
    return termChart(series, { width: opts.width, color: opts.color, logY: opts.logY, title: v, xLabel });
  });
}
