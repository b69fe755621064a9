import * as tf from '@tensorflow/tfjs';
import { Augmenter, augments, EpochBatcher, gather, type Dataset, type Split } from '../data/index.js';
import { buildModel, type Classifier } from '../model/index.js';
import type { InstrumentName, RunConfig } from '../spec/types.js';
import type { MetricsRow } from '../store/metrics.js';
import { correctCount, crossEntropy, evaluate, PopulationStatistics, type EvalResult } from './evaluate.js';
import { graphUnsupported } from './graph/compile.js';
import { GraphEngine } from './graph/engine.js';
import { InstrumentRunner } from './instruments/index.js';

/** The loss became NaN/Inf or exceeded `train.max_loss`: a result (the run diverged), not an error. */
export class DivergedError extends Error {
  override name = 'DivergedError';
  constructor(
    readonly step: number,
    readonly loss: number,
  ) {
    super(`diverged at step ${step}: training loss ${loss}`);
  }
}

/** Training was asked to stop (Ctrl-C): the run is interrupted, not failed. */
export class InterruptedError extends Error {
  override name = 'InterruptedError';
}

export interface TrainHooks {
  /** A metrics row, every `log_every` steps, at every evaluation and at the last step. */
  onRow?(row: MetricsRow): void;
  /** After every step: for progress display. */
  onStep?(step: number, totalSteps: number, loss: number): void;
  /** Checked between steps; when it returns true, training stops with InterruptedError. */
  shouldStop?(): boolean;
  /**
   * After the last step and the test evaluation, before the model is disposed: the trained model
   * with its final inference statistics (e.g. to save its weights for `bnx export`).
   */
  onTrained?(model: Classifier): void;
  /** Once, before the first step: the engine chosen, and a one-line note when `auto` fell back to eager. */
  onEngine?(engine: EngineKind, note: string | null): void;
  /**
   * One measurement of an enabled instrument at `step`: its CSV rows (column -> value, in column
   * order), and for activation_percentiles the raw probe activations by layer name (for
   * TensorBoard's histograms).
   */
  onInstrument?(name: InstrumentName, step: number, rows: Record<string, number | string>[], activations?: Map<string, Float32Array>): void;
  /** Once, however training ends, when an instrument is enabled: the wall time each enabled instrument took, in seconds. */
  onInstrumentOverhead?(seconds: Partial<Record<InstrumentName, number>>): void;
}

/** How often the loop lets the event loop run, so that signals (Ctrl-C) are seen mid-run. */
const YIELD_EVERY_MS = 100;

/**
 * A training loop's pause point: every YIELD_EVERY_MS it lets the event loop run (signal handlers
 * set the stop flag there), then stops the loop with InterruptedError when `shouldStop` says so.
 */
export function pausePoint(shouldStop?: () => boolean): (step: number) => Promise<void> {
  let last = performance.now();
  return async (step) => {
    if (performance.now() - last <= YIELD_EVERY_MS) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    last = performance.now();
    if (shouldStop?.()) throw new InterruptedError(`interrupted at step ${step}`);
  };
}

export interface TrainResult {
  steps: number;
  engine: EngineKind;
  final: { train_loss: number; val_loss: number; val_acc: number };
  best: { val_loss: number; val_loss_step: number; val_acc: number; val_acc_step: number };
  test: EvalResult;
  parameters: number;
}

export function totalSteps(config: RunConfig, trainExamples: number): number {
  const t = config.train;
  return t.steps ?? (t.epochs as number) * Math.floor(trainExamples / t.batch_size);
}

/** Which engine trains a run: `graph` (one native call per step, see src/train/graph/) or `eager`. */
export type EngineKind = 'graph' | 'eager';

/**
 * A training engine: the loop below drives it. Both engines start from the same model (its seeded
 * initial weights) and see the same batches, so they give the same metrics within float32 round-off.
 */
export interface Engine {
  readonly kind: EngineKind;
  /** One optimizer step on a batch (x: [n * features], y: [n]): the loss before the update and the correct count. */
  step(x: Float32Array, y: Int32Array): { loss: number; correct: number };
  /** Inference-mode loss and accuracy on the first `limit` examples, at training step `step`. */
  evaluate(split: Split, limit: number | null, step: number): EvalResult;
  /** The model holding the trained variables (weights, gamma/beta, inference statistics). */
  weights(): Classifier;
  dispose(): void;
}

/**
 * The eager engine: TensorFlow.js ops one by one, gradients by tf.variableGrads (batch norm's
 * closed-form backward pass in a tf.customGrad), the optimizers of tf.train.
 */
