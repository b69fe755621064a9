import * as tf from '@tensorflow/tfjs';
import { BATCH_NORM_DEFAULTS } from './defaults.js';
import {
  batchAxes,
  checkChannelsLast,
  layerName,
  type BatchStatisticsLayer,
  type InferenceStats,
  variableOf,
} from './norm.js';

/** How the training-mode backward pass of batch norm is computed. */
export type BatchNormGradient = 'closed_form' | 'autodiff';

/** BatchNorm's arguments; what is left out takes its value from BATCH_NORM_DEFAULTS. */
export interface BatchNormArgs {
  /** C: the size of the inputs' last axis (a dense layer's features, a convolution's channels). */
  channels: number;
  /** Added to the variance before the square root. Default 1e-3 (Keras and TensorFlow.js; PyTorch uses 1e-5; the paper gives none). */
  eps?: number;
  /**
   * Moving-average decay, Keras convention: running = momentum * running + (1 - momentum) * batch.
   * Default 0.99 (PyTorch's `momentum=0.1` is 0.9 here).
   */
  momentum?: number;
  /** Where inference statistics come from: moving averages (`ema`) or Algorithm 2 (`population`). Default `ema`. */
  inference?: InferenceStats;
  /**
   * Backward pass in training mode: `closed_form` (the paper's formulas in a tf.customGrad, about
   * 1.5x faster) or `autodiff` (TensorFlow.js differentiates the moments op by op). Default `closed_form`.
   */
  gradient?: BatchNormGradient;
  /** Prefix of the layer's variable names (`<name>/gamma`, `<name>/moving_mean`, ...). Default `batch_norm_<n>`. */
  name?: string;
}

/** The output of a training-mode batch norm and the batch statistics it used (both [C]). */
export interface BatchNormTrainingOutput<T extends tf.Tensor> {
  y: T;
  /** mu_B per channel. */
  mean: tf.Tensor1D;
  /** s2_B per channel, biased (divides by m). */
  variance: tf.Tensor1D;
  /** m: values per channel in the batch (N, or N * H * W). */
  count: number;
}

/**
 * Algorithm 1 of Ioffe & Szegedy (2015), training mode, per channel c over the m = N (dense) or
 * N * H * W (convolutional) values of the mini-batch:
 *   mu   = (1/m) sum_i x_i
 *   s2   = (1/m) sum_i (x_i - mu)^2            (biased)
 *   xhat = (x - mu) / sqrt(s2 + eps)
 *   y    = gamma * xhat + beta
 * Gradients flow through mu and s2. With `closed_form` the backward pass is the paper's, simplified
 * (sums over the same m values; dy is dL/dy):
 *   dbeta  = sum_i dy_i
 *   dgamma = sum_i dy_i * xhat_i
 *   dx_i   = gamma / sqrt(s2 + eps) * (dy_i - (dbeta + xhat_i * dgamma) / m)
 * `autodiff` lets TensorFlow.js differentiate the same forward ops. x: [N, C] or [N, H, W, C];
 * gamma, beta: [C]. The returned mean and variance are kept (tf.keep): the caller disposes them.
 */
export function batchNormTraining<T extends tf.Tensor>(
  x: T,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  eps: number,
  gradient: BatchNormGradient = 'closed_form',
): BatchNormTrainingOutput<T> {
  const axes = batchAxes(x.rank);
  const count = x.size / x.shape[x.rank - 1];
  let mean: tf.Tensor1D | undefined;
  let variance: tf.Tensor1D | undefined;
  if (gradient === 'autodiff') {
    const moments = tf.moments(x, axes);
    mean = tf.keep(moments.mean as tf.Tensor1D);
    variance = tf.keep(moments.variance as tf.Tensor1D);
    const xhat = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps)));
    return { y: tf.add(tf.mul(xhat, gamma), beta) as T, mean, variance, count };
  }
  const op = tf.customGrad((...args) => {
    const [xx, g, b, save] = args as [tf.Tensor, tf.Tensor1D, tf.Tensor1D, tf.GradSaveFunc];
    const moments = tf.moments(xx, axes);
    // customGrad runs this in a tidy: keep the statistics for the moving averages.
    mean = tf.keep(moments.mean as tf.Tensor1D);
    variance = tf.keep(moments.variance as tf.Tensor1D);
    const rstd = tf.rsqrt(tf.add(variance, eps));
    const xhat = tf.mul(tf.sub(xx, mean), rstd);
    save([xhat, rstd]);
    return {
      value: tf.add(tf.mul(xhat, g), b),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xh, rs] = saved;
        const dbeta = tf.sum(dy, axes);
        const dgamma = tf.sum(tf.mul(dy, xh), axes);
        const dx = tf.mul(tf.mul(g, rs), tf.sub(dy, tf.div(tf.add(dbeta, tf.mul(xh, dgamma)), count)));
        return [dx, dgamma, dbeta];
      },
    };
  });
  const y = op(x, gamma, beta) as T;
  return { y, mean: mean as tf.Tensor1D, variance: variance as tf.Tensor1D, count };
}

