import fs from 'node:fs';
import { InputError } from '../util/errors.js';
import { groupLabels, groupReplicates, groupValue, hasReplicates, type ReplicateGroup } from './replicates.js';
import { runLabels, type LoadedRun } from './results.js';
import { series, type Metric } from './stats.js';

export type XAxis = 'step' | 'epoch' | 'time';
export const X_AXES: readonly XAxis[] = ['step', 'epoch', 'time'];

/** A vega-lite spec (kept as plain JSON so that vega-lite is loaded only when a chart is drawn). */
export type VegaLiteSpec = Record<string, unknown>;

/** What the shaded band around a replicate group's mean line is. */
export type Band = 'ci' | 'std' | 'minmax' | 'none';
export const BANDS: readonly Band[] = ['ci', 'std', 'minmax', 'none'];

export interface ChartOptions {
  metrics: Metric[];
  /** Replicate groups: the band around each mean line (default ci: the 95 % t-interval of the mean). */
  band?: Band;
  /** Replicate groups: draw every seed as a thin line too. */
  showRuns?: boolean;
  x?: XAxis;
  /** Logarithmic y axis (for losses that span decades). */
  logY?: boolean;
  title?: string;
  /** Size of one panel in pixels (the legend and axes come on top). */
  width?: number;
  height?: number;
  /** Legend labels, one per run; default: what differs between the runs (runLabels). */
  labels?: string[];
}

/** Font of chart text: the first family that exists wins (DejaVu Sans is in Debian's base fonts). */
export const CHART_FONT = 'DejaVu Sans, Helvetica, Arial, sans-serif';

/** What a metric is, in words. `val_*` on runs that validate on the test set are test metrics. */
export function metricTitle(metric: Metric, runs: LoadedRun[]): string {
  const onTest = runs.length > 0 && runs.every((r) => r.record?.config.data.validation === 'test');
  const val = onTest ? 'test' : 'validation';
  const titles: Record<Metric, string> = {
    train_loss: 'training loss',
    train_acc: 'training accuracy',
    val_loss: `${val} loss`,
    val_acc: `${val} accuracy`,
    lr: 'learning rate',
  };
  return `${titles[metric]} (${metric})`;
}

export function xTitle(x: XAxis): string {
  return { step: 'training step', epoch: 'epoch', time: 'wall-clock seconds (estimated from run.json)' }[x];
}

/**
 * Seconds since the run started at each step. metrics.csv holds no clock times (so that reruns are
 * byte-identical): the time is estimated from run.json's wall_time_s at a constant step rate.
 */
function secondsPerStep(run: LoadedRun): number {
  const rec = run.record;
  const steps = run.metrics.at(-1)?.step ?? 0;
  let wall = rec?.wall_time_s ?? null;
  if (rec && wall === null && rec.status === 'running') wall = (Date.now() - Date.parse(rec.started_at)) / 1000;
  if (!rec || wall === null || steps === 0) {
    throw new InputError(
      run.path,
      '--x time needs the run.json of a run with a wall_time_s (metrics.csv holds no clock times)',
    );
  }
  return wall / steps;
}

export interface ChartRow {
  run: string;
  metric: string;
  x: number;
  value: number;
}

/** The long-format data behind a chart: one row per run, metric and logged point (finite values only). */
export function chartRows(runs: LoadedRun[], opts: ChartOptions): ChartRow[] {
  const x = opts.x ?? 'step';
  const labels = opts.labels ?? runLabels(runs);
  const rows: ChartRow[] = [];
  runs.forEach((run, i) => {
    const rate = x === 'time' ? secondsPerStep(run) : 0;
    for (const metric of opts.metrics) {
      for (const p of series(run.metrics, metric)) {
        if (!Number.isFinite(p.value) || (opts.logY && p.value <= 0)) continue;
        const xv = x === 'step' ? p.step : x === 'epoch' ? p.epoch : Math.round(p.step * rate * 100) / 100;
        rows.push({ run: labels[i], metric: metricTitle(metric, runs), x: xv, value: p.value });
      }
    }
  });
  return rows;
}

