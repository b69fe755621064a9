import type { RunConfig } from '../../spec/types.js';
import { GRADIENT_INSTRUMENTS } from '../instruments/index.js';
import { DT, GraphBuilder, type Attr, type NodeDef, type Signature, type TensorSpec } from './graph-def.js';

/**
 * Why the graph compiler cannot compile a run yet (`model.norm=layer`, ...), or null when it can.
 * Covered: the `mlp` with `model.norm` none, batch (inference statistics `ema` or `population`),
 * layer or group, before or after the activation; every activation; SGD with or without momentum, Adam.
 */
export function graphUnsupported(config: RunConfig): string | null {
  const m = config.model;
  if (m.arch !== 'mlp') return `model.arch=${m.arch}`;
  if (m.norm !== 'none' && m.norm !== 'batch' && m.norm !== 'layer' && m.norm !== 'group') return `model.norm=${m.norm}`;
  if (m.batch_norm.noise > 0) return `model.batch_norm.noise=${m.batch_norm.noise}`;
  // ics and smoothness take gradients at moved weights; the graph has only its training step's.
  const gradients = GRADIENT_INSTRUMENTS.find((name) => config.instruments[name].enabled);
  if (gradients) return `instruments.${gradients}`;
  return null;
}

/** A variable of the compiled graph, by its `Mlp.namedWeights` name (`hidden1/kernel`, `head/bias`, ...). */
export interface GraphVariable {
  name: string;
  shape: number[];
}

export interface CompiledGraph {
  nodes: NodeDef[];
  /**
   * `init`: one input per model variable (by name); sets them and zeroes the optimizer's slots.
   * `train_step`: x [N, F] float32, labels [N] int32, lr [] -> loss (mean cross-entropy before the
   *   update) and correct (count of argmax = label), both taken after every update ran.
   * `eval`: x, labels -> loss_sum (sum of per-example cross-entropies) and correct, inference mode.
   * `read`: every model variable by name.
   * With batch norm and `inference: population` (Algorithm 2), `train_step` leaves the inference
   * statistics alone, and two more signatures serve the estimate:
   * `batch_stats`: x -> `<layer>/mean` and `<layer>/variance` per batch norm: the batch mean and the
   *   unbiased batch variance m/(m-1) s2 of a training-mode forward pass, nothing updated;
   * `set_stats`: one input per `moving_mean` / `moving_variance` variable -> sets them.
   */
  signatures: Record<'init' | 'train_step' | 'eval' | 'read', Signature> & Partial<Record<'batch_stats' | 'set_stats', Signature>>;
  variables: GraphVariable[];
}

export const F32: Attr = { type: DT.float };
/** A signature's input or output: the node's first output, its dtype and shape. */
export const spec = (tensor: string, dtype: number, shape: number[]): TensorSpec => ({ tensor: `${tensor}:0`, dtype: dtype as TensorSpec['dtype'], shape });

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

/**
 * Adam as tf.train.adam computes it (tfjs-core's AdamOptimizer), at step t = 1, 2, ...:
 *   m = b1 m + c1 g,  v = b2 v + c2 g^2,  var -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps),
 * with c1 = 1 - b1 and c2 = 1 - b2 taken in double precision, then rounded to float32.
 * ResourceApplyAdam's kernel computes m += (g - m) c1', v += (g^2 - v) c2' with c' = 1 - float32(b)
 * in float32 (so its m and v are those above times c'/c: 1 - 0.999 differs from 1 - float32(0.999)
 * by 5e-5 relative), and var -= lr' sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps'), epsilon added
 * to the uncorrected sqrt(v). Feeding it
 *   lr' = lr (c1/c1') / sqrt(c2/c2'),  eps' = eps sqrt(1 - b2^t) / sqrt(c2/c2')
 * makes its update tf.train.adam's exactly (up to round-off). b1^t and b2^t live in the
 * `adam/beta*_power` variables (float32 products, as tfjs's accBeta*); `advance` multiplies them by
 * b1, b2 after the step (its controls: the updates that read them).
 */
