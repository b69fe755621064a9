import * as tf from '@tensorflow/tfjs';
import type { ModelConfig, NormPlacement } from '../spec/types.js';
import { Rng } from '../util/rng.js';
import { BatchNorm, MeanOnlyBatchNorm, noiseSeed } from './batch-norm.js';
import { ClassifierBase, type ActivationTap, type Classifier } from './classifier.js';
import { Dense } from './dense.js';
import { GroupNorm, InstanceNorm } from './group-norm.js';
import { initWeights } from './init.js';
import { LayerNorm } from './layer-norm.js';
import { ACTIVATIONS, Mlp } from './mlp.js';
import { hasBatchStatistics, variableOf, type BatchStatisticsLayer, type NormLayer } from './norm.js';

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
    if (inputShape.length !== 3)
      throw new Error(`Cnn: input shape [${inputShape.join(', ')}] (expected images [H, W, C])`);
    const rng = new Rng(seed);
    const prefix = `cnn${++Cnn.created}`;
    const bn = config.batch_norm;
    const { channels, kernel: k, pool } = config.cnn;
    let [h, w, cin] = inputShape;
    channels.forEach((cout, i) => {
      const local = `conv${i + 1}`;
      const name = `${prefix}/${local}`;
      const placement: NormPlacement = config.norm === 'weight' ? 'before' : config.norm_placement;
      const meanOnly = config.norm === 'weight' && config.weight_norm.mean_only_bn;
      const dropBias = (config.norm === 'batch' && placement === 'before') || meanOnly;
      const initial = tf.tidy(
        () =>
          tf.reshape(initWeights(config.init, k * k * cin, cout, config.init_std, rng), [
            k,
            k,
            cin,
            cout,
          ]) as tf.Tensor4D,
      );
      const conv = new Conv2D(initial, !dropBias, config.norm === 'weight', name);
      initial.dispose();
      const normName = `${name}/norm`;
      let norm: NormLayer | null = null;
      if (config.norm === 'batch')
        norm = new BatchNorm(
          cout,
          {
            eps: bn.eps,
            momentum: bn.momentum,
            inference: bn.inference,
            gradient: bn.gradient,
            noise: { strength: bn.noise, seed: noiseSeed(seed, i) },
          },
          normName,
        );
      else if (config.norm === 'layer') norm = new LayerNorm(cout, config.layer_norm.eps, normName);
      else if (config.norm === 'group')
        norm = new GroupNorm(cout, config.group_norm.groups, config.group_norm.eps, normName);
      else if (config.norm === 'instance') norm = new InstanceNorm(cout, config.group_norm.eps, normName);
      else if (meanOnly)
        norm = new MeanOnlyBatchNorm(cout, { momentum: bn.momentum, inference: bn.inference }, normName);
      const blockPool = pool > 1 && h >= pool && w >= pool ? pool : 1;
      if (pool > 1 && blockPool === 1)
        throw new Error(
          `Cnn: block ${i + 1} gets ${h} x ${w} images, smaller than the ${pool} x ${pool} pooling window`,
        );
      this.blocks.push({ name: local, conv, norm, placement, pool: blockPool });
      [h, w, cin] = [Math.floor(h / blockPool), Math.floor(w / blockPool), cout];
    });
    this.outputShape = [h, w, cin];
    let fanIn = h * w * cin;
    config.cnn.dense.forEach((units, i) => {
      const initial = initWeights(config.init, fanIn, units, config.init_std, rng);
      this.dense.push({ name: `dense${i + 1}`, layer: new Dense(initial, true, `${prefix}/dense${i + 1}`) });
      initial.dispose();
      fanIn = units;
    });
    const headInit = initWeights(config.init, fanIn, classes, config.init_std, rng);
    this.head = new Dense(headInit, true, `${prefix}/head`);
    headInit.dispose();
  }

  /** Values per example: H·W·C. */
  get inputs(): number {
    return this.inputShape.reduce((a, b) => a * b, 1);
  }

  forward(x: tf.Tensor2D, training: boolean, tap?: ActivationTap): tf.Tensor2D {
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