/** The legend's title: the keys the labels are made of (`norm`), or `run`. */
function legendTitle(labels: string[]): string {
  const keys = labels.map((l) => [...l.matchAll(/([\w.]+)=/g)].map((m) => m[1]).join(', '));
  return keys.length > 0 && keys.every((k) => k && k === keys[0]) ? keys[0] : 'run';
}

/**
 * The legend's title and entries. When one key tells the runs apart it titles the legend and the
 * entries are its values (`norm`: `none`, `batch`).
 */
export function legendOf(labels: string[]): { title: string; labels: string[] } {
  const title = legendTitle(labels);
  if (title !== 'run' && !title.includes(',')) return { title, labels: labels.map((l) => l.replace(`${title}=`, '')) };
  return { title, labels };
}

/** What every bnx chart shares: title, white background, fonts, and its data inline. */
export function chartBase(title: string | undefined, values: object[]): VegaLiteSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    ...(title ? { title: { text: title, anchor: 'start', fontSize: 14 } } : {}),
    background: 'white',
    padding: 12,
    data: { values },
    config: {
      font: CHART_FONT,
      axis: { labelFontSize: 11, titleFontSize: 12 },
      legend: { labelFontSize: 12, titleFontSize: 12 },
    },
  };
}

/** The band in words, for legends and captions. */
export function bandText(band: Band): string {
  return {
    ci: '95% t-interval of the mean',
    std: 'mean ± one standard deviation of the seeds',
    minmax: 'lowest to highest seed',
    none: 'none',
  }[band];
}

/** `5 seeds` or `3-5 seeds`. */
function seedsText(groups: ReplicateGroup[]): string {
  const ns = groups.map((g) => g.runs.length);
  const [lo, hi] = [Math.min(...ns), Math.max(...ns)];
  return `${lo === hi ? lo : `${lo}-${hi}`} seed${hi === 1 ? '' : 's'}`;
}

/** What a banded chart shows, one line each: the mean, the band, the thin lines. */
export function bandCaption(groups: ReplicateGroup[], band: Band, showRuns: boolean): string[] {
  return [
    `line: mean of ${seedsText(groups)}`,
    ...(band !== 'none' ? [`band: ${bandText(band)}`] : []),
    ...(showRuns ? ['thin lines: each seed'] : []),
  ];
}

/** The band around a mean: lo and hi for the values at one x. */
export function bandOf(values: number[], band: Band): { mean: number; lo: number | null; hi: number | null } {
  const g = groupValue(values, values.map(String));
  const mean = g.mean!;
  if (band === 'ci') return { mean, lo: g.ci95_low, hi: g.ci95_high };
  if (band === 'std')
    return g.std === null ? { mean, lo: null, hi: null } : { mean, lo: mean - g.std, hi: mean + g.std };
  if (band === 'minmax') return { mean, lo: Math.min(...values), hi: Math.max(...values) };
  return { mean, lo: null, hi: null };
}

/**
 * A band within the values a metric can take: every metric bnx plots is >= 0 (losses, accuracies,
 * learning rates, fluctuations) and accuracies are <= 1. A t-interval of the mean of 3 seeds can
 * reach past those bounds (it is symmetric, the values are not); the mean itself cannot.
 */
export function clampBand(metric: string, lo: number, hi: number): [number, number] {
  const top = /acc/.test(metric) ? 1 : Infinity;
  return [Math.max(0, lo), Math.min(top, hi)];
}

export interface BandRow {
  kind: 'band' | 'mean' | 'run';
  series: string;
  metric: string;
  x: number;
  /** mean rows: the mean and how many seeds it is over; band rows: lo and hi; run rows: the run's value. */
  mean?: number;
  n?: number;
  lo?: number;
  hi?: number;
  run?: string;
  value?: number;
}

/**
 * The data of a banded chart: per replicate group, metric and logged step, the mean over the runs
 * that have a finite value there, its band, and (with showRuns) every run's value. x is the step,
 * the epoch, or the mean of the runs' estimated times.
 */
