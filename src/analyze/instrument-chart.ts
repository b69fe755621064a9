import { InputError } from '../util/errors.js';
import type { InstrumentName } from '../spec/types.js';
import { chartBase, legendOf, termChart, xTitle, type TermSeries, type VegaLiteSpec } from './chart.js';
import { percentileColumns, type InstrumentRuns, type InstrumentTable } from './instruments.js';
import { runLabels } from './results.js';

/**
 * Charts of the instrument CSVs. Each instrument becomes points of (run, layer, measure, step) with a
 * band (lo..hi) and/or a line (mid):
 * - activation_percentiles: the band between the lowest and highest percentile, the median (or the
 *   middle percentile) as the line: the paper's Figure 1(b,c), one panel per run and layer.
 * - ics: cosine and l2 distance between a layer's gradient before and after the preceding layers'
 *   update, lines per run (Santurkar et al., Figure 5).
 * - smoothness: at each step, the range over step sizes of the loss (the loss landscape) and of the
 *   gradient change (gradient predictiveness) as bands, and the largest beta as a line
 *   (Santurkar et al., Figure 4).
 * - eval_gap: validation loss in training mode minus in inference mode, a line per run.
 */

export interface InstrumentPoint {
  /** The run's legend label. */
  run: string;
  layer: string | null;
  /** The measure's title (a panel). */
  measure: string;
  step: number;
  lo: number | null;
  mid: number | null;
  hi: number | null;
}

export interface InstrumentChartOptions {
  /** Only these layers (per-layer instruments); default all. */
  layers?: string[];
  logY?: boolean;
  title?: string;
  /** Size of one panel in pixels. */
  width?: number;
  height?: number;
  /** Labels of the runs that have the instrument (loaded.found), in order; default runLabels. */
  labels?: string[];
}

/** What each instrument measures, in words: default chart titles. */
export const INSTRUMENT_TITLES: Record<InstrumentName, string> = {
  activation_percentiles: 'activation percentiles, inputs to the nonlinearity',
  ics: 'internal covariate shift',
  smoothness: 'loss landscape smoothness',
  eval_gap: 'validation loss, training mode vs inference mode',
};

const MEASURE_TITLES = {
  activation: 'input to the nonlinearity',
  cosine: 'ICS: gradient cosine similarity',
  l2: 'ICS: gradient l2 distance',
  loss: 'loss landscape: loss over step sizes',
  grad_change: 'gradient predictiveness: change over step sizes',
  beta: 'effective beta-smoothness (max over step sizes)',
  gap: 'val loss: training mode - inference mode',
} as const;

const MEASURES: Record<InstrumentName, (keyof typeof MEASURE_TITLES)[]> = {
  activation_percentiles: ['activation'],
  ics: ['cosine', 'l2'],
  smoothness: ['loss', 'grad_change', 'beta'],
  eval_gap: ['gap'],
};

const hasLayers = (instrument: InstrumentName) => instrument === 'activation_percentiles' || instrument === 'ics';

/** The percentile columns drawn: the band's edges (lowest, highest) and the line (p50, else the middle one of an odd count). */
export function percentileRoles(table: InstrumentTable): { lo: string | null; mid: string | null; hi: string | null } {
  const ps = percentileColumns(table.columns);
  const median = ps.find((p) => p.q === 50) ?? (ps.length % 2 === 1 ? ps[(ps.length - 1) / 2] : undefined);
  const band = ps.length >= 2;
  return { lo: band ? ps[0].column : null, mid: median?.column ?? null, hi: band ? ps[ps.length - 1].column : null };
}

/** `p15-p85 band, p50 line` for the runs' percentile columns (all runs alike, else in words). */
function percentileLegend(tables: InstrumentTable[]): string {
  const roles = tables.map(percentileRoles);
  const same = roles.every((r) => r.lo === roles[0].lo && r.mid === roles[0].mid && r.hi === roles[0].hi);
  const { lo, mid, hi } = same ? roles[0] : { lo: 'lowest', mid: 'median', hi: 'highest percentile' };
  return [lo && hi ? `${lo}-${hi} band` : '', mid ? `${mid} line` : ''].filter(Boolean).join(', ');
}

