/** The activations' ops (the eager counterparts: src/layers/activations.ts). */
import type { Activation } from '../../../layers/activations.js';
import { F32, type GraphBuilder } from '../graph-def.js';

export function activationForward(g: GraphBuilder, activation: Activation, scope: string, z: string): string {
  if (activation === 'linear') return z;
  const op = { sigmoid: 'Sigmoid', relu: 'Relu', tanh: 'Tanh', selu: 'Selu' }[activation];
  return g.op(op, `${scope}/${activation}`, [z], { T: F32 });
}

/**
 * dL/dz from dL/da and the activation's output a: SigmoidGrad, TanhGrad, ReluGrad (a > 0 where
 * z > 0), SeluGrad (lambda where a > 0, a + lambda alpha elsewhere).
 */
export function activationBackward(
  g: GraphBuilder,
  activation: Activation,
  scope: string,
  a: string,
  da: string,
): string {
  if (activation === 'sigmoid') return g.op('SigmoidGrad', `${scope}/sigmoid`, [a, da], { T: F32 });
  if (activation === 'tanh') return g.op('TanhGrad', `${scope}/tanh`, [a, da], { T: F32 });
  if (activation === 'relu') return g.op('ReluGrad', `${scope}/relu`, [da, a], { T: F32 });
  if (activation === 'selu') return g.op('SeluGrad', `${scope}/selu`, [da, a], { T: F32 });
  return da;
}
