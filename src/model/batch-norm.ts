import * as tf from '@tensorflow/tfjs';
import { Rng } from '../util/rng.js';
import { batchAxes, checkChannelsLast, type BatchStatisticsLayer, type InferenceStats, variableOf } from './norm.js';

/** How the training-mode backward pass of batch norm is computed. */
export type BatchNormGradient = 'closed_form' | 'autodiff';

export interface BatchNormOptions {
  /** Added to the variance before the square root (Keras/TF.js 1e-3, PyTorch 1e-5; the paper gives none). */
  eps: number;
  /** Moving-average decay, Keras convention: running = momentum * running + (1 - momentum) * batch. */
  momentum: number;
  /** Where inference statistics come from: moving averages (`ema`, the default) or Algorithm 2 (`population`). */
  inference?: InferenceStats;
  /**
   * Backward pass in training mode: `closed_form` (the default; the paper's formulas in a
   * tf.customGrad, faster, see bench/) or `autodiff` (TensorFlow.js differentiates the moments op by op).
   */
  gradient?: BatchNormGradient;
  /** "Noisy BN" (see BatchNorm): its strength n > 0 and the seed of its draws; absent or n = 0 is off. */
  noise?: { strength: number; seed: number };
}

/** Seed of one batch-norm layer's noise draws, from the run seed and the layer's index (0, 1, ...). */
export function noiseSeed(runSeed: number, layer: number): number {
  return (runSeed + 0xb0 + 7919 * (layer + 1)) % 2147483647;
}

/** One step's noise of a batch-norm layer (see BatchNorm): scale s and shift m per channel, both [C]. */
export interface NoiseDraw {
  scale: Float32Array;
  shift: Float32Array;
}

/**
 * Noisy BN's draw for one step of a layer with `channels` channels and strength n: channel by
 * channel, s_c = 1 + n u and m_c = n (2 u' - 1), u and u' the generator's next two uniforms in
 * [0, 1). Every engine draws through here, so the same generator gives the same noise.
 */
