import * as tf from '@tensorflow/tfjs';
import type { Dataset, Split } from '../data/index.js';
import type { Classifier } from '../model/index.js';
import type { RunConfig } from '../spec/types.js';
import type { Batch, Engine, StepInputs, StepOutcome } from './engine.js';
import { correctCount, crossEntropy, evaluate, PopulationStatistics, type EvalResult } from './evaluate.js';

/** One member of the eager engine: its model, its optimizer and (Algorithm 2) its population estimate. */
class EagerMember {
  private readonly optimizer: tf.Optimizer;
  private readonly population: PopulationStatistics | null;
  private lr: number;
  /** `train.weight_decay` and the variables it applies to (kernels, V: every `namedWeights` `.../kernel` or `.../v`). */
  private readonly decay: { lambda: number; names: Set<string> };

  constructor(
    readonly model: Classifier,
    config: RunConfig,
    private readonly data: Dataset,
  ) {
    const t = config.train;
    this.lr = t.lr;
    const decayed = [...model.namedWeights].filter(([name]) => /\/(kernel|v)$/.test(name)).map(([, v]) => v.name);
    this.decay = { lambda: t.weight_decay, names: new Set(t.weight_decay > 0 ? decayed : []) };
    this.optimizer =
      t.optimizer === 'adam'
        ? tf.train.adam(t.lr, t.adam.beta1, t.adam.beta2, t.adam.epsilon)
        : t.momentum > 0
          ? tf.train.momentum(t.lr, t.momentum)
          : tf.train.sgd(t.lr);
    // model.batch_norm.inference: population: Algorithm 2's statistics, re-estimated before every evaluation.
    this.population = model.usesPopulationStatistics
      ? new PopulationStatistics(
          model,
          data.train,
          data.features,
          t.batch_size,
          config.model.batch_norm.population_batches,
          config.seed,
        )
      : null;
  }

  /** The step's learning rate (`train.schedule`): tf.train's SGD and momentum keep it as a tensor, Adam as a number. */
  private setLearningRate(lr: number): void {
    if (lr === this.lr) return;
    this.lr = lr;
    // Not `instanceof`: tf.js optimizers answer instanceof by duck typing, and Adam passes as SGD.
    if (this.optimizer.getClassName() === 'Adam')
      (this.optimizer as unknown as { learningRate: number }).learningRate = lr;
    else (this.optimizer as tf.SGDOptimizer).setLearningRate(lr);
  }

  step({ x: xs, y: ys }: Batch, { lr, dropout }: StepInputs): StepOutcome {
    const model = this.model;
    this.setLearningRate(lr);
    const [loss, correct] = tf.tidy(() => {
      const x = tf.tensor2d(xs, [ys.length, this.data.features]);
      const y = tf.tensor1d(ys, 'int32');
      let count: tf.Scalar | undefined;
      const { value, grads } = tf.variableGrads(() => {
        const logits = model.forward(x, true, undefined, dropout);
        count = tf.keep(correctCount(logits, y));
        return crossEntropy(logits, y, this.data.classes);
      }, model.trainable);
      // Weight decay, coupled: the gradient of (lambda/2) ||w||^2 added before the optimizer sees it.
      for (const v of model.trainable) {
        if (this.decay.names.has(v.name)) grads[v.name] = tf.add(grads[v.name], tf.mul(v, this.decay.lambda));
      }
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

  dispose(): void {
    this.optimizer.dispose();
  }
}

/**
 * The eager engine: TensorFlow.js ops one by one, gradients by tf.variableGrads (batch norm's
 * closed-form backward pass in a tf.customGrad), the optimizers of tf.train. The reference the
 * graph engine is checked against; each member is stepped on its own.
 */
export class EagerEngine implements Engine {
  readonly kind = 'eager' as const;
  private readonly list: EagerMember[];

  constructor(members: { model: Classifier; config: RunConfig }[], data: Dataset) {
    this.list = members.map(({ model, config }) => new EagerMember(model, config, data));
  }

  get members(): number {
    return this.list.length;
  }

  step(batches: Batch[], inputs: StepInputs[]): StepOutcome[] {
    return this.list.map((m, k) => m.step(batches[k], inputs[k]));
  }

  evaluate(split: Split, limit: number | null, step: number): EvalResult[] {
    return this.list.map((m) => m.evaluate(split, limit, step));
  }

  weights(member: number): Classifier {
    return this.list[member].model;
  }

  dispose(): void {
    for (const m of this.list) m.dispose();
  }
}
