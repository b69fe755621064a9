/**
 * Normalization layers and the layers they sit in, each a small class with one args object whose
 * defaults are documented (the config defaults in src/spec/schema.ts import them). Shapes are named
 * once in norm.ts: dense [N, C], convolutional [N, H, W, C], channels last.
 */
export {
  type NormLayer,
  type NormKind,
  type NormMode,
  type BatchStatisticsLayer,
  type InferenceStats,
  normalize,
  hasBatchStatistics,
} from './norm.js';
export {
  BatchNorm,
  MeanOnlyBatchNorm,
  batchNormTraining,
  BATCH_NORM_DEFAULTS,
  type BatchNormArgs,
  type MeanOnlyBatchNormArgs,
  type BatchNormGradient,
  type BatchNormTrainingOutput,
} from './batch-norm.js';
export { NoisyBatchNorm, noiseSeed, drawNoise, type NoisyBatchNormArgs, type NoiseDraw } from './noisy-batch-norm.js';
export { LayerNorm, LAYER_NORM_DEFAULTS, type LayerNormArgs } from './layer-norm.js';
export {
  GroupNorm,
  InstanceNorm,
  GROUP_NORM_DEFAULTS,
  type GroupNormArgs,
  type InstanceNormArgs,
} from './group-norm.js';
export { Dense, WeightNormDense } from './dense.js';
export { Conv2D } from './conv.js';
export { ACTIVATIONS, type Activation } from './activations.js';
export { initWeights, type InitType } from './init.js';
