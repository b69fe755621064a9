/** Weight normalization of a kernel as ops (the eager counterparts: WeightNormDense in src/layers/dense.ts, Conv2D in conv.ts). */
import { F32, I32, type GraphBuilder } from '../graph-def.js';

export interface WeightNormSaved {
  v: string;
  norms: string;
  scale: string;
}

/**
 * Weight normalization (Salimans & Kingma 2016) of a kernel V whose last axis is the output unit
 * ([in, C] dense, [k, k, Cin, C] conv): K = V * (g / ||V||), the norm per output unit over `axes`
 * (every other axis), as WeightNormDense and Conv2D compute it.
 */
export function weightNormForward(
  g: GraphBuilder,
  s: string,
  v: string,
  gain: string,
  axes: string,
): { kernel: string; saved: WeightNormSaved } {
  const squares = g.op('Square', `${s}/weight_norm/square`, [v], { T: F32 });
  const norms = g.op(
    'Sqrt',
    `${s}/weight_norm/norm`,
    [g.op('Sum', `${s}/weight_norm/sum_squares`, [squares, axes], { T: F32, Tidx: I32, keep_dims: { b: false } })],
    { T: F32 },
  );
  const scale = g.op('RealDiv', `${s}/weight_norm/scale`, [gain, norms], { T: F32 });
  const kernel = g.op('Mul', `${s}/weight_norm/kernel`, [v, scale], { T: F32 });
  return { kernel, saved: { v, norms, scale } };
}

/**
 * Weight norm's backward pass from dK (the gradient of the kernel applied): with vhat = V / ||V||,
 *   dg = sum(dK * vhat) per output unit,   dV = (g / ||V||) (dK - dg * vhat).
 */
export function weightNormBackward(
  g: GraphBuilder,
  s: string,
  saved: WeightNormSaved,
  dK: string,
  axes: string,
): { dv: string; dg: string } {
  const vhat = g.op('RealDiv', `${s}/weight_norm/vhat`, [saved.v, saved.norms], { T: F32 });
  const dg = g.op(
    'Sum',
    `${s}/weight_norm/dg`,
    [g.op('Mul', `${s}/weight_norm/dk_vhat`, [dK, vhat], { T: F32 }), axes],
    { T: F32, Tidx: I32, keep_dims: { b: false } },
  );
  const radial = g.op('Mul', `${s}/weight_norm/radial`, [dg, vhat], { T: F32 });
  const dv = g.op(
    'Mul',
    `${s}/weight_norm/dv`,
    [saved.scale, g.op('Sub', `${s}/weight_norm/tangential`, [dK, radial], { T: F32 })],
    { T: F32 },
  );
  return { dv, dg };
}
