import type { RunConfig } from '../../spec/types.js';
import { F32, fusedBatchNorm, fusedBatchNormGrad, graphUnsupported, spec, type CompiledGraph, type LayerVars } from './compile.js';
import { DT, GraphBuilder, type Attr, type Signature, type TensorSpec } from './graph-def.js';
import { activationBackward, activationForward, initSignature, movingAverageUpdatesOf, populationSignatures, readSignature, statisticPairs, type BatchStatistic, type VariableAccess } from './layers.js';

/**
 * Why a run cannot be a member of a fused group (its reasons on top of `graphUnsupported`), or null.
 * Fused: the mlp with `model.norm` none or batch (no noise), plain SGD or momentum, no
 * instruments, no TensorBoard.
 */
export function fusedUnsupported(config: RunConfig): string | null {
  const why = graphUnsupported(config);
  if (why) return why;
  const m = config.model;
  if (m.arch !== 'mlp') return `model.arch=${m.arch}`;
  if (m.norm !== 'none' && m.norm !== 'batch') return `model.norm=${m.norm}`;
  if (m.norm === 'batch' && m.batch_norm.noise !== 0) return 'model.batch_norm.noise';
  if (config.train.optimizer !== 'sgd') return `train.optimizer=${config.train.optimizer as string}`;
  if (config.train.tensorboard) return 'train.tensorboard';
  const on = Object.entries(config.instruments).find(([, v]) => (v as { enabled: boolean }).enabled);
  if (on) return `instruments.${on[0]}`;
  return null;
}

/**
 * How a member's variable (shape S, by its `Mlp.namedWeights` name) sits in the fused variable:
 * `stacked`: [M, ...S], member m is the m-th contiguous block (vectors [C] become [M*C]);
 * `columns`: the first layer's kernel [F, H] of members sharing their batches, as [F, M*H] with
 * member m in columns m*H .. (m+1)*H (one MatMul for all members).
 */
export type FusedLayout = 'stacked' | 'columns';

export interface FusedVariable {
  name: string;
  /** One member's shape (as the unfused graph and the Mlp). */
  memberShape: number[];
  /** The fused variable's shape. */
  shape: number[];
  layout: FusedLayout;
}

export interface FusedGraph {
  nodes: CompiledGraph['nodes'];
  /**
   * `init`: one input per fused variable (by name); sets them and zeroes the momentum slots.
   * `train_step`: x [N, F] and labels [N] (members sharing their batches) or x [M, N, F] and
   *   labels [M, N]; lr [M] and, with momentum, momentum [M] -> loss [M] (each member's mean
   *   cross-entropy) and correct [M], taken after every update ran.
   * `eval`: x [n, F], labels [n] -> loss_sum [M] and correct [M], inference mode.
   * `read`: every fused variable by name.
   * With batch norm and `inference: population`, `train_step` leaves the inference statistics
   * alone, and (as `compileMlp`) `batch_stats`: x as `train_step` takes it -> `<layer>/mean` and
   * `<layer>/variance` [M*C] of a training-mode forward pass; `set_stats`: one [M*C] input per
   * `moving_mean` / `moving_variance` variable -> sets them.
   */
  signatures: Record<'init' | 'train_step' | 'eval' | 'read', Signature> & Partial<Record<'batch_stats' | 'set_stats', Signature>>;
  variables: FusedVariable[];
}

const I32: Attr = { type: DT.int32 };

/**
 * Batch norm with each member's own eps through one FusedBatchNormV3, whose epsilon is a single
 * attribute eps_0 (the first member's). Member m's values enter the op scaled by
 * a_m = sqrt(eps_0 / eps_m). The op's batch mean and biased variance of a x are a mu and a^2 s2
 * (mu, s2: those of x), so it computes
 *   (a x - a mu) / sqrt(a^2 s2 + eps_0) = (x - mu) / sqrt(s2 + eps_0 / a^2) = (x - mu) / sqrt(s2 + eps_m),
 * member m's own normalization (gamma and beta follow as usual). Hence dL/dx = a dL/d(a x) and
 * gamma's and beta's gradients are the op's; the batch mean and unbiased variance the op outputs
 * are divided by a and a^2 before they reach the moving statistics or `batch_stats`, which stay
 * in the member's own units (its weights, as its unfused run's); in inference mode the op gets
 * a moving_mean and a^2 moving_variance along with the scaled input. A group whose members share
 * one eps has no scaling (`of` returns null), so its graph has none of these ops.
 */