export class EagerEngine implements Engine {
  readonly kind = 'eager' as const;
  private readonly optimizer: tf.Optimizer;
  private readonly population: PopulationStatistics | null;

  constructor(
    private readonly model: Classifier,
    config: RunConfig,
    private readonly data: Dataset,
  ) {
    const t = config.train;
    this.optimizer =
      t.optimizer === 'adam'
        ? tf.train.adam(t.lr, t.adam.beta1, t.adam.beta2, t.adam.epsilon)
        : t.momentum > 0
          ? tf.train.momentum(t.lr, t.momentum)
          : tf.train.sgd(t.lr);
    // model.batch_norm.inference: population: Algorithm 2's statistics, re-estimated before every evaluation.
    this.population = model.usesPopulationStatistics
      ? new PopulationStatistics(model, data.train, data.features, t.batch_size, config.model.batch_norm.population_batches, config.seed)
      : null;
  }

  step(xs: Float32Array, ys: Int32Array): { loss: number; correct: number } {
    const model = this.model;
    const [loss, correct] = tf.tidy(() => {
      const x = tf.tensor2d(xs, [ys.length, this.data.features]);
      const y = tf.tensor1d(ys, 'int32');
      let count: tf.Scalar | undefined;
      const { value, grads } = tf.variableGrads(() => {
        const logits = model.forward(x, true);
        count = tf.keep(correctCount(logits, y));
        return crossEntropy(logits, y, this.data.classes);
      }, model.trainable);
      this.optimizer.applyGradients(grads);
      return [value, count as tf.Scalar];
    });
    model.updateMovingStats();
    const result = { loss: (loss.dataSync() as Float32Array)[0], correct: (correct.dataSync() as Float32Array)[0] };
    tf.dispose([loss, correct]);
    return result;
  }

  evaluate(split: Split, limit: number | null, step: number): EvalResult {
    this.population?.estimate(step);
    return evaluate(this.model, split, this.data.features, limit);
  }

  weights(): Classifier {
    return this.model;
  }

  dispose(): void {
    this.optimizer.dispose();
  }
}

/**
 * The engine that trains a run. `train.engine: auto` takes the graph engine where its compiler
 * covers the run (and the native backend is loaded), else the eager one, with a one-line note why.
 * `graph` asked for explicitly on a run it does not cover is an error.
 */
export function chooseEngine(config: RunConfig): { kind: EngineKind; note: string | null } {
  const asked = config.train.engine;
  if (asked === 'eager') return { kind: 'eager', note: null };
  const why = tf.getBackend() !== 'tensorflow' ? `the ${tf.getBackend()} backend (it needs tensorflow)` : graphUnsupported(config);
  if (why === null) return { kind: 'graph', note: null };
  if (asked === 'graph') throw new Error(`train.engine=graph: the graph engine does not cover ${why} yet; use train.engine=auto or eager`);
  return { kind: 'eager', note: `engine: eager (graph engine does not cover ${why} yet)` };
}

/**
 * One run's training metrics as the loop reports them: the running training loss and accuracy
 * between rows, the last and best evaluations, the rows of metrics.csv and the final result.
 * The unfused and fused loops both keep one per run, so their rows are the same.
 */
export class RunMetrics {
  private lossSum = 0;
  private correctSum = 0;
  private sinceRow = 0;
  private lastTrainLoss = NaN;
  private lastVal: EvalResult = { loss: NaN, acc: NaN };
  private readonly best = { val_loss: Infinity, val_loss_step: 0, val_acc: -Infinity, val_acc_step: 0 };

  constructor(
    private readonly config: RunConfig,
    private readonly trainExamples: number,
  ) {}

  private epoch(step: number): number {
    return (step * this.config.train.batch_size) / this.trainExamples;
  }

  /**
   * Adds a step's loss (before the update) and correct count. When the loss is NaN/Inf or above
   * `train.max_loss`, returns the error and the row that keeps the evidence (the step where it happened).
   */
  add(step: number, loss: number, correct: number): { error: DivergedError; row: MetricsRow } | null {
    this.correctSum += correct;
    this.lossSum += loss;
    this.sinceRow++;
    const t = this.config.train;
    if (Number.isFinite(loss) && (t.max_loss === null || loss <= t.max_loss)) return null;
    return { error: new DivergedError(step, loss), row: { step, epoch: this.epoch(step), train_loss: loss, train_acc: NaN, val_loss: null, val_acc: null, lr: t.lr } };
  }

  /** Validation every `eval_every` steps and at the last step. */
  evalDue(step: number, steps: number): boolean {
    return step % this.config.train.eval_every === 0 || step === steps;
  }

