import type { LayerPlan } from '../../model/plan.js';
import type { ModelConfig } from '../../spec/types.js';
import { F32, I32, type GraphBuilder } from './graph-def.js';
import { fusedBatchNorm, fusedBatchNormGrad, meanOnlyBackward, meanOnlyForward } from './ops/batch-norm.js';
import { groupNormBackward, groupNormForward, type GroupNormSaved, type GroupView } from './ops/group-norm.js';
import { noiseBackward, noiseForward, type NoiseInput } from './ops/noisy-batch-norm.js';
import type { GraphVariables } from './variables.js';

/** What a normalization's backward pass needs from its forward pass. */
export interface NormSaved {
  /** Batch norm: its input (as [N, 1, 1, C] for a dense layer) and the FusedBatchNormV3 node (reserve spaces :3 :4 :5). */
  x4?: string;
  fused?: string;
  /** Layer, group and instance norm: the normalized values and 1/sqrt(s2 + eps) per example and group. */
  group?: GroupNormSaved;
  /** Mean-only batch norm: the batch mean [C]. */
  mean?: string;
  /** Noisy batch norm: the step's noise applied to the output. */
  noise?: NoiseInput;
}

/** The shared constants and reshapes a compiled graph hands to its norms (one node per distinct value). */
export interface GraphConstants {
  /** An int32 constant holding `values`, of shape [values.length] (or [] with `scalar`). */
  ints(values: number[], scalar?: boolean): string;
  reshape(name: string, x: string, dims: number[]): string;
}

/**
 * A planned normalization's ops on one layer's values (dense [N, C] or conv [N, H, W, C]): its
 * variables, its forward pass in training or inference mode, its closed-form backward pass, and
 * (batch statistics) the batch mean and variance its moving averages and Algorithm 2 take.
 */
export interface NormOps {
  /** `<layer>/norm/gamma`, ...: the variables' names (null where the norm has none). */
  gamma: string | null;
  beta: string | null;
  movingMean: string | null;
  movingVar: string | null;
  forward(s: string, v: string, training: boolean, noise?: NoiseInput): { y: string; saved: NormSaved };
  /** dy -> dx; records the gradients of gamma and beta in `grads`. */
  backward(s: string, saved: NormSaved, dy: string, grads: Map<string, string>): string;
  /** Batch statistics layers: the training pass's batch mean and unbiased variance tensors (`node:k`). */
  statistics(saved: NormSaved): { mean: string; variance: string | null } | null;
}

/**
 * The graph ops of a layer's planned normalization (`layer.norm`), with the config's arguments: the
 * compiler's counterpart of src/model/norms.ts (`createNorm`), kind by kind, the same math as the
 * eager layers in src/layers. Adds the norm's variables to `vars` (the model's `namedWeights` order).
 */
