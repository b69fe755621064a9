import type { RunConfig } from '../../spec/types.js';
import { GRADIENT_INSTRUMENTS } from '../instruments/index.js';
import { DT, GraphBuilder, type CompiledGraph } from './graph-def.js';
import {
  activationBackward,
  addNormVariables,
  assembleGraph,
  activationForward,
  F32,
  fusedBatchNorm,
  fusedBatchNormGrad,
  GraphOptimizer,
  GraphVariables,
  groupNormBackward,
  groupNormForward,
  initSignature,
  meanOnlyBackward,
  meanOnlyForward,
  noiseBackward,
  noiseForward,
  noiseInputs,
  trainingLoss,
  weightNormBackward,
  weightNormForward,
  type BatchStatistic,
  type GroupNormSaved,
  type GroupView,
  type NormVariables,
  type NoiseInput,
  type WeightNormSaved,
} from './layers.js';

export { F32, fusedBatchNorm, fusedBatchNormGrad, spec } from './layers.js';
export type { CompiledGraph, GraphVariable } from './graph-def.js';

/**
 * Why the graph compiler cannot compile a run yet (`instruments.ics`, ...), or null when it can.
 * Covered: the `mlp` (`compileMlp`) and the `cnn` (`compileCnn`) with every `model.norm` they
 * accept (none; batch with inference statistics `ema` or `population`, noisy or not; layer; group;
 * instance on the cnn; weight, with or without `weight_norm.mean_only_bn`), before or after the
 * activation; every activation; SGD with or without momentum, Adam.
 */
export function graphUnsupported(config: RunConfig): string | null {
  const m = config.model;
  if (m.arch !== 'mlp' && m.arch !== 'cnn') return `model.arch=${m.arch as string}`;
  // Instance norm needs spatial positions: the spec check rejects it on an mlp.
  if (m.arch === 'mlp' && m.norm === 'instance') return 'model.norm=instance';
  // ics and smoothness take gradients at moved weights; the graph has only its training step's.
  const gradients = GRADIENT_INSTRUMENTS.find((name) => config.instruments[name].enabled);
  if (gradients) return `instruments.${gradients}`;
  return null;
}

/** A hidden layer's variables by name (null where the layer has none). */
export interface LayerVars {
  name: string;
  units: number;
  kernel: string;
  bias: string | null;
  gamma: string | null;
  beta: string | null;
  movingMean: string | null;
  movingVar: string | null;
}

/** An mlp hidden layer: `kernel` is V and `g` its gains under weight norm. */
interface MlpLayer extends LayerVars {
  g: string | null;
}

/**
 * Compiles a run's training step, evaluation and variable access into one TensorFlow graph with
 * explicit backward ops (no autodiff), for the mlp runs `graphUnsupported` accepts:
 *
 *   forward   z = h W (+ b); the norm before the activation, h' = act(norm(z)), or after it,
 *             h' = norm(act(z)); logits = h W_head + b_head. Batch norm: FusedBatchNormV3 on the
 *             values as [N, 1, 1, C] (training mode: batch statistics; noisy, then y' = s y + m
 *             with the step's s, m fed to `train_step`); layer norm: per example,
 *             xhat = (x - mu) rsqrt(s2 + eps), y = gamma xhat + beta; weight norm:
 *             W = g V / ||V|| per unit, then mean-only batch norm y = z - mu_B + beta if asked
 *   loss      SparseSoftmaxCrossEntropyWithLogits, mean over the batch (its backprop is
 *             softmax - onehot; times 1/N for the mean)
 *   backward  dense: dW = h^T dz, db = sum_rows dz, dh = dz W^T; activations: SigmoidGrad,
 *             TanhGrad, ReluGrad; batch norm: FusedBatchNormGradV3 with the forward's reserve spaces
 *             (the closed form: dx = gamma/sqrt(s2+eps) (dy - (sum dy + xhat sum dy xhat)/m)),
 *             on dy = s dy' when noisy;
 *             layer norm: its closed form per example (groupNormBackward); weight norm and
 *             mean-only batch norm: weightNormBackward, meanOnlyBackward
 *   update    ResourceApplyGradientDescent, ResourceApplyMomentum (accum = k accum + g;
 *             var -= lr accum) or ResourceApplyAdam (see GraphOptimizer), the same arithmetic as
 *             tf.train.sgd / tf.train.momentum / tf.train.adam; batch norm's
 *             moving averages: running = k running + (1 - k) batch, with the unbiased batch variance.
 * Every update reads the variables' values from before the step (the reads are control inputs of
 * every update), so the step is the eager engine's step.
 */
