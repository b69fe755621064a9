import * as tf from '@tensorflow/tfjs';
import type { Activation } from '../layers/activations.js';
import { BatchNorm, MeanOnlyBatchNorm } from '../layers/batch-norm.js';
import { Dense } from '../layers/dense.js';
import { GroupNorm } from '../layers/group-norm.js';
import { LayerNorm } from '../layers/layer-norm.js';
import type { Cnn } from './cnn.js';
import { ACTIVATIONS } from '../layers/activations.js';
import type { Mlp } from './mlp.js';

/** One layer of a folded (inference-only) network: what `bnx export` writes. */
export type FoldedLayer =
  | { kind: 'dense'; kernel: tf.Tensor2D; bias: tf.Tensor1D; activation: Activation }
  | { kind: 'layer_norm'; gamma: tf.Tensor1D; beta: tf.Tensor1D; eps: number }
  | { kind: 'activation'; activation: Activation }
  /** cnn: rows [N, H·W·C] -> images [N, H, W, C]. */
  | { kind: 'reshape'; shape: number[] }
  /** cnn: conv k x k, stride 1, same padding, then the activation. */
  | { kind: 'conv'; kernel: tf.Tensor4D; bias: tf.Tensor1D; activation: Activation }
  | { kind: 'maxpool'; size: number }
  | { kind: 'flatten' };

/** A network with every batch norm folded away; the tensors belong to it (`disposeFolded`). */
export interface FoldedNetwork {
  inputs: number;
  layers: FoldedLayer[];
  /** How many batch-statistics layers (BN, mean-only BN) were folded into dense weights. */
  folded: number;
}

/**
 * Folds an inference-mode batch norm, y = scale * z + shift per output channel, into the layer
 * z = x W + b that precedes it (channels-last: W's LAST axis is the output channel, so this works
 * for a dense kernel [in, C] and a convolution kernel [kh, kw, in, C] alike):
 *   W' = W * scale     (every weight into channel c times scale_c)
 *   b' = b * scale + shift
 * Then x W' + b' = scale * (x W + b) + shift exactly (up to float rounding). bias null means 0.
 */
export function foldBatchNorm<K extends tf.Tensor>(
  kernel: K,
  bias: tf.Tensor1D | null,
  affine: { scale: tf.Tensor1D; shift: tf.Tensor1D },
): { kernel: K; bias: tf.Tensor1D } {
  return tf.tidy(() => ({
    kernel: tf.mul(kernel, affine.scale) as K,
    bias: (bias ? tf.add(tf.mul(bias, affine.scale), affine.shift) : affine.shift.clone()) as tf.Tensor1D,
  }));
}

/**
 * Folds a per-feature affine map applied to a dense layer's INPUT (batch norm placed after the
 * previous activation), x' = scale * x + shift, into that layer: x' W + b = x W' + b' with
 *   W'[i, :] = scale_i * W[i, :],   b' = shift W + b.
 */
export function foldInputAffine(
  kernel: tf.Tensor2D,
  bias: tf.Tensor1D | null,
  affine: { scale: tf.Tensor1D; shift: tf.Tensor1D },
): { kernel: tf.Tensor2D; bias: tf.Tensor1D } {
  return tf.tidy(() => {
    const shifted = tf.squeeze(tf.matMul(tf.expandDims(affine.shift, 0), kernel), [0]) as tf.Tensor1D;
    return {
      kernel: tf.mul(kernel, tf.expandDims(affine.scale, 1)) as tf.Tensor2D,
      bias: (bias ? tf.add(shifted, bias) : shifted) as tf.Tensor1D,
    };
  });
}

/**
 * The inference network of a trained Mlp with every batch norm folded into dense weights:
 * - batch norm before the activation folds into the preceding dense layer (foldBatchNorm);
 * - batch norm after the activation folds into the following dense layer's input (foldInputAffine);
 * - mean-only batch norm folds into the bias (b' = beta - moving_mean);
 * - weight norm is materialized (W = g v / ||v||);
 * - layer norm, and group norm with one group (the same thing on [N, C]), stay as layer norm
 *   layers: their statistics depend on the example, so they cannot be folded.
 * Group norm with more than one group and instance norm have no TensorFlow.js layer: unsupported.
 */