  /** A row every `log_every` steps and at every evaluation. */
  rowDue(step: number, steps: number): boolean {
    return step % this.config.train.log_every === 0 || this.evalDue(step, steps);
  }

  /** The row of a log or evaluation step (`val`: this step's evaluation, if any); restarts the running means. */
  row(step: number, val: EvalResult | null): MetricsRow {
    if (val) {
      this.lastVal = val;
      if (val.loss < this.best.val_loss) [this.best.val_loss, this.best.val_loss_step] = [val.loss, step];
      if (val.acc > this.best.val_acc) [this.best.val_acc, this.best.val_acc_step] = [val.acc, step];
    }
    this.lastTrainLoss = this.lossSum / this.sinceRow;
    const row = {
      step,
      epoch: this.epoch(step),
      train_loss: this.lastTrainLoss,
      train_acc: this.correctSum / (this.sinceRow * this.config.train.batch_size),
      val_loss: val?.loss ?? null,
      val_acc: val?.acc ?? null,
      lr: this.config.train.lr,
    };
    this.lossSum = 0;
    this.correctSum = 0;
    this.sinceRow = 0;
    return row;
  }

  result(steps: number, engine: EngineKind, test: EvalResult, parameters: number): TrainResult {
    const last = { train_loss: this.lastTrainLoss, val_loss: this.lastVal.loss, val_acc: this.lastVal.acc };
    return { steps, engine, final: last, best: { ...this.best }, test, parameters };
  }
}

/**
 * The training loop: mini-batch SGD on the run's dataset through the run's engine, logging training
 * metrics every `log_every` steps and validation metrics every `eval_every` steps. Deterministic for
 * a given config: weights and batch order come from the run's seed.
 */
export async function train(config: RunConfig, data: Dataset, hooks: TrainHooks = {}): Promise<TrainResult> {
  const t = config.train;
  const features = data.features;
  // model.arch: mlp or cnn (a cnn reshapes the [N, features] rows to data.inputShape itself).
  const model = buildModel(config.model, data.inputShape, data.classes, config.seed);
  // data.augment: random crops and flips of each training batch, from their own seeded stream.
  const augmenter = augments(config.data.augment) ? new Augmenter(data.inputShape, config.data.augment, config.seed) : null;
  const batcher = new EpochBatcher(data.train.n, t.batch_size, config.seed);
  const steps = totalSteps(config, data.train.n);

  const metrics = new RunMetrics(config, data.train.n);
  const pause = pausePoint(hooks.shouldStop);
  let engine: Engine | null = null;
  let instruments: InstrumentRunner | null = null;

  try {
    // instruments: measured between steps, their time kept apart (see src/train/instruments/).
    instruments = InstrumentRunner.create(config, data, (name, step, m) => hooks.onInstrument?.(name, step, m.rows, m.activations));
    const choice = chooseEngine(config);
    hooks.onEngine?.(choice.kind, choice.note);
    engine = choice.kind === 'graph' ? await GraphEngine.create(config, model, data) : new EagerEngine(model, config, data);
    // One batch buffer for every step: each step's tensors are disposed before the next one fills it.
    const batchBuffer = { x: new Float32Array(t.batch_size * features), y: new Int32Array(t.batch_size) };
    for (let step = 1; step <= steps; step++) {
      const { indices, start } = batcher.next();
      const batch = gather(data.train, features, indices, start, t.batch_size, batchBuffer);
      augmenter?.apply(batch.x, t.batch_size);
      instruments?.beforeStep(step, model, batch);
      const { loss, correct } = engine.step(batch.x, batch.y);
      const diverged = metrics.add(step, loss, correct);
      hooks.onStep?.(step, steps, loss);
      if (diverged) {
        hooks.onRow?.(diverged.row);
        throw diverged.error;
      }
      await pause(step);

      if (metrics.rowDue(step, steps)) {
        const val = metrics.evalDue(step, steps) ? engine.evaluate(data.val, t.eval_limit, step) : null;
        const row = metrics.row(step, val); // always: it also keeps the final and best values
        hooks.onRow?.(row);
      }
      const current = engine;
      instruments?.afterStep(step, () => current.weights(), batch);
    }
    const test = engine.evaluate(data.test, null, steps);
    hooks.onTrained?.(engine.weights());
    return metrics.result(steps, engine.kind, test, model.parameterCount);
  } finally {
    engine?.dispose();
    model.dispose();
    if (instruments) hooks.onInstrumentOverhead?.(instruments.overhead());
  }
}
