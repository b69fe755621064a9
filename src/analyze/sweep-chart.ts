import { InputError } from '../util/errors.js';
import { chartBase, legendOf, termChart, type VegaLiteSpec } from './chart.js';
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
}

export interface SweepPoint {
  series: string;
  value: string;
  x: number | string;
  y: number;
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
  const others = varying.filter((k) => k !== opts.key && !followsX(k));
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
      points.push({ series: labels[i], value: v, x: numericX ? (x as number) : formatValue(x), y });
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

export function sweepChartSpec(runs: LoadedRun[], opts: SweepChartOptions): VegaLiteSpec {
  const { points, numericX } = sweepPoints(runs, opts);
  if (points.length === 0) throw new InputError('plot', `no run has a value for ${opts.values.join(', ')}`);
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
  const base = chartBase(opts.title, values);
  if (single) return { ...base, ...panel };
  return {
    ...base,
    facet: {
      column: { field: 'value', type: 'nominal', sort: opts.values, title: null, header: { labelFontSize: 13 } },
    },
    spec: panel,
    resolve: { scale: { y: 'independent' } },
  };
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
    const mine = points.filter((p) => p.value === v);
    const series = [...new Set(mine.map((p) => p.series))].map((label) => ({
      label,
      points: mine.filter((p) => p.series === label).map((p) => ({ x: xOf(p), y: p.y })),
    }));
    const xLabel = `${opts.key}${logX ? ' (log10)' : ''}${numericX ? '' : `: ${categories.map((c, i) => `${i}=${c}`).join(' ')}`}`;
    return termChart(series, { width: opts.width, color: opts.color, logY: opts.logY, title: v, xLabel });
  });
}