class EpsScaling {
  /** `<power>,<channels>` -> the constant [M*C]. */
  private readonly factors = new Map<string, string>();

  private constructor(
    private readonly g: GraphBuilder,
    private readonly eps: number[],
  ) {}

  /** The scaling of a group whose members have batch norm eps `eps`, or null when they are all equal. */
  static of(g: GraphBuilder, eps: number[]): EpsScaling | null {
    return eps.every((e) => e === eps[0]) ? null : new EpsScaling(g, eps);
  }

  /**
   * Wide values x [..., M*C] (member m's channels at m*C .. (m+1)*C) times a_m^power, a constant
   * [M*C] computed in double from eps_0 / eps_m (so a^2 is the ratio itself, not a rounded a
   * squared) and rounded to float32 once.
   */
  times(name: string, x: string, channels: number, power: 1 | 2 | -1 | -2): string {
    const key = `${power},${channels}`;
    let factor = this.factors.get(key);
    if (!factor) {
      const values = this.eps.flatMap((e) => new Array<number>(channels).fill(Math.pow(this.eps[0] / e, power / 2)));
      factor = this.g.constFloat(`eps_scale/${power < 0 ? 'inv_' : ''}a${Math.abs(power) === 2 ? '2' : ''}_${channels}`, values, [values.length]);
      this.factors.set(key, factor);
    }
    return this.g.op('Mul', name, [x, factor], { T: F32 });
  }
}

interface FusedLayerVars extends LayerVars {
  fanIn: number;
}

/**
 * M runs of one mlp that differ only in lr, momentum, seed, initial weights and batch norm's eps
 * (`options.eps`: each member's `model.batch_norm.eps`, M of them), compiled as one graph, each
 * member's math the unfused `compileMlp`'s within float32 round-off. Activations travel between
 * layers "wide", [N, M*C] (example n's features of member m at m*C .. (m+1)*C):
 *
 *   dense     one MatMul per member, [N, C] x [C, C'] (Split of the wide input, Unpack of the
 *             kernels [M, C, C'], ConcatV2 back to wide): measured faster than BatchMatMulV2 on
 *             [M, N, C] with the transposes it needs; the first layer of members sharing their
 *             batches is x [N, F] times the kernels side by side [F, M*H] (one MatMul, faster
 *             than per-member ones); biases [M*C'] by BiasAdd on the wide values
 *   norm      batch norm per member and channel: FusedBatchNormV3 on the wide values as
 *             [N, 1, 1, M*C] (its channels are the members' channels), gamma, beta and the
 *             moving statistics [M*C]; members' different eps by scaling (see `EpsScaling`)
 *   loss      logits [M, N, K] as [M*N, K], SparseSoftmaxCrossEntropyWithLogits against the
 *             members' labels, mean per member; its backprop times 1/N
 *   backward  the transposes of the forward ops (MatMul with transpose_a / transpose_b)
 *   update    lr and momentum are [M] inputs, broadcast to each variable's layout:
 *             SGD var -= lr g; momentum accum = k accum + g, var -= lr accum (the arithmetic of
 *             ResourceApplyGradientDescent / ResourceApplyMomentum, which take scalars)
 * Nothing reduces across members, so a member whose values become NaN leaves the others intact.
 */
