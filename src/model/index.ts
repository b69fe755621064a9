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
  type BatchNormOptions,
  type BatchNormGradient,
  type BatchNormTrainingOutput,
} from './batch-norm.js';
export { LayerNorm } from './layer-norm.js';
export { GroupNorm, InstanceNorm } from './group-norm.js';
export { Dense, WeightNormDense } from './dense.js';
export { Mlp, ACTIVATIONS, type HiddenLayer } from './mlp.js';
export { Cnn, Conv2D, buildModel, type ConvBlock } from './cnn.js';
export type { ActivationTap, Classifier } from './classifier.js';
export { initWeights } from './init.js';
export {
  foldBatchNorm,
  foldInputAffine,
  foldMlp,
  foldCnn,
  describeFoldedLayer,
  foldedForward,
  toLayersModel,
  disposeFolded,
  type FoldedLayer,
  type FoldedNetwork,
} from './fold.js';
export { saveWeights, loadWeights, hasWeights, WEIGHT_FILES, type WeightsFile } from './weights-io.js';