/** The layers of the runs in the order they first appear, checked against a --layer selection. */
export function instrumentLayers(loaded: InstrumentRuns, selected?: string[]): string[] {
  if (!hasLayers(loaded.instrument)) {
    if (selected && selected.length > 0)
      throw new InputError(
        `--layer ${selected.join(',')}`,
        `${loaded.instrument} has no layers (only activation_percentiles and ics do)`,
      );
    return [];
  }
  const all: string[] = [];
  for (const { table } of loaded.found)
    for (const r of table.rows) if (r.layer !== null && !all.includes(r.layer)) all.push(r.layer);
  if (!selected || selected.length === 0) return all;
  for (const l of selected) {
    if (!all.includes(l))
      throw new InputError(
        `--layer ${l}`,
        `no such layer in the runs' ${loaded.instrument}.csv; layers are ${all.join(', ')}`,
      );
  }
  return all.filter((l) => selected.includes(l));
}

const finite = (v: number | undefined): v is number => v !== undefined && Number.isFinite(v);
const range = (vs: number[]): [number | null, number | null] => {
  const f = vs.filter(finite);
  return f.length === 0 ? [null, null] : [Math.min(...f), Math.max(...f)];
};

/** One run's points. */
function tablePoints(table: InstrumentTable, run: string, layers: string[]): InstrumentPoint[] {
  const points: InstrumentPoint[] = [];
  const v = (x: number | undefined) => (finite(x) ? x : null);
  const rows = hasLayers(table.instrument)
    ? table.rows.filter((r) => r.layer !== null && layers.includes(r.layer))
    : table.rows;
  switch (table.instrument) {
    case 'activation_percentiles': {
      const { lo, mid, hi } = percentileRoles(table);
      const measure = MEASURE_TITLES.activation;
      for (const r of rows) {
        points.push({
          run,
          layer: r.layer,
          measure,
          step: r.step,
          lo: lo ? v(r.values[lo]) : null,
          mid: mid ? v(r.values[mid]) : null,
          hi: hi ? v(r.values[hi]) : null,
        });
      }
      break;
    }
    case 'ics':
      for (const r of rows) {
        for (const m of ['cosine', 'l2'] as const)
          points.push({
            run,
            layer: r.layer,
            measure: MEASURE_TITLES[m],
            step: r.step,
            lo: null,
            mid: v(r.values[m]),
            hi: null,
          });
      }
      break;
    case 'smoothness': {
      // One row per (step, step size): the ranges are taken over the step sizes of each step.
      const steps = [...new Set(rows.map((r) => r.step))];
      for (const step of steps) {
        const at = rows.filter((r) => r.step === step);
        for (const m of ['loss', 'grad_change'] as const) {
          const [lo, hi] = range(at.map((r) => r.values[m]));
          points.push({ run, layer: null, measure: MEASURE_TITLES[m], step, lo, mid: null, hi });
        }
        points.push({
          run,
          layer: null,
          measure: MEASURE_TITLES.beta,
          step,
          lo: null,
          mid: range(at.map((r) => r.values.beta))[1],
          hi: null,
        });
      }
      break;
    }
    case 'eval_gap':
      for (const r of rows)
        points.push({
          run,
          layer: null,
          measure: MEASURE_TITLES.gap,
          step: r.step,
          lo: null,
          mid: v(r.values.gap),
          hi: null,
        });
      break;
  }
  return points;
}

/**
 * The points of every run that has the instrument. On a log scale values <= 0 cannot be drawn: a
 * band with such an edge is dropped, as is a line value.
 */
