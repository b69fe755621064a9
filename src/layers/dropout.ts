import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../util/rng.js';

/**
 * One training step's dropout on a layer's output, as a per-value scale and (alpha dropout) shift:
 * y = x * scale + shift, [N * units] each (row-major, as the layer's [N, units] output). The
 * gradient is dy * scale. Drawn in JavaScript from the run's seeded generator, so that both engines
 * apply the same numbers (the graph engine gets them as inputs).
 */
export interface DropoutDraw {
  scale: Float32Array;
  /** Alpha dropout only; null for standard dropout. */
  shift: Float32Array | null;
}

/** SELU's constants (Klambauer et al. 2017): lambda and alpha; alpha dropout's saturation value is -lambda alpha. */
export const SELU_LAMBDA = 1.0507009873554805;
export const SELU_ALPHA = 1.6732632423543772;

/** Seed of one layer's dropout masks, from the run seed and the layer's index among the dropout layers. */
export function dropoutSeed(runSeed: number, layer: number): number {
  return (runSeed + 0xd0 + 104729 * (layer + 1)) % 2147483647;
}

/**
 * A dropout draw for `size` values with drop probability p: each value is kept with probability
 * 1 - p (the generator's next uniform u >= p).
 *   standard (inverted) dropout: kept values scaled by 1/(1 - p), dropped ones 0, so the expected
 *     output is the input and inference needs no change (Srivastava et al. 2014);
 *   alpha dropout (for SELU networks): dropped values are set to a' = -lambda alpha (SELU's
 *     saturation) and everything is rescaled by a and shifted by b so that mean and variance stay
 *     those of the input: a = ((1 - p)(1 + p a'^2))^(-1/2), b = -a a' p; i.e. y = a (x m + a'(1 - m)) + b
 *     with m the keep mask (Klambauer et al. 2017, "Self-Normalizing Neural Networks",
 *     https://arxiv.org/abs/1706.02515).
 */
export function drawDropout(rng: Rng, size: number, p: number, alpha: boolean): DropoutDraw {
  const scale = new Float32Array(size);
  if (!alpha) {
    const kept = 1 / (1 - p);
    for (let i = 0; i < size; i++) scale[i] = rng.next() >= p ? kept : 0;
    return { scale, shift: null };
  }
  const saturation = -SELU_LAMBDA * SELU_ALPHA;
  const a = Math.pow((1 - p) * (1 + p * saturation * saturation), -0.5);
  const b = -a * saturation * p;
  const shift = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    const keep = rng.next() >= p;
    scale[i] = keep ? a : 0;
    shift[i] = keep ? b : a * saturation + b;
  }
  return { scale, shift };
}

/** Applies a draw to a layer's output x [N, units]: x * scale (+ shift). Autodiff gives dx = dy * scale. */
export function applyDropout<T extends tf.Tensor>(x: T, draw: DropoutDraw): T {
  return tf.tidy(() => {
    const y = tf.mul(x, tf.tensor(draw.scale, x.shape));
    return (draw.shift ? tf.add(y, tf.tensor(draw.shift, x.shape)) : y) as T;
  });
}