function adamStepInputs(g: GraphBuilder, powers: { beta1: string; beta2: string }, adam: RunConfig['train']['adam'], lr: string) {
  const f32 = Math.fround;
  const ratio = (b: number) => f32(1 - b) / f32(1 - f32(b)); // c / c'
  const beta1 = g.scalar('adam/beta1', adam.beta1);
  const beta2 = g.scalar('adam/beta2', adam.beta2);
  const beta1Power = g.op('ReadVariableOp', 'adam/read/beta1_power', [powers.beta1], { dtype: F32 });
  const beta2Power = g.op('ReadVariableOp', 'adam/read/beta2_power', [powers.beta2], { dtype: F32 });
  const scaledLr = g.op('Mul', 'adam/lr', [lr, g.scalar('adam/lr_scale', ratio(adam.beta1) / Math.sqrt(ratio(adam.beta2)))], { T: F32 });
  const sqrtBiasCorrection2 = g.op('Sqrt', 'adam/sqrt_bias_correction2', [g.op('Sub', 'adam/bias_correction2', [g.scalar('adam/one', 1), beta2Power], { T: F32 })], { T: F32 });
  const epsilon = g.op('Mul', 'adam/epsilon', [g.scalar('adam/eps_scale', adam.epsilon / Math.sqrt(ratio(adam.beta2))), sqrtBiasCorrection2], { T: F32 });
  const advance = (after: string[]) =>
    ([['beta1', beta1Power, beta1], ['beta2', beta2Power, beta2]] as const).map(([k, power, beta]) =>
      g.op('AssignVariableOp', `adam/advance/${k}_power`, [powers[k], g.op('Mul', `adam/next/${k}_power`, [power, beta], { T: F32 }), ...after], { dtype: F32 }),
    );
  return { beta1Power, beta2Power, beta1, beta2, lr: scaledLr, epsilon, advance };
}

/**
 * Batch norm as TensorFlow's fused op on x4: [N, 1, 1, C] (NHWC, so every column is a channel).
 * Training mode (`moving` null) normalizes with the batch statistics, and outputs 3..5 are the
 * reserve spaces `fusedBatchNormGrad` needs; inference mode uses the moving mean and variance.
 */
export function fusedBatchNorm(g: GraphBuilder, s: string, x4: string, gamma: string, beta: string, moving: [string, string] | null, eps: number): string {
  const [mean, variance] = moving ?? [g.constFloat(`${s}/no_mean`, [], [0]), g.constFloat(`${s}/no_variance`, [], [0])];
  return g.op('FusedBatchNormV3', `${s}/batch_norm`, [x4, gamma, beta, mean, variance], {
    T: F32,
    U: F32,
    epsilon: { f: eps },
    is_training: { b: moving === null },
    data_format: { s: 'NHWC' },
    exponential_avg_factor: { f: 1 },
  });
}

/** The training-mode backward pass of `fusedBatchNorm` (node `fused`): dx4 at output 0, dgamma at 1, dbeta at 2. */
export function fusedBatchNormGrad(g: GraphBuilder, s: string, dy4: string, x4: string, gamma: string, fused: string, eps: number): string {
  return g.op('FusedBatchNormGradV3', `${s}/batch_norm`, [dy4, x4, gamma, `${fused}:3`, `${fused}:4`, `${fused}:5`], {
    T: F32,
    U: F32,
    epsilon: { f: eps },
    is_training: { b: true },
    data_format: { s: 'NHWC' },
  });
}

/**
 * Batch norm's moving averages, updated after the step: running = k running + (1 - k) batch, from
 * each layer's training-mode `fused` op (outputs 1 and 2: the batch mean and the unbiased batch
 * variance m/(m-1) s2). `read` gives a variable's value before the step, `handle` its resource;
 * every assignment runs after `afterReads`. Returns the assignment ops.
 */