export function instrumentPoints(loaded: InstrumentRuns, opts: InstrumentChartOptions = {}): InstrumentPoint[] {
  const labels = opts.labels ?? runLabels(loaded.found.map((f) => f.run));
  const layers = instrumentLayers(loaded, opts.layers);
  const points = loaded.found.flatMap(({ table }, i) => tablePoints(table, labels[i], layers));
  if (!opts.logY) return points.filter((p) => p.lo !== null || p.mid !== null);
  return points.flatMap((p) => {
    const band = p.lo !== null && p.hi !== null && p.lo > 0 && p.hi > 0;
    const q = { ...p, lo: band ? p.lo : null, hi: band ? p.hi : null, mid: p.mid !== null && p.mid > 0 ? p.mid : null };
    return q.lo !== null || q.mid !== null ? [q] : [];
  });
}

const X_ENCODING = {
  field: 'step',
  type: 'quantitative',
  title: xTitle('step'),
  scale: { zero: true },
  axis: { format: ',~r' },
};

/**
 * A band (area from lo to hi, not stacked) and a line (mid) of each run, on one y axis. Instruments
 * without bands get the line alone, so that their legend shows line swatches.
 */
function bandAndLine(instrument: InstrumentName, yTitle: string | null, color: object, logY: boolean): object[] {
  const y = (field: string) => ({
    field,
    type: 'quantitative',
    title: yTitle,
    stack: null,
    scale: logY ? { type: 'log' } : { zero: false },
  });
  const band = {
    transform: [{ filter: 'isValid(datum.lo) && isValid(datum.hi)' }],
    mark: { type: 'area', opacity: 0.3, clip: true },
    encoding: { x: X_ENCODING, y: y('lo'), y2: { field: 'hi' }, color, detail: { field: 'run' } },
  };
  const line = {
    transform: [{ filter: 'isValid(datum.mid)' }],
    mark: { type: 'line', strokeWidth: 2, clip: true },
    encoding: { x: X_ENCODING, y: y('mid'), color, detail: { field: 'run' } },
  };
  return instrument === 'activation_percentiles' || instrument === 'smoothness' ? [band, line] : [line];
}

/**
 * The vega-lite spec of an instrument's chart (render it with renderSvg). activation_percentiles:
 * one row per layer, one column per run sharing the row's y scale, so drifting and stable bands
 * compare at a glance. ics: one row per layer, one column per measure. smoothness: one column per
 * measure. eval_gap: one panel. Colour is by run throughout.
 */
export function instrumentChartSpec(loaded: InstrumentRuns, opts: InstrumentChartOptions = {}): VegaLiteSpec {
  if (loaded.found.length === 0) throw new InputError(loaded.instrument, 'no runs with this instrument to plot');
  const legend = legendOf(opts.labels ?? runLabels(loaded.found.map((f) => f.run)));
  const points = instrumentPoints(loaded, { ...opts, labels: legend.labels });
  const layers = instrumentLayers(loaded, opts.layers);
  const logY = Boolean(opts.logY);
  const base = chartBase(opts.title, points);
  const size = { width: opts.width ?? 360, height: opts.height ?? 220 };
  const header = { labelFontSize: 13 };
  const colorScale = { domain: legend.labels };

  if (loaded.instrument === 'activation_percentiles') {
    const color = { field: 'run', type: 'nominal', title: legend.title, scale: colorScale, legend: null };
    // Short enough to fit beside a panel: the chart title says what is measured.
    const yTitle = (layer: string) => `${layer} (${percentileLegend(loaded.found.map((f) => f.table))})`;
    const rowOf = (layer: string) => ({
      transform: [{ filter: { field: 'layer', equal: layer } }],
      facet: { column: { field: 'run', type: 'nominal', sort: legend.labels, title: legend.title, header } },
      spec: { ...size, layer: bandAndLine(loaded.instrument, yTitle(layer), color, logY) },
    });
    return layers.length === 1 ? { ...base, ...rowOf(layers[0]) } : { ...base, vconcat: layers.map(rowOf) };
  }

  const color = {
    field: 'run',
    type: 'nominal',
    title: legend.title,
    scale: colorScale,
    legend: { labelLimit: 480, orient: 'bottom' },
  };
  const measures = MEASURES[loaded.instrument].map((m) => MEASURE_TITLES[m]);
  if (measures.length === 1)
    return { ...base, ...size, layer: bandAndLine(loaded.instrument, measures[0], color, logY) };
  const facet: Record<string, object> = {
    column: { field: 'measure', type: 'nominal', sort: measures, title: null, header },
  };
  if (hasLayers(loaded.instrument)) facet.row = { field: 'layer', type: 'nominal', sort: layers, title: null, header };
  return {
    ...base,
    facet,
    spec: { ...size, layer: bandAndLine(loaded.instrument, null, color, logY) },
    resolve: { scale: { y: 'independent' } },
  };
}

