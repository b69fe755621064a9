import * as tf from '@tensorflow/tfjs';
import { ACTIVATIONS } from '../layers/activations.js';
import { Conv2D } from '../layers/conv.js';
import { Dense } from '../layers/dense.js';
import { initWeights } from '../layers/init.js';
import { hasBatchStatistics, type BatchStatisticsLayer, type NormLayer } from '../layers/norm.js';
import type { ModelConfig, NormPlacement } from '../spec/types.js';
import { Rng } from '../util/rng.js';
import { applyDropout } from '../layers/dropout.js';
import { ClassifierBase, type ActivationTap, type Classifier, type DropoutDraws } from './classifier.js';
import { Mlp } from './mlp.js';
import { createNorm } from './norms.js';
import { blockOutput, modelPlan } from './plan.js';

/** One conv block: conv, the normalization before or after the activation, then max pooling. */
export interface ConvBlock {
  /** `conv1`, `conv2`, ...: the prefix of the block's weights in a saved model. */
  name: string;
  conv: Conv2D;
  norm: NormLayer | null;
  placement: NormPlacement;
  /** Max-pool window and stride (1: no pooling). */
  pool: number;
}

/**
 * A convolutional network (`model.arch: cnn`) on channels-last images:
 *   block i (i = 1..len(cnn.channels)): conv k x k (same padding) -> norm -> activation -> max pool
 *   flatten -> dense layers (cnn.dense, with the activation) -> linear layer of class logits.
 * `model.norm` normalizes every conv block per channel (each layer accepts [N, H, W, C]):
 *   batch     BatchNorm over the batch and all positions (m = N·H·W); before the activation it
 *             replaces the conv bias, as the paper prescribes
 *   layer     LayerNorm over each example's H·W·C values, gamma/beta per channel
 *   group     GroupNorm, `group_norm.groups` groups of channels per example
 *   instance  InstanceNorm, each channel of each example over its positions
 *   weight    weight-normalized conv filters, plus mean-only batch norm with `weight_norm.mean_only_bn`
 * The dense head is not normalized. The model takes rows [N, H·W·C] (as the training loop gives
 * every model) and reshapes them to `inputShape` itself.
 */
export class Cnn extends ClassifierBase implements Classifier {
  private static created = 0;
  readonly blocks: ConvBlock[] = [];
  readonly dense: { name: string; layer: Dense }[] = [];
  readonly head: Dense;
  /** [H, W, C] of the input and of the last block's output. */
  readonly outputShape: [number, number, number];

  constructor(
    readonly config: ModelConfig,
    readonly inputShape: readonly number[],
    readonly classes: number,
    seed: number,
  ) {
    super();
    const rng = new Rng(seed);
    const prefix = `cnn${++Cnn.created}`;
    const layers = modelPlan(config, inputShape, classes).layers;
    let outputShape: [number, number, number] = [inputShape[0], inputShape[1], inputShape[2]];
    const dense = (name: string, fanIn: number, units: number) => {
      const initial = initWeights(config.init, fanIn, units, config.init_std, rng);
      const layer = new Dense(initial, true, `${prefix}/${name}`);
      initial.dispose();
      return layer;
    };
    let head: Dense | null = null;
    for (const l of layers) {
      if (l.kind === 'conv') {
        const [k, cin] = [l.kernel, l.input[2]];
        const initial = tf.tidy(
          () =>
            tf.reshape(initWeights(config.init, k * k * cin, l.units, config.init_std, rng), [
              k,
              k,
              cin,
              l.units,
            ]) as tf.Tensor4D,
        );
        const conv = new Conv2D(initial, l.bias, l.weightNorm, `${prefix}/${l.name}`);
        initial.dispose();
        const norm = l.norm ? createNorm(l.norm, config, l.units, `${prefix}/${l.name}/norm`, seed) : null;
        this.blocks.push({ name: l.name, conv, norm, placement: l.norm?.placement ?? 'before', pool: l.pool });
        outputShape = blockOutput(l);
      } else if (l.name === 'head') head = dense(l.name, l.input[0], l.units);
      else this.dense.push({ name: l.name, layer: dense(l.name, l.input[0], l.units) });
    }
    this.outputShape = outputShape;
    this.head = head as Dense;
  }