export function movingAverageUpdates(
  g: GraphBuilder,
  k: number,
  layers: { movingMean: string; movingVar: string; fused: string }[],
  read: (v: string) => string,
  handle: (v: string) => string,
  afterReads: string[],
): string[] {
  const decay = g.scalar('ema/decay', k);
  const rate = g.scalar('ema/rate', 1 - k);
  return layers.flatMap((l) =>
    ([[l.movingMean, 1], [l.movingVar, 2]] as const).map(([v, out]) => {
      const s = `ema/${v}`;
      const next = g.op('AddV2', `${s}/next`, [g.op('Mul', `${s}/old`, [read(v), decay], { T: F32 }), g.op('Mul', `${s}/new`, [`${l.fused}:${out}`, rate], { T: F32 })], { T: F32 });
      return g.op('AssignVariableOp', `${s}/assign`, [handle(v), next, ...afterReads], { dtype: F32 });
    }),
  );
}

/**
 * Compiles a run's training step, evaluation and variable access into one TensorFlow graph with
 * explicit backward ops (no autodiff), for the configurations `graphUnsupported` accepts:
 *
 *   forward   z = h W (+ b); the norm before the activation, h' = act(norm(z)), or after it,
 *             h' = norm(act(z)); logits = h W_head + b_head. Batch norm: FusedBatchNormV3 on the
 *             values as [N, 1, 1, C] (training mode: batch statistics); layer norm: per example,
 *             xhat = (x - mu) rsqrt(s2 + eps), y = gamma xhat + beta
 *   loss      SparseSoftmaxCrossEntropyWithLogits, mean over the batch (its backprop is
 *             softmax - onehot; times 1/N for the mean)
 *   backward  dense: dW = h^T dz, db = sum_rows dz, dh = dz W^T; activations: SigmoidGrad,
 *             TanhGrad, ReluGrad; batch norm: FusedBatchNormGradV3 with the forward's reserve spaces
 *             (the closed form: dx = gamma/sqrt(s2+eps) (dy - (sum dy + xhat sum dy xhat)/m));
 *             layer norm: its closed form per example (see normBackward)
 *   update    ResourceApplyGradientDescent, ResourceApplyMomentum (accum = k accum + g;
 *             var -= lr accum) or ResourceApplyAdam (see adamStepInputs), the same arithmetic as
 *             tf.train.sgd / tf.train.momentum / tf.train.adam; batch norm's
 *             moving averages: running = k running + (1 - k) batch, with the unbiased batch variance.
 * Every update reads the variables' values from before the step (the reads are control inputs of
 * every update), so the step is the eager engine's step.
 */
