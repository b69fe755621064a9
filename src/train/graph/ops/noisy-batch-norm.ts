/** Noisy batch norm's perturbation as ops (the eager counterpart: src/layers/noisy-batch-norm.ts). */
import { F32, type GraphBuilder } from '../graph-def.js';

/**
 * Noisy batch norm's `train_step` inputs (`model.batch_norm.noise` > 0; see src/model/batch-norm.ts,
 * BatchNorm): per batch-norm layer, the step's scale s and shift m, [C] each, fed as
 * `noise/<layer>/scale` and `noise/<layer>/shift` (drawn by the engine, as the eager layer draws them).
 */
export interface NoiseInput {
  layer: string;
  channels: number;
  scale: string;
  shift: string;
}

/** One scale and one shift placeholder per layer (`train/noise/<layer>/scale`, `.../shift`). */

export function noiseInputs(g: GraphBuilder, layers: { name: string; channels: number }[]): NoiseInput[] {
  const placeholder = (name: string, channels: number) =>
    g.op('Placeholder', `train/noise/${name}`, [], { dtype: F32, shape: { shape: [channels] } });
  return layers.map(({ name, channels }) => ({
    layer: name,
    channels,
    scale: placeholder(`${name}/scale`, channels),
    shift: placeholder(`${name}/shift`, channels),
  }));
}

/**
 * Noisy batch norm on the batch norm's training-mode output y (after gamma and beta; [N, C] or
 * [N, H, W, C], s and m [C] broadcast): y' = s y + m.
 */
export function noiseForward(g: GraphBuilder, s: string, y: string, noise: NoiseInput): string {
  return g.op('AddV2', `${s}/noise/y`, [g.op('Mul', `${s}/noise/scaled`, [y, noise.scale], { T: F32 }), noise.shift], {
    T: F32,
  });
}

/** Its backward pass: dy = s dy' (s and m are constants of the step: no gradient flows into them). */

export function noiseBackward(g: GraphBuilder, s: string, dy: string, noise: NoiseInput): string {
  return g.op('Mul', `${s}/noise/dy`, [dy, noise.scale], { T: F32 });
}
