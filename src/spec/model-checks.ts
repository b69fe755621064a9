import type { RunConfig } from './types.js';

/**
 * Checks of the `model.*` keys that involve more than one key (the schema checks each alone).
 * Returns the key path to blame and the message, or null. No TensorFlow here: `bnx plan` stays fast.
 */
export function modelConfigProblem(c: RunConfig): { key: string; message: string } | null {
  const m = c.model;
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
      return { key: 'model.group_norm.groups', message: `model.group_norm.groups is ${g}: it must divide every hidden layer width and be smaller (hidden: [${m.hidden.join(', ')}]; ${why})` };
    }
  }
  if (m.norm === 'weight' && m.weight_norm.mean_only_bn && c.train.batch_size < 2) {
    return { key: 'train.batch_size', message: 'mean-only batch normalization needs train.batch_size >= 2' };
  }
  return null;
}
