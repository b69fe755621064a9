import type { RunConfig } from './types.js';

/**
 * Checks of the `model.*` keys that involve more than one key (the schema checks each alone).
 * Returns the key path to blame and the message, or null. No TensorFlow here: `bnx plan` stays fast.
 */
export function modelConfigProblem(c: RunConfig): { key: string; message: string } | null {
  const m = c.model;
  const d = c.data;
  if (d.dataset === 'synthetic' && (d.augment.crop_padding > 0 || d.augment.flip)) {
    return {
      key: 'data.augment',
      message:
        'data.augment crops and flips images; the synthetic dataset has none (use mnist, fashion_mnist or cifar10)',
    };
  }
  if (m.batch_norm.noise > 0 && m.norm !== 'batch') {
    return {
      key: 'model.batch_norm.noise',
      message: `model.batch_norm.noise perturbs batch norm's output and needs model.norm batch (model.norm is ${m.norm}); set it to 0`,
    };
  }
  if (m.dropout > 0 && (m.arch === 'cnn' ? m.cnn.dense.length === 0 : m.hidden.length === 0)) {
    const where =
      m.arch === 'cnn'
        ? "the cnn's dense layers (model.cnn.dense is empty)"
        : 'the hidden layers (model.hidden is empty)';
    return {
      key: 'model.dropout',
      message: `model.dropout acts on ${where}: it would have no effect; set it to 0 or add layers`,
    };
  }
  if (m.arch === 'cnn') return cnnProblem(c);
  if (m.hidden.length === 0 && m.norm !== 'none') {
    return {
      key: 'model.hidden',
      message: `model.hidden is [], so model.norm ${m.norm} has no hidden layer to normalize (the output layer never is; the run would equal model.norm none); give hidden layers or set model.norm: none`,
    };
  }
  if (m.norm === 'instance' && m.arch === 'mlp') {
    return {
      key: 'model.norm',
      message:
        'instance norm normalizes each channel over spatial positions, and an mlp has none (every output would be beta); use layer or group',
    };
  }
  if (m.norm === 'group') {
    const g = m.group_norm.groups;
    const bad = m.hidden.find((units) => units % g !== 0 || units === g);
    if (bad !== undefined) {
      const why = bad === g ? 'one feature per group normalizes every output to beta' : `${g} does not divide ${bad}`;
      return {
        key: 'model.group_norm.groups',
        message: `model.group_norm.groups is ${g}: it must divide every hidden layer width and be smaller (hidden: [${m.hidden.join(', ')}]; ${why})`,
      };
    }
  }
  return meanOnlyProblem(c);
}

function meanOnlyProblem(c: RunConfig): { key: string; message: string } | null {
  if (c.model.norm === 'weight' && c.model.weight_norm.mean_only_bn && c.train.batch_size < 2) {
    return { key: 'train.batch_size', message: 'mean-only batch normalization needs train.batch_size >= 2' };
  }
  return null;
}

/** Image shape [H, W, C] of each image dataset. */
export const IMAGE_SHAPES = { mnist: [28, 28, 1], fashion_mnist: [28, 28, 1], cifar10: [32, 32, 3] } as const;

function cnnProblem(c: RunConfig): { key: string; message: string } | null {
  const m = c.model;
  const d = c.data;
  if (d.dataset === 'synthetic') {
    return {
      key: 'model.arch',
      message:
        'model.arch cnn needs images: use data.dataset mnist, fashion_mnist or cifar10 (synthetic examples are flat vectors; use mlp)',
    };
  }
  const { channels, kernel, pool } = m.cnn;
  if (m.norm === 'group') {
    const g = m.group_norm.groups;
    const bad = channels.find((ch) => ch % g !== 0);
    if (bad !== undefined) {
      return {
        key: 'model.group_norm.groups',
        message: `model.group_norm.groups is ${g}: it must divide every conv block's channels (model.cnn.channels: [${channels.join(', ')}]; ${g} does not divide ${bad})`,
      };
    }
  }
  if (kernel % 2 === 0) {
    return {
      key: 'model.cnn.kernel',
      message: `model.cnn.kernel is ${kernel}, must be odd (same padding keeps the image centred)`,
    };
  }
  let [h, w]: number[] = [...IMAGE_SHAPES[d.dataset]];
  if (pool > 1) {
    for (let i = 0; i < channels.length; i++) {
      [h, w] = [Math.floor(h / pool), Math.floor(w / pool)];
      if (h < 1 || w < 1) {
        return {
          key: 'model.cnn.pool',
          message: `model.cnn.pool is ${pool}: after block ${i + 1} of ${channels.length} the ${d.dataset} images (${IMAGE_SHAPES[d.dataset].slice(0, 2).join(' x ')}) have no pixels left; use fewer blocks or pool: 1`,
        };
      }
    }
  }
  return meanOnlyProblem(c);
}
