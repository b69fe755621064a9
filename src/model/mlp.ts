import * as tf from '@tensorflow/tfjs';
import { ACTIVATIONS } from '../layers/activations.js';
import { Dense, WeightNormDense } from '../layers/dense.js';
import { initWeights } from '../layers/init.js';
import { hasBatchStatistics, type BatchStatisticsLayer, type NormLayer } from '../layers/norm.js';
import type { ModelConfig, NormPlacement } from '../spec/types.js';
import { Rng } from '../util/rng.js';
import { applyDropout } from '../layers/dropout.js';
import { ClassifierBase, type ActivationTap, type Classifier, type DropoutDraws } from './classifier.js';
import { createNorm } from './norms.js';
import { modelPlan, type LayerPlan } from './plan.js';

/** One hidden layer: h = act(norm(dense(x))) with the norm `before` the activation, or h = norm(act(dense(x))) `after` it. */
export interface HiddenLayer {
  /** `hidden1`, `hidden2`, ...: the prefix of the layer's weights in a saved model. */
  name: string;
  dense: Dense | WeightNormDense;
  norm: NormLayer | null;
  placement: NormPlacement;
}

/**
 * A fully connected network (`model.arch: mlp`) built from its plan (src/model/plan.ts: which norm,
 * where, with or without bias): inputs -> hidden layers (dense, then the norm before or after the
 * activation) -> a linear layer of `classes` logits, never normalized.
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
    const layers = modelPlan(config, [inputs], classes).layers;
    const dense = (l: LayerPlan) => {
      const initial = initWeights(config.init, l.input[0], l.units, config.init_std, rng);
      const layer = l.weightNorm
        ? new WeightNormDense(initial, l.bias, `${prefix}/${l.name}`)
        : new Dense(initial, l.bias, `${prefix}/${l.name}`);
      initial.dispose();
      return layer;
    };
    for (const l of layers.slice(0, -1)) {
      const norm = l.norm ? createNorm(l.norm, config, l.units, `${prefix}/${l.name}/norm`, seed) : null;
      this.hidden.push({ name: l.name, dense: dense(l), norm, placement: l.norm?.placement ?? 'before' });
    }
    this.head = dense(layers[layers.length - 1]) as Dense;
  }

  /** x: [batch, inputs] -> logits [batch, classes]. `training` selects batch vs inference statistics. */
  forward(x: tf.Tensor2D, training: boolean, tap?: ActivationTap, dropout?: DropoutDraws): tf.Tensor2D {
    const act = ACTIVATIONS[this.config.activation];
    let h = x;
    for (const layer of this.hidden) {
      let z = layer.dense.apply(h);
      if (layer.norm && layer.placement === 'before') z = layer.norm.apply(z, training);
      tap?.(layer.name, z);
      h = act(z) as tf.Tensor2D;
      if (layer.norm && layer.placement === 'after') h = layer.norm.apply(h, training);
      const draw = dropout?.get(layer.name);
      if (draw) h = applyDropout(h, draw);
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
