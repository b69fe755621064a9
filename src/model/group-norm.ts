import * as tf from '@tensorflow/tfjs';
import { AffineNorm, checkChannelsLast } from './norm.js';

/**
 * Group Normalization (Wu & He 2018): the C channels are split into G contiguous groups of C/G
 * channels (channels [0, C/G) are group 0, ...). Statistics are per EXAMPLE and group, over the
 * group's channels at every position: for example n and group g, with S positions (S = 1 dense,
 * H * W convolutional) and D = S * C/G values,
 *   mu_ng = (1/D) sum x,   s2_ng = (1/D) sum (x - mu_ng)^2   (biased)
 *   y     = gamma_c * (x - mu_ng) / sqrt(s2_ng + eps) + beta_c    (c: the value's channel)
 * Batch independent: the same in training and inference. G = 1 is LayerNorm (over channels and
 * space); G = C is InstanceNorm. Gradients: autodiff. x: [N, C] or [N, H, W, C]; G must divide C.
 */
export class GroupNorm extends AffineNorm {
  readonly kind: 'group' | 'instance' = 'group';

  constructor(
    channels: number,
    readonly groups: number,
    readonly eps: number,
    name: string,
  ) {
    if (!Number.isInteger(groups) || groups < 1 || channels % groups !== 0) {
      throw new Error(`GroupNorm: ${groups} groups do not divide ${channels} channels`);
    }
    super(channels, name);
  }

  apply<T extends tf.Tensor>(x: T, _training = false): T {
    checkChannelsLast(x, this.channels, this.kind === 'instance' ? 'InstanceNorm' : 'GroupNorm');
    return tf.tidy(() => {
      const n = x.shape[0];
      const positions = x.size / (n * this.channels);
      // [N, S, G, C/G]: statistics over the positions (axis 1) and the group's channels (axis 3);
      // dense inputs (S = 1) as [N, G, C/G] over axis 2, a contiguous (faster) reduction.
      const perGroup = this.channels / this.groups;
      const grouped =
        positions === 1
          ? tf.reshape(x, [n, this.groups, perGroup])
          : tf.reshape(x, [n, positions, this.groups, perGroup]);
      const { mean, variance } = tf.moments(grouped, positions === 1 ? [2] : [1, 3], true);
      const xhat = tf.reshape(tf.mul(tf.sub(grouped, mean), tf.rsqrt(tf.add(variance, this.eps))), x.shape);
      return tf.add(tf.mul(xhat, this.gamma), this.beta) as T;
    });
  }
}

/**
 * Instance Normalization (Ulyanov et al. 2016): per example and per channel over the spatial
 * positions, i.e. GroupNorm with one channel per group (G = C). It needs positions: on a dense
 * [N, C] input each value would be its own group (output = beta), so it accepts [N, H, W, C] only.
 */
export class InstanceNorm extends GroupNorm {
  override readonly kind = 'instance' as const;

  constructor(channels: number, eps: number, name: string) {
    super(channels, channels, eps, name);
  }

  override apply<T extends tf.Tensor>(x: T, training = false): T {
    if (x.rank !== 4) {
      throw new Error(
        `InstanceNorm: input of shape [${x.shape}]; it normalizes each channel over spatial positions and needs [N, H, W, C]`,
      );
    }
    return super.apply(x, training);
  }
}
