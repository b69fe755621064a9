import * as tf from '@tensorflow/tfjs';
import { Rng } from '../util/rng.js';
import { BatchNorm, type BatchNormArgs } from './batch-norm.js';
import { layerName } from './norm.js';

/** NoisyBatchNorm's arguments: BatchNorm's, and the noise. */
export interface NoisyBatchNormArgs extends BatchNormArgs {
  /** The noise's strength n > 0, and the seed of its draws (`noiseSeed`: from the run seed and the layer's index). */
  noise: { strength: number; seed: number };
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

/**
 * "Noisy BN": batch norm whose training-mode output is perturbed, after gamma and beta, by a
 * random scale and shift per channel, drawn afresh every training step:
 *   y' = s * y + m,   s_c ~ U(1, 1 + n),   m_c ~ U(-n, n)   (independent per channel c).
 * It is distribution shift injected on purpose after the layer that is supposed to remove it:
 * Santurkar et al.'s test of whether BN helps by reducing internal covariate shift (it still trains).
 * One draw serves every training-mode call of a step (the step's forward pass and any measurement
 * on the same weights); `updateMovingStats`, which ends a step, discards it. The paper draws its
 * noise per example from a per-step distribution; a draw per channel shared by the batch shifts the
 * whole distribution the next layer sees, which is the shift the experiment is about, without
 * per-example regularizing noise on top. s and m are constants of the step (no gradient flows into
 * them), applied outside the closed-form backward pass. Draws come from a seeded generator: same
 * seed, same noise. Inference mode and population estimates (Algorithm 2 characterizes the network
 * that runs at inference, which has no noise) are noise-free.
 *
 * Santurkar, Tsipras, Ilyas & Madry, "How Does Batch Normalization Help Optimization?"
 * (NeurIPS 2018), section 2.1: https://arxiv.org/abs/1805.11604
 */
export class NoisyBatchNorm extends BatchNorm {
  readonly strength: number;
  private readonly noiseRng: Rng;
  /** This step's noise draw, made at the step's first training-mode call (or `stepNoise`). */
  private noise: NoiseDraw | null = null;
  /** The draw as tensors (kept), made at the step's first training-mode call. */
  private noiseTensors: { scale: tf.Tensor1D; shift: tf.Tensor1D } | null = null;

  constructor(args: NoisyBatchNormArgs) {
    if (!(args.noise.strength > 0))
      throw new Error(`NoisyBatchNorm: noise strength ${args.noise.strength} (must be > 0; use BatchNorm for none)`);
    super({ ...args, name: layerName(args.name, 'noisy_batch_norm') });
    this.strength = args.noise.strength;
    this.noiseRng = new Rng(args.noise.seed);
  }

  protected override trainingOutput<T extends tf.Tensor>(y: T): T {
    if (this.estimatingPopulation) return y;
    const { scale, shift } = this.stepNoiseTensors();
    // [C] broadcasts over the leading axes of [N, C] and [N, H, W, C].
    return tf.add(tf.mul(y, scale), shift) as T;
  }

  /** Folds the step's statistics into the moving averages (ema) and ends the step's noise draw. */
  override updateMovingStats(): void {
    super.updateMovingStats();
    this.endStepNoise();
  }

  /**
   * This step's noise: the draw the step's training-mode calls use, made now unless one of them
   * made it already. For an engine that applies the noise itself (the graph engine), which then
   * ends the step with `endStepNoise`.
   */
  stepNoise(): NoiseDraw {
    this.noise ??= drawNoise(this.noiseRng, this.channels, this.strength);
    return this.noise;
  }

  private stepNoiseTensors(): { scale: tf.Tensor1D; shift: tf.Tensor1D } {
    const { scale, shift } = this.stepNoise();
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

  override dispose(): void {
    super.dispose();
    this.endStepNoise();
  }
}
