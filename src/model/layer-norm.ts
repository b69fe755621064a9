import * as tf from '@tensorflow/tfjs';
import { AffineNorm, checkChannelsLast } from './norm.js';

/**
 * Layer Normalization (Ba, Kiros & Hinton 2016): statistics per EXAMPLE over all of its values
 * (every axis but the batch axis), so the layer does not depend on the batch and computes the same
 * in training and inference. For example n with D values (D = C dense, H * W * C convolutional):
 *   mu_n   = (1/D) sum_j x_nj
 *   s2_n   = (1/D) sum_j (x_nj - mu_n)^2        (biased)
 *   y_nj   = gamma_c(j) * (x_nj - mu_n) / sqrt(s2_n + eps) + beta_c(j)
 * gamma and beta are per channel c (the last axis), as in the reference vectors. For [N, H, W, C]
 * this is GroupNorm with one group. Gradients: autodiff. x: [N, C] or [N, H, W, C].
 */
export class LayerNorm extends AffineNorm {
  readonly kind = 'layer' as const;

  constructor(
    channels: number,
    readonly eps: number,
    name: string,
  ) {
    super(channels, name);
  }

  apply<T extends tf.Tensor>(x: T, _training = false): T {
    const rank = checkChannelsLast(x, this.channels, 'LayerNorm');
    return tf.tidy(() => {
      const axes = Array.from({ length: rank - 1 }, (_, i) => i + 1);
      const { mean, variance } = tf.moments(x, axes, true);
      const xhat = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, this.eps)));
      return tf.add(tf.mul(xhat, this.gamma), this.beta) as T;
    });
  }
}
