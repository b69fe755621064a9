import * as tf from '@tensorflow/tfjs';

/**
 * Shapes, named once for every normalization layer in bnx (channels-last, as TensorFlow):
 *   dense:          x: [N, C]        N examples, C features
 *   convolutional:  x: [N, H, W, C]  N examples, C channels (feature maps) at H x W positions
 * A layer maps x to a tensor of the same shape and has one gamma and one beta per channel (the last
 * axis). "Channel" below means a feature of a dense layer or a feature map of a convolution.
 */

/** The normalization layers bnx implements (the `model.norm` values except `none` and `weight`). */
export type NormKind = 'batch' | 'mean_only_batch' | 'layer' | 'group' | 'instance';

/**
 * `training`: batch-dependent layers use the mini-batch's statistics (and record them);
 * `inference`: they use fixed statistics, so the output depends on the input alone.
 * Batch-independent layers (layer, group, instance) compute the same thing in both modes.
 */
export type NormMode = 'training' | 'inference';

/** A normalization layer: see the shapes above. */
export interface NormLayer {
  readonly kind: NormKind;
  /** C: size of the last axis of the inputs. */
  readonly channels: number;
  /** x: [N, C] or [N, H, W, C] -> same shape. `training` selects the mode (see NormMode). */
  apply<T extends tf.Tensor>(x: T, training: boolean): T;
  /** What the optimizer updates (gamma, beta). */
  readonly trainable: tf.Variable[];
  /** Every variable by local name (`gamma`, `beta`, `moving_mean`, ...): what a saved model holds. */
  readonly weights: Record<string, tf.Variable>;
  dispose(): void;
}

/**
 * A layer whose inference statistics come from training mini-batches (batch norm, mean-only batch
 * norm): by exponential moving averages (`updateMovingStats` after each training step) or by
 * Algorithm 2's population estimate (`beginPopulation`, training-mode passes, `endPopulation`).
 */
export interface BatchStatisticsLayer extends NormLayer {
  readonly inference: InferenceStats;
  updateMovingStats(): void;
  beginPopulation(): void;
  endPopulation(): void;
}

/**
 * How a batch-dependent layer gets its inference statistics (Algorithm 2 of Ioffe & Szegedy 2015):
 * `ema`, exponential moving averages updated after every training step, or `population`, the
 * mean over training mini-batches taken with the weights fixed (`beginPopulation` ... `endPopulation`).
 */
export type InferenceStats = 'ema' | 'population';

/** TensorFlow.js registers variables by name: layers built without a name get `<kind>_<n>`. */
let unnamed = 0;
export function layerName(name: string | undefined, kind: string): string {
  return name ?? `${kind}_${++unnamed}`;
}

/**
 * Applies a normalization layer to x ([N, C] or [N, H, W, C]) in training or inference mode.
 * The same as `layer.apply(x, mode === 'training')`.
 */
export function normalize<T extends tf.Tensor>(layer: NormLayer, x: T, mode: NormMode): T {
  if (mode !== 'training' && mode !== 'inference')
    throw new Error(`normalize: mode ${String(mode)} (expected training or inference)`);
  return layer.apply(x, mode === 'training');
}

/** True for layers with batch statistics (BN, mean-only BN). */
export function hasBatchStatistics(layer: NormLayer | null): layer is BatchStatisticsLayer {
  return layer !== null && 'updateMovingStats' in layer;
}

/** Checks x is [N, C] or [N, H, W, C] with C = `channels`; returns the rank. */
export function checkChannelsLast(x: tf.Tensor, channels: number, who: string): number {
  if (x.rank !== 2 && x.rank !== 4) {
    throw new Error(
      `${who}: input of shape [${x.shape}]; expected [N, C] (dense) or [N, H, W, C] (convolutional, channels-last)`,
    );
  }
  if (x.shape[x.rank - 1] !== channels) {
    throw new Error(
      `${who}: input of shape [${x.shape}] has ${x.shape[x.rank - 1]} channels on its last axis; the layer has ${channels}`,
    );
  }
  return x.rank;
}

/** The axes statistics of a per-channel batch layer run over: all but the last ([0] or [0, 1, 2]). */
export function batchAxes(rank: number): number[] {
  return Array.from({ length: rank - 1 }, (_, i) => i);
}

/** tf.variable(initial) and disposes `initial` (the variable keeps the values): no leaked tensor. */
export function variableOf(initial: tf.Tensor, trainable: boolean, name: string): tf.Variable {
  const v = tf.variable(initial, trainable, name);
  initial.dispose();
  return v;
}

/**
 * A batch-independent normalization with a per-channel affine transform (gamma = 1, beta = 0 at
 * the start): what LayerNorm and GroupNorm share. Subclasses normalize in `apply`.
 */
export abstract class AffineNorm implements NormLayer {
  abstract readonly kind: NormKind;
  readonly gamma: tf.Variable;
  readonly beta: tf.Variable;

  constructor(
    readonly channels: number,
    name: string,
  ) {
    this.gamma = variableOf(tf.ones([channels]), true, `${name}/gamma`);
    this.beta = variableOf(tf.zeros([channels]), true, `${name}/beta`);
  }

  abstract apply<T extends tf.Tensor>(x: T, training: boolean): T;

  get trainable(): tf.Variable[] {
    return [this.gamma, this.beta];
  }

  get weights(): Record<string, tf.Variable> {
    return { gamma: this.gamma, beta: this.beta };
  }

  dispose(): void {
    this.gamma.dispose();
    this.beta.dispose();
  }
}
