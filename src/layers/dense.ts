import * as tf from '@tensorflow/tfjs';
import { variableOf } from './norm.js';

/**
 * A fully connected layer: x: [N, in] -> x W + b: [N, out], with W: [in, out] and b: [out] (or no
 * bias, when a following normalization's beta takes its place).
 */
export class Dense {
  readonly kernel: tf.Variable<tf.Rank.R2>;
  readonly bias: tf.Variable | null;

  constructor(initial: tf.Tensor2D, useBias: boolean, name: string) {
    this.kernel = tf.variable(initial, true, `${name}/kernel`);
    this.bias = useBias ? variableOf(tf.zeros([initial.shape[1]]), true, `${name}/bias`) : null;
  }

  get units(): number {
    return this.kernel.shape[1];
  }

  /** W: [in, out], the weight matrix actually applied. */
  effectiveKernel(): tf.Tensor2D {
    return this.kernel;
  }

  apply(x: tf.Tensor2D): tf.Tensor2D {
    const z: tf.Tensor2D = tf.matMul(x, this.kernel);
    return this.bias ? tf.add<tf.Tensor2D>(z, this.bias) : z;
  }

  get trainable(): tf.Variable[] {
    return this.bias ? [this.kernel, this.bias] : [this.kernel];
  }

  get weights(): Record<string, tf.Variable> {
    return this.bias ? { kernel: this.kernel, bias: this.bias } : { kernel: this.kernel };
  }

  dispose(): void {
    this.kernel.dispose();
    this.bias?.dispose();
  }
}

/**
 * A fully connected layer with Weight Normalization (Salimans & Kingma 2016): each output unit j's
 * weight vector (column j of W) is reparametrized by a direction v_j and a length g_j,
 *   w_j = g_j * v_j / ||v_j||,   ||v_j|| = sqrt(sum_i v_ij^2),
 * and the optimizer updates v and g (gradients by autodiff through the norm). The output is
 * x W (+ b): [N, out] for x: [N, in], with V: [in, out], g: [out]. g starts at ||v_j|| so the
 * initial W equals the initial V (the paper's data-dependent initialization is not used).
 * Weight norm does not center: the paper pairs it with mean-only batch norm, which then replaces b.
 */
export class WeightNormDense {
  readonly v: tf.Variable<tf.Rank.R2>;
  readonly g: tf.Variable;
  readonly bias: tf.Variable | null;

  constructor(initial: tf.Tensor2D, useBias: boolean, name: string) {
    this.v = tf.variable(initial, true, `${name}/v`);
    const length = tf.norm(initial, 'euclidean', 0);
    this.g = tf.variable(length, true, `${name}/g`);
    length.dispose();
    this.bias = useBias ? variableOf(tf.zeros([initial.shape[1]]), true, `${name}/bias`) : null;
  }

  get units(): number {
    return this.v.shape[1];
  }

  /** W = g * V / ||V|| (column norms): [in, out]. */
  effectiveKernel(): tf.Tensor2D {
    return tf.tidy(() => tf.mul(this.v, tf.div(this.g, tf.norm(this.v, 'euclidean', 0))) as tf.Tensor2D);
  }

  apply(x: tf.Tensor2D): tf.Tensor2D {
    const z: tf.Tensor2D = tf.matMul(x, this.effectiveKernel());
    return this.bias ? tf.add<tf.Tensor2D>(z, this.bias) : z;
  }

  get trainable(): tf.Variable[] {
    return this.bias ? [this.v, this.g, this.bias] : [this.v, this.g];
  }

  get weights(): Record<string, tf.Variable> {
    return this.bias ? { v: this.v, g: this.g, bias: this.bias } : { v: this.v, g: this.g };
  }

  dispose(): void {
    this.v.dispose();
    this.g.dispose();
    this.bias?.dispose();
  }
}
