import * as tf from '@tensorflow/tfjs';
import type { ModelConfig } from '../spec/types.js';
import { Rng } from '../util/rng.js';
import { BatchNorm } from './batch-norm.js';
import { initWeights } from './init.js';

/** One hidden layer: z = act(norm(x W [+ b])). With batch norm the bias is dropped: beta replaces it. */
interface HiddenLayer {
  kernel: tf.Variable;
  bias: tf.Variable | null;
  norm: BatchNorm | null;
}

const ACTIVATIONS = {
  sigmoid: tf.sigmoid,
  relu: tf.relu,
  tanh: tf.tanh,
  linear: (x: tf.Tensor) => x,
} as const;

/**
 * A fully connected network: inputs -> hidden layers (dense, optional BN before the activation,
 * as in the paper) -> a linear layer of `classes` logits.
 */
export class Mlp {
  /** TensorFlow.js registers variables by name: a counter keeps names unique across live models. */
  private static created = 0;
  readonly hidden: HiddenLayer[] = [];
  readonly head: { kernel: tf.Variable; bias: tf.Variable };

  constructor(
    readonly config: ModelConfig,
    readonly inputs: number,
    readonly classes: number,
    seed: number,
  ) {
    const rng = new Rng(seed);
    const prefix = `mlp${++Mlp.created}`;
    let fanIn = inputs;
    config.hidden.forEach((units, i) => {
      const name = `${prefix}/hidden${i + 1}`;
      const useBn = config.norm === 'batch';
      this.hidden.push({
        kernel: tf.variable(initWeights(config.init, fanIn, units, config.init_std, rng), true, `${name}/kernel`),
        bias: useBn ? null : tf.variable(tf.zeros([units]), true, `${name}/bias`),
        norm: useBn ? new BatchNorm(units, config.batch_norm, `${name}/bn`) : null,
      });
      fanIn = units;
    });
    this.head = {
      kernel: tf.variable(initWeights(config.init, fanIn, classes, config.init_std, rng), true, `${prefix}/head/kernel`),
      bias: tf.variable(tf.zeros([classes]), true, `${prefix}/head/bias`),
    };
  }

  /** x: [batch, inputs] -> logits [batch, classes]. `training` selects batch vs moving statistics. */
  forward(x: tf.Tensor2D, training: boolean): tf.Tensor2D {
    const act = ACTIVATIONS[this.config.activation];
    let h = x;
    for (const layer of this.hidden) {
      let z: tf.Tensor2D = tf.matMul(h, layer.kernel);
      if (layer.bias) z = tf.add(z, layer.bias) as tf.Tensor2D;
      if (layer.norm) z = layer.norm.apply(z, training);
      h = act(z) as tf.Tensor2D;
    }
    return tf.add(tf.matMul(h, this.head.kernel), this.head.bias);
  }

  /** Updates every BN layer's moving averages from the last training forward pass. */
  updateMovingStats(): void {
    for (const layer of this.hidden) layer.norm?.updateMovingStats();
  }

  /** Variables the optimizer updates. */
  get trainable(): tf.Variable[] {
    const vars: tf.Variable[] = [];
    for (const l of this.hidden) {
      vars.push(l.kernel);
      if (l.bias) vars.push(l.bias);
      if (l.norm) vars.push(l.norm.gamma, l.norm.beta);
    }
    vars.push(this.head.kernel, this.head.bias);
    return vars;
  }

  get parameterCount(): number {
    return this.trainable.reduce((n, v) => n + v.size, 0);
  }

  dispose(): void {
    for (const l of this.hidden) {
      l.kernel.dispose();
      l.bias?.dispose();
      l.norm?.dispose();
    }
    this.head.kernel.dispose();
    this.head.bias.dispose();
  }
}
