import * as tf from '@tensorflow/tfjs';
import { Rng } from '../util/rng.js';

/** How initial weights are drawn (`model.init`). */
export type InitType = 'gaussian' | 'glorot_uniform' | 'he_normal' | 'lecun_normal';

/**
 * A [fanIn, fanOut] weight matrix drawn with bnx's own seeded generator, so that a run's initial
 * weights depend on its seed alone (not on how many tensors TensorFlow.js has created before).
 *   gaussian:        N(0, std^2), the paper's "small random Gaussian values"
 *   glorot_uniform:  U(-a, a), a = sqrt(6 / (fanIn + fanOut))
 *   he_normal:       N(0, 2 / fanIn)
 *   lecun_normal:    N(0, 1 / fanIn), what self-normalizing networks (SELU) need (Klambauer et al. 2017)
 */
export function initWeights(kind: InitType, fanIn: number, fanOut: number, std: number, rng: Rng): tf.Tensor2D {
  const values = new Float32Array(fanIn * fanOut);
  if (kind === 'glorot_uniform') {
    const a = Math.sqrt(6 / (fanIn + fanOut));
    for (let i = 0; i < values.length; i++) values[i] = (2 * rng.next() - 1) * a;
  } else {
    const s = kind === 'he_normal' ? Math.sqrt(2 / fanIn) : kind === 'lecun_normal' ? Math.sqrt(1 / fanIn) : std;
    for (let i = 0; i < values.length; i++) values[i] = rng.normal() * s;
  }
  return tf.tensor2d(values, [fanIn, fanOut]);
}
