import type { MetricsRow } from '../store/metrics.js';
import type { LoadedRun } from './results.js';

/** The metrics.csv columns that can be plotted or compared (everything but the step and epoch). */
export const METRICS = ['train_loss', 'train_acc', 'val_loss', 'val_acc', 'lr'] as const;
export type Metric = (typeof METRICS)[number];

/** Accuracies go up, losses (and fluctuations) go down. */
export const higherIsBetter = (name: string): boolean => /acc/.test(name);

/**
 * The validation accuracy `bnx diff` measures steps to when no `--target` is given: a level the
 * dataset's networks in bnx's specs reach in a short run (the paper-mnist sigmoid networks both pass
 * 0.95 within 5,000 steps; quick.yaml's synthetic task passes 0.9; fashion-cnn.yaml's CNN passes
 * 0.85 within 1,000 steps; a small CIFAR-10 CNN reaches 0.7 in a few epochs).
 */
export const DEFAULT_TARGETS: Record<string, number> = {
  mnist: 0.95,
  fashion_mnist: 0.85,
  cifar10: 0.7,
  synthetic: 0.9,
};
export const FALLBACK_TARGET = 0.9;

export function defaultTarget(dataset: string | null): number {
  return (dataset && DEFAULT_TARGETS[dataset]) || FALLBACK_TARGET;
}

export interface Point {
  step: number;
  epoch: number;
  value: number;
}

/** The rows that have a value for `metric` (val_* only on evaluation rows), in step order. */
export function series(rows: MetricsRow[], metric: Metric): Point[] {
  const out: Point[] = [];
  for (const r of rows) {
    const v = r[metric];
    if (v !== null && v !== undefined) out.push({ step: r.step, epoch: r.epoch, value: v });
  }
  return out;
}

/** The last logged value of a metric, with its step. */
export function finalOf(rows: MetricsRow[], metric: Metric): { value: number; step: number } | null {
  const s = series(rows, metric);
  const last = s.at(-1);
  return last ? { value: last.value, step: last.step } : null;
}

/** The best finite value of a metric (lowest loss, highest accuracy) and the first step it was seen. */
export function bestOf(rows: MetricsRow[], metric: Metric): { value: number; step: number } | null {
  const up = higherIsBetter(metric);
  let best: Point | null = null;
  for (const p of series(rows, metric)) {
    if (!Number.isFinite(p.value)) continue;
    if (!best || (up ? p.value > best.value : p.value < best.value)) best = p;
  }
  return best ? { value: best.value, step: best.step } : null;
}

/**
 * The first step at which a metric reaches a target: at or above it for accuracies, at or below for
 * losses. Null when it never does. The resolution is the metric's logging interval (eval_every for
 * val_*).
 */
export function stepsToReach(rows: MetricsRow[], metric: Metric, target: number): number | null {
  const up = higherIsBetter(metric);
  for (const p of series(rows, metric)) {
    if (up ? p.value >= target : p.value <= target) return p.step;
  }
  return null;
}

/** Sample standard deviation (n - 1); null below two values. */
export function std(xs: number[]): number | null {
  if (xs.length < 2) return null;
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1));
}

/**
 * How much a metric jumps around late in training: the standard deviation of its step-to-step
 * changes (consecutive logged values) over the last half of training, i.e. the rows with
 * step >= half the last step. A steadily falling curve scores near 0 however steep it is; a
 * zig-zag scores high. Null with fewer than two changes in that window or a non-finite value.
 */
export function fluctuation(rows: MetricsRow[], metric: Metric = 'val_loss'): number | null {
  const s = series(rows, metric);
  const last = s.at(-1);
  if (!last) return null;
  const half = rows.at(-1)!.step / 2;
  const late = s.filter((p) => p.step >= half).map((p) => p.value);
  if (late.some((v) => !Number.isFinite(v))) return null;
  const changes = late.slice(1).map((v, i) => v - late[i]);
  return std(changes);
}

/** Values of a run read from its metrics (so bare CSVs work too) and, for test_*, its run.json. */
export interface RunValues {
  final_train_loss: number | null;
  final_val_loss: number | null;
  final_val_acc: number | null;
  best_val_loss: number | null;
  best_val_loss_step: number | null;
  best_val_acc: number | null;
  best_val_acc_step: number | null;
  test_loss: number | null;
  test_acc: number | null;
  /** Standard deviation of step-to-step changes of val_loss over the last half of training. */
  val_loss_fluctuation: number | null;
}

export function runValues(run: LoadedRun): RunValues {
  const m = run.metrics;
  const bestLoss = bestOf(m, 'val_loss');
  const bestAcc = bestOf(m, 'val_acc');
  return {
    final_train_loss: finalOf(m, 'train_loss')?.value ?? null,
    final_val_loss: finalOf(m, 'val_loss')?.value ?? null,
    final_val_acc: finalOf(m, 'val_acc')?.value ?? null,
    best_val_loss: bestLoss?.value ?? null,
    best_val_loss_step: bestLoss?.step ?? null,
    best_val_acc: bestAcc?.value ?? null,
    best_val_acc_step: bestAcc?.step ?? null,
    test_loss: run.record?.test?.loss ?? null,
    test_acc: run.record?.test?.acc ?? null,
    val_loss_fluctuation: fluctuation(m, 'val_loss'),
  };
}

/** The values `bnx diff` compares, in display order. `*_step` companions are not listed. */
export const COMPARED_VALUES = [
  'final_train_loss',
  'final_val_loss',
  'final_val_acc',
  'best_val_loss',
  'best_val_acc',
  'test_loss',
  'test_acc',
  'val_loss_fluctuation',
] as const;
export type ComparedValue = (typeof COMPARED_VALUES)[number];

/** Numbers for people: 4 decimals, or 3 significant digits for small ones; `-` for missing. */
export function fmt(x: number | null | undefined): string {
  if (x === null || x === undefined) return '-';
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x !== 0 && Math.abs(x) < 0.001) return x.toPrecision(3);
  return x.toFixed(4);
}

/** Signed difference for people: `+0.0150`, `-0.0660`. */
export function fmtDelta(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return fmt(x);
  const s = fmt(x);
  return x > 0 ? `+${s}` : s;
}

/** Integers with thousands separators: `5,000`. */
export const fmtInt = (x: number | null | undefined): string =>
  x === null || x === undefined ? '-' : x.toLocaleString('en-US');

/** Seconds for people: `30.7 s`, `2 min 5 s`. */
export function fmtTime(s: number | null | undefined): string {
  if (s === null || s === undefined) return '-';
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s - m * 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}
