import * as tf from '@tensorflow/tfjs';
import type { ModelConfig, NormPlacement } from '../spec/types.js';
import { Rng } from '../util/rng.js';
import { BatchNorm, MeanOnlyBatchNorm, noiseSeed } from './batch-norm.js';
import { ClassifierBase, type ActivationTap, type Classifier } from './classifier.js';
import { Dense, WeightNormDense } from './dense.js';
import { GroupNorm, InstanceNorm } from './group-norm.js';
import { initWeights } from './init.js';
import { LayerNorm } from './layer-norm.js';
import { hasBatchStatistics, type BatchStatisticsLayer, type NormLayer } from './norm.js';

/**
 * One hidden layer: h = act(norm(dense(x))) with the norm `before` the activation, or
 * h = norm(act(dense(x))) `after` it. Batch norm before the activation drops the dense bias (beta
 * replaces it); so does mean-only batch norm after a weight-normalized layer.
 */
export interface HiddenLayer {
  /** `hidden1`, `hidden2`, ...: the prefix of the layer's weights in a saved model. */
  name: string;
  dense: Dense | WeightNormDense;
  norm: NormLayer | null;
  placement: NormPlacement;
}

export const ACTIVATIONS = {
  sigmoid: tf.sigmoid,
  relu: tf.relu,
  tanh: tf.tanh,
  linear: (x: tf.Tensor) => x,
} as const;

/**
 * A fully connected network: inputs -> hidden layers (dense, then the configured normalization
 * before or after the activation) -> a linear layer of `classes` logits. `model.norm`:
 *   none      dense + bias, activation
 *   batch     BatchNorm per feature over the mini-batch (bias dropped when placed before the activation)
 *   layer     LayerNorm per example over the layer's features
 *   group     GroupNorm per example over `group_norm.groups` contiguous groups of features
 *   instance  needs spatial positions: not available on an mlp (rejected when the spec is checked)
 *   weight    WeightNormDense (w = g v / ||v||), with MeanOnlyBatchNorm when `weight_norm.mean_only_bn`
 * The output layer is never normalized.
 */
export class Mlp extends ClassifierBase implements Classifier {
  /** TensorFlow.js registers variables by name: a counter keeps names unique across live models. */
  private static created = 0;
  readonly hidden: HiddenLayer[] = [];
  readonly head: Dense;

  constructor(
    readonly config: ModelConfig,
    readonly inputs: number,
    readonly classes: number,
    seed: number,
  ) {
    super();
    const rng = new Rng(seed);
    const prefix = `mlp${++Mlp.created}`;
    const bn = config.batch_norm;
    let fanIn = inputs;
    config.hidden.forEach((units, i) => {
      const local = `hidden${i + 1}`;
      const name = `${prefix}/${local}`;
      const placement: NormPlacement = config.norm === 'weight' ? 'before' : config.norm_placement;
      const meanOnly = config.norm === 'weight' && config.weight_norm.mean_only_bn;
      const dropBias = (config.norm === 'batch' && placement === 'before') || meanOnly;
      const initial = initWeights(config.init, fanIn, units, config.init_std, rng);
      const dense =
        config.norm === 'weight' ? new WeightNormDense(initial, !dropBias, name) : new Dense(initial, !dropBias, name);
      initial.dispose();
      let norm: NormLayer | null = null;
      const normName = `${name}/norm`;
      if (config.norm === 'batch')
        norm = new BatchNorm(
          units,
          {
            eps: bn.eps,
            momentum: bn.momentum,
            inference: bn.inference,
            gradient: bn.gradient,
            noise: { strength: bn.noise, seed: noiseSeed(seed, i) },
          },
          normName,
        );
      else if (config.norm === 'layer') norm = new LayerNorm(units, config.layer_norm.eps, normName);
      else if (config.norm === 'group')
        norm = new GroupNorm(units, config.group_norm.groups, config.group_norm.eps, normName);
      else if (config.norm === 'instance') norm = new InstanceNorm(units, config.group_norm.eps, normName);
      else if (meanOnly)
        norm = new MeanOnlyBatchNorm(units, { momentum: bn.momentum, inference: bn.inference }, normName);
      this.hidden.push({ name: local, dense, norm, placement });
      fanIn = units;
    });
    const headInit = initWeights(config.init, fanIn, classes, config.init_std, rng);
    this.head = new Dense(headInit, true, `${prefix}/head`);
    headInit.dispose();
  }

  /** x: [batch, inputs] -> logits [batch, classes]. `training` selects batch vs inference statistics. */
  forward(x: tf.Tensor2D, training: boolean, tap?: ActivationTap): tf.Tensor2D {
    const act = ACTIVATIONS[this.config.activation];
    let h = x;
    for (const layer of this.hidden) {
      let z = layer.dense.apply(h);
      if (layer.norm && layer.placement === 'before') z = layer.norm.apply(z, training);
      tap?.(layer.name, z);
      h = act(z) as tf.Tensor2D;
      if (layer.norm && layer.placement === 'after') h = layer.norm.apply(h, training);
    }
    return this.head.apply(h);
  }

  /** The layers with batch statistics (batch norm, mean-only batch norm). */
  get batchStatisticsLayers(): BatchStatisticsLayer[] {
    return this.hidden.map((l) => l.norm).filter(hasBatchStatistics);
  }

  /** Variables the optimizer updates. */
  get trainable(): tf.Variable[] {
    return [
      ...this.hidden.flatMap((l) => [...l.dense.trainable, ...(l.norm?.trainable ?? [])]),
      ...this.head.trainable,
    ];
  }

  /**
   * Every variable (trainable and statistics) by a name independent of the model instance:
   * `hidden1/kernel`, `hidden1/norm/gamma`, `hidden1/norm/moving_mean`, ..., `head/bias`.
   */
  get namedWeights(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    for (const l of this.hidden) {
      for (const [k, v] of Object.entries(l.dense.weights)) out.set(`${l.name}/${k}`, v);
      for (const [k, v] of Object.entries(l.norm?.weights ?? {})) out.set(`${l.name}/norm/${k}`, v);
    }
    for (const [k, v] of Object.entries(this.head.weights)) out.set(`head/${k}`, v);
    return out;
  }

  dispose(): void {
    for (const l of this.hidden) {
      l.dense.dispose();
      l.norm?.dispose();
    }
    this.head.dispose();
  }
}
