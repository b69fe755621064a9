import * as tf from '@tensorflow/tfjs';

export interface BatchNormOptions {
  /** Added to the variance before the square root (Keras/TF.js 1e-3, PyTorch 1e-5; the paper gives none). */
  eps: number;
  /** Moving-average decay, Keras convention: running = momentum * running + (1 - momentum) * batch. */
  momentum: number;
}

/**
 * Batch Normalization (Ioffe & Szegedy 2015) over the features of a [batch, features] input.
 *
 * Training (Algorithm 1), per feature over the mini-batch of m examples:
 *   mu = mean(x),  s2 = mean((x - mu)^2)  (biased: divides by m),
 *   y  = gamma * (x - mu) / sqrt(s2 + eps) + beta.
 * The ops are differentiable, so gradients flow through mu and s2 as the paper requires.
 *
 * Inference: y = gamma * (x - movingMean) / sqrt(movingVar + eps) + beta, a function of the input
 * alone. The moving averages are updated once per training step (`updateMovingStats`) with the
 * batch mean and the UNBIASED batch variance m/(m-1) * s2, because Algorithm 2 estimates the
 * population variance with the unbiased estimate (PyTorch does the same; Keras feeds the biased one).
 */
export class BatchNorm {
  readonly gamma: tf.Variable;
  readonly beta: tf.Variable;
  readonly movingMean: tf.Variable;
  readonly movingVar: tf.Variable;
  /** Batch statistics of the last training-mode call, kept until `updateMovingStats`. */
  private pending: { mean: tf.Tensor1D; variance: tf.Tensor1D; m: number } | null = null;

  constructor(
    readonly features: number,
    readonly options: BatchNormOptions,
    name: string,
  ) {
    this.gamma = tf.variable(tf.ones([features]), true, `${name}/gamma`);
    this.beta = tf.variable(tf.zeros([features]), true, `${name}/beta`);
    this.movingMean = tf.variable(tf.zeros([features]), false, `${name}/moving_mean`);
    this.movingVar = tf.variable(tf.ones([features]), false, `${name}/moving_variance`);
  }

  /** x: [batch, features] -> [batch, features]. */
  apply(x: tf.Tensor2D, training: boolean): tf.Tensor2D {
    if (!training) {
      return tf.batchNorm(x, this.movingMean, this.movingVar, this.beta, this.gamma, this.options.eps) as tf.Tensor2D;
    }
    const { mean, variance } = tf.moments(x, 0);
    this.disposePending();
    this.pending = { mean: tf.keep(mean as tf.Tensor1D), variance: tf.keep(variance as tf.Tensor1D), m: x.shape[0] };
    const xhat = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, this.options.eps)));
    return tf.add(tf.mul(xhat, this.gamma), this.beta) as tf.Tensor2D;
  }

  /** Folds the last training batch's statistics into the moving averages. */
  updateMovingStats(): void {
    if (!this.pending) return;
    const { mean, variance, m } = this.pending;
    const k = this.options.momentum;
    tf.tidy(() => {
      this.movingMean.assign(tf.add(tf.mul(this.movingMean, k), tf.mul(mean, 1 - k)));
      const unbiased = tf.mul(variance, m / (m - 1));
      this.movingVar.assign(tf.add(tf.mul(this.movingVar, k), tf.mul(unbiased, 1 - k)));
    });
    this.disposePending();
  }

  get variables(): tf.Variable[] {
    return [this.gamma, this.beta, this.movingMean, this.movingVar];
  }

  dispose(): void {
    this.disposePending();
    for (const v of this.variables) v.dispose();
  }

  private disposePending(): void {
    if (this.pending) tf.dispose([this.pending.mean, this.pending.variance]);
    this.pending = null;
  }
}
