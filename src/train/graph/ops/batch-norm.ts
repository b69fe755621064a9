/** Batch norm and mean-only batch norm as ops (the eager counterparts: src/layers/batch-norm.ts). */
import { F32, I32, type GraphBuilder } from '../graph-def.js';

/**
 * Batch norm as TensorFlow's fused op on x4: [N, H, W, C] (NHWC; dense values as [N, 1, 1, C],
 * so every column is a channel). Training mode (`moving` null) normalizes with the batch
 * statistics over N·H·W values per channel, and outputs 3..5 are the reserve spaces
 * `fusedBatchNormGrad` needs; inference mode uses the moving mean and variance.
 */
export function fusedBatchNorm(
  g: GraphBuilder,
  s: string,
  x4: string,
  gamma: string,
  beta: string,
  moving: [string, string] | null,
  eps: number,
): string {
  const [mean, variance] = moving ?? [g.constFloat(`${s}/no_mean`, [], [0]), g.constFloat(`${s}/no_variance`, [], [0])];
  return g.op('FusedBatchNormV3', `${s}/batch_norm`, [x4, gamma, beta, mean, variance], {
    T: F32,
    U: F32,
    epsilon: { f: eps },
    is_training: { b: moving === null },
    data_format: { s: 'NHWC' },
    exponential_avg_factor: { f: 1 },
  });
}

/** The training-mode backward pass of `fusedBatchNorm` (node `fused`): dx4 at output 0, dgamma at 1, dbeta at 2. */

export function fusedBatchNormGrad(
  g: GraphBuilder,
  s: string,
  dy4: string,
  x4: string,
  gamma: string,
  fused: string,
  eps: number,
): string {
  return g.op('FusedBatchNormGradV3', `${s}/batch_norm`, [dy4, x4, gamma, `${fused}:3`, `${fused}:4`, `${fused}:5`], {
    T: F32,
    U: F32,
    epsilon: { f: eps },
    is_training: { b: true },
    data_format: { s: 'NHWC' },
  });
}

/**
 * Mean-only batch norm (MeanOnlyBatchNorm): training y = x - mu_B + beta with mu_B the batch mean
 * per channel over `axes` (every axis but the channel; returned as `mean` [C] for the moving
 * average); inference y = x - moving_mean + beta.
 */
export function meanOnlyForward(
  g: GraphBuilder,
  s: string,
  x: string,
  beta: string,
  movingMean: string | null,
  axes: string,
): { y: string; mean: string } {
  const mean =
    movingMean ?? g.op('Mean', `${s}/mean_only/mean`, [x, axes], { T: F32, Tidx: I32, keep_dims: { b: false } });
  const y = g.op('AddV2', `${s}/mean_only/y`, [g.op('Sub', `${s}/mean_only/centered`, [x, mean], { T: F32 }), beta], {
    T: F32,
  });
  return { y, mean };
}

/** Mean-only batch norm's backward pass (the mean is the batch's): dx = dy - mean(dy), dbeta = sum dy, over `axes`. */

export function meanOnlyBackward(g: GraphBuilder, s: string, dy: string, axes: string): { dx: string; dbeta: string } {
  const dbeta = g.op('Sum', `${s}/mean_only/dbeta`, [dy, axes], { T: F32, Tidx: I32, keep_dims: { b: false } });
  const dx = g.op(
    'Sub',
    `${s}/mean_only/dx`,
    [dy, g.op('Mean', `${s}/mean_only/dy_mean`, [dy, axes], { T: F32, Tidx: I32, keep_dims: { b: false } })],
    { T: F32 },
  );
  return { dx, dbeta };
}
