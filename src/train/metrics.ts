import type { RunConfig } from '../spec/types.js';
import type { EngineKind } from './engine.js';
import type { EvalResult } from './evaluate.js';
import { learningRate } from './schedule.js';

/** The steps a run trains: `train.steps`, or `train.epochs` epochs of floor(examples / batch size) steps. */
export function totalSteps(config: RunConfig, trainExamples: number): number {
  const t = config.train;
  return t.steps ?? (t.epochs as number) * Math.floor(trainExamples / t.batch_size);
}

/** A row of metrics.csv (see src/store/metrics.ts for its columns and format). */
export interface MetricsRow {
  step: number;
  /** Fractional epochs completed: step * batch_size / training examples. */
  epoch: number;
  /** Mean training loss / accuracy over the mini-batches since the previous row. */
  train_loss: number;
  train_acc: number;
  val_loss: number | null;
  val_acc: number | null;
  lr: number;
}

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

export interface TrainResult {
  steps: number;
  engine: EngineKind;
  final: { train_loss: number; val_loss: number; val_acc: number };
  best: { val_loss: number; val_loss_step: number; val_acc: number; val_acc_step: number };
  test: EvalResult;
  parameters: number;
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

  /** The run's step count (the schedule's horizon). */
  private get steps(): number {
    return totalSteps(this.config, this.trainExamples);
  }

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
    return {
      error: new DivergedError(step, loss),
      row: {
        step,
        epoch: this.epoch(step),
        train_loss: loss,
        train_acc: NaN,
        val_loss: null,
        val_acc: null,
        lr: learningRate(t, step, this.steps),
      },
    };
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
      lr: learningRate(this.config.train, step, this.steps),
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