export function normOps(
  g: GraphBuilder,
  vars: GraphVariables,
  consts: GraphConstants,
  config: ModelConfig,
  layer: LayerPlan,
): NormOps | null {
  const plan = layer.norm;
  if (!plan) return null;
  const read = (name: string) => vars.read(name);
  const add = (name: string) => vars.add(`${layer.name}/norm/${name}`, [layer.units]);
  const C = layer.units;
  const conv = layer.kind === 'conv';
  /** Every axis but the channel: [0] of [N, C], [0, 1, 2] of [N, H, W, C]. */
  const allButChannel = conv ? consts.ints([0, 1, 2]) : consts.ints([0]);
  const sumBatch = (name: string, v: string) =>
    g.op('Sum', name, [v, allButChannel], { T: F32, Tidx: I32, keep_dims: { b: false } });

  if (plan.kind === 'batch') {
    const [gamma, beta, movingMean, movingVar] = [
      add('gamma'),
      add('beta'),
      add('moving_mean'),
      add('moving_variance'),
    ];
    const eps = config.batch_norm.eps;
    // A dense layer's values go through FusedBatchNormV3 as [N, 1, 1, C]: every column a channel.
    const toNhwc = (name: string, v: string) => (conv ? v : consts.reshape(name, v, [-1, 1, 1, C]));
    const fromNhwc = (name: string, v: string) => (conv ? v : consts.reshape(name, v, [-1, C]));
    return {
      gamma,
      beta,
      movingMean,
      movingVar,
      forward: (s, v, training, noise) => {
        const x4 = toNhwc(`${s}/to_nhwc`, v);
        const moving: [string, string] | null = training ? null : [read(movingMean), read(movingVar)];
        const fused = fusedBatchNorm(g, s, x4, read(gamma), read(beta), moving, eps);
        const y = fromNhwc(`${s}/to_nc`, fused);
        return noise ? { y: noiseForward(g, s, y, noise), saved: { x4, fused, noise } } : { y, saved: { x4, fused } };
      },
      backward: (s, sv, dy, grads) => {
        const dy4 = toNhwc(`${s}/to_nhwc`, sv.noise ? noiseBackward(g, s, dy, sv.noise) : dy);
        const bng = fusedBatchNormGrad(g, s, dy4, sv.x4 as string, read(gamma), sv.fused as string, eps);
        grads.set(gamma, `${bng}:1`);
        grads.set(beta, `${bng}:2`);
        return fromNhwc(`${s}/to_nc`, bng);
      },
      statistics: (sv) => ({ mean: `${sv.fused}:1`, variance: `${sv.fused}:2` }),
    };
  }

  if (plan.kind === 'mean_only_batch') {
    const [beta, movingMean] = [add('beta'), add('moving_mean')];
    return {
      gamma: null,
      beta,
      movingMean,
      movingVar: null,
      forward: (s, v, training) => {
        const { y, mean } = meanOnlyForward(g, s, v, read(beta), training ? null : read(movingMean), allButChannel);
        return { y, saved: { mean } };
      },
      backward: (s, _sv, dy, grads) => {
        const { dx, dbeta } = meanOnlyBackward(g, s, dy, allButChannel);
        grads.set(beta, dbeta);
        return dx;
      },
      statistics: (sv) => ({ mean: `${sv.mean}:0`, variance: null }),
    };
  }

  // Layer, group and instance norm: one op sequence (layer norm is the single group).
  const [gamma, beta] = [add('gamma'), add('beta')];
  const eps = g.scalar(`${layer.name}/norm/eps`, plan.kind === 'layer' ? config.layer_norm.eps : config.group_norm.eps);
  const mean = (axes: string) => (name: string, v: string) =>
    g.op('Mean', name, [v, axes], { T: F32, Tidx: I32, keep_dims: { b: true } });
  let view: GroupView;
  if (conv) {
    const [h, w] = layer.input;
    // Layer norm over each example's H·W·C values; group norm (instance: G = C) over [N, H·W, G, C/G], axes 1 and 3.
    const groups = plan.kind === 'instance' ? C : config.group_norm.groups;
    view =
      plan.kind === 'layer'
        ? { toGroups: (_, v) => v, fromGroups: (_, v) => v, mean: mean(consts.ints([1, 2, 3])), sumBatch }
        : {
            toGroups: (name, v) => consts.reshape(name, v, [-1, h * w, groups, C / groups]),
            fromGroups: (name, v) => consts.reshape(name, v, [-1, h, w, C]),
            mean: mean(consts.ints([1, 3])),
            sumBatch,
          };
  } else {
    // Per example over groups of C/G contiguous features, [N, G, C/G] (axis 2); layer norm as [N, C] (axis 1).
    const groups = plan.kind === 'group' ? config.group_norm.groups : 1;
    view =
      groups === 1
        ? { toGroups: (_, v) => v, fromGroups: (_, v) => v, mean: mean(consts.ints([1], true)), sumBatch }
        : {
            toGroups: (name, v) => consts.reshape(name, v, [-1, groups, C / groups]),
            fromGroups: (name, v) => consts.reshape(name, v, [-1, C]),
            mean: mean(consts.ints([2], true)),
            sumBatch,
          };
  }
  return {
    gamma,
    beta,
    movingMean: null,
    movingVar: null,
    forward: (s, v) => {
      const { y, saved } = groupNormForward(g, s, v, read(gamma), read(beta), eps, view);
      return { y, saved: { group: saved } };
    },
    backward: (s, sv, dy, grads) => {
      const { dx, dgamma, dbeta } = groupNormBackward(g, s, sv.group as GroupNormSaved, dy, read(gamma), view);
      grads.set(gamma, dgamma);
      grads.set(beta, dbeta);
      return dx;
    },
    statistics: () => null,
  };
}
