import * as tf from '@tensorflow/tfjs';
import { LAYER_NORM_DEFAULTS } from './defaults.js';
import { AffineNorm, checkChannelsLast, layerName } from './norm.js';

/** LayerNorm's arguments; what is left out takes its value from LAYER_NORM_DEFAULTS. */
export interface LayerNormArgs {
  /** C: the size of the inputs' last axis (a dense layer's features, a convolution's channels). */
  channels: number;
  /** Added to the variance before the square root. Default 1e-5 (PyTorch's; Keras uses 1e-3). */
  eps?: number;
  /** Prefix of the layer's variable names (`<name>/gamma`, `<name>/beta`). Default `layer_norm_<n>`. */
  name?: string;
}

/**
 * Layer Normalization: statistics per example over all of its values, so the output does not
 * depend on the batch and training and inference compute the same.
 *
 * For example n with D values (every axis but the batch axis; D = C dense, H * W * C convolutional):
 *   mu_n = (1/D) sum_j x_nj,   s2_n = (1/D) sum_j (x_nj - mu_n)^2   (biased)
 *   y_nj = gamma_c(j) * (x_nj - mu_n) / sqrt(s2_n + eps) + beta_c(j)
 * gamma and beta are per channel c (the last axis), as PyTorch's reference vectors have them; on
 * [N, H, W, C] this is GroupNorm with one group. Gradients by autodiff. x: [N, C] or [N, H, W, C].
 *
 * Ba, Kiros & Hinton, "Layer Normalization" (2016): https://arxiv.org/abs/1607.06450
 */
export class LayerNorm extends AffineNorm {
  readonly kind = 'layer' as const;
  readonly eps: number;

  constructor(args: LayerNormArgs) {
    super(args.channels, layerName(args.name, 'layer_norm'));
    this.eps = args.eps ?? LAYER_NORM_DEFAULTS.eps;
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

export { LAYER_NORM_DEFAULTS };
