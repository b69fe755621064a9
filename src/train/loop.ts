import * as tf from '@tensorflow/tfjs';
import { EpochBatcher, gather, type Dataset } from '../data/index.js';
import { Mlp } from '../model/index.js';
import type { RunConfig } from '../spec/types.js';
import type { MetricsRow } from '../store/metrics.js';
import { correctCount, crossEntropy, evaluate, PopulationStatistics, type EvalResult } from './evaluate.js';

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
  onTrained?(model: Mlp): void;
}

/** How often the loop lets the event loop run, so that signals (Ctrl-C) are seen mid-run. */
const YIELD_EVERY_MS = 100;
const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

export interface TrainResult {
  steps: number;
  final: { train_loss: number; val_loss: number; val_acc: number };
  best: { val_loss: number; val_loss_step: number; val_acc: number; val_acc_step: number };
  test: EvalResult;
  parameters: number;
}

export function totalSteps(config: RunConfig, trainExamples: number): number {
  const t = config.train;
  return t.steps ?? (t.epochs as number) * Math.floor(trainExamples / t.batch_size);
}

/**
 * The training loop (eager engine): mini-batch SGD on the run's dataset, logging training metrics
 * every `log_every` steps and validation metrics every `eval_every` steps. Deterministic for a given
 * config: weights and batch order come from the run's seed.
 */
export async function train(config: RunConfig, data: Dataset, hooks: TrainHooks = {}): Promise<TrainResult> {
  const t = config.train;
  const features = data.features;
  const model = new Mlp(config.model, features, data.classes, config.seed);
  const optimizer = t.momentum > 0 ? tf.train.momentum(t.lr, t.momentum) : tf.train.sgd(t.lr);
  const batcher = new EpochBatcher(data.train.n, t.batch_size, config.seed);
  const steps = totalSteps(config, data.train.n);
  const trainable = model.trainable;
  // model.batch_norm.inference: population: Algorithm 2's statistics, re-estimated before every evaluation.
  const population = model.usesPopulationStatistics
    ? new PopulationStatistics(model, data.train, features, t.batch_size, config.model.batch_norm.population_batches, config.seed)
    : null;

  let lossSum = 0;
  let correctSum = 0;
  let sinceRow = 0;
  let lastTrainLoss = NaN;
  let lastVal: EvalResult = { loss: NaN, acc: NaN };
  const best = { val_loss: Infinity, val_loss_step: 0, val_acc: -Infinity, val_acc_step: 0 };
  let lastYield = performance.now();

  try {
    for (let step = 1; step <= steps; step++) {
      const { indices, start } = batcher.next();
      const batch = gather(data.train, features, indices, start, t.batch_size);
      const [loss, correct] = tf.tidy(() => {
        const x = tf.tensor2d(batch.x, [t.batch_size, features]);
        const y = tf.tensor1d(batch.y, 'int32');
        let count: tf.Scalar | undefined;
        const { value, grads } = tf.variableGrads(() => {
          const logits = model.forward(x, true);
          count = tf.keep(correctCount(logits, y));
          return crossEntropy(logits, y, data.classes);
        }, trainable);
        optimizer.applyGradients(grads);
        return [value, count as tf.Scalar];
      });
      model.updateMovingStats();
      const lossValue = (loss.dataSync() as Float32Array)[0];
      correctSum += (correct.dataSync() as Float32Array)[0];
      tf.dispose([loss, correct]);
      lossSum += lossValue;
      sinceRow++;
      hooks.onStep?.(step, steps, lossValue);
      if (!Number.isFinite(lossValue) || (t.max_loss !== null && lossValue > t.max_loss)) {
        // Keep the evidence: a last row at the step where it happened.
        hooks.onRow?.({ step, epoch: (step * t.batch_size) / data.train.n, train_loss: lossValue, train_acc: NaN, val_loss: null, val_acc: null, lr: t.lr });
        throw new DivergedError(step, lossValue);
      }
      if (performance.now() - lastYield > YIELD_EVERY_MS) {
        await yieldToEventLoop();
        lastYield = performance.now();
        if (hooks.shouldStop?.()) throw new InterruptedError(`interrupted at step ${step}`);
      }

      const isLast = step === steps;
      const isEval = step % t.eval_every === 0 || isLast;
      if (step % t.log_every === 0 || isEval) {
        let val: EvalResult | null = null;
        if (isEval) {
          population?.estimate(step);
          val = evaluate(model, data.val, features, t.eval_limit);
          lastVal = val;
          if (val.loss < best.val_loss) [best.val_loss, best.val_loss_step] = [val.loss, step];
          if (val.acc > best.val_acc) [best.val_acc, best.val_acc_step] = [val.acc, step];
        }
        lastTrainLoss = lossSum / sinceRow;
        hooks.onRow?.({
          step,
          epoch: (step * t.batch_size) / data.train.n,
          train_loss: lastTrainLoss,
          train_acc: correctSum / (sinceRow * t.batch_size),
          val_loss: val?.loss ?? null,
          val_acc: val?.acc ?? null,
          lr: t.lr,
        });
        lossSum = 0;
        correctSum = 0;
        sinceRow = 0;
      }
    }
    population?.estimate(steps);
    const test = evaluate(model, data.test, features, null);
    hooks.onTrained?.(model);
    return {
      steps,
      final: { train_loss: lastTrainLoss, val_loss: lastVal.loss, val_acc: lastVal.acc },
      best,
      test,
      parameters: model.parameterCount,
    };
  } finally {
    optimizer.dispose();
    model.dispose();
  }
}
