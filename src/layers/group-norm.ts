import * as tf from '@tensorflow/tfjs';
import { GROUP_NORM_DEFAULTS } from './defaults.js';
import { AffineNorm, checkChannelsLast, layerName } from './norm.js';

/** GroupNorm's arguments; what is left out takes its value from GROUP_NORM_DEFAULTS. */
export interface GroupNormArgs {
  /** C: the size of the inputs' last axis; `groups` must divide it. */
  channels: number;
  /** G: contiguous groups of C/G channels each. Default 4 (`model.group_norm.groups`). */
  groups?: number;
  /** Added to the variance before the square root. Default 1e-5 (PyTorch's). */
  eps?: number;
  /** Prefix of the layer's variable names. Default `group_norm_<n>`. */
  name?: string;
}

/**
 * Group Normalization: statistics per example and per group of contiguous channels, so the output
 * does not depend on the batch (training and inference compute the same).
 *
 * The C channels form G groups of C/G (channels [0, C/G) are group 0, ...). For example n and group
 * g, over S positions (S = 1 dense, H * W convolutional) and D = S * C/G values:
 *   mu_ng = (1/D) sum x,   s2_ng = (1/D) sum (x - mu_ng)^2   (biased)
 *   y     = gamma_c * (x - mu_ng) / sqrt(s2_ng + eps) + beta_c    (c: the value's channel)
 * G = 1 is LayerNorm over channels and space; G = C is InstanceNorm. Gradients by autodiff.
 * x: [N, C] or [N, H, W, C].
 *
 * Wu & He, "Group Normalization" (ECCV 2018): https://arxiv.org/abs/1803.08494
 */
export class GroupNorm extends AffineNorm {
  readonly kind: 'group' | 'instance' = 'group';
  readonly groups: number;
  readonly eps: number;

  constructor(args: GroupNormArgs) {
    const groups = args.groups ?? GROUP_NORM_DEFAULTS.groups;
    if (!Number.isInteger(groups) || groups < 1 || args.channels % groups !== 0) {
      throw new Error(`GroupNorm: ${groups} groups do not divide ${args.channels} channels`);
    }
    super(args.channels, layerName(args.name, 'group_norm'));
    this.groups = groups;
    this.eps = args.eps ?? GROUP_NORM_DEFAULTS.eps;
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

/** InstanceNorm's arguments: GroupNorm's without `groups` (one channel per group). */
export type InstanceNormArgs = Omit<GroupNormArgs, 'groups'>;

/**
 * Instance Normalization: per example and per channel over the spatial positions, i.e. GroupNorm
 * with one channel per group (G = C). It needs positions: on a dense [N, C] input each value would
 * be its own group (the output would be beta), so it takes [N, H, W, C] only.
 *
 * Ulyanov, Vedaldi & Lempitsky, "Instance Normalization" (2016): https://arxiv.org/abs/1607.08022
 */
export class InstanceNorm extends GroupNorm {
  override readonly kind = 'instance' as const;

  constructor(args: InstanceNormArgs) {
    super({ ...args, groups: args.channels, name: layerName(args.name, 'instance_norm') });
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

export { GROUP_NORM_DEFAULTS };