/**
 * Inference statistics of a batch-dependent layer: the moving mean (and variance) per channel, and
 * how they are obtained from training mini-batches.
 *
 * `ema` (after every training step, Keras' momentum convention, k = momentum):
 *   moving_mean = k * moving_mean + (1 - k) * mu_B
 *   moving_var  = k * moving_var  + (1 - k) * m/(m-1) * s2_B
 * The UNBIASED batch variance feeds the average because the average estimates the population
 * variance Var[x] that Algorithm 2 uses at inference, and Algorithm 2 estimates it with m/(m-1)
 * (PyTorch does the same; Keras' non-fused layer feeds the biased s2_B, which underestimates Var[x]
 * by a factor (m-1)/m).
 *
 * `population` (Algorithm 2, steps 8-11: with the weights fixed, over B training mini-batches):
 *   moving_mean = (1/B) sum_b mu_b
 *   moving_var  = (1/B) sum_b m/(m-1) * s2_b   (= m/(m-1) * E_B[s2_B] when every batch has m values)
 */
class BatchStatistics {
  readonly movingMean: tf.Variable;
  readonly movingVar: tf.Variable | null;
  /** The last training batch's statistics, waiting for `updateMoving` (ema only). */
  private pending: { mean: tf.Tensor1D; variance: tf.Tensor1D | null; m: number } | null = null;
  /** Running sums while a population estimate is being taken. */
  private population: { mean: tf.Tensor1D; variance: tf.Tensor1D | null; batches: number } | null = null;

  constructor(
    channels: number,
    withVariance: boolean,
    readonly momentum: number,
    readonly inference: InferenceStats,
    name: string,
  ) {
    this.movingMean = variableOf(tf.zeros([channels]), false, `${name}/moving_mean`);
    this.movingVar = withVariance ? variableOf(tf.ones([channels]), false, `${name}/moving_variance`) : null;
  }

  /** Takes ownership of one training batch's (kept) statistics. */
  record(mean: tf.Tensor1D, variance: tf.Tensor1D | null, m: number): void {
    if (this.population) {
      const p = this.population;
      const unbiased = variance && tf.tidy(() => tf.mul(variance, unbiasedFactor(m)));
      const next = {
        mean: tf.keep(tf.add(p.mean, mean)),
        variance: p.variance && unbiased ? tf.keep(tf.add(p.variance, unbiased)) : null,
      };
      tf.dispose([p.mean, p.variance ?? [], unbiased ?? [], mean, variance ?? []]);
      this.population = { ...next, batches: p.batches + 1 } as typeof p;
      return;
    }
    this.disposePending();
    if (this.inference === 'ema') this.pending = { mean, variance, m };
    else tf.dispose([mean, variance ?? []]);
  }

  updateMoving(): void {
    if (!this.pending) return;
    const { mean, variance, m } = this.pending;
    const k = this.momentum;
    tf.tidy(() => {
      this.movingMean.assign(tf.add(tf.mul(this.movingMean, k), tf.mul(mean, 1 - k)));
      if (this.movingVar && variance) {
        this.movingVar.assign(tf.add(tf.mul(this.movingVar, k), tf.mul(tf.mul(variance, unbiasedFactor(m)), 1 - k)));
      }
    });
    this.disposePending();
  }

  begin(): void {
    this.disposePending();
    this.disposePopulation();
    const c = this.movingMean.shape[0];
    this.population = { mean: tf.zeros([c]), variance: this.movingVar ? tf.zeros([c]) : null, batches: 0 };
  }

