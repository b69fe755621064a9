/** Layer, group and instance norm as ops, one sequence for all three (the eager counterparts: src/layers/group-norm.ts, layer-norm.ts). */
import { F32, type GraphBuilder } from '../graph-def.js';

/**
 * How a layer/group norm sees its input: `toGroups` views v as [..., groups, ...] so that `mean`
 * (keep_dims) reduces each example's group, `fromGroups` views it back; `sumBatch` sums [N, ..., C]
 * over every axis but the channel (gamma's and beta's gradients).
 */
export interface GroupView {
  toGroups(name: string, v: string): string;
  fromGroups(name: string, v: string): string;
  mean(name: string, v: string): string;
  sumBatch(name: string, v: string): string;
}

/** What group norm's backward pass needs from its forward pass. */

export interface GroupNormSaved {
  /** The normalized values, in the input's shape and grouped. */
  xhat: string;
  xhatGrouped: string;
  /** 1/sqrt(s2 + eps) per example and group. */
  rstd: string;
}

/**
 * Layer and group norm (one op sequence: layer norm is the single group), per example and group
 * of D values: xhat = (x - mu) rsqrt(s2 + eps) (s2 biased), y = gamma xhat + beta, as
 * src/model/layer-norm.ts and group-norm.ts compute it (tf.moments, then the affine transform).
 */
export function groupNormForward(
  g: GraphBuilder,
  s: string,
  v: string,
  gamma: string,
  beta: string,
  eps: string,
  view: GroupView,
): { y: string; saved: GroupNormSaved } {
  const vg = view.toGroups(`${s}/layer_norm/grouped`, v);
  const centered = g.op('Sub', `${s}/layer_norm/centered`, [vg, view.mean(`${s}/layer_norm/mean`, vg)], { T: F32 });
  const variance = view.mean(
    `${s}/layer_norm/variance`,
    g.op('Square', `${s}/layer_norm/square`, [centered], { T: F32 }),
  );
  const rstd = g.op(
    'Rsqrt',
    `${s}/layer_norm/rstd`,
    [g.op('AddV2', `${s}/layer_norm/var_eps`, [variance, eps], { T: F32 })],
    { T: F32 },
  );
  const xhatGrouped = g.op('Mul', `${s}/layer_norm/xhat_grouped`, [centered, rstd], { T: F32 });
  const xhat = view.fromGroups(`${s}/layer_norm/xhat`, xhatGrouped);
  const y = g.op(
    'AddV2',
    `${s}/layer_norm/y`,
    [g.op('Mul', `${s}/layer_norm/scaled`, [xhat, gamma], { T: F32 }), beta],
    { T: F32 },
  );
  return { y, saved: { xhat, xhatGrouped, rstd } };
}

/**
 * Layer/group norm's backward pass, closed form per example and group (of D values): with
 * g = dy * gamma,
 *   dx = rstd * (g - mean_D(g) - xhat * mean_D(g * xhat)),  dgamma = sum dy xhat,  dbeta = sum dy
 * (the sums over every axis but the channel).
 */
export function groupNormBackward(
  g: GraphBuilder,
  s: string,
  saved: GroupNormSaved,
  dy: string,
  gamma: string,
  view: GroupView,
): { dx: string; dgamma: string; dbeta: string } {
  const mul = (name: string, a: string, b: string) => g.op('Mul', name, [a, b], { T: F32 });
  const sub = (name: string, a: string, b: string) => g.op('Sub', name, [a, b], { T: F32 });
  const { xhat, xhatGrouped: xg } = saved;
  const dgamma = view.sumBatch(`${s}/layer_norm/dgamma`, mul(`${s}/layer_norm/dy_xhat`, dy, xhat));
  const dbeta = view.sumBatch(`${s}/layer_norm/dbeta`, dy);
  const gdy = view.toGroups(`${s}/layer_norm/g_grouped`, mul(`${s}/layer_norm/g`, dy, gamma));
  const inner = sub(
    `${s}/layer_norm/inner`,
    sub(`${s}/layer_norm/g_centered`, gdy, view.mean(`${s}/layer_norm/g_mean`, gdy)),
    mul(`${s}/layer_norm/xhat_term`, xg, view.mean(`${s}/layer_norm/gx_mean`, mul(`${s}/layer_norm/g_xhat`, gdy, xg))),
  );
  const dx = view.fromGroups(`${s}/layer_norm/dx`, mul(`${s}/layer_norm/dx_grouped`, inner, saved.rstd));
  return { dx, dgamma, dbeta };
}

/** What weight norm's backward pass needs: the direction v, its norms ||v|| [C] and g/||v|| [C]. */