export function compileFusedMlp(config: RunConfig, members: number, options: { sharedBatch: boolean; momentum: boolean; eps: number[] }, features: number, classes: number): FusedGraph {
  const why = fusedUnsupported(config);
  if (why) throw new Error(`fused training does not cover ${why}`);
  if (options.eps.length !== members) throw new Error(`compileFusedMlp: ${options.eps.length} eps values for ${members} members`);
  const M = members;
  const N = config.train.batch_size;
  const m = config.model;
  const bn = m.norm === 'batch';
  const before = m.norm_placement === 'before';
  const shared = options.sharedBatch;
  const g = new GraphBuilder();
  /** FusedBatchNormV3's epsilon attribute: the first member's (see EpsScaling for the others'). */
  const opEps = options.eps[0];
  const epsScaling = bn ? EpsScaling.of(g, options.eps) : null;
  const variables: FusedVariable[] = [];
  const handles = new Map<string, string>();
  const reads = new Map<string, string>();

  const variable = (name: string, memberShape: number[], layout: FusedLayout = 'stacked'): string => {
    const shape = layout === 'columns' ? [memberShape[0], M * memberShape[1]] : memberShape.length === 1 ? [M * memberShape[0]] : [M, ...memberShape];
    const h = g.op('VarHandleOp', `var/${name}`, [], { dtype: F32, shape: { shape }, shared_name: { s: name }, container: { s: '' } });
    handles.set(name, h);
    reads.set(name, g.op('ReadVariableOp', `read/${name}`, [h], { dtype: F32 }));
    variables.push({ name, memberShape, shape, layout });
    return name;
  };
  const read = (name: string) => reads.get(name) as string;
  const handle = (name: string) => handles.get(name) as string;
  const shapeOf = (name: string) => variables.find((v) => v.name === name) as FusedVariable;

  // Variables, in Mlp.namedWeights order.
  const layers: FusedLayerVars[] = [];
  let fanIn = features;
  m.hidden.forEach((units, i) => {
    const name = `hidden${i + 1}`;
    const kernel = variable(`${name}/kernel`, [fanIn, units], i === 0 && shared ? 'columns' : 'stacked');
    const bias = bn && before ? null : variable(`${name}/bias`, [units]);
    const [gamma, beta, movingMean, movingVar] = bn
      ? [variable(`${name}/norm/gamma`, [units]), variable(`${name}/norm/beta`, [units]), variable(`${name}/norm/moving_mean`, [units]), variable(`${name}/norm/moving_variance`, [units])]
      : [null, null, null, null];
    layers.push({ name, units, fanIn, kernel, bias, gamma, beta, movingMean, movingVar });
    fanIn = units;
  });
  const headKernel = variable('head/kernel', [fanIn, classes]);
  const headBias = variable('head/bias', [classes]);
  const trainable = variables.map((v) => v.name).filter((n) => !n.endsWith('/moving_mean') && !n.endsWith('/moving_variance'));

  const slots = new Map<string, string>();
  if (options.momentum) {
    for (const name of trainable) {
      slots.set(name, g.op('VarHandleOp', `slot/${name}/momentum`, [], { dtype: F32, shape: { shape: shapeOf(name).shape }, shared_name: { s: `${name}/momentum` }, container: { s: '' } }));
    }
  }

  // ---- init ----
  const access: VariableAccess = { list: variables, read, handle };
  const init = initSignature(g, access, {
    initAssigns: (zero) =>
      [...slots].map(([name, slot]) => {
        const shape = shapeOf(name).shape;
        const zeros = g.op('Fill', `init/zeros/${name}`, [g.constInt(`init/shape/${name}`, shape, [shape.length]), zero], { T: F32, index_type: I32 });
        return g.op('AssignVariableOp', `init/assign_slot/${name}`, [slot, zeros], { dtype: F32 });
      }),
  });

  // ---- shared pieces ----
  const consts = new Map<string, string>();
  const shapeConst = (dims: number[]) => {
    const key = dims.join(',');
    return consts.get(key) ?? (consts.set(key, g.constInt(`shape/${key.replace(/,/g, '_').replace(/-/g, 'm')}`, dims, [dims.length])), consts.get(key) as string);
  };
  const axis1 = g.constInt('axis1', [1], []);
  const reshape = (name: string, x: string, dims: number[]) => g.op('Reshape', name, [x, shapeConst(dims)], { T: F32, Tshape: I32 });
  const mul = (name: string, a: string, b: string) => g.op('Mul', name, [a, b], { T: F32 });
  const matmul = (name: string, a: string, b: string, ta = false, tb = false) => g.op('MatMul', name, [a, b], { T: F32, transpose_a: { b: ta }, transpose_b: { b: tb } });
  const outputs = (node: string) => Array.from({ length: M }, (_, k) => `${node}:${k}`);
  /** Wide [N, M*C] -> each member's [N, C]. */
  const splitMembers = (name: string, wide: string) => outputs(g.op('Split', name, [axis1, wide], { T: F32, num_split: { i: M } }));
  /** Members' [N, C] -> wide [N, M*C]. */
  const concatMembers = (name: string, parts: string[]) => g.op('ConcatV2', name, [...parts, axis1], { T: F32, N: { i: M }, Tidx: I32 });
  /** [M, ...] -> each member's [...]. */
  const unpack = (name: string, t: string) => outputs(g.op('Unpack', name, [t], { T: F32, num: { i: M }, axis: { i: 0 } }));
  /** Members' [...] -> [M, ...]. */
  const pack = (name: string, parts: string[]) => g.op('Pack', name, parts, { T: F32, N: { i: M }, axis: { i: 0 } });
  const memberKernels = new Map<string, string[]>();
  /** Each member's kernel [C, C'] of a stacked kernel variable (one Unpack, shared by every use). */
  const kernelsOf = (name: string) => memberKernels.get(name) ?? (memberKernels.set(name, unpack(`unpack/${name}`, read(name))), memberKernels.get(name) as string[]);
  /** One MatMul per member: a_m b_m (each operand optionally transposed). */
  const memberMatmuls = (name: string, a: string[], b: string[], ta = false, tb = false) => a.map((am, k) => matmul(`${name}/m${k}`, am, b[k], ta, tb));
  const activation = m.activation;

  interface LayerSaved {
    /** The layer's input, each member's [N, C] (a first layer of `columns` layout: x [N, F]). */
    input: string[];
    act: string;
    x4: string | null;
    fused: string | null;
  }

  /** Batch norm on wide values v [N, M*C]: each member's channels are channels of one FusedBatchNormV3. */
  const batchNorm = (s: string, l: LayerVars, v: string, training: boolean) => {
    const C = l.units;
    const x4 = reshape(`${s}/to_nhwc`, epsScaling ? epsScaling.times(`${s}/eps_scaled`, v, C, 1) : v, [-1, 1, 1, M * C]);
    let moving: [string, string] | null = training ? null : [read(l.movingMean as string), read(l.movingVar as string)];
    if (moving && epsScaling) moving = [epsScaling.times(`${s}/moving_mean_scaled`, moving[0], C, 1), epsScaling.times(`${s}/moving_variance_scaled`, moving[1], C, 2)];
    const fused = fusedBatchNorm(g, s, x4, read(l.gamma as string), read(l.beta as string), moving, opEps);
    return { y: reshape(`${s}/to_wide`, fused, [-1, M * C]), x4, fused };
  };
  /**
   * A training-mode forward pass's batch statistics per layer: the batch means and unbiased
   * variances [M*C] as tensors, in each member's own units.
   */
  const statisticsOf = (scope: string, saved: LayerSaved[]): BatchStatistic[] =>
    layers.map((l, i) => {
      const [s, fused] = [`${scope}/${l.name}`, saved[i].fused as string];
      const [mean, variance] = epsScaling
        ? [`${epsScaling.times(`${s}/batch_mean`, `${fused}:1`, l.units, -1)}:0`, `${epsScaling.times(`${s}/batch_variance`, `${fused}:2`, l.units, -2)}:0`]
        : [`${fused}:1`, `${fused}:2`];
      return { layer: l.name, channels: M * l.units, mean, variance, movingMean: l.movingMean as string, movingVar: l.movingVar };
    });

  /**
   * The forward pass. x: [N, F] for every member (`perMemberX` false) or [M, N, F]; `training`
   * selects batch statistics.
   */
  const forward = (scope: string, x: string, perMemberX: boolean, training: boolean) => {
    const saved: LayerSaved[] = [];
    let h = x;
    layers.forEach((l, i) => {
      const s = `${scope}/${l.name}`;
      let input: string[];
      let z: string;
      if (i === 0 && shapeOf(l.kernel).layout === 'columns') {
        input = [x];
        z = matmul(`${s}/matmul`, x, read(l.kernel));
      } else {
        input = i > 0 ? splitMembers(`${s}/input`, h) : perMemberX ? unpack(`${s}/x`, x) : new Array<string>(M).fill(x);
        z = concatMembers(`${s}/z`, memberMatmuls(`${s}/matmul`, input, kernelsOf(l.kernel)));
      }
      if (l.bias) z = g.op('BiasAdd', `${s}/bias_add`, [z, read(l.bias)], { T: F32 });
      let norm: { y: string; x4: string; fused: string } | null = null;
      if (l.gamma && before) z = (norm = batchNorm(s, l, z, training)).y;
      const a = activationForward(g, activation, s, z);
      let out = a;
      if (l.gamma && !before) out = (norm = batchNorm(s, l, a, training)).y;
      saved.push({ input, act: a, x4: norm?.x4 ?? null, fused: norm?.fused ?? null });
      h = out;
    });
    const last = splitMembers(`${scope}/head/input`, h);
    const logitsMNK = pack(`${scope}/head/logits`, memberMatmuls(`${scope}/head/matmul`, last, kernelsOf(headKernel)));
    const logits = g.op('AddV2', `${scope}/head/bias_add`, [logitsMNK, reshape(`${scope}/head/bias_m1k`, read(headBias), [M, 1, classes])], { T: F32 });
    return { saved, last, logits: reshape(`${scope}/logits`, logits, [-1, classes]) };
  };

  /** Per-member cross-entropies [M*N] (member-major) and correct counts [M]. */
  const lossAndCorrect = (scope: string, logits: string, labels: string) => {
    const ce = g.op('SparseSoftmaxCrossEntropyWithLogits', `${scope}/xent`, [logits, labels], { T: F32, Tlabels: I32 });
    const argmax = g.op('ArgMax', `${scope}/argmax`, [logits, axis1], { T: F32, Tidx: I32, output_type: I32 });
    const equal = g.op('Equal', `${scope}/equal`, [argmax, labels], { T: I32 });
    const hits = reshape(`${scope}/hits_mn`, g.op('Cast', `${scope}/hits`, [equal], { SrcT: { type: DT.bool }, DstT: F32 }), [M, -1]);
    const correct = g.op('Sum', `${scope}/correct`, [hits, axis1], { T: F32, Tidx: I32, keep_dims: { b: false } });
    return { ce, correct };
  };
  /** Labels [N] shared by the members, repeated member-major to [M*N]. */
  const tiledLabels = (scope: string, labels: string) => g.op('Tile', `${scope}/labels_mn`, [labels, g.constInt(`${scope}/multiples`, [M], [1])], { T: I32, Tmultiples: I32 });

  // ---- train_step ----
  const x = g.op('Placeholder', 'train/x', [], { dtype: F32, shape: { shape: shared ? [-1, features] : [M, -1, features] } });
  const labels = g.op('Placeholder', 'train/labels', [], { dtype: I32, shape: { shape: shared ? [-1] : [M, -1] } });
  const lr = g.op('Placeholder', 'train/lr', [], { dtype: F32, shape: { shape: [M] } });
  const momentum = options.momentum ? g.op('Placeholder', 'train/momentum', [], { dtype: F32, shape: { shape: [M] } }) : null;
  const fwd = forward('train', x, !shared, true);
  const labelsMN = shared ? tiledLabels('train', labels) : g.op('Reshape', 'train/labels_mn', [labels, shapeConst([-1])], { T: I32, Tshape: I32 });
  const { ce, correct } = lossAndCorrect('train', fwd.logits, labelsMN);
  const loss = g.op('Mean', 'train/loss', [reshape('train/ce_mn', ce, [M, -1]), axis1], { T: F32, Tidx: I32, keep_dims: { b: false } });
  const dLogits = reshape('grad/logits_mnk', mul('grad/logits', `${ce}:1`, g.scalar('train/inv_n', 1 / N)), [M, -1, classes]);
  const grads = new Map<string, string>();
  const dLogitsMembers = unpack('grad/head/logits', dLogits);
  grads.set(headKernel, pack('grad/head/kernel', memberMatmuls('grad/head/kernel', fwd.last, dLogitsMembers, true, false)));
  grads.set(headBias, reshape('grad/head/bias', g.op('Sum', 'grad/head/bias_mk', [dLogits, axis1], { T: F32, Tidx: I32, keep_dims: { b: false } }), [M * classes]));
  let dh = concatMembers('grad/head/input', memberMatmuls('grad/head/input', dLogitsMembers, kernelsOf(headKernel), false, true));
  const bnBackward = (s: string, l: LayerVars, sv: LayerSaved, dy: string) => {
    const dy4 = reshape(`${s}/to_nhwc`, dy, [-1, 1, 1, M * l.units]);
    const bng = fusedBatchNormGrad(g, s, dy4, sv.x4 as string, read(l.gamma as string), sv.fused as string, opEps);
    grads.set(l.gamma as string, `${bng}:1`);
    grads.set(l.beta as string, `${bng}:2`);
    const dx = reshape(`${s}/to_wide`, bng, [-1, M * l.units]);
    return epsScaling ? epsScaling.times(`${s}/eps_dx`, dx, l.units, 1) : dx;
  };
  for (let i = layers.length - 1; i >= 0; i--) {
    const l = layers[i];
    const sv = fwd.saved[i];
    const s = `grad/${l.name}`;
    if (sv.fused && !before) dh = bnBackward(s, l, sv, dh);
    let dz = activationBackward(g, activation, s, sv.act, dh);
    if (sv.fused && before) dz = bnBackward(s, l, sv, dz);
    if (l.bias) grads.set(l.bias, g.op('BiasAddGrad', `${s}/bias`, [dz], { T: F32 }));
    if (i === 0 && shapeOf(l.kernel).layout === 'columns') {
      grads.set(l.kernel, matmul(`${s}/kernel`, sv.input[0], dz, true, false));
    } else {
      const dzm = splitMembers(`${s}/dz`, dz);
      grads.set(l.kernel, pack(`${s}/kernel`, memberMatmuls(`${s}/kernel`, sv.input, dzm, true, false)));
      if (i > 0) dh = concatMembers(`${s}/input`, memberMatmuls(`${s}/input`, dzm, kernelsOf(l.kernel), false, true));
    }
  }

  // Per-member scalars [M] broadcast to a variable's layout.
  const broadcasts = new Map<string, string>();
  const perMember = (scope: string, values: string, v: FusedVariable): string => {
    const key = `${scope}:${v.layout}:${v.shape.join(',')}`;
    const cached = broadcasts.get(key);
    if (cached) return cached;
    let out: string;
    if (v.layout === 'stacked' && v.shape.length > 1) {
      out = reshape(`${scope}/m${'1'.repeat(v.shape.length - 1)}`, values, [M, ...v.shape.slice(1).map(() => 1)]);
    } else {
      // [M*C] (vectors) or [1, M*H] (columns): each member's value repeated over its C columns.
      const c = v.layout === 'columns' ? v.memberShape[1] : v.memberShape[0];
      const rows = g.op('BroadcastTo', `${scope}/mc_${c}`, [reshape(`${scope}/m1_${c}`, values, [M, 1]), shapeConst([M, c])], { T: F32, Tidx: I32 });
      out = reshape(`${scope}/flat_${c}_${v.layout}`, rows, v.layout === 'columns' ? [1, M * c] : [M * c]);
    }
    broadcasts.set(key, out);
    return out;
  };

  const afterReads = [...reads.values()].map((r) => `^${r}`);
  const updates: string[] = [];
  for (const name of trainable) {
    const v = shapeOf(name);
    const grad = grads.get(name) as string;
    const rate = perMember('train/lr', lr, v);
    const s = `update/${name}`;
    if (momentum) {
      // accum = k accum + g; var -= lr accum (ResourceApplyMomentum's order of operations).
      const slot = slots.get(name) as string;
      const accum = g.op('AddV2', `${s}/accum`, [mul(`${s}/decayed`, g.op('ReadVariableOp', `${s}/accum_old`, [slot], { dtype: F32 }), perMember('train/momentum', momentum, v)), grad], { T: F32 });
      const setAccum = g.op('AssignVariableOp', `${s}/set_accum`, [slot, accum, ...afterReads], { dtype: F32 });
      updates.push(setAccum, g.op('AssignSubVariableOp', s, [handle(name), mul(`${s}/delta`, accum, rate), ...afterReads], { dtype: F32 }));
    } else {
      updates.push(g.op('AssignSubVariableOp', s, [handle(name), mul(`${s}/delta`, grad, rate), ...afterReads], { dtype: F32 }));
    }
  }
  const population = bn && m.batch_norm.inference === 'population';
  if (bn && !population) updates.push(...movingAverageUpdatesOf(g, m.batch_norm.momentum, statisticPairs(statisticsOf('train', fwd.saved)), read, handle, afterReads));
  const afterUpdates = updates.map((u) => `^${u}`);
  const trainLoss = g.op('Identity', 'train/loss_out', [loss, ...afterUpdates], { T: F32 });
  const trainCorrect = g.op('Identity', 'train/correct_out', [correct, ...afterUpdates], { T: F32 });

  // ---- eval ----
  const ex = g.op('Placeholder', 'eval/x', [], { dtype: F32, shape: { shape: [-1, features] } });
  const elabels = g.op('Placeholder', 'eval/labels', [], { dtype: I32, shape: { shape: [-1] } });
  const efwd = forward('eval', ex, false, false);
  const ev = lossAndCorrect('eval', efwd.logits, tiledLabels('eval', elabels));
  const lossSum = g.op('Sum', 'eval/loss_sum', [reshape('eval/ce_mn', ev.ce, [M, -1]), axis1], { T: F32, Tidx: I32, keep_dims: { b: false } });

  // ---- population statistics (Algorithm 2) ----
  let extra: Partial<Record<'batch_stats' | 'set_stats', Signature>> = {};
  if (population) {
    const sx = g.op('Placeholder', 'stats/x', [], { dtype: F32, shape: { shape: shared ? [-1, features] : [M, -1, features] } });
    const sfwd = forward('stats', sx, !shared, true);
    extra = populationSignatures(g, spec(sx, DT.float, shared ? [-1, features] : [M, -1, features]), statisticsOf('stats', sfwd.saved), access, init.zero);
  }

  const trainInputs: Record<string, TensorSpec> = {
    x: spec(x, DT.float, shared ? [-1, features] : [M, -1, features]),
    labels: spec(labels, DT.int32, shared ? [-1] : [M, -1]),
    lr: spec(lr, DT.float, [M]),
  };
  if (momentum) trainInputs.momentum = spec(momentum, DT.float, [M]);
  return {
    nodes: g.nodes,
    variables,
    signatures: {
      init: init.signature,
      train_step: { inputs: trainInputs, outputs: { loss: spec(trainLoss, DT.float, [M]), correct: spec(trainCorrect, DT.float, [M]) } },
      eval: {
        inputs: { x: spec(ex, DT.float, [-1, features]), labels: spec(elabels, DT.int32, [-1]) },
        outputs: { loss_sum: spec(lossSum, DT.float, [M]), correct: spec(ev.correct, DT.float, [M]) },
      },
      read: readSignature(g, access),
      ...extra,
    },
  };
}