export function foldMlp(model: Mlp): FoldedNetwork {
  const layers: FoldedLayer[] = [];
  let folded = 0;
  let inputAffine: { scale: tf.Tensor1D; shift: tf.Tensor1D } | null = null;
  const act = model.config.activation;
  const take = (kernel: tf.Tensor2D, bias: tf.Tensor1D | null) => {
    if (!inputAffine) return { kernel, bias };
    const out = foldInputAffine(kernel, bias, inputAffine);
    tf.dispose([kernel, bias ?? [], inputAffine.scale, inputAffine.shift]);
    inputAffine = null;
    folded++;
    return out;
  };
  const layerNormOf = (norm: LayerNorm | GroupNorm): FoldedLayer => ({
    kind: 'layer_norm',
    gamma: norm.gamma.clone() as tf.Tensor1D,
    beta: norm.beta.clone() as tf.Tensor1D,
    eps: norm.eps,
  });

  for (const layer of model.hidden) {
    const norm = layer.norm;
    if (norm instanceof GroupNorm && (norm.kind === 'instance' || norm.groups !== 1)) {
      throw new Error(
        `cannot export ${norm.kind} norm with ${norm.groups} groups: TensorFlow.js has no such layer (layer norm, and group norm with 1 group, are exported)`,
      );
    }
    // Own copies: the folded network must not share tensors with the model.
    const ownKernel =
      layer.dense instanceof Dense ? (layer.dense.kernel.clone() as tf.Tensor2D) : layer.dense.effectiveKernel();
    let { kernel, bias } = take(ownKernel, layer.dense.bias ? (layer.dense.bias.clone() as tf.Tensor1D) : null);
    if ((norm instanceof BatchNorm && layer.placement === 'before') || norm instanceof MeanOnlyBatchNorm) {
      ({ kernel, bias } = foldPrecedingNorm(norm, kernel, bias));
      folded++;
    }
    const finalBias = bias ?? (tf.zeros([kernel.shape[1]]) as tf.Tensor1D);
    const normBefore = (norm instanceof LayerNorm || norm instanceof GroupNorm) && layer.placement === 'before';
    layers.push({ kind: 'dense', kernel, bias: finalBias, activation: normBefore ? 'linear' : act });
    if (normBefore) layers.push(layerNormOf(norm), { kind: 'activation', activation: act });
    if (layer.placement === 'after') {
      if (norm instanceof BatchNorm) inputAffine = norm.scaleShift();
      else if (norm instanceof LayerNorm || norm instanceof GroupNorm) layers.push(layerNormOf(norm));
    }
  }
  const head = take(model.head.kernel.clone() as tf.Tensor2D, (model.head.bias as tf.Variable).clone() as tf.Tensor1D);
  layers.push({ kind: 'dense', kernel: head.kernel, bias: head.bias as tf.Tensor1D, activation: 'linear' });
  return { inputs: model.inputs, layers, folded };
}

/**
 * Folds an inference-mode batch norm (or mean-only batch norm) that follows a dense or conv layer
 * into that layer's kernel and bias (output channels on the kernel's last axis). Consumes the
 * given kernel and bias; returns new ones.
 */
function foldPrecedingNorm<K extends tf.Tensor>(
  norm: BatchNorm | MeanOnlyBatchNorm,
  kernel: K,
  bias: tf.Tensor1D | null,
): { kernel: K; bias: tf.Tensor1D } {
  if (norm instanceof BatchNorm) {
    const affine = norm.scaleShift();
    const f = foldBatchNorm(kernel, bias, affine);
    tf.dispose([kernel, bias ?? [], affine.scale, affine.shift]);
    return f;
  }
  const shift = tf.sub(norm.beta, norm.movingMean) as tf.Tensor1D;
  if (!bias) return { kernel, bias: shift };
  const sum = tf.add(bias, shift) as tf.Tensor1D;
  tf.dispose([bias, shift]);
  return { kernel, bias: sum };
}

/**
 * The inference network of a trained Cnn: each block's conv with its batch norm folded in
 * (`foldBatchNorm` on the [k, k, in, C] kernel: BN before the activation), mean-only batch norm
 * folded into the bias, weight-normalized filters materialized; then max pooling, flatten and the
 * dense head. A batch norm after the activation would have to fold into the next conv's input,
 * which `same` zero padding makes inexact at the borders; it, and the per-example norms (layer,
 * group, instance), are refused.
 */
export function foldCnn(model: Cnn): FoldedNetwork {
  const layers: FoldedLayer[] = [{ kind: 'reshape', shape: [...model.inputShape] }];
  let folded = 0;
  const act = model.config.activation;
  for (const b of model.blocks) {
    const norm = b.norm;
    if (norm && !(norm instanceof BatchNorm && b.placement === 'before') && !(norm instanceof MeanOnlyBatchNorm)) {
      const what =
        norm instanceof BatchNorm
          ? 'batch norm after the activation (model.norm_placement: after)'
          : `${norm.kind} norm`;
      throw new Error(
        `cannot export a cnn with ${what}: only batch norm before the activation, mean-only batch norm and weight norm fold into conv layers`,
      );
    }
    let kernel = b.conv.g ? b.conv.effectiveKernel() : (b.conv.kernel.clone() as tf.Tensor4D);
    let bias: tf.Tensor1D | null = b.conv.bias ? (b.conv.bias.clone() as tf.Tensor1D) : null;
    if (norm instanceof BatchNorm || norm instanceof MeanOnlyBatchNorm) {
      ({ kernel, bias } = foldPrecedingNorm(norm, kernel, bias));
      folded++;
    }
    layers.push({ kind: 'conv', kernel, bias: bias ?? (tf.zeros([kernel.shape[3]]) as tf.Tensor1D), activation: act });
    if (b.pool > 1) layers.push({ kind: 'maxpool', size: b.pool });
  }
  layers.push({ kind: 'flatten' });
  for (const d of model.dense) {
    layers.push({
      kind: 'dense',
      kernel: d.layer.kernel.clone() as tf.Tensor2D,
      bias: (d.layer.bias as tf.Variable).clone() as tf.Tensor1D,
      activation: act,
    });
  }
  layers.push({
    kind: 'dense',
    kernel: model.head.kernel.clone() as tf.Tensor2D,
    bias: (model.head.bias as tf.Variable).clone() as tf.Tensor1D,
    activation: 'linear',
  });
  return { inputs: model.inputs, layers, folded };
}

