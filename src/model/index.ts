/**
 * Networks built from a run's model config: the plan (layers, norms, placement, bias), the eager
 * Mlp and Cnn, batch norm folding for export, saved weights. The layers themselves are in src/layers.
 */
export {
  modelPlan,
  normalization,
  blockOutput,
  sizeOf,
  type ModelPlan,
  type LayerPlan,
  type NormPlan,
} from './plan.js';
export { createNorm } from './norms.js';
export { DropoutSampler } from './dropout.js';
export { Mlp, type HiddenLayer } from './mlp.js';
export { Cnn, buildModel, type ConvBlock } from './cnn.js';
export type { ActivationTap, Classifier, DropoutDraws } from './classifier.js';
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
