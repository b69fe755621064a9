import type { Activation } from '../layers/activations.js';
import type { NormKind } from '../layers/norm.js';
import type { ModelConfig, NormPlacement } from '../spec/types.js';

/** A normalization as a network applies it: which layer, and where it sits. */
export interface NormPlan {
  /** The layer: `batch` (noisy when `model.batch_norm.noise` > 0), `mean_only_batch`, `layer`, `group`, `instance`. */
  kind: NormKind;
  /** `before` the activation, act(norm(z)) (the paper), or `after` it, norm(act(z)). */
  placement: NormPlacement;
  /** Its place among the network's normalized layers (0, 1, ...): noisy batch norm's draws are seeded by it. */
  index: number;
}

/**
 * One layer with weights, in forward order: its affine map (a dense layer, or a k x k convolution
 * with stride 1 and `same` padding), then, for a normalized layer, its norm before or after the
 * activation, then (conv) max pooling.
 */
export interface LayerPlan {
  /** `hidden1`, ..., `conv1`, ..., `dense1`, ..., `head`: the prefix of its weights in a saved model. */
  name: string;
  kind: 'dense' | 'conv';
  /** What it takes per example: dense [fanIn]; conv [H, W, Cin]. */
  input: number[];
  /** Output features (dense) or channels (conv). */
  units: number;
  /** conv: the kernel's side k; dense: 1. */
  kernel: number;
  /** The kernel is g V / ||V|| per output unit (weight normalization) instead of a free W. */
  weightNorm: boolean;
  /** A bias b, unless the norm's beta replaces it (see `normalization`). */
  bias: boolean;
  norm: NormPlan | null;
  /** The nonlinearity; the output layer's is `linear`. */
  activation: Activation;
  /** conv: max-pool window and stride after the block (1: no pooling). */
  pool: number;
  /**
   * Dropout probability on the layer's output in the training step (`model.dropout` on the mlp's
   * hidden layers and the cnn's dense layers; 0 elsewhere). Alpha dropout with SELU units.
   */
  dropout: number;
  alphaDropout: boolean;
}

/**
 * A network as its config describes it: the layer list that both engines and the graph compiler
 * build from. An `mlp`: its hidden layers (normalized), then the linear output layer `head`. A
 * `cnn`: its conv blocks (normalized), the flatten, its dense layers (not normalized), then `head`.
 * Dropout (`model.dropout`) follows the mlp's hidden layers and the cnn's dense layers.
 */
export interface ModelPlan {
  arch: 'mlp' | 'cnn';
  /** Each example's shape: [F] (an mlp sees images as flat rows) or [H, W, C] (a cnn). */
  inputShape: number[];
  classes: number;
  layers: LayerPlan[];
}

/** Values per example of a shape. */
export const sizeOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/**
 * What `model.norm` puts on a normalized layer, and whether the layer keeps its bias: the one place
 * this rule is written.
 * - `batch`, `layer`, `group`, `instance`: that layer at `model.norm_placement`. Batch norm before
 *   the activation drops the bias, whose job its beta takes over (the paper's z = g(BN(W u)): a bias
 *   before BN is cancelled by the mean subtraction). Layer, group and instance norm keep the bias:
 *   their per-example statistics do not cancel a per-channel bias.
 * - `weight`: the kernel is weight-normalized; with `weight_norm.mean_only_bn`, a mean-only batch
 *   norm before the activation replaces the bias (Salimans & Kingma's pairing).
 * - `none`: the bias, nothing else.
 */
export function normalization(
  config: ModelConfig,
  index: number,
): { norm: NormPlan | null; bias: boolean; weightNorm: boolean } {
  switch (config.norm) {
    case 'none':
      return { norm: null, bias: true, weightNorm: false };
    case 'weight': {
      const meanOnly = config.weight_norm.mean_only_bn;
      return {
        norm: meanOnly ? { kind: 'mean_only_batch', placement: 'before', index } : null,
        bias: !meanOnly,
        weightNorm: true,
      };
    }
    default: {
      const placement = config.norm_placement;
      return {
        norm: { kind: config.norm, placement, index },
        bias: !(config.norm === 'batch' && placement === 'before'),
        weightNorm: false,
      };
    }
  }
}

/** The plan of `config`'s network for examples of shape `inputShape` and `classes` classes. */
export function modelPlan(config: ModelConfig, inputShape: readonly number[], classes: number): ModelPlan {
  const layers: LayerPlan[] = [];
  const dropout = { dropout: config.dropout, alphaDropout: config.activation === 'selu' };
  const noDropout = { dropout: 0, alphaDropout: false };
  const dense = (name: string, fanIn: number, units: number, activation: Activation, normalized: number | null) =>
    layers.push({
      name,
      kind: 'dense',
      input: [fanIn],
      units,
      kernel: 1,
      ...(normalized === null ? { norm: null, bias: true, weightNorm: false } : normalization(config, normalized)),
      activation,
      pool: 1,
      ...(name === 'head' ? noDropout : dropout),
    });
  let fanIn = sizeOf(inputShape);
  if (config.arch === 'cnn') {
    if (inputShape.length !== 3)
      throw new Error(`cnn: input shape [${inputShape.join(', ')}] (expected images [H, W, C])`);
    const { channels, kernel, pool } = config.cnn;
    let [h, w, cin] = inputShape;
    channels.forEach((cout, i) => {
      const blockPool = pool > 1 && h >= pool && w >= pool ? pool : 1;
      if (pool > 1 && blockPool === 1)
        throw new Error(
          `cnn: block ${i + 1} gets ${h} x ${w} images, smaller than the ${pool} x ${pool} pooling window`,
        );
      layers.push({
        name: `conv${i + 1}`,
        kind: 'conv',
        input: [h, w, cin],
        units: cout,
        kernel,
        ...normalization(config, i),
        activation: config.activation,
        pool: blockPool,
        ...noDropout,
      });
      [h, w, cin] = [Math.floor(h / blockPool), Math.floor(w / blockPool), cout];
    });
    fanIn = h * w * cin;
    config.cnn.dense.forEach((units, i) => {
      dense(`dense${i + 1}`, fanIn, units, config.activation, null);
      fanIn = units;
    });
  } else {
    config.hidden.forEach((units, i) => {
      dense(`hidden${i + 1}`, fanIn, units, config.activation, i);
      fanIn = units;
    });
  }
  dense('head', fanIn, classes, 'linear', null);
  return {
    arch: config.arch,
    inputShape: config.arch === 'cnn' ? [...inputShape] : [sizeOf(inputShape)],
    classes,
    layers,
  };
}

/** The output shape of a conv layer's block (after its pooling): [H / pool, W / pool, units]. */
export function blockOutput(layer: LayerPlan): [number, number, number] {
  const [h, w] = layer.input;
  return [Math.floor(h / layer.pool), Math.floor(w / layer.pool), layer.units];
}