  end(): void {
    const p = this.population;
    if (!p) throw new Error('endPopulation() without beginPopulation()');
    if (p.batches === 0) throw new Error('population statistics need at least one training mini-batch');
    tf.tidy(() => {
      this.movingMean.assign(tf.div(p.mean, p.batches));
      if (this.movingVar && p.variance) this.movingVar.assign(tf.div(p.variance, p.batches));
    });
    this.disposePopulation();
  }

  dispose(): void {
    this.disposePending();
    this.disposePopulation();
    this.movingMean.dispose();
    this.movingVar?.dispose();
  }

  private disposePending(): void {
    if (this.pending) tf.dispose([this.pending.mean, this.pending.variance ?? []]);
    this.pending = null;
  }

  private disposePopulation(): void {
    if (this.population) tf.dispose([this.population.mean, this.population.variance ?? []]);
    this.population = null;
  }
}

function unbiasedFactor(m: number): number {
  if (m < 2) throw new Error(`batch statistics of ${m} value(s) per channel: the unbiased variance needs m >= 2`);
  return m / (m - 1);
}

/**
 * Batch Normalization: each channel normalized with its mini-batch statistics in training, and
 * with fixed statistics at inference, then scaled by gamma and shifted by beta.
 *
 * Training: Algorithm 1 (`batchNormTraining`): each channel is normalized with the mean and the
 * biased variance of its m values in the mini-batch (m = N for dense inputs, N * H * W for
 * convolutional ones: one mean/variance per feature map). Gradients flow through the batch mean
 * and variance.
 *
 * Inference: Algorithm 2's fixed statistics (see BatchStatistics: `ema` or `population`):
 *   y = gamma * (x - moving_mean) / sqrt(moving_var + eps) + beta
 *     = scale * x + shift,  scale = gamma / sqrt(moving_var + eps),  shift = beta - moving_mean * scale
 * (`scaleShift`), one multiply-add per channel, which folds into the preceding layer's weights.
 * x: [N, C] or [N, H, W, C].
 *
 * Ioffe & Szegedy, "Batch Normalization: Accelerating Deep Network Training by Reducing Internal
 * Covariate Shift" (ICML 2015): https://arxiv.org/abs/1502.03167
 */
export class BatchNorm implements BatchStatisticsLayer {
  readonly kind = 'batch' as const;
  readonly channels: number;
  readonly eps: number;
  readonly momentum: number;
  readonly gradient: BatchNormGradient;
  readonly gamma: tf.Variable;
  readonly beta: tf.Variable;
  readonly inference: InferenceStats;
  private readonly stats: BatchStatistics;
  /** True between `beginPopulation` and `endPopulation`: training-mode calls then estimate Algorithm 2. */
  protected estimatingPopulation = false;

  constructor(args: BatchNormArgs) {
    const name = layerName(args.name, 'batch_norm');
    this.channels = args.channels;
    this.eps = args.eps ?? BATCH_NORM_DEFAULTS.eps;
    this.momentum = args.momentum ?? BATCH_NORM_DEFAULTS.momentum;
    this.inference = args.inference ?? BATCH_NORM_DEFAULTS.inference;
    this.gradient = args.gradient ?? BATCH_NORM_DEFAULTS.gradient;
    this.gamma = variableOf(tf.ones([this.channels]), true, `${name}/gamma`);
    this.beta = variableOf(tf.zeros([this.channels]), true, `${name}/beta`);
    this.stats = new BatchStatistics(this.channels, true, this.momentum, this.inference, name);
  }

  get movingMean(): tf.Variable {
    return this.stats.movingMean;
  }

  get movingVar(): tf.Variable {
    return this.stats.movingVar as tf.Variable;
  }

  /** x: [N, C] or [N, H, W, C] -> same shape. */
  apply<T extends tf.Tensor>(x: T, training: boolean): T {
    checkChannelsLast(x, this.channels, 'BatchNorm');
    if (!training) {
      return tf.batchNorm(
        x as unknown as tf.Tensor4D,
        this.movingMean,
        this.movingVar,
        this.beta,
        this.gamma,
        this.eps,
      ) as unknown as T;
    }
    const out = batchNormTraining(x, this.gamma as tf.Tensor1D, this.beta as tf.Tensor1D, this.eps, this.gradient);
    this.stats.record(out.mean, out.variance, out.count);
    return this.trainingOutput(out.y);
  }

  /** The training-mode output from the normalized y (NoisyBatchNorm perturbs it). */
  protected trainingOutput<T extends tf.Tensor>(y: T): T {
    return y;
  }