export function compileMlp(config: RunConfig, features: number, classes: number): CompiledGraph {
  const why = graphUnsupported(config);
  if (why) throw new Error(`the graph engine does not cover ${why} yet`);
  const m = config.model;
  if (m.arch !== 'mlp') throw new Error(`compileMlp: model.arch=${m.arch} (compileCnn compiles the cnn)`);
  const bn = m.norm === 'batch';
  // Layer and group norm share one op sequence: statistics per example over each group of C/G
  // contiguous features ([N, G, C/G], axis 2); layer norm is the single group, on [N, C] (axis 1).
  const ln = m.norm === 'layer' || m.norm === 'group';
  const groups = m.norm === 'group' ? m.group_norm.groups : 1;
  // Weight norm places its (mean-only batch) norm before the activation, as the Mlp.
  const wn = m.norm === 'weight';
  const meanOnly = wn && m.weight_norm.mean_only_bn;
  const before = wn || m.norm_placement === 'before';
  const normVariables: NormVariables = bn ? 'batch' : ln ? 'affine' : meanOnly ? 'mean_only' : null;
  const g = new GraphBuilder();
  const vars = new GraphVariables(g);
  const read = (name: string) => vars.read(name);

  // Variables, in Mlp.namedWeights order.
  const layers: MlpLayer[] = [];
  let fanIn = features;
  m.hidden.forEach((units, i) => {
    const name = `hidden${i + 1}`;
    const kernel = vars.add(`${name}/${wn ? 'v' : 'kernel'}`, [fanIn, units]);
    const gain = wn ? vars.add(`${name}/g`, [units]) : null;
    // Batch norm before the activation drops the dense bias (beta replaces it), as the Mlp; so does mean-only batch norm.
    const bias = (bn && before) || meanOnly ? null : vars.add(`${name}/bias`, [units]);
    layers.push({ name, units, kernel, g: gain, bias, ...addNormVariables(vars, name, units, normVariables) });
    fanIn = units;
  });
  const headKernel = vars.add('head/kernel', [fanIn, classes]);
  const headBias = vars.add('head/bias', [classes]);

  const optimizer = new GraphOptimizer(g, config, vars);
  const init = initSignature(g, vars, optimizer);

  // ---- shared pieces ----
  const reshapeTo4 = new Map<number, string>();
  const reshapeTo2 = new Map<number, string>();
  const shape4 = (c: number) =>
    reshapeTo4.get(c) ??
    (reshapeTo4.set(c, g.constInt(`shape/nhwc_${c}`, [-1, 1, 1, c], [4])), reshapeTo4.get(c) as string);
  const shape2 = (c: number) =>
    reshapeTo2.get(c) ?? (reshapeTo2.set(c, g.constInt(`shape/nc_${c}`, [-1, c], [2])), reshapeTo2.get(c) as string);
  const axis0 = g.constInt('axis0', [0], [1]);
  const axis1 = g.constInt('axis1', [1], []);
  const activation = m.activation;
  const matmul = (name: string, a: string, b: string, ta = false, tb = false) =>
    g.op('MatMul', name, [a, b], { T: F32, transpose_a: { b: ta }, transpose_b: { b: tb } });
  const reshape = (name: string, x: string, shape: string) =>
    g.op('Reshape', name, [x, shape], { T: F32, Tshape: { type: DT.int32 } });

  const mean1 = (name: string, v: string) =>
    g.op('Mean', name, [v, axis1], { T: F32, Tidx: { type: DT.int32 }, keep_dims: { b: true } });
  const sum0 = (name: string, v: string) =>
    g.op('Sum', name, [v, axis0], { T: F32, Tidx: { type: DT.int32 }, keep_dims: { b: false } });
  const lnEps = ln ? g.scalar('layer_norm/eps', m.norm === 'group' ? m.group_norm.eps : m.layer_norm.eps) : '';
  const axis2 = g.constInt('axis2', [2], []);
  const meanG = (name: string, v: string) =>
    groups === 1
      ? mean1(name, v)
      : g.op('Mean', name, [v, axis2], { T: F32, Tidx: { type: DT.int32 }, keep_dims: { b: true } });
  /** Layer/group norm on [N, C]: groups as [N, G, C/G] (axis 2), layer norm as [N, C] (axis 1). */
  const groupView = (c: number): GroupView => ({
    toGroups: (name, v) =>
      groups === 1 ? v : reshape(name, v, g.constInt(`${name}/shape`, [-1, groups, c / groups], [3])),
    fromGroups: (name, v) => (groups === 1 ? v : reshape(name, v, shape2(c))),
    mean: meanG,
    sumBatch: sum0,
  });

  /** What a normalization's backward pass needs from its forward pass. */
  interface NormSaved {
    input: string;
    /** Batch norm: the input as [N, 1, 1, C] and the FusedBatchNormV3 node (reserve spaces :3 :4 :5). */
    x4?: string;
    fused?: string;
    /** Layer/group norm: the normalized values and 1/sqrt(s2 + eps) per example and group. */
    group?: GroupNormSaved;
    /** Mean-only batch norm: the batch mean [C]. */
    mean?: string;
    /** Noisy batch norm: the step's noise applied to the output. */
    noise?: NoiseInput;
  }

  /** A normalization layer's forward op(s) on v: [N, C]; `noise` (noisy batch norm, training) perturbs its output. */
  const normForward = (
    s: string,
    l: MlpLayer,
    v: string,
    training: boolean,
    noise?: NoiseInput,
  ): { y: string; saved: NormSaved } => {
    if (meanOnly) {
      const { y, mean } = meanOnlyForward(
        g,
        s,
        v,
        read(l.beta as string),
        training ? null : read(l.movingMean as string),
        axis0,
      );
      return { y, saved: { input: v, mean } };
    }
    if (bn) {
      const x4 = reshape(`${s}/to_nhwc`, v, shape4(l.units));
      const moving: [string, string] | null = training
        ? null
        : [read(l.movingMean as string), read(l.movingVar as string)];
      const fused = fusedBatchNorm(g, s, x4, read(l.gamma as string), read(l.beta as string), moving, m.batch_norm.eps);
      const y = reshape(`${s}/to_nc`, fused, shape2(l.units));
      return noise
        ? { y: noiseForward(g, s, y, noise), saved: { input: v, x4, fused, noise } }
        : { y, saved: { input: v, x4, fused } };
    }
    const { y, saved } = groupNormForward(
      g,
      s,
      v,
      read(l.gamma as string),
      read(l.beta as string),
      lnEps,
      groupView(l.units),
    );
    return { y, saved: { input: v, group: saved } };
  };

  /** A normalization layer's backward pass: dy -> dx; records the gradients of gamma and beta in `grads`. */
  const normBackward = (s: string, l: MlpLayer, sv: NormSaved, dy: string, grads: Map<string, string>): string => {
    if (meanOnly) {
      const { dx, dbeta } = meanOnlyBackward(g, s, dy, axis0);
      grads.set(l.beta as string, dbeta);
      return dx;
    }
    if (bn) {
      const dy4 = reshape(`${s}/to_nhwc`, sv.noise ? noiseBackward(g, s, dy, sv.noise) : dy, shape4(l.units));
      const bng = fusedBatchNormGrad(
        g,
        s,
        dy4,
        sv.x4 as string,
        read(l.gamma as string),
        sv.fused as string,
        m.batch_norm.eps,
      );
      grads.set(l.gamma as string, `${bng}:1`);
      grads.set(l.beta as string, `${bng}:2`);
      return reshape(`${s}/to_nc`, bng, shape2(l.units));
    }
    const { dx, dgamma, dbeta } = groupNormBackward(
      g,
      s,
      sv.group as GroupNormSaved,
      dy,
      read(l.gamma as string),
      groupView(l.units),
    );
    grads.set(l.gamma as string, dgamma);
    grads.set(l.beta as string, dbeta);
    return dx;
  };

  interface LayerSaved {
    input: string;
    /** The kernel applied (W, or g V / ||V||) and what weight norm's backward pass needs. */
    kernel: string;
    weightNorm: WeightNormSaved | null;
    /** The activation's output (what SigmoidGrad, TanhGrad and ReluGrad take). */
    act: string;
    norm: NormSaved | null;
  }

  /**
   * The forward pass; `training` selects batch statistics (and keeps what the backward pass needs);
   * `noise` (the training step's, by layer name) perturbs noisy batch norm's outputs.
   */
  const forward = (scope: string, x: string, training: boolean, noise?: Map<string, NoiseInput>) => {
    const saved: LayerSaved[] = [];
    let h = x;
    for (const l of layers) {
      const s = `${scope}/${l.name}`;
      const wnKernel = l.g ? weightNormForward(g, s, read(l.kernel), read(l.g), axis0) : null;
      const kernel = wnKernel?.kernel ?? read(l.kernel);
      let z = matmul(`${s}/matmul`, h, kernel);
      if (l.bias) z = g.op('BiasAdd', `${s}/bias_add`, [z, read(l.bias)], { T: F32 });
      let norm: NormSaved | null = null;
      if (l.beta && before) ({ y: z, saved: norm } = normForward(s, l, z, training, noise?.get(l.name)));
      const a = activationForward(g, activation, s, z);
      let out = a;
      if (l.beta && !before) ({ y: out, saved: norm } = normForward(s, l, a, training, noise?.get(l.name)));
      saved.push({ input: h, kernel, weightNorm: wnKernel?.saved ?? null, act: a, norm });
      h = out;
    }
    let logits = matmul(`${scope}/head/matmul`, h, read(headKernel));
    logits = g.op('BiasAdd', `${scope}/head/bias_add`, [logits, read(headBias)], { T: F32 });
    return { saved, last: h, logits };
  };

  /** The batch statistics of a training-mode forward pass, per batch-statistics layer. */
  const statisticsOf = (saved: LayerSaved[]): BatchStatistic[] =>
    !bn && !meanOnly
      ? []
      : layers.map((l, i) => {
          const norm = saved[i].norm as NormSaved;
          const [mean, variance] = bn ? [`${norm.fused}:1`, `${norm.fused}:2`] : [`${norm.mean}:0`, null];
          return {
            layer: l.name,
            channels: l.units,
            mean,
            variance,
            movingMean: l.movingMean as string,
            movingVar: l.movingVar,
          };
        });

  // ---- train_step ----
  const x = g.op('Placeholder', 'train/x', [], { dtype: F32, shape: { shape: [-1, features] } });
  const labels = g.op('Placeholder', 'train/labels', [], { dtype: { type: DT.int32 }, shape: { shape: [-1] } });
  const lr = g.op('Placeholder', 'train/lr', [], { dtype: F32, shape: { shape: [] } });
  const noise =
    bn && m.batch_norm.noise > 0
      ? noiseInputs(
          g,
          layers.map((l) => ({ name: l.name, channels: l.units })),
        )
      : [];
  const fwd = forward('train', x, true, new Map(noise.map((n) => [n.layer, n])));
  const { loss, correct, dLogits } = trainingLoss(g, fwd.logits, labels, axis0, axis1);
  const grads = new Map<string, string>();
  grads.set(headKernel, matmul('grad/head/kernel', fwd.last, dLogits, true, false));
  grads.set(headBias, g.op('BiasAddGrad', 'grad/head/bias', [dLogits], { T: F32 }));
  let dh = matmul('grad/head/input', dLogits, read(headKernel), false, true);
  for (let i = layers.length - 1; i >= 0; i--) {
    const l = layers[i];
    const sv = fwd.saved[i];
    const s = `grad/${l.name}`;
    if (sv.norm && !before) dh = normBackward(s, l, sv.norm, dh, grads);
    let dz = activationBackward(g, activation, s, sv.act, dh);
    if (sv.norm && before) dz = normBackward(s, l, sv.norm, dz, grads);
    if (l.bias) grads.set(l.bias, g.op('BiasAddGrad', `${s}/bias`, [dz], { T: F32 }));
    const dKernel = matmul(`${s}/kernel`, sv.input, dz, true, false);
    if (sv.weightNorm) {
      const { dv, dg } = weightNormBackward(g, s, sv.weightNorm, dKernel, axis0);
      grads.set(l.kernel, dv);
      grads.set(l.g as string, dg);
    } else {
      grads.set(l.kernel, dKernel);
    }
    if (i > 0) dh = matmul(`${s}/input`, dz, sv.kernel, false, true);
  }
  return assembleGraph(g, {
    config,
    features,
    population: (bn || meanOnly) && m.batch_norm.inference === 'population',
    vars,
    optimizer,
    init,
    axes: { axis0, axis1 },
    train: { x, labels, lr, loss, correct, grads, saved: fwd.saved },
    noise,
    forward,
    statisticsOf,
  });
}