/** Member m's values of a fused variable (see FusedLayout). */
export function memberSlice(v: FusedVariable, fused: Float32Array, member: number, members: number): Float32Array {
  const size = v.memberShape.reduce((a, b) => a * b, 1);
  if (v.layout === 'stacked') return fused.slice(member * size, (member + 1) * size);
  const [rows, cols] = v.memberShape;
  const out = new Float32Array(size);
  for (let r = 0; r < rows; r++) out.set(fused.subarray((r * members + member) * cols, (r * members + member + 1) * cols), r * cols);
  return out;
}

/** The fused variable holding every member's values (the inverse of memberSlice). */
export function fuseMembers(v: FusedVariable, values: Float32Array[]): Float32Array {
  const size = v.memberShape.reduce((a, b) => a * b, 1);
  const members = values.length;
  const out = new Float32Array(size * members);
  values.forEach((w, member) => {
    if (w.length !== size) throw new Error(`fused variable ${v.name}: member ${member} has ${w.length} values, expected ${size}`);
    if (v.layout === 'stacked') {
      out.set(w, member * size);
      return;
    }
    const [rows, cols] = v.memberShape;
    for (let r = 0; r < rows; r++) out.set(w.subarray(r * cols, (r + 1) * cols), (r * members + member) * cols);
  });
  return out;
}
