import type * as tf from '@tensorflow/tfjs';
import type { ModelConfig } from '../spec/types.js';
import type { BatchStatisticsLayer } from './norm.js';

/**
 * What the training loop, evaluation, population statistics and saved weights need of a model:
 * `Mlp` and `Cnn` both are one. Inputs are always rows [N, features]; a model with image inputs
 * reshapes them to [N, H, W, C] itself.
 */
export interface Classifier {
  readonly config: ModelConfig;
  readonly classes: number;
  /** x: [batch, features] -> logits [batch, classes]. `training` selects batch vs inference statistics. */
  forward(x: tf.Tensor2D, training: boolean): tf.Tensor2D;
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
