import * as tf from '@tensorflow/tfjs';
import { EpochBatcher, gather, type Split } from '../data/index.js';
import type { Classifier } from '../model/index.js';

export interface EvalResult {
  loss: number;
  acc: number;
}

/** Mean cross-entropy of logits [batch, classes] against integer labels [batch]. */
export function crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D, classes: number): tf.Scalar {
  return tf.losses.softmaxCrossEntropy(tf.oneHot(labels, classes), logits) as tf.Scalar;
}

/** Number of rows whose largest logit is the label. */
export function correctCount(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  return tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), labels), 'float32'));
}

/** Evaluations go through the split in chunks of this many examples, so memory stays flat. */
export const EVAL_CHUNK = 2000;

/**
 * Mean loss and accuracy of each of `members` models over the first `limit` examples of a split
 * (all when null), feeding it in chunks to `chunkTotals`, which returns each member's summed loss
 * and correct count on the chunk. Both engines evaluate through this, so they chunk (and round)
 * the same way, whatever the number of members.
 */
export function evaluateInChunks(
  split: Split,
  features: number,
  limit: number | null,
  members: number,
  chunkTotals: (x: tf.Tensor2D, y: tf.Tensor1D) => { lossSum: number; correct: number }[],
): EvalResult[] {
  const n = limit === null ? split.n : Math.min(limit, split.n);
  const lossSums = new Array<number>(members).fill(0);
  const corrects = new Array<number>(members).fill(0);
  for (let start = 0; start < n; start += EVAL_CHUNK) {
    const count = Math.min(EVAL_CHUNK, n - start);
    const x = tf.tensor2d(split.x.subarray(start * features, (start + count) * features), [count, features]);
    const y = tf.tensor1d(split.y.subarray(start, start + count), 'int32');
    try {
      chunkTotals(x, y).forEach((totals, m) => {
        lossSums[m] += totals.lossSum;
        corrects[m] += totals.correct;
      });
    } finally {
      tf.dispose([x, y]);
    }
  }
  return lossSums.map((lossSum, m) => ({ loss: lossSum / n, acc: corrects[m] / n }));
}

/**
 * Loss and accuracy of the model in inference mode (BN uses its inference statistics: moving
 * averages, or the population estimate of `PopulationStatistics`) on the first `limit` examples.
 */
export function evaluate(model: Classifier, split: Split, features: number, limit: number | null): EvalResult {
  const [result] = evaluateInChunks(split, features, limit, 1, (x, y) => {
    const [l, c] = tf.tidy(() => {
      const logits = model.forward(x, false);
      return [tf.mul(crossEntropy(logits, y, model.classes), y.shape[0]), correctCount(logits, y)];
    });
    const totals = { lossSum: (l.dataSync() as Float32Array)[0], correct: (c.dataSync() as Float32Array)[0] };
    tf.dispose([l, c]);
    return [totals];
  });
  return result;
}

/** Seed of the population batches' shuffle, derived from the run's seed. */
export function populationSeed(seed: number): number {
  return (seed + 0x5eed) % 2147483647;
}

/**
 * Algorithm 2 of Ioffe & Szegedy (2015), steps 8-11: the inference statistics of every batch
 * norm (and mean-only batch norm) layer from `batches` training mini-batches of the training
 * batch size m, with the weights fixed:
 *   E[x]   = mean over the batches of mu_B
 *   Var[x] = m/(m-1) * mean over the batches of s2_B
 * The batches pass through the network in training mode (each layer sees the input the training
 * network gives it, normalized upstream with batch statistics), without gradients and without
 * touching the moving averages. They come from their own shuffle of the training set (seeded from
 * the run's seed, apart from the training batch order, which therefore is the same as with `ema`),
 * and each estimate takes the next `batches` mini-batches of it.
 */
export class PopulationStatistics {
  private readonly batcher: EpochBatcher;
  private estimatedAt: number | null = null;

  constructor(
    readonly model: Classifier,
    readonly split: Split,
    readonly features: number,
    readonly batchSize: number,
    readonly batches: number,
    seed: number,
  ) {
    this.batcher = new EpochBatcher(split.n, batchSize, populationSeed(seed));
  }

  /** Re-estimates the statistics, unless they were already estimated at this training step. */
  estimate(step: number): void {
    if (this.estimatedAt === step) return;
    this.model.beginPopulation();
    for (let b = 0; b < this.batches; b++) {
      const { indices, start } = this.batcher.next();
      const batch = gather(this.split, this.features, indices, start, this.batchSize);
      tf.tidy(() => {
        this.model.forward(tf.tensor2d(batch.x, [this.batchSize, this.features]), true);
      });
    }
    this.model.endPopulation();
    this.estimatedAt = step;
  }
}