/**
 * The instrument drawn with characters, one chart per panel. activation_percentiles: one chart per
 * layer and run, the lowest, middle and highest percentile as three lines, every run of a layer on
 * the same y range. The others: one chart per layer and measure, a line per run (two per run for a
 * band: its min and max).
 */
export function instrumentTermCharts(
  loaded: InstrumentRuns,
  opts: InstrumentChartOptions & { width?: number; height?: number; color?: boolean } = {},
): string[] {
  const labels = opts.labels ?? runLabels(loaded.found.map((f) => f.run));
  const points = instrumentPoints(loaded, { ...opts, labels });
  const layers = instrumentLayers(loaded, opts.layers);
  const term = {
    width: opts.width,
    height: opts.height ?? 12,
    color: opts.color,
    logY: opts.logY,
    xLabel: xTitle('step'),
  };
  const series = (label: string, ps: InstrumentPoint[], field: 'lo' | 'mid' | 'hi'): TermSeries => ({
    label,
    points: ps.flatMap((p) => (p[field] === null ? [] : [{ x: p.step, y: p[field]! }])),
  });
  const charts: string[] = [];
  if (loaded.instrument === 'activation_percentiles') {
    for (const layer of layers) {
      const inLayer = points.filter((p) => p.layer === layer);
      const ys = inLayer.flatMap((p) => [p.lo, p.mid, p.hi]).filter((y): y is number => y !== null);
      const yRange: [number, number] | undefined = ys.length > 0 ? [Math.min(...ys), Math.max(...ys)] : undefined;
      loaded.found.forEach(({ table }, i) => {
        const roles = percentileRoles(table);
        const ps = inLayer.filter((p) => p.run === labels[i]);
        // The median last: drawn over the band's edges where they share a row.
        const data = (['hi', 'lo', 'mid'] as const).flatMap((role) =>
          roles[role] ? [series(roles[role]!, ps, role)] : [],
        );
        charts.push(
          termChart(data, {
            ...term,
            yRange,
            title: `${labels[i]}, ${layer}: ${MEASURE_TITLES.activation} vs ${xTitle('step')}`,
          }),
        );
      });
    }
    return charts;
  }
  const measures = MEASURES[loaded.instrument].map((m) => MEASURE_TITLES[m]);
  for (const layer of hasLayers(loaded.instrument) ? layers : [null]) {
    for (const measure of measures) {
      const panel = points.filter((p) => p.measure === measure && p.layer === layer);
      const isBand = panel.some((p) => p.lo !== null);
      const data = labels.flatMap((label) => {
        const ps = panel.filter((p) => p.run === label);
        return isBand
          ? [series(`${label} max`, ps, 'hi'), series(`${label} min`, ps, 'lo')]
          : [series(label, ps, 'mid')];
      });
      charts.push(termChart(data, { ...term, title: `${layer ? `${layer}: ` : ''}${measure} vs ${xTitle('step')}` }));
    }
  }
  return charts;
}
