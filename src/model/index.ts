export { BatchNorm, type BatchNormOptions } from './batch-norm.js';
export { Mlp } from './mlp.js';
export { initWeights } from './init.js';