  /** Folds the last training batch's statistics into the moving averages (ema; a no-op for population). */
  updateMovingStats(): void {
    this.stats.updateMoving();
  }

  /** Starts an Algorithm 2 estimate: training-mode calls until `endPopulation` accumulate their statistics. */
  beginPopulation(): void {
    this.stats.begin();
    this.estimatingPopulation = true;
  }

  /** Sets the inference statistics to the population estimate of the batches seen since `beginPopulation`. */
  endPopulation(): void {
    this.estimatingPopulation = false;
    this.stats.end();
  }

  /** Inference mode as y = scale * x + shift, both [C]. */
  scaleShift(): { scale: tf.Tensor1D; shift: tf.Tensor1D } {
    return tf.tidy(() => {
      const scale = tf.mul(this.gamma, tf.rsqrt(tf.add(this.movingVar, this.eps))) as tf.Tensor1D;
      return { scale, shift: tf.sub(this.beta, tf.mul(this.movingMean, scale)) as tf.Tensor1D };
    });
  }

  get trainable(): tf.Variable[] {
    return [this.gamma, this.beta];
  }

  get weights(): Record<string, tf.Variable> {
    return { gamma: this.gamma, beta: this.beta, moving_mean: this.movingMean, moving_variance: this.movingVar };
  }

  get variables(): tf.Variable[] {
    return Object.values(this.weights);
  }

  dispose(): void {
    this.gamma.dispose();
    this.beta.dispose();
    this.stats.dispose();
  }
}

/** MeanOnlyBatchNorm's arguments: BatchNorm's that apply (defaults in BATCH_NORM_DEFAULTS). */
export type MeanOnlyBatchNormArgs = Pick<BatchNormArgs, 'channels' | 'momentum' | 'inference' | 'name'>;

/**
 * Mean-only batch normalization, the companion of weight normalization: it centers each channel
 * with the batch mean but does not divide by the standard deviation.
 *   training:   y = x - mu_B + beta        (gradients flow through mu_B)
 *   inference:  y = x - moving_mean + beta
 * beta takes the place of the preceding layer's bias. The moving mean is kept as in BatchNorm
 * (`ema` or `population`). x: [N, C] or [N, H, W, C].
 *
 * Salimans & Kingma, "Weight Normalization" (NeurIPS 2016), section 3: https://arxiv.org/abs/1602.07868
 */
export class MeanOnlyBatchNorm implements BatchStatisticsLayer {
  readonly kind = 'mean_only_batch' as const;
  readonly beta: tf.Variable;
  readonly inference: InferenceStats;
  private readonly stats: BatchStatistics;

  readonly channels: number;

  constructor(args: MeanOnlyBatchNormArgs) {
    const name = layerName(args.name, 'mean_only_batch_norm');
    this.channels = args.channels;
    this.inference = args.inference ?? BATCH_NORM_DEFAULTS.inference;
    this.beta = variableOf(tf.zeros([this.channels]), true, `${name}/beta`);
    this.stats = new BatchStatistics(
      this.channels,
      false,
      args.momentum ?? BATCH_NORM_DEFAULTS.momentum,
      this.inference,
      name,
    );
  }

  get movingMean(): tf.Variable {
    return this.stats.movingMean;
  }

  apply<T extends tf.Tensor>(x: T, training: boolean): T {
    checkChannelsLast(x, this.channels, 'MeanOnlyBatchNorm');
    if (!training) return tf.add(tf.sub(x, this.movingMean), this.beta) as T;
    const axes = batchAxes(x.rank);
    const mean = tf.mean(x, axes) as tf.Tensor1D;
    this.stats.record(tf.keep(mean.clone()), null, x.size / this.channels);
    return tf.add(tf.sub(x, mean), this.beta) as T;
  }

  updateMovingStats(): void {
    this.stats.updateMoving();
  }

  beginPopulation(): void {
    this.stats.begin();
  }

  endPopulation(): void {
    this.stats.end();
  }

  get trainable(): tf.Variable[] {
    return [this.beta];
  }

  get weights(): Record<string, tf.Variable> {
    return { beta: this.beta, moving_mean: this.movingMean };
  }

  dispose(): void {
    this.beta.dispose();
    this.stats.dispose();
  }
}

export { BATCH_NORM_DEFAULTS };