export function drawNoise(rng: Rng, channels: number, strength: number): NoiseDraw {
  const scale = new Float32Array(channels);
  const shift = new Float32Array(channels);
  for (let c = 0; c < channels; c++) {
    scale[c] = 1 + strength * rng.next();
    shift[c] = strength * (2 * rng.next() - 1);
  }
  return { scale, shift };
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
 * Batch Normalization (Ioffe & Szegedy 2015) per channel of x: [N, C] or [N, H, W, C].
 *
 * Training: Algorithm 1 (`batchNormTraining`): each channel is normalized with the mean and the
 * biased variance of its m values in the mini-batch (m = N for dense inputs, N * H * W for
 * convolutional ones: one mean/variance per feature map), then scaled by gamma and shifted by beta.
 * Gradients flow through the batch mean and variance.
 *
 * Inference: the statistics are fixed (see BatchStatistics: `ema` or Algorithm 2's `population`):
 *   y = gamma * (x - moving_mean) / sqrt(moving_var + eps) + beta
 *     = scale * x + shift,  scale = gamma / sqrt(moving_var + eps),  shift = beta - moving_mean * scale
 * (`scaleShift`), one multiply-add per channel, which folds into the preceding layer's weights.
 *
 * Noisy BN (`noise.strength` n > 0; Santurkar et al. 2018, section 2.1): in training mode the
 * output is perturbed after gamma and beta by a random scale and shift per channel,
 *   y' = s * y + m,   s_c ~ U(1, 1 + n),   m_c ~ U(-n, n)   (independent per channel c),
 * drawn afresh every training step: a non-zero-mean, non-unit-variance change of every unit's
 * distribution that varies over time, i.e. covariate shift injected on purpose after the layer
 * that is supposed to remove it. One draw serves every training-mode call of a step (the step's
 * forward pass and any measurement on the same weights); `updateMovingStats`, which ends a step,
 * discards it. The paper draws its noise per example from a per-step distribution; a draw per
 * channel shared by the batch shifts the whole distribution the next layer sees, which is the shift
 * the experiment is about, without adding per-example regularizing noise on top. s and m are
 * constants of the step (no gradient flows into them) applied outside the closed-form backward
 * pass. Draws come from a seeded generator (`noiseSeed`): same seed, same noise. Inference mode
 * and population estimates (Algorithm 2 characterizes the network that runs at inference, which
 * has no noise) are noise-free.
 */
export class BatchNorm implements BatchStatisticsLayer {
  readonly kind = 'batch' as const;
  readonly gamma: tf.Variable;
  readonly beta: tf.Variable;
  readonly inference: InferenceStats;
  private readonly stats: BatchStatistics;
  private readonly noiseRng: Rng | null;
  /** This step's noise draw, made at the step's first training-mode call (or `stepNoise`). */
  private noise: NoiseDraw | null = null;
  /** The draw as tensors (kept), made at the step's first training-mode call. */
  private noiseTensors: { scale: tf.Tensor1D; shift: tf.Tensor1D } | null = null;
  private estimatingPopulation = false;

  constructor(
    readonly channels: number,
    readonly options: BatchNormOptions,
    name: string,
  ) {
    this.inference = options.inference ?? 'ema';
    this.gamma = variableOf(tf.ones([channels]), true, `${name}/gamma`);
    this.beta = variableOf(tf.zeros([channels]), true, `${name}/beta`);
    this.stats = new BatchStatistics(channels, true, options.momentum, this.inference, name);
    this.noiseRng = options.noise && options.noise.strength > 0 ? new Rng(options.noise.seed) : null;
  }

  /** Number of features (dense) or channels: the same as `channels`. */
  get features(): number {
    return this.channels;
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
        this.options.eps,
      ) as unknown as T;
    }
    const out = batchNormTraining(
      x,
      this.gamma as tf.Tensor1D,
      this.beta as tf.Tensor1D,
      this.options.eps,
      this.options.gradient,
    );
    this.stats.record(out.mean, out.variance, out.count);
    if (!this.noiseRng || this.estimatingPopulation) return out.y;
    const { scale, shift } = this.stepNoiseTensors();
    // [C] broadcasts over the leading axes of [N, C] and [N, H, W, C].
    return tf.add(tf.mul(out.y, scale), shift) as T;
  }

  /** Folds the last training batch's statistics into the moving averages (ema; a no-op for population); ends the step's noise draw. */
  updateMovingStats(): void {
    this.stats.updateMoving();
    this.endStepNoise();
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

  /**
   * This step's noise (null without noise): the draw the step's training-mode calls use, made now
   * unless one of them made it already. For an engine that applies the noise itself (the graph
   * engine), which then ends the step with `endStepNoise`.
   */
  stepNoise(): NoiseDraw | null {
    if (!this.noiseRng) return null;
    this.noise ??= drawNoise(this.noiseRng, this.channels, (this.options.noise as { strength: number }).strength);
    return this.noise;
  }

  private stepNoiseTensors(): { scale: tf.Tensor1D; shift: tf.Tensor1D } {
    const { scale, shift } = this.stepNoise() as NoiseDraw;
    // Kept: the draw outlives the tidy of the training-mode call that made it.
    this.noiseTensors ??= { scale: tf.keep(tf.tensor1d(scale)), shift: tf.keep(tf.tensor1d(shift)) };
    return this.noiseTensors;
  }

  /** Ends the step's noise draw (`updateMovingStats` does it for the eager engine): the next step draws afresh. */
  endStepNoise(): void {
    if (this.noiseTensors) tf.dispose([this.noiseTensors.scale, this.noiseTensors.shift]);
    this.noiseTensors = null;
    this.noise = null;
  }

  /** Inference mode as y = scale * x + shift, both [C]. */
  scaleShift(): { scale: tf.Tensor1D; shift: tf.Tensor1D } {
    return tf.tidy(() => {
      const scale = tf.mul(this.gamma, tf.rsqrt(tf.add(this.movingVar, this.options.eps))) as tf.Tensor1D;
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
    this.endStepNoise();
  }
}

/**
 * Mean-only batch normalization (Salimans & Kingma 2016, section 3), the companion of weight
 * normalization: it centers each channel with the batch mean but does not divide by the std.
 *   training:   y = x - mu_B + beta        (gradients flow through mu_B)
 *   inference:  y = x - moving_mean + beta
 * beta takes the place of the preceding layer's bias. The moving mean is kept as in BatchNorm
 * (`ema` or `population`). x: [N, C] or [N, H, W, C].
 */
export class MeanOnlyBatchNorm implements BatchStatisticsLayer {
  readonly kind = 'mean_only_batch' as const;
  readonly beta: tf.Variable;
  readonly inference: InferenceStats;
  private readonly stats: BatchStatistics;

  constructor(
    readonly channels: number,
    options: { momentum: number; inference?: InferenceStats },
    name: string,
  ) {
    this.inference = options.inference ?? 'ema';
    this.beta = variableOf(tf.zeros([channels]), true, `${name}/beta`);
    this.stats = new BatchStatistics(channels, false, options.momentum, this.inference, name);
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
