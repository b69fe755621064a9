import * as tf from '@tensorflow/tfjs';
import type { Dataset } from '../../data/index.js';
import type { Classifier } from '../../model/index.js';
import type { RunConfig } from '../../spec/types.js';
import { evaluate, PopulationStatistics } from '../evaluate.js';
import { scalarValue, trainingLoss, type Instrument, type Measurement } from './instrument.js';
import { disposeSnapshot, restore, snapshot } from './layers.js';

/**
 * The validation loss with batch statistics vs with inference statistics, on the current
 * weights: the first `train.eval_limit` validation examples (all when null), in chunks of
 * `train.batch_size`.
 *   val_loss_train_mode  each chunk normalized with its own statistics (training mode; nothing is
 *                        updated: see ActivationPercentiles on the statistics a pass leaves)
 *   val_loss_inference   the evaluation's inference mode (src/train/evaluate.ts): moving averages,
 *                        or with `inference: population` a fresh Algorithm 2 estimate on these
 *                        weights (its own copy of the estimate's batch stream; the model's
 *                        statistics are put back afterwards)
 *   gap                  train_mode - inference: with `ema`, the lag of the moving averages
 *                        behind the weights
 * A last chunk of a single example has no batch variance and is left out of both.
 */
export class EvalGap implements Instrument {
  readonly name = 'eval_gap' as const;
  readonly phase = 'after_step' as const;
  private readonly batchSize: number;
  private readonly examples: number;
  private population: PopulationStatistics | null = null;

  constructor(
    private readonly config: RunConfig,
    private readonly data: Dataset,
  ) {
    const t = config.train;
    this.batchSize = t.batch_size;
    const n = t.eval_limit === null ? data.val.n : Math.min(t.eval_limit, data.val.n);
    this.examples = n % this.batchSize === 1 ? n - 1 : n;
  }

  measure(step: number, model: Classifier): Measurement {
    const trainMode = this.trainingModeLoss(model);
    const inference = this.inferenceLoss(model, step);
    return {
      rows: [{ step, val_loss_train_mode: trainMode, val_loss_inference: inference, gap: trainMode - inference }],
    };
  }

  private trainingModeLoss(model: Classifier): number {
    const { val, features } = this.data;
    let lossSum = 0;
    for (let start = 0; start < this.examples; start += this.batchSize) {
      const count = Math.min(this.batchSize, this.examples - start);
      lossSum += tf.tidy(() => {
        const x = tf.tensor2d(val.x.subarray(start * features, (start + count) * features), [count, features]);
        const y = tf.tensor1d(val.y.subarray(start, start + count), 'int32');
        return scalarValue(trainingLoss(model, x, y)) * count;
      });
    }
    return lossSum / this.examples;
  }

  private inferenceLoss(model: Classifier, step: number): number {
    const evaluateNow = () => evaluate(model, this.data.val, this.data.features, this.examples).loss;
    if (!model.usesPopulationStatistics) return evaluateNow();
    const t = this.config.train;
    this.population ??= new PopulationStatistics(
      model,
      this.data.train,
      this.data.features,
      t.batch_size,
      this.config.model.batch_norm.population_batches,
      this.config.seed,
    );
    const saved = snapshot(
      model.batchStatisticsLayers.flatMap((l) =>
        Object.entries(l.weights)
          .filter(([k]) => k.startsWith('moving_'))
          .map(([, v]) => v),
      ),
    );
    try {
      this.population.estimate(step);
      return evaluateNow();
    } finally {
      restore(saved);
      disposeSnapshot(saved);
    }
  }
}
