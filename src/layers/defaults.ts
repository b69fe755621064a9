/**
 * The normalization layers' defaults, in a module without TensorFlow so that the config defaults
 * (src/spec/schema.ts) can import them without loading it (`bnx plan` and `--help` stay fast).
 * Each layer's args interface documents its fields.
 */

/** BatchNormArgs (and MeanOnlyBatchNormArgs) defaults: Keras' and TensorFlow.js' eps and momentum. */
export const BATCH_NORM_DEFAULTS = { eps: 1e-3, momentum: 0.99, inference: 'ema', gradient: 'closed_form' } as const;

/** LayerNormArgs defaults: PyTorch's eps. */
export const LAYER_NORM_DEFAULTS = { eps: 1e-5 } as const;

/** GroupNormArgs defaults: 4 groups, PyTorch's eps. */
export const GROUP_NORM_DEFAULTS = { groups: 4, eps: 1e-5 } as const;