export function bandRows(
  groups: ReplicateGroup[],
  labels: string[],
  runsAll: LoadedRun[],
  opts: ChartOptions,
): BandRow[] {
  const x = opts.x ?? 'step';
  const band = opts.band ?? 'ci';
  const rows: BandRow[] = [];
  groups.forEach((g, gi) => {
    const rates = g.runs.map((r) => (x === 'time' ? secondsPerStep(r) : 0));
    for (const metric of opts.metrics) {
      const title = metricTitle(metric, runsAll);
      const at = new Map<number, { values: number[]; epoch: number; xs: number[] }>();
      g.runs.forEach((run, ri) => {
        for (const p of series(run.metrics, metric)) {
          if (!Number.isFinite(p.value) || (opts.logY && p.value <= 0)) continue;
          const xv = x === 'step' ? p.step : x === 'epoch' ? p.epoch : Math.round(p.step * rates[ri] * 100) / 100;
          const cell = at.get(p.step) ?? { values: [], epoch: p.epoch, xs: [] };
          cell.values.push(p.value);
          cell.xs.push(xv);
          at.set(p.step, cell);
          if (opts.showRuns)
            rows.push({ kind: 'run', series: labels[gi], metric: title, x: xv, run: run.id, value: p.value });
        }
      });
      for (const [, cell] of [...at.entries()].sort((p, q) => p[0] - q[0])) {
        const xv = cell.xs.reduce((a, b) => a + b, 0) / cell.xs.length;
        const b = bandOf(cell.values, band);
        rows.push({ kind: 'mean', series: labels[gi], metric: title, x: xv, mean: b.mean, n: cell.values.length });
        if (b.lo !== null && b.hi !== null) {
          const [lo, hi] = clampBand(metric, b.lo, b.hi);
          // A log axis cannot show a band reaching 0: it stops at the lowest seed's value.
          rows.push({
            kind: 'band',
            series: labels[gi],
            metric: title,
            x: xv,
            lo: opts.logY && lo <= 0 ? Math.min(...cell.values) : lo,
            hi,
          });
        }
      }
    }
  });
  return rows;
}

/**
 * A vega-lite line chart of replicate groups: each group's mean line over its seeds with a shaded
 * band (opts.band), optionally every seed as a thin line; the legend says what the line and the band
 * are. One panel per metric, as chartSpec.
 */
function bandedSpec(runs: LoadedRun[], groups: ReplicateGroup[], opts: ChartOptions): VegaLiteSpec {
  const x = opts.x ?? 'step';
  const band = opts.band ?? 'ci';
  const { title: legend, labels } = legendOf(opts.labels ?? groupLabels(groups));
  const rows = bandRows(groups, labels, runs, opts);
  const single = opts.metrics.length === 1;
  const xEnc = {
    field: 'x',
    type: 'quantitative',
    title: xTitle(x),
    scale: { zero: true },
    axis: { format: x === 'epoch' ? '~r' : ',~r' },
  };
  const yScale = opts.logY ? { type: 'log' } : { zero: false };
  const yTitle = single ? metricTitle(opts.metrics[0], runs) : null;
  const color = {
    field: 'series',
    type: 'nominal',
    title: [legend === 'run' ? 'group' : legend, ...bandCaption(groups, band, opts.showRuns ?? false)],
    scale: { domain: labels },
    // The legend is shared by the layers: its symbols are drawn as solid lines, not the pale band.
    legend: {
      labelLimit: 480,
      orient: single ? 'right' : 'bottom',
      titleLimit: 480,
      symbolType: 'stroke',
      symbolStrokeWidth: 3,
      symbolOpacity: 1,
      symbolSize: 300,
    },
  };
  const only = (kind: BandRow['kind']) => [{ filter: `datum.kind === '${kind}'` }];
  const layer = [
    ...(band !== 'none'
      ? [
          {
            transform: only('band'),
            mark: { type: 'area', opacity: 0.22, clip: true },
            encoding: {
              x: xEnc,
              y: { field: 'lo', type: 'quantitative', title: yTitle, scale: yScale },
              y2: { field: 'hi' },
              color,
              detail: { field: 'series' },
            },
          },
        ]
      : []),
    ...(opts.showRuns
      ? [
          {
            transform: only('run'),
            mark: { type: 'line', strokeWidth: 0.8, opacity: 0.55, clip: true },
            encoding: {
              x: xEnc,
              y: { field: 'value', type: 'quantitative', title: yTitle, scale: yScale },
              color,
              detail: { field: 'run' },
            },
          },
        ]
      : []),
    {
      transform: only('mean'),
      mark: { type: 'line', strokeWidth: 2.2, clip: true },
      encoding: {
        x: xEnc,
        y: { field: 'mean', type: 'quantitative', title: yTitle, scale: yScale },
        color,
        detail: { field: 'series' },
      },
    },
  ];
  const panel = { width: opts.width ?? 560, height: opts.height ?? 320, layer };
  return faceted(
    chartBase(opts.title, rows),
    panel,
    'metric',
    single ? null : opts.metrics.map((m) => metricTitle(m, runs)),
  );
}

