import type * as tf from '@tensorflow/tfjs';
import type { DropoutDraw } from '../layers/dropout.js';
import type { ModelConfig } from '../spec/types.js';
import type { BatchStatisticsLayer } from '../layers/norm.js';

/** One training step's dropout draws, by layer name. */
export type DropoutDraws = ReadonlyMap<string, DropoutDraw>;

/** Receives a layer's input to the nonlinearity during `forward` (mlp: [N, units]; conv: [N, H, W, C]). */
export type ActivationTap = (layer: string, z: tf.Tensor) => void;

/**
 * What the training loop, evaluation, population statistics and saved weights need of a model:
 * `Mlp` and `Cnn` both are one. Inputs are always rows [N, features]; a model with image inputs
 * reshapes them to [N, H, W, C] itself.
 */
export interface Classifier {
  readonly config: ModelConfig;
  readonly classes: number;
  /**
   * x: [batch, features] -> logits [batch, classes]. `training` selects batch vs inference
   * statistics. `tap`, if given, sees every layer's input to the nonlinearity by layer name (for
   * the instruments): norm(x W) with the norm before the activation, the pre-activation otherwise.
   * `dropout`, the training step's draws by layer name (`DropoutSampler`), is applied to those
   * layers' outputs; without it there is no dropout (evaluation, population estimates, instruments).
   */
  forward(x: tf.Tensor2D, training: boolean, tap?: ActivationTap, dropout?: DropoutDraws): tf.Tensor2D;
  readonly batchStatisticsLayers: BatchStatisticsLayer[];
  readonly usesPopulationStatistics: boolean;
  updateMovingStats(): void;
  beginPopulation(): void;
  endPopulation(): void;
  readonly trainable: tf.Variable[];
  /** Every variable by a name independent of the model instance (what weights.json holds). */
  readonly namedWeights: Map<string, tf.Variable>;
  readonly parameterCount: number;
  dispose(): void;
}

/**
 * What every network does the same way with its batch-statistics layers and parameters; a network
 * says which layers it has (`batchStatisticsLayers`, `trainable`) and inherits the rest.
 */
export abstract class ClassifierBase {
  abstract readonly batchStatisticsLayers: BatchStatisticsLayer[];
  abstract readonly trainable: tf.Variable[];

  /** True when inference uses Algorithm 2's population statistics (`model.batch_norm.inference: population`). */
  get usesPopulationStatistics(): boolean {
    return this.batchStatisticsLayers.some((l) => l.inference === 'population');
  }

  /** Updates every batch-statistics layer's moving averages from the last training forward pass (ema). */
  updateMovingStats(): void {
    for (const l of this.batchStatisticsLayers) l.updateMovingStats();
  }

  /** Starts a population estimate: training-mode forward passes until `endPopulation` are averaged. */
  beginPopulation(): void {
    for (const l of this.batchStatisticsLayers) l.beginPopulation();
  }

  endPopulation(): void {
    for (const l of this.batchStatisticsLayers) l.endPopulation();
  }

  get parameterCount(): number {
    return this.trainable.reduce((n, v) => n + v.size, 0);
  }
}