/** One line per folded layer: `dense 784->100 sigmoid`, `conv 3x3 1->16 relu`, `maxpool 2`, ... */
export function describeFoldedLayer(l: FoldedLayer): string {
  switch (l.kind) {
    case 'dense':
      return `dense ${l.kernel.shape[0]}->${l.kernel.shape[1]} ${l.activation}`;
    case 'layer_norm':
      return `layer_norm eps=${l.eps}`;
    case 'activation':
      return `activation ${l.activation}`;
    case 'reshape':
      return `reshape [${l.shape.join(', ')}]`;
    case 'conv':
      return `conv ${l.kernel.shape[0]}x${l.kernel.shape[1]} ${l.kernel.shape[2]}->${l.kernel.shape[3]} ${l.activation}`;
    case 'maxpool':
      return `maxpool ${l.size}`;
    case 'flatten':
      return 'flatten';
  }
}

/** The folded network's forward pass with plain ops: x [N, inputs] -> logits [N, classes]. */
export function foldedForward(net: FoldedNetwork, x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    let h: tf.Tensor = x;
    for (const l of net.layers) {
      if (l.kind === 'dense') h = ACTIVATIONS[l.activation](tf.add(tf.matMul(h as tf.Tensor2D, l.kernel), l.bias));
      else if (l.kind === 'activation') h = ACTIVATIONS[l.activation](h);
      else if (l.kind === 'reshape') h = tf.reshape(h, [h.shape[0], ...l.shape]);
      else if (l.kind === 'conv')
        h = ACTIVATIONS[l.activation](tf.add(tf.conv2d(h as tf.Tensor4D, l.kernel, 1, 'same'), l.bias));
      else if (l.kind === 'maxpool') h = tf.maxPool(h as tf.Tensor4D, l.size, l.size, 'valid');
      else if (l.kind === 'flatten') h = tf.reshape(h, [h.shape[0], -1]);
      else {
        const { mean, variance } = tf.moments(h, [1], true);
        h = tf.add(tf.mul(tf.mul(tf.sub(h, mean), tf.rsqrt(tf.add(variance, l.eps))), l.gamma), l.beta) as tf.Tensor2D;
      }
    }
    return h as tf.Tensor2D;
  });
}

/** The folded network as a TensorFlow.js layers model (Dense, LayerNormalization, Activation). */
export function toLayersModel(net: FoldedNetwork): tf.Sequential {
  const model = tf.sequential();
  let width = net.inputs;
  net.layers.forEach((l, i) => {
    const inputShape = i === 0 ? { inputShape: [width] } : {};
    if (l.kind === 'dense') {
      model.add(
        tf.layers.dense({
          units: l.kernel.shape[1],
          activation: l.activation,
          useBias: true,
          weights: [l.kernel, l.bias],
          name: `dense${i + 1}`,
          ...inputShape,
        }),
      );
      width = l.kernel.shape[1];
    } else if (l.kind === 'layer_norm') {
      model.add(
        tf.layers.layerNormalization({
          axis: -1,
          epsilon: l.eps,
          weights: [l.gamma, l.beta],
          name: `layer_norm${i + 1}`,
          ...inputShape,
        }),
      );
    } else if (l.kind === 'reshape') {
      model.add(tf.layers.reshape({ targetShape: l.shape, name: `reshape${i + 1}`, ...inputShape }));
    } else if (l.kind === 'conv') {
      const [kh, kw, , filters] = l.kernel.shape;
      model.add(
        tf.layers.conv2d({
          filters,
          kernelSize: [kh, kw],
          strides: 1,
          padding: 'same',
          activation: l.activation,
          useBias: true,
          weights: [l.kernel, l.bias],
          name: `conv${i + 1}`,
          ...inputShape,
        }),
      );
    } else if (l.kind === 'maxpool') {
      model.add(
        tf.layers.maxPooling2d({
          poolSize: l.size,
          strides: l.size,
          padding: 'valid',
          name: `maxpool${i + 1}`,
          ...inputShape,
        }),
      );
    } else if (l.kind === 'flatten') {
      model.add(tf.layers.flatten({ name: `flatten${i + 1}`, ...inputShape }));
    } else {
      model.add(tf.layers.activation({ activation: l.activation, name: `activation${i + 1}`, ...inputShape }));
    }
  });
  return model;
}

export function disposeFolded(net: FoldedNetwork): void {
  for (const l of net.layers) {
    if (l.kind === 'dense' || l.kind === 'conv') tf.dispose([l.kernel, l.bias]);
    else if (l.kind === 'layer_norm') tf.dispose([l.gamma, l.beta]);
  }
}