/**
 * A vega-lite line chart: one line per run, colour by run (legend labels from what differs between
 * the runs), one panel per metric side by side with its own y scale. Runs with replicates (runs that
 * differ only in seed) are drawn as one mean line per replicate group with a band (bandedSpec).
 */
export function chartSpec(runs: LoadedRun[], opts: ChartOptions): VegaLiteSpec {
  if (runs.length === 0) throw new InputError('plot', 'no runs to plot');
  const groups = groupReplicates(runs);
  if (hasReplicates(groups)) return bandedSpec(runs, groups, opts);
  const x = opts.x ?? 'step';
  const { title: legend, labels } = legendOf(opts.labels ?? runLabels(runs));
  const rows = chartRows(runs, { ...opts, labels });
  const single = opts.metrics.length === 1;
  const encoding = {
    x: {
      field: 'x',
      type: 'quantitative',
      title: xTitle(x),
      scale: { zero: true },
      axis: { format: x === 'epoch' ? '~r' : ',~r' },
    },
    y: {
      field: 'value',
      type: 'quantitative',
      title: single ? metricTitle(opts.metrics[0], runs) : null,
      scale: opts.logY ? { type: 'log' } : { zero: false },
    },
    color: {
      field: 'run',
      type: 'nominal',
      title: legend,
      scale: { domain: labels },
      legend: { labelLimit: 480, orient: single ? 'right' : 'bottom' },
    },
    detail: { field: 'run' },
  };
  const panel = {
    width: opts.width ?? 560,
    height: opts.height ?? 320,
    mark: { type: 'line', strokeWidth: 2, clip: true },
    encoding,
  };
  return faceted(
    chartBase(opts.title, rows),
    panel,
    'metric',
    single ? null : opts.metrics.map((m) => metricTitle(m, runs)),
  );
}

/**
 * One panel, or (`columns` given) one panel per value of `field` side by side, in the order of
 * `columns`, each with its own y scale.
 */
export function faceted(
  base: VegaLiteSpec,
  panel: object,
  field: string,
  columns: readonly string[] | null,
): VegaLiteSpec {
  if (!columns) return { ...base, ...panel };
  return {
    ...base,
    facet: { column: { field, type: 'nominal', sort: columns, title: null, header: { labelFontSize: 13 } } },
    spec: panel,
    resolve: { scale: { y: 'independent' } },
  };
}