export function compileMlp(config: RunConfig, features: number, classes: number): CompiledGraph {
  const why = graphUnsupported(config);
  if (why) throw new Error(`the graph engine does not cover ${why} yet`);
  const m = config.model;
  const bn = m.norm === 'batch';
  // Layer and group norm share one op sequence: statistics per example over each group of C/G
  // contiguous features ([N, G, C/G], axis 2); layer norm is the single group, on [N, C] (axis 1).
  const ln = m.norm === 'layer' || m.norm === 'group';
  const groups = m.norm === 'group' ? m.group_norm.groups : 1;
  const before = m.norm_placement === 'before';
  const momentum = config.train.momentum;
  const adam = config.train.optimizer === 'adam';
  const g = new GraphBuilder();
  const variables: GraphVariable[] = [];
  const handles = new Map<string, string>();
  const reads = new Map<string, string>();

  const variable = (name: string, shape: number[]): string => {
    const h = g.op('VarHandleOp', `var/${name}`, [], { dtype: F32, shape: { shape }, shared_name: { s: name }, container: { s: '' } });
    handles.set(name, h);
    reads.set(name, g.op('ReadVariableOp', `read/${name}`, [h], { dtype: F32 }));
    variables.push({ name, shape });
    return name;
  };

  // Variables, in Mlp.namedWeights order.
  const layers: LayerVars[] = [];
  let fanIn = features;
  m.hidden.forEach((units, i) => {
    const name = `hidden${i + 1}`;
    const kernel = variable(`${name}/kernel`, [fanIn, units]);
    // Batch norm before the activation drops the dense bias (beta replaces it), as the Mlp.
    const bias = bn && before ? null : variable(`${name}/bias`, [units]);
    const [gamma, beta, movingMean, movingVar] = bn
      ? [variable(`${name}/norm/gamma`, [units]), variable(`${name}/norm/beta`, [units]), variable(`${name}/norm/moving_mean`, [units]), variable(`${name}/norm/moving_variance`, [units])]
      : ln
        ? [variable(`${name}/norm/gamma`, [units]), variable(`${name}/norm/beta`, [units]), null, null]
        : [null, null, null, null];
    layers.push({ name, units, kernel, bias, gamma, beta, movingMean, movingVar });
    fanIn = units;
  });
  const headKernel = variable('head/kernel', [fanIn, classes]);
  const headBias = variable('head/bias', [classes]);
  const trainable = variables.map((v) => v.name).filter((n) => !n.endsWith('/moving_mean') && !n.endsWith('/moving_variance'));
  const read = (name: string) => reads.get(name) as string;
  const handle = (name: string) => handles.get(name) as string;

  // Optimizer slots per trainable variable, zeroed by `init`: momentum's accumulator, or Adam's
  // first and second moments. `slots` maps `<variable>/<slot>` to its handle.
  const slotKinds = adam ? ['m', 'v'] : momentum > 0 ? ['momentum'] : [];
  const slots = new Map<string, { handle: string; shape: number[] }>();
  for (const name of trainable) {
    const shape = variables.find((v) => v.name === name)?.shape as number[];
    for (const kind of slotKinds) {
      const key = `${name}/${kind}`;
      slots.set(key, { handle: g.op('VarHandleOp', `slot/${key}`, [], { dtype: F32, shape: { shape }, shared_name: { s: key }, container: { s: '' } }), shape });
    }
  }
  const slot = (name: string, kind: string) => (slots.get(`${name}/${kind}`) as { handle: string }).handle;
  // Adam's beta1^t and beta2^t (t: the step being taken), set to beta1, beta2 by `init`.
  const scalarVariable = (name: string) => g.op('VarHandleOp', name, [], { dtype: F32, shape: { shape: [] }, shared_name: { s: name }, container: { s: '' } });
  const betaPowers = adam ? { beta1: scalarVariable('adam/beta1_power'), beta2: scalarVariable('adam/beta2_power') } : null;

  // ---- init ----
  const initInputs: Record<string, TensorSpec> = {};
  const assigns: string[] = [];
  for (const v of variables) {
    const p = g.op('Placeholder', `init/${v.name}`, [], { dtype: F32, shape: { shape: v.shape } });
    initInputs[v.name] = spec(p, DT.float, v.shape);
    assigns.push(g.op('AssignVariableOp', `init/assign/${v.name}`, [handle(v.name), p], { dtype: F32 }));
  }
  const zero = g.scalar('init/zero', 0);
  for (const [key, { handle: slotHandle, shape }] of slots) {
    const zeros = g.op('Fill', `init/zeros/${key}`, [g.constInt(`init/shape/${key}`, shape, [shape.length]), zero], { T: F32, index_type: { type: DT.int32 } });
    assigns.push(g.op('AssignVariableOp', `init/assign_slot/${key}`, [slotHandle, zeros], { dtype: F32 }));
  }
  if (betaPowers) {
    const { beta1, beta2 } = config.train.adam;
    assigns.push(g.op('AssignVariableOp', 'init/assign/adam/beta1_power', [betaPowers.beta1, g.scalar('init/adam/beta1', beta1)], { dtype: F32 }));
    assigns.push(g.op('AssignVariableOp', 'init/assign/adam/beta2_power', [betaPowers.beta2, g.scalar('init/adam/beta2', beta2)], { dtype: F32 }));
  }
  const initDone = g.op('Identity', 'init/done', [zero, ...assigns.map((a) => `^${a}`)], { T: F32 });

  // ---- shared pieces ----
  const reshapeTo4 = new Map<number, string>();
  const reshapeTo2 = new Map<number, string>();
  const shape4 = (c: number) => reshapeTo4.get(c) ?? (reshapeTo4.set(c, g.constInt(`shape/nhwc_${c}`, [-1, 1, 1, c], [4])), reshapeTo4.get(c) as string);
  const shape2 = (c: number) => reshapeTo2.get(c) ?? (reshapeTo2.set(c, g.constInt(`shape/nc_${c}`, [-1, c], [2])), reshapeTo2.get(c) as string);
  const axis0 = g.constInt('axis0', [0], [1]);
  const axis1 = g.constInt('axis1', [1], []);
  const activation = m.activation;
  const act = (scope: string, z: string): string => {
    if (activation === 'linear') return z;
    const op = { sigmoid: 'Sigmoid', relu: 'Relu', tanh: 'Tanh' }[activation];
    return g.op(op, `${scope}/${activation}`, [z], { T: F32 });
  };
  const matmul = (name: string, a: string, b: string, ta = false, tb = false) => g.op('MatMul', name, [a, b], { T: F32, transpose_a: { b: ta }, transpose_b: { b: tb } });
  const reshape = (name: string, x: string, shape: string) => g.op('Reshape', name, [x, shape], { T: F32, Tshape: { type: DT.int32 } });
  const lossAndCorrect = (scope: string, logits: string, labels: string) => {
    const ce = g.op('SparseSoftmaxCrossEntropyWithLogits', `${scope}/xent`, [logits, labels], { T: F32, Tlabels: { type: DT.int32 } });
    const argmax = g.op('ArgMax', `${scope}/argmax`, [logits, axis1], { T: F32, Tidx: { type: DT.int32 }, output_type: { type: DT.int32 } });
    const equal = g.op('Equal', `${scope}/equal`, [argmax, labels], { T: { type: DT.int32 } });
    const hits = g.op('Cast', `${scope}/hits`, [equal], { SrcT: { type: DT.bool }, DstT: F32 });
    const correct = g.op('Sum', `${scope}/correct`, [hits, axis0], { T: F32, Tidx: { type: DT.int32 }, keep_dims: { b: false } });
    return { ce, correct };
  };

  const mean1 = (name: string, v: string) => g.op('Mean', name, [v, axis1], { T: F32, Tidx: { type: DT.int32 }, keep_dims: { b: true } });
  const sum0 = (name: string, v: string) => g.op('Sum', name, [v, axis0], { T: F32, Tidx: { type: DT.int32 }, keep_dims: { b: false } });
  const mul = (name: string, a: string, b: string) => g.op('Mul', name, [a, b], { T: F32 });
  const sub = (name: string, a: string, b: string) => g.op('Sub', name, [a, b], { T: F32 });
  const add = (name: string, a: string, b: string) => g.op('AddV2', name, [a, b], { T: F32 });
  const lnEps = ln ? g.scalar('layer_norm/eps', m.norm === 'group' ? m.group_norm.eps : m.layer_norm.eps) : '';
  const axis2 = g.constInt('axis2', [2], []);
  const meanG = (name: string, v: string) => (groups === 1 ? mean1(name, v) : g.op('Mean', name, [v, axis2], { T: F32, Tidx: { type: DT.int32 }, keep_dims: { b: true } }));
  const toGroups = (name: string, v: string, c: number) => (groups === 1 ? v : reshape(name, v, g.constInt(`${name}/shape`, [-1, groups, c / groups], [3])));
  const fromGroups = (name: string, v: string, c: number) => (groups === 1 ? v : reshape(name, v, shape2(c)));

  /** What a normalization's backward pass needs from its forward pass. */
  interface NormSaved {
    input: string;
    /** Batch norm: the input as [N, 1, 1, C] and the FusedBatchNormV3 node (reserve spaces :3 :4 :5). */
    x4?: string;
    fused?: string;
    /** Layer/group norm: the normalized values ([N, C], and grouped [N, G, C/G]) and 1/sqrt(s2 + eps) per example and group. */
    xhat?: string;
    xhatGrouped?: string;
    rstd?: string;
  }

  /** A normalization layer's forward op(s) on v: [N, C]. */
  const normForward = (s: string, l: LayerVars, v: string, training: boolean): { y: string; saved: NormSaved } => {
    if (bn) {
      const x4 = reshape(`${s}/to_nhwc`, v, shape4(l.units));
      const moving: [string, string] | null = training ? null : [read(l.movingMean as string), read(l.movingVar as string)];
      const fused = fusedBatchNorm(g, s, x4, read(l.gamma as string), read(l.beta as string), moving, m.batch_norm.eps);
      return { y: reshape(`${s}/to_nc`, fused, shape2(l.units)), saved: { input: v, x4, fused } };
    }
    // Layer/group norm, per example and group: xhat = (x - mu) / sqrt(s2 + eps), y = gamma xhat + beta.
    const vg = toGroups(`${s}/layer_norm/grouped`, v, l.units);
    const centered = sub(`${s}/layer_norm/centered`, vg, meanG(`${s}/layer_norm/mean`, vg));
    const variance = meanG(`${s}/layer_norm/variance`, g.op('Square', `${s}/layer_norm/square`, [centered], { T: F32 }));
    const rstd = g.op('Rsqrt', `${s}/layer_norm/rstd`, [add(`${s}/layer_norm/var_eps`, variance, lnEps)], { T: F32 });
    const xhatGrouped = mul(`${s}/layer_norm/xhat_grouped`, centered, rstd);
    const xhat = fromGroups(`${s}/layer_norm/xhat`, xhatGrouped, l.units);
    const y = add(`${s}/layer_norm/y`, mul(`${s}/layer_norm/scaled`, xhat, read(l.gamma as string)), read(l.beta as string));
    return { y, saved: { input: v, xhat, xhatGrouped, rstd } };
  };

  /** A normalization layer's backward pass: dy -> dx; records dgamma and dbeta in `grads`. */
  const normBackward = (s: string, l: LayerVars, sv: NormSaved, dy: string, grads: Map<string, string>): string => {
    if (bn) {
      const dy4 = reshape(`${s}/to_nhwc`, dy, shape4(l.units));
      const bng = fusedBatchNormGrad(g, s, dy4, sv.x4 as string, read(l.gamma as string), sv.fused as string, m.batch_norm.eps);
      grads.set(l.gamma as string, `${bng}:1`);
      grads.set(l.beta as string, `${bng}:2`);
      return reshape(`${s}/to_nc`, bng, shape2(l.units));
    }
    // Layer/group norm, closed form per example and group (of D values): with g = dy * gamma,
    //   dx = rstd * (g - mean_D(g) - xhat * mean_D(g * xhat)),  dgamma = sum_n dy xhat,  dbeta = sum_n dy.
    const xhat = sv.xhat as string;
    const xg = sv.xhatGrouped as string;
    grads.set(l.gamma as string, sum0(`${s}/layer_norm/dgamma`, mul(`${s}/layer_norm/dy_xhat`, dy, xhat)));
    grads.set(l.beta as string, sum0(`${s}/layer_norm/dbeta`, dy));
    const gdy = toGroups(`${s}/layer_norm/g_grouped`, mul(`${s}/layer_norm/g`, dy, read(l.gamma as string)), l.units);
    const inner = sub(`${s}/layer_norm/inner`, sub(`${s}/layer_norm/g_centered`, gdy, meanG(`${s}/layer_norm/g_mean`, gdy)), mul(`${s}/layer_norm/xhat_term`, xg, meanG(`${s}/layer_norm/gx_mean`, mul(`${s}/layer_norm/g_xhat`, gdy, xg))));
    return fromGroups(`${s}/layer_norm/dx`, mul(`${s}/layer_norm/dx_grouped`, inner, sv.rstd as string), l.units);
  };

  interface LayerSaved {
    input: string;
    /** The activation's output (what SigmoidGrad, TanhGrad and ReluGrad take). */
    act: string;
    norm: NormSaved | null;
  }

  /** The forward pass; `training` selects batch statistics (and keeps what the backward pass needs). */
  const forward = (scope: string, x: string, training: boolean) => {
    const saved: LayerSaved[] = [];
    let h = x;
    for (const l of layers) {
      const s = `${scope}/${l.name}`;
      let z = matmul(`${s}/matmul`, h, read(l.kernel));
      if (l.bias) z = g.op('BiasAdd', `${s}/bias_add`, [z, read(l.bias)], { T: F32 });
      let norm: NormSaved | null = null;
      if (l.gamma && before) ({ y: z, saved: norm } = normForward(s, l, z, training));
      const a = act(s, z);
      let out = a;
      if (l.gamma && !before) ({ y: out, saved: norm } = normForward(s, l, a, training));
      saved.push({ input: h, act: a, norm });
      h = out;
    }
    let logits = matmul(`${scope}/head/matmul`, h, read(headKernel));
    logits = g.op('BiasAdd', `${scope}/head/bias_add`, [logits, read(headBias)], { T: F32 });
    return { saved, last: h, logits };
  };

  // ---- train_step ----
  const x = g.op('Placeholder', 'train/x', [], { dtype: F32, shape: { shape: [-1, features] } });
  const labels = g.op('Placeholder', 'train/labels', [], { dtype: { type: DT.int32 }, shape: { shape: [-1] } });
  const lr = g.op('Placeholder', 'train/lr', [], { dtype: F32, shape: { shape: [] } });
  const fwd = forward('train', x, true);
  const { ce, correct } = lossAndCorrect('train', fwd.logits, labels);
  const loss = g.op('Mean', 'train/loss', [ce, axis0], { T: F32, Tidx: { type: DT.int32 }, keep_dims: { b: false } });
  const n = g.op('Cast', 'train/n', [g.op('Size', 'train/size', [labels], { T: { type: DT.int32 }, out_type: { type: DT.int32 } })], { SrcT: { type: DT.int32 }, DstT: F32 });
  const invN = g.op('Reciprocal', 'train/inv_n', [n], { T: F32 });
  const dLogits = g.op('Mul', 'grad/logits', [`${ce}:1`, invN], { T: F32 });
  const grads = new Map<string, string>();
  grads.set(headKernel, matmul('grad/head/kernel', fwd.last, dLogits, true, false));
  grads.set(headBias, g.op('BiasAddGrad', 'grad/head/bias', [dLogits], { T: F32 }));
  let dh = matmul('grad/head/input', dLogits, read(headKernel), false, true);
  for (let i = layers.length - 1; i >= 0; i--) {
    const l = layers[i];
    const sv = fwd.saved[i];
    const s = `grad/${l.name}`;
    if (sv.norm && !before) dh = normBackward(s, l, sv.norm, dh, grads);
    let dz: string;
    if (activation === 'sigmoid') dz = g.op('SigmoidGrad', `${s}/sigmoid`, [sv.act, dh], { T: F32 });
    else if (activation === 'tanh') dz = g.op('TanhGrad', `${s}/tanh`, [sv.act, dh], { T: F32 });
    else if (activation === 'relu') dz = g.op('ReluGrad', `${s}/relu`, [dh, sv.act], { T: F32 });
    else dz = dh;
    if (sv.norm && before) dz = normBackward(s, l, sv.norm, dz, grads);
    if (l.bias) grads.set(l.bias, g.op('BiasAddGrad', `${s}/bias`, [dz], { T: F32 }));
    grads.set(l.kernel, matmul(`${s}/kernel`, sv.input, dz, true, false));
    if (i > 0) dh = matmul(`${s}/input`, dz, read(l.kernel), false, true);
  }
  const afterReads = [...reads.values()].map((r) => `^${r}`);
  const updates: string[] = [];
  const momentumConst = momentum > 0 ? g.scalar('train/momentum', momentum) : null;
  const adamInputs = betaPowers ? adamStepInputs(g, betaPowers, config.train.adam, lr) : null;
  for (const name of trainable) {
    const grad = grads.get(name) as string;
    if (adamInputs) {
      const { beta1Power, beta2Power, beta1, beta2, epsilon } = adamInputs;
      updates.push(g.op('ResourceApplyAdam', `update/${name}`, [handle(name), slot(name, 'm'), slot(name, 'v'), beta1Power, beta2Power, adamInputs.lr, beta1, beta2, epsilon, grad, ...afterReads], { T: F32, use_locking: { b: false }, use_nesterov: { b: false } }));
    } else if (momentumConst) {
      updates.push(g.op('ResourceApplyMomentum', `update/${name}`, [handle(name), slot(name, 'momentum'), lr, grad, momentumConst, ...afterReads], { T: F32, use_locking: { b: false }, use_nesterov: { b: false } }));
    } else {
      updates.push(g.op('ResourceApplyGradientDescent', `update/${name}`, [handle(name), lr, grad, ...afterReads], { T: F32, use_locking: { b: false } }));
    }
  }
  const population = bn && m.batch_norm.inference === 'population';
  if (bn && !population) {
    const bnLayers = layers.map((l, i) => ({ movingMean: l.movingMean as string, movingVar: l.movingVar as string, fused: fwd.saved[i].norm?.fused as string }));
    updates.push(...movingAverageUpdates(g, m.batch_norm.momentum, bnLayers, read, handle, afterReads));
  }
  // t -> t + 1 once every ResourceApplyAdam has read beta1^t and beta2^t.
  if (adamInputs) updates.push(...adamInputs.advance(updates.map((u) => `^${u}`)));
  const afterUpdates = updates.map((u) => `^${u}`);
  const trainLoss = g.op('Identity', 'train/loss_out', [loss, ...afterUpdates], { T: F32 });
  const trainCorrect = g.op('Identity', 'train/correct_out', [correct, ...afterUpdates], { T: F32 });

  // ---- eval ----
  const ex = g.op('Placeholder', 'eval/x', [], { dtype: F32, shape: { shape: [-1, features] } });
  const elabels = g.op('Placeholder', 'eval/labels', [], { dtype: { type: DT.int32 }, shape: { shape: [-1] } });
  const efwd = forward('eval', ex, false);
  const ev = lossAndCorrect('eval', efwd.logits, elabels);
  const lossSum = g.op('Sum', 'eval/loss_sum', [ev.ce, axis0], { T: F32, Tidx: { type: DT.int32 }, keep_dims: { b: false } });

  // ---- read ----
  const readOutputs: Record<string, TensorSpec> = {};
  for (const v of variables) readOutputs[v.name] = spec(g.op('Identity', `out/${v.name}`, [read(v.name)], { T: F32 }), DT.float, v.shape);

  // ---- population statistics (Algorithm 2) ----
  const extra: Partial<Record<'batch_stats' | 'set_stats', Signature>> = {};
  if (population) {
    const sx = g.op('Placeholder', 'stats/x', [], { dtype: F32, shape: { shape: [-1, features] } });
    const sfwd = forward('stats', sx, true);
    const statsOut: Record<string, TensorSpec> = {};
    const setIn: Record<string, TensorSpec> = {};
    const sets: string[] = [];
    layers.forEach((l, i) => {
      const fused = sfwd.saved[i].norm?.fused as string;
      statsOut[`${l.name}/mean`] = { tensor: `${fused}:1`, dtype: DT.float, shape: [l.units] };
      statsOut[`${l.name}/variance`] = { tensor: `${fused}:2`, dtype: DT.float, shape: [l.units] };
      for (const v of [l.movingMean as string, l.movingVar as string]) {
        const p = g.op('Placeholder', `set_stats/${v}`, [], { dtype: F32, shape: { shape: [l.units] } });
        setIn[v] = spec(p, DT.float, [l.units]);
        sets.push(g.op('AssignVariableOp', `set_stats/assign/${v}`, [handle(v), p], { dtype: F32 }));
      }
    });
    extra.batch_stats = { inputs: { x: spec(sx, DT.float, [-1, features]) }, outputs: statsOut };
    extra.set_stats = { inputs: setIn, outputs: { done: spec(g.op('Identity', 'set_stats/done', [zero, ...sets.map((a) => `^${a}`)], { T: F32 }), DT.float, []) } };
  }

  return {
    nodes: g.nodes,
    variables,
    signatures: {
      init: { inputs: initInputs, outputs: { done: spec(initDone, DT.float, []) } },
      train_step: {
        inputs: { x: spec(x, DT.float, [-1, features]), labels: spec(labels, DT.int32, [-1]), lr: spec(lr, DT.float, []) },
        outputs: { loss: spec(trainLoss, DT.float, []), correct: spec(trainCorrect, DT.float, []) },
      },
      eval: {
        inputs: { x: spec(ex, DT.float, [-1, features]), labels: spec(elabels, DT.int32, [-1]) },
        outputs: { loss_sum: spec(lossSum, DT.float, []), correct: spec(ev.correct, DT.float, []) },
      },
      read: { inputs: {}, outputs: readOutputs },
      ...extra,
    },
  };
}