  /** Values per example: H·W·C. */
  get inputs(): number {
    return this.inputShape.reduce((a, b) => a * b, 1);
  }

  forward(x: tf.Tensor2D, training: boolean, tap?: ActivationTap, dropout?: DropoutDraws): tf.Tensor2D {
    const act = ACTIVATIONS[this.config.activation];
    const [h0, w0, c0] = this.inputShape;
    let h = tf.reshape(x, [x.shape[0], h0, w0, c0]) as tf.Tensor4D;
    for (const b of this.blocks) {
      let z = b.conv.apply(h);
      if (b.norm && b.placement === 'before') z = b.norm.apply(z, training);
      tap?.(b.name, z);
      h = act(z) as tf.Tensor4D;
      if (b.norm && b.placement === 'after') h = b.norm.apply(h, training);
      if (b.pool > 1) h = tf.maxPool(h, b.pool, b.pool, 'valid');
    }
    let flat = tf.reshape(h, [x.shape[0], -1]) as tf.Tensor2D;
    for (const d of this.dense) {
      const z = d.layer.apply(flat);
      tap?.(d.name, z);
      flat = act(z) as tf.Tensor2D;
      const draw = dropout?.get(d.name);
      if (draw) flat = applyDropout(flat, draw);
    }
    return this.head.apply(flat);
  }

  get batchStatisticsLayers(): BatchStatisticsLayer[] {
    return this.blocks.map((b) => b.norm).filter(hasBatchStatistics);
  }

  get trainable(): tf.Variable[] {
    return [
      ...this.blocks.flatMap((b) => [...b.conv.trainable, ...(b.norm?.trainable ?? [])]),
      ...this.dense.flatMap((d) => d.layer.trainable),
      ...this.head.trainable,
    ];
  }

  /** `conv1/kernel` (or `conv1/v`, `conv1/g`), `conv1/bias`, `conv1/norm/gamma`, ..., `dense1/kernel`, `head/bias`. */
  get namedWeights(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    for (const b of this.blocks) {
      for (const [k, v] of Object.entries(b.conv.weights)) out.set(`${b.name}/${k}`, v);
      for (const [k, v] of Object.entries(b.norm?.weights ?? {})) out.set(`${b.name}/norm/${k}`, v);
    }
    for (const d of this.dense) for (const [k, v] of Object.entries(d.layer.weights)) out.set(`${d.name}/${k}`, v);
    for (const [k, v] of Object.entries(this.head.weights)) out.set(`head/${k}`, v);
    return out;
  }

  /** One line per layer, e.g. `conv 3x3 1->16 + batch norm + relu + maxpool 2 | ... | dense 1568->64 relu | dense 64->10`. */
  describe(): string {
    const act = this.config.activation;
    const k = this.config.cnn.kernel;
    const parts = this.blocks.map((b) => {
      const cin = b.conv.kernel.shape[2];
      const norm = b.norm
        ? ` + ${b.norm.kind.replace(/_/g, '-')} norm`
        : this.config.norm === 'weight'
          ? ' (weight norm)'
          : '';
      return `conv ${k}x${k} ${cin}->${b.conv.channels}${norm} + ${act}${b.pool > 1 ? ` + maxpool ${b.pool}` : ''}`;
    });
    let fanIn = this.outputShape.reduce((a, b) => a * b, 1);
    for (const d of this.dense) {
      parts.push(`dense ${fanIn}->${d.layer.units} ${act}`);
      fanIn = d.layer.units;
    }
    parts.push(`dense ${fanIn}->${this.classes}`);
    return parts.join(' | ');
  }

  dispose(): void {
    for (const b of this.blocks) {
      b.conv.dispose();
      b.norm?.dispose();
    }
    for (const d of this.dense) d.layer.dispose();
    this.head.dispose();
  }
}

/** The model `config.arch` names, for a dataset whose examples have shape `inputShape`. */
export function buildModel(
  config: ModelConfig,
  inputShape: readonly number[],
  classes: number,
  seed: number,
): Classifier {
  if (config.arch === 'cnn') return new Cnn(config, inputShape, classes, seed);
  return new Mlp(
    config,
    inputShape.reduce((a, b) => a * b, 1),
    classes,
    seed,
  );
}