/** Compiles vega-lite to vega and renders it headlessly to an SVG string (no browser, no canvas). */
export async function renderSvg(spec: VegaLiteSpec): Promise<string> {
  const [vega, vl] = await Promise.all([import('vega'), import('vega-lite')]);
  const compiled = vl.compile(spec as unknown as Parameters<typeof vl.compile>[0]).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** TrueType fonts for PNG text, first found wins: common system sans fonts (DejaVu is in Debian's base). */
const FONT_CANDIDATES: { file: string; family: string }[] = [
  { file: '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf', family: 'DejaVu Sans' },
  { file: '/usr/share/fonts/TTF/DejaVuSans.ttf', family: 'DejaVu Sans' },
  { file: '/usr/share/fonts/dejavu/DejaVuSans.ttf', family: 'DejaVu Sans' },
  { file: '/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf', family: 'DejaVu Sans' },
  { file: '/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf', family: 'Liberation Sans' },
  { file: '/System/Library/Fonts/Supplemental/Arial.ttf', family: 'Arial' },
  { file: '/Library/Fonts/Arial.ttf', family: 'Arial' },
  { file: 'C:\\Windows\\Fonts\\arial.ttf', family: 'Arial' },
];

/** The font the PNG renderer uses, or null when it falls back to scanning every system font. */
export function chartFont(): { file: string; family: string } | null {
  return FONT_CANDIDATES.find((f) => fs.existsSync(f.file)) ?? null;
}

/**
 * Rasterizes an SVG to PNG with resvg (a prebuilt native package). `scale` 2 gives crisp lines on
 * high-density screens. resvg draws text only with fonts it is given: a known system font file is
 * loaded (see chartFont); without one, every system font is scanned.
 */
export async function renderPng(svg: string, opts: { scale?: number } = {}): Promise<Buffer> {
  const { Resvg } = await import('@resvg/resvg-js');
  const font = chartFont();
  const resvg = new Resvg(svg, {
    font: font
      ? { loadSystemFonts: false, fontFiles: [font.file], defaultFontFamily: font.family, sansSerifFamily: font.family }
      : { loadSystemFonts: true },
    fitTo: { mode: 'zoom', value: opts.scale ?? 2 },
    background: 'white',
    logLevel: 'off',
  });
  return resvg.render().asPng();
}

// ---------------------------------------------------------------------------------------------
// Terminal charts

const SYMBOLS = ['*', '+', 'o', 'x', '#', '%', '@', '='];
/** ANSI colours close to vega's category10 palette: blue, orange, red, cyan, green, yellow, magenta. */
const ANSI = ['\x1b[34m', '\x1b[33m', '\x1b[31m', '\x1b[36m', '\x1b[32m', '\x1b[93m', '\x1b[35m', '\x1b[90m'];
const RESET = '\x1b[0m';

export interface TermSeries {
  label: string;
  points: { x: number; y: number }[];
}

/** Short number for axis labels: 4 significant digits, thousands separated. */
function tick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1000) return Math.round(v).toLocaleString('en-US');
  if (a >= 0.01) return String(Number(v.toPrecision(4)));
  return v.toExponential(2);
}

/**
 * A line chart drawn with characters, one symbol (and, with `color`, one ANSI colour) per series:
 * for a glance over SSH. Each column shows each series' value interpolated at that x; vertical jumps
 * between columns are filled so lines stay connected.
 */
export interface TermChartOptions {
  width?: number;
  height?: number;
  color?: boolean;
  title?: string;
  xLabel?: string;
  logY?: boolean;
  /** The y axis range, so that charts drawn one after another compare (default: the data's range). */
  yRange?: [number, number];
}

