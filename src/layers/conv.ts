import * as tf from '@tensorflow/tfjs';
import { variableOf } from './norm.js';

/**
 * A 2-D convolution, channels-last: x [N, H, W, Cin] -> [N, H, W, Cout], stride 1, `same` padding,
 * kernel K: [k, k, Cin, Cout] (+ bias [Cout]). With weight normalization (`weightNorm`), each
 * output channel's filter is reparametrized as K[..., c] = g_c * V[..., c] / ||V[..., c]|| (the
 * norm over the k x k x Cin weights of that filter), g starting at ||V[..., c]||.
 */
export class Conv2D {
  /** The kernel K, or V under weight normalization. */
  readonly kernel: tf.Variable<tf.Rank.R4>;
  readonly g: tf.Variable | null;
  readonly bias: tf.Variable | null;

  constructor(initial: tf.Tensor4D, useBias: boolean, weightNorm: boolean, name: string) {
    const cout = initial.shape[3];
    this.kernel = tf.variable(initial, true, `${name}/${weightNorm ? 'v' : 'kernel'}`);
    this.g = weightNorm
      ? variableOf(
          tf.tidy(() => filterNorms(initial)),
          true,
          `${name}/g`,
        )
      : null;
    this.bias = useBias ? variableOf(tf.zeros([cout]), true, `${name}/bias`) : null;
  }

  get channels(): number {
    return this.kernel.shape[3];
  }

  /** The kernel actually applied: [k, k, Cin, Cout]. */
  effectiveKernel(): tf.Tensor4D {
    const g = this.g;
    if (!g) return this.kernel;
    return tf.tidy(() => tf.mul(this.kernel, tf.div(g, filterNorms(this.kernel))) as tf.Tensor4D);
  }

  apply(x: tf.Tensor4D): tf.Tensor4D {
    const z = tf.conv2d(x, this.effectiveKernel(), 1, 'same');
    return this.bias ? tf.add<tf.Tensor4D>(z, this.bias) : z;
  }

  get trainable(): tf.Variable[] {
    return [this.kernel, ...(this.g ? [this.g] : []), ...(this.bias ? [this.bias] : [])];
  }

  get weights(): Record<string, tf.Variable> {
    const out: Record<string, tf.Variable> = this.g ? { v: this.kernel, g: this.g } : { kernel: this.kernel };
    if (this.bias) out.bias = this.bias;
    return out;
  }

  dispose(): void {
    this.kernel.dispose();
    this.g?.dispose();
    this.bias?.dispose();
  }
}

/** ||V[..., c]|| for every output channel c of a [k, k, Cin, Cout] kernel: [Cout]. */
function filterNorms(v: tf.Tensor4D): tf.Tensor1D {
  return tf.sqrt(tf.sum(tf.square(v), [0, 1, 2])) as tf.Tensor1D;
}