export function termChart(data: TermSeries[], opts: TermChartOptions = {}): string {
  const tf = (y: number) => (opts.logY ? Math.log10(y) : y);
  const clean = data.map((s) => ({
    ...s,
    points: s.points
      .filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y) && (!opts.logY || p.y > 0))
      .sort((a, b) => a.x - b.x),
  }));
  const all = clean.flatMap((s) => s.points);
  const out: string[] = [];
  if (opts.title) out.push(opts.title);
  if (all.length === 0) return [...out, '  (no data)'].join('\n');
  let [x0, x1] = [Math.min(...all.map((p) => p.x)), Math.max(...all.map((p) => p.x))];
  let [y0, y1] = opts.yRange
    ? opts.yRange.map(tf)
    : [Math.min(...all.map((p) => tf(p.y))), Math.max(...all.map((p) => tf(p.y)))];
  if (x0 === x1) [x0, x1] = [x0 - 1, x1 + 1];
  if (y0 === y1) [y0, y1] = [y0 - 0.5, y1 + 0.5];
  const H = Math.max(5, opts.height ?? 15);
  const yLabels = Array.from({ length: H }, (_, r) =>
    tick(opts.logY ? 10 ** (y1 - ((y1 - y0) * r) / (H - 1)) : y1 - ((y1 - y0) * r) / (H - 1)),
  );
  const labelW = Math.max(...yLabels.map((l) => l.length));
  const W = Math.max(20, (opts.width ?? 80) - labelW - 3);
  const grid: string[][] = Array.from({ length: H }, () => Array<string>(W).fill(' '));
  // Clamped: a value outside a given yRange is drawn on the edge row.
  const rowOf = (y: number) => Math.min(H - 1, Math.max(0, Math.round(((y1 - tf(y)) / (y1 - y0)) * (H - 1))));
  clean.forEach((s, i) => {
    const sym = opts.color
      ? `${ANSI[i % ANSI.length]}${SYMBOLS[i % SYMBOLS.length]}${RESET}`
      : SYMBOLS[i % SYMBOLS.length];
    const pts = s.points;
    if (pts.length === 0) return;
    let prev: number | null = null;
    for (let c = 0; c < W; c++) {
      const x = x0 + ((x1 - x0) * c) / (W - 1);
      const half = (x1 - x0) / (W - 1) / 2;
      if (x < pts[0].x - half || x > pts[pts.length - 1].x + half) {
        prev = null;
        continue;
      }
      let j = pts.findIndex((p) => p.x >= x);
      if (j < 0) j = pts.length - 1;
      const a = pts[Math.max(0, j - 1)];
      const b = pts[j];
      const y = b.x === a.x || x <= a.x ? (x <= a.x ? a.y : b.y) : a.y + ((b.y - a.y) * (x - a.x)) / (b.x - a.x);
      const r = rowOf(y);
      const from = prev === null ? r : Math.min(prev, r);
      const to = prev === null ? r : Math.max(prev, r);
      for (let k = from; k <= to; k++) grid[k][c] = sym;
      prev = r;
    }
  });
  const shown = new Set([0, Math.round((H - 1) / 2), H - 1]);
  grid.forEach((row, r) =>
    out.push(`${(shown.has(r) ? yLabels[r] : '').padStart(labelW)} ${shown.has(r) ? '┤' : '│'}${row.join('')}`),
  );
  out.push(`${' '.repeat(labelW)} └${'─'.repeat(W)}`);
  const xl = [tick(x0), tick((x0 + x1) / 2), tick(x1)];
  const axis = Array<string>(W + 1).fill(' ');
  const place = (text: string, at: number) => {
    for (let k = 0; k < text.length && at + k <= W; k++) axis[at + k] = text[k];
  };
  place(xl[0], 0);
  place(xl[1], Math.max(xl[0].length + 1, Math.round(W / 2 - xl[1].length / 2)));
  place(xl[2], Math.max(0, W + 1 - xl[2].length));
  out.push(`${' '.repeat(labelW + 1)}${axis.join('')}`);
  if (opts.xLabel)
    out.push(`${' '.repeat(labelW + 1)}${opts.xLabel.padStart(Math.round(W / 2 + opts.xLabel.length / 2))}`);
  const legend = clean.map(
    (s, i) =>
      `${opts.color ? `${ANSI[i % ANSI.length]}${SYMBOLS[i % SYMBOLS.length]}${RESET}` : SYMBOLS[i % SYMBOLS.length]} ${s.label}`,
  );
  out.push(`${' '.repeat(labelW + 1)}${legend.join('   ')}`);
  return out.join('\n');
}

/**
 * The terminal chart of one metric of some runs; with replicates, each group's mean line (the band
 * is left to the SVG and PNG charts).
 */
export function termChartOf(
  runs: LoadedRun[],
  metric: Metric,
  opts: { x?: XAxis; width?: number; height?: number; color?: boolean; logY?: boolean; labels?: string[] } = {},
): string {
  const groups = groupReplicates(runs);
  if (hasReplicates(groups)) {
    const labels = groupLabels(groups).map((l, i) => `${l} (mean of ${groups[i].runs.length})`);
    const rows = bandRows(groups, labels, runs, { metrics: [metric], x: opts.x, logY: opts.logY, band: 'none' });
    const data = labels.map((label) => ({
      label,
      points: rows.filter((r) => r.series === label && r.kind === 'mean').map((r) => ({ x: r.x, y: r.mean! })),
    }));
    return termChart(data, { ...opts, title: `${metricTitle(metric, runs)} vs ${xTitle(opts.x ?? 'step')}` });
  }
  const labels = opts.labels ?? runLabels(runs);
  const rows = chartRows(runs, { metrics: [metric], x: opts.x, logY: opts.logY, labels });
  const data = labels.map((label) => ({
    label,
    points: rows.filter((r) => r.run === label).map((r) => ({ x: r.x, y: r.value })),
  }));
  return termChart(data, { ...opts, title: `${metricTitle(metric, runs)} vs ${xTitle(opts.x ?? 'step')}` });
}
