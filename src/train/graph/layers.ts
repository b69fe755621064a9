import type { Activation, RunConfig } from '../../spec/types.js';
import {
  DT,
  GraphBuilder,
  type Attr,
  type CompiledGraph,
  type GraphVariable,
  type Signature,
  type TensorSpec,
} from './graph-def.js';

/**
 * The pieces both graph compilers (`compileMlp`, `compileCnn`) build their graphs from: the model's
 * variables and the optimizer's slots, the `init` / `read` / population signatures, the loss, the
 * update ops, and each layer kind's forward ops with their explicit backward (vector-Jacobian) ops.
 * Shapes: a value with channels last, [N, C] (dense) or [N, H, W, C] (conv); per-channel
 * parameters [C] broadcast over the leading axes. Node names are the callers' scopes plus fixed
 * suffixes, so a compiler's graph is the same op for op from one build to the next.
 */

export const F32: Attr = { type: DT.float };
export const I32: Attr = { type: DT.int32 };
/** A signature's input or output: the node's first output, its dtype and shape. */
export const spec = (tensor: string, dtype: number, shape: number[]): TensorSpec => ({
  tensor: `${tensor}:0`,
  dtype: dtype as TensorSpec['dtype'],
  shape,
});

/** Inference statistics (never updated by the optimizer): batch norm's and mean-only batch norm's. */
const isStatistic = (name: string) => name.endsWith('/moving_mean') || name.endsWith('/moving_variance');

/**
 * What the signatures need of a compiler's variables: names and shapes, and a read and a handle
 * each. GraphVariables is one; the fused compiler's member-stacked variables are another.
 */
export interface VariableAccess {
  readonly list: readonly GraphVariable[];
  read(name: string): string;
  handle(name: string): string;
}

/** The model's variables (resource handles and one read each), in the order they were added. */
export class GraphVariables implements VariableAccess {
  readonly list: GraphVariable[] = [];
  private readonly handles = new Map<string, string>();
  private readonly reads = new Map<string, string>();

  constructor(private readonly g: GraphBuilder) {}

  add(name: string, shape: number[]): string {
    const h = this.g.op('VarHandleOp', `var/${name}`, [], {
      dtype: F32,
      shape: { shape },
      shared_name: { s: name },
      container: { s: '' },
    });
    this.handles.set(name, h);
    this.reads.set(name, this.g.op('ReadVariableOp', `read/${name}`, [h], { dtype: F32 }));
    this.list.push({ name, shape });
    return name;
  }

  /** The variable's value before the step's updates. */
  read(name: string): string {
    return this.reads.get(name) as string;
  }

  handle(name: string): string {
    return this.handles.get(name) as string;
  }

  shape(name: string): number[] {
    return (this.list.find((v) => v.name === name) as GraphVariable).shape;
  }

  /** What the optimizer updates: every variable but the inference statistics. */
  get trainable(): string[] {
    return this.list.map((v) => v.name).filter((n) => !isStatistic(n));
  }

  /** Control inputs on every read: an update carrying them runs after the step read its variables. */
  get afterReads(): string[] {
    return [...this.reads.values()].map((r) => `^${r}`);
  }
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
function adamStepInputs(
  g: GraphBuilder,
  powers: { beta1: string; beta2: string },
  adam: RunConfig['train']['adam'],
  lr: string,
) {
  const f32 = Math.fround;
  const ratio = (b: number) => f32(1 - b) / f32(1 - f32(b)); // c / c'
  const beta1 = g.scalar('adam/beta1', adam.beta1);
  const beta2 = g.scalar('adam/beta2', adam.beta2);
  const beta1Power = g.op('ReadVariableOp', 'adam/read/beta1_power', [powers.beta1], { dtype: F32 });
  const beta2Power = g.op('ReadVariableOp', 'adam/read/beta2_power', [powers.beta2], { dtype: F32 });
  const scaledLr = g.op(
    'Mul',
    'adam/lr',
    [lr, g.scalar('adam/lr_scale', ratio(adam.beta1) / Math.sqrt(ratio(adam.beta2)))],
    { T: F32 },
  );
  const sqrtBiasCorrection2 = g.op(
    'Sqrt',
    'adam/sqrt_bias_correction2',
    [g.op('Sub', 'adam/bias_correction2', [g.scalar('adam/one', 1), beta2Power], { T: F32 })],
    { T: F32 },
  );
  const epsilon = g.op(
    'Mul',
    'adam/epsilon',
    [g.scalar('adam/eps_scale', adam.epsilon / Math.sqrt(ratio(adam.beta2))), sqrtBiasCorrection2],
    { T: F32 },
  );
  const advance = (after: string[]) =>
    (
      [
        ['beta1', beta1Power, beta1],
        ['beta2', beta2Power, beta2],
      ] as const
    ).map(([k, power, beta]) =>
      g.op(
        'AssignVariableOp',
        `adam/advance/${k}_power`,
        [powers[k], g.op('Mul', `adam/next/${k}_power`, [power, beta], { T: F32 }), ...after],
        { dtype: F32 },
      ),
    );
  return { beta1Power, beta2Power, beta1, beta2, lr: scaledLr, epsilon, advance };
}

/**
 * The run's optimizer (`train.optimizer` sgd with or without `train.momentum`, or adam) as update
 * ops on the trainable variables, with the same arithmetic as tf.train.sgd / momentum / adam:
 * ResourceApplyGradientDescent, ResourceApplyMomentum (accum = k accum + g; var -= lr accum) or
 * ResourceApplyAdam (see adamStepInputs). Its slots (momentum's accumulator, Adam's moments and
 * beta powers) are resource variables that `initAssigns` resets.
 */
export class GraphOptimizer {
  private readonly adam: boolean;
  private readonly momentum: number;
  /** `<variable>/<slot>` -> handle and shape. */
  private readonly slots = new Map<string, { handle: string; shape: number[] }>();
  /** Adam's beta1^t and beta2^t (t: the step being taken), set to beta1, beta2 by `init`. */
  private readonly betaPowers: { beta1: string; beta2: string } | null;

  constructor(
    private readonly g: GraphBuilder,
    private readonly config: RunConfig,
    private readonly vars: GraphVariables,
  ) {
    this.adam = config.train.optimizer === 'adam';
    this.momentum = config.train.momentum;
    const slotKinds = this.adam ? ['m', 'v'] : this.momentum > 0 ? ['momentum'] : [];
    for (const name of vars.trainable) {
      const shape = vars.shape(name);
      for (const kind of slotKinds) {
        const key = `${name}/${kind}`;
        this.slots.set(key, {
          handle: g.op('VarHandleOp', `slot/${key}`, [], {
            dtype: F32,
            shape: { shape },
            shared_name: { s: key },
            container: { s: '' },
          }),
          shape,
        });
      }
    }
    const scalarVariable = (name: string) =>
      g.op('VarHandleOp', name, [], {
        dtype: F32,
        shape: { shape: [] },
        shared_name: { s: name },
        container: { s: '' },
      });
    this.betaPowers = this.adam
      ? { beta1: scalarVariable('adam/beta1_power'), beta2: scalarVariable('adam/beta2_power') }
      : null;
  }

  private slot(name: string, kind: string): string {
    return (this.slots.get(`${name}/${kind}`) as { handle: string }).handle;
  }

  /** `init`'s assignments of the optimizer state: zero slots, beta powers at beta1, beta2. */
  initAssigns(zero: string): string[] {
    const g = this.g;
    const assigns: string[] = [];
    for (const [key, { handle, shape }] of this.slots) {
      const zeros = g.op('Fill', `init/zeros/${key}`, [g.constInt(`init/shape/${key}`, shape, [shape.length]), zero], {
        T: F32,
        index_type: I32,
      });
      assigns.push(g.op('AssignVariableOp', `init/assign_slot/${key}`, [handle, zeros], { dtype: F32 }));
    }
    if (this.betaPowers) {
      const { beta1, beta2 } = this.config.train.adam;
      assigns.push(
        g.op(
          'AssignVariableOp',
          'init/assign/adam/beta1_power',
          [this.betaPowers.beta1, g.scalar('init/adam/beta1', beta1)],
          { dtype: F32 },
        ),
      );
      assigns.push(
        g.op(
          'AssignVariableOp',
          'init/assign/adam/beta2_power',
          [this.betaPowers.beta2, g.scalar('init/adam/beta2', beta2)],
          { dtype: F32 },
        ),
      );
    }
    return assigns;
  }

  /**
   * The step's updates: one per trainable variable (its gradient in `grads`), then `statistics`'
   * (the inference statistics' assignments, given the control inputs every update carries), then
   * Adam's beta powers advanced after them all. Every update runs after every variable read, so
   * the step computes its gradients from the weights before it.
   */
  updates(grads: Map<string, string>, lr: string, statistics: (afterReads: string[]) => string[]): string[] {
    const g = this.g;
    const afterReads = this.vars.afterReads;
    const updates: string[] = [];
    const momentumConst = this.momentum > 0 ? g.scalar('train/momentum', this.momentum) : null;
    const adamInputs = this.betaPowers ? adamStepInputs(g, this.betaPowers, this.config.train.adam, lr) : null;
    for (const name of this.vars.trainable) {
      const grad = grads.get(name);
      if (!grad) throw new Error(`graph compiler: no gradient for ${name}`);
      const handle = this.vars.handle(name);
      if (adamInputs) {
        const { beta1Power, beta2Power, beta1, beta2, epsilon } = adamInputs;
        updates.push(
          g.op(
            'ResourceApplyAdam',
            `update/${name}`,
            [
              handle,
              this.slot(name, 'm'),
              this.slot(name, 'v'),
              beta1Power,
              beta2Power,
              adamInputs.lr,
              beta1,
              beta2,
              epsilon,
              grad,
              ...afterReads,
            ],
            { T: F32, use_locking: { b: false }, use_nesterov: { b: false } },
          ),
        );
      } else if (momentumConst) {
        updates.push(
          g.op(
            'ResourceApplyMomentum',
            `update/${name}`,
            [handle, this.slot(name, 'momentum'), lr, grad, momentumConst, ...afterReads],
            { T: F32, use_locking: { b: false }, use_nesterov: { b: false } },
          ),
        );
      } else {
        updates.push(
          g.op('ResourceApplyGradientDescent', `update/${name}`, [handle, lr, grad, ...afterReads], {
            T: F32,
            use_locking: { b: false },
          }),
        );
      }
    }
    updates.push(...statistics(afterReads));
    // t -> t + 1 once every ResourceApplyAdam has read beta1^t and beta2^t.
    if (adamInputs) updates.push(...adamInputs.advance(updates.map((u) => `^${u}`)));
    return updates;
  }
}

/** Which variables a layer's normalization has: see `addNormVariables`. */
export type NormVariables = 'batch' | 'affine' | 'mean_only' | null;

/**
 * A layer's normalization variables, `<layer>/norm/...` in the model's `namedWeights` order:
 * `batch` gamma, beta, moving_mean, moving_variance; `affine` (layer, group, instance norm) gamma
 * and beta; `mean_only` beta and moving_mean; null none. Each is [channels]; null where absent.
 */
export function addNormVariables(
  vars: GraphVariables,
  layer: string,
  channels: number,
  kind: NormVariables,
): { gamma: string | null; beta: string | null; movingMean: string | null; movingVar: string | null } {
  const add = (name: string) => vars.add(`${layer}/norm/${name}`, [channels]);
  if (kind === 'batch')
    return {
      gamma: add('gamma'),
      beta: add('beta'),
      movingMean: add('moving_mean'),
      movingVar: add('moving_variance'),
    };
  if (kind === 'affine') return { gamma: add('gamma'), beta: add('beta'), movingMean: null, movingVar: null };
  if (kind === 'mean_only') return { gamma: null, beta: add('beta'), movingMean: add('moving_mean'), movingVar: null };
  return { gamma: null, beta: null, movingMean: null, movingVar: null };
}

/**
 * `init`: one input per model variable (by name); sets them and resets the optimizer's state
 * (`optimizer.initAssigns`). Returns the signature and its `init/zero` scalar (for other
 * signatures' `done` outputs).
 */
export function initSignature(
  g: GraphBuilder,
  vars: VariableAccess,
  optimizer: { initAssigns(zero: string): string[] },
): { signature: Signature; zero: string } {
  const inputs: Record<string, TensorSpec> = {};
  const assigns: string[] = [];
  for (const v of vars.list) {
    const p = g.op('Placeholder', `init/${v.name}`, [], { dtype: F32, shape: { shape: v.shape } });
    inputs[v.name] = spec(p, DT.float, v.shape);
    assigns.push(g.op('AssignVariableOp', `init/assign/${v.name}`, [vars.handle(v.name), p], { dtype: F32 }));
  }
  const zero = g.scalar('init/zero', 0);
  assigns.push(...optimizer.initAssigns(zero));
  const done = g.op('Identity', 'init/done', [zero, ...assigns.map((a) => `^${a}`)], { T: F32 });
  return { signature: { inputs, outputs: { done: spec(done, DT.float, []) } }, zero };
}

/** `read`: every model variable by name. */
export function readSignature(g: GraphBuilder, vars: VariableAccess): Signature {
  const outputs: Record<string, TensorSpec> = {};
  for (const v of vars.list)
    outputs[v.name] = spec(g.op('Identity', `out/${v.name}`, [vars.read(v.name)], { T: F32 }), DT.float, v.shape);
  return { inputs: {}, outputs };
}

/** Per-example cross-entropies ([N], output 1: its backprop softmax - onehot) and the count of argmax = label. */
export function lossAndCorrect(
  g: GraphBuilder,
  scope: string,
  logits: string,
  labels: string,
  axis0: string,
  axis1: string,
): { ce: string; correct: string } {
  const ce = g.op('SparseSoftmaxCrossEntropyWithLogits', `${scope}/xent`, [logits, labels], { T: F32, Tlabels: I32 });
  const argmax = g.op('ArgMax', `${scope}/argmax`, [logits, axis1], { T: F32, Tidx: I32, output_type: I32 });
  const equal = g.op('Equal', `${scope}/equal`, [argmax, labels], { T: I32 });
  const hits = g.op('Cast', `${scope}/hits`, [equal], { SrcT: { type: DT.bool }, DstT: F32 });
  const correct = g.op('Sum', `${scope}/correct`, [hits, axis0], { T: F32, Tidx: I32, keep_dims: { b: false } });
  return { ce, correct };
}

/** The training loss (mean cross-entropy over the batch), the correct count and dL/dlogits = (softmax - onehot) / N. */
export function trainingLoss(
  g: GraphBuilder,
  logits: string,
  labels: string,
  axis0: string,
  axis1: string,
): { loss: string; correct: string; dLogits: string } {
  const { ce, correct } = lossAndCorrect(g, 'train', logits, labels, axis0, axis1);
  const loss = g.op('Mean', 'train/loss', [ce, axis0], { T: F32, Tidx: I32, keep_dims: { b: false } });
  const n = g.op('Cast', 'train/n', [g.op('Size', 'train/size', [labels], { T: I32, out_type: I32 })], {
    SrcT: I32,
    DstT: F32,
  });
  const invN = g.op('Reciprocal', 'train/inv_n', [n], { T: F32 });
  const dLogits = g.op('Mul', 'grad/logits', [`${ce}:1`, invN], { T: F32 });
  return { loss, correct, dLogits };
}

/** The activation's forward op on z (`linear`: z itself), named `<scope>/<activation>`. */
export function activationForward(g: GraphBuilder, activation: Activation, scope: string, z: string): string {
  if (activation === 'linear') return z;
  const op = { sigmoid: 'Sigmoid', relu: 'Relu', tanh: 'Tanh' }[activation];
  return g.op(op, `${scope}/${activation}`, [z], { T: F32 });
}

/** dL/dz from dL/da and the activation's output a: SigmoidGrad, TanhGrad, ReluGrad (a > 0 where z > 0). */
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
  return da;
}

/**
 * Batch norm as TensorFlow's fused op on x4: [N, H, W, C] (NHWC; dense values as [N, 1, 1, C],
 * so every column is a channel). Training mode (`moving` null) normalizes with the batch
 * statistics over N·H·W values per channel, and outputs 3..5 are the reserve spaces
 * `fusedBatchNormGrad` needs; inference mode uses the moving mean and variance.
 */
export function fusedBatchNorm(
  g: GraphBuilder,
  s: string,
  x4: string,
  gamma: string,
  beta: string,
  moving: [string, string] | null,
  eps: number,
): string {
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
export function fusedBatchNormGrad(
  g: GraphBuilder,
  s: string,
  dy4: string,
  x4: string,
  gamma: string,
  fused: string,
  eps: number,
): string {
  return g.op('FusedBatchNormGradV3', `${s}/batch_norm`, [dy4, x4, gamma, `${fused}:3`, `${fused}:4`, `${fused}:5`], {
    T: F32,
    U: F32,
    epsilon: { f: eps },
    is_training: { b: true },
    data_format: { s: 'NHWC' },
  });
}

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

/**
 * Moving averages of batch statistics, updated after the step: running = k running + (1 - k) batch,
 * one per `{ variable, batch }` (the statistic's tensor of this step's training-mode forward pass).
 * `read` gives a variable's value before the step, `handle` its resource; every assignment runs
 * after `afterReads`. Returns the assignment ops.
 */
export function movingAverageUpdatesOf(
  g: GraphBuilder,
  k: number,
  statistics: { variable: string; batch: string }[],
  read: (v: string) => string,
  handle: (v: string) => string,
  afterReads: string[],
): string[] {
  const decay = g.scalar('ema/decay', k);
  const rate = g.scalar('ema/rate', 1 - k);
  return statistics.map(({ variable: v, batch }) => {
    const s = `ema/${v}`;
    const next = g.op(
      'AddV2',
      `${s}/next`,
      [g.op('Mul', `${s}/old`, [read(v), decay], { T: F32 }), g.op('Mul', `${s}/new`, [batch, rate], { T: F32 })],
      { T: F32 },
    );
    return g.op('AssignVariableOp', `${s}/assign`, [handle(v), next, ...afterReads], { dtype: F32 });
  });
}

/**
 * One batch-statistics layer's statistics in a training-mode forward pass: the batch mean [C] and
 * (batch norm) the unbiased batch variance [C], as tensors (`node:k`), and the inference
 * variables they feed.
 */
export interface BatchStatistic {
  /** `hidden1`, `conv2`, ...: `batch_stats` outputs `<layer>/mean` and `<layer>/variance`. */
  layer: string;
  channels: number;
  mean: string;
  variance: string | null;
  movingMean: string;
  movingVar: string | null;
}

/** The moving-average pairs of `statistics` (for `movingAverageUpdatesOf`). */
export function statisticPairs(statistics: BatchStatistic[]): { variable: string; batch: string }[] {
  return statistics.flatMap((s) => [
    { variable: s.movingMean, batch: s.mean },
    ...(s.movingVar && s.variance ? [{ variable: s.movingVar, batch: s.variance }] : []),
  ]);
}

/**
 * Algorithm 2's signatures (`inference: population`): `batch_stats`: x -> `<layer>/mean` (and
 * `<layer>/variance`) of a training-mode forward pass (`statistics`, from the forward pass on `x`),
 * nothing updated; `set_stats`: one input per moving_mean / moving_variance variable -> sets them.
 */
export function populationSignatures(
  g: GraphBuilder,
  x: TensorSpec,
  statistics: BatchStatistic[],
  vars: VariableAccess,
  zero: string,
): { batch_stats: Signature; set_stats: Signature } {
  const statsOut: Record<string, TensorSpec> = {};
  const setIn: Record<string, TensorSpec> = {};
  const sets: string[] = [];
  for (const s of statistics) {
    statsOut[`${s.layer}/mean`] = { tensor: s.mean, dtype: DT.float, shape: [s.channels] };
    if (s.variance) statsOut[`${s.layer}/variance`] = { tensor: s.variance, dtype: DT.float, shape: [s.channels] };
    for (const v of [s.movingMean, ...(s.movingVar ? [s.movingVar] : [])]) {
      const p = g.op('Placeholder', `set_stats/${v}`, [], { dtype: F32, shape: { shape: [s.channels] } });
      setIn[v] = spec(p, DT.float, [s.channels]);
      sets.push(g.op('AssignVariableOp', `set_stats/assign/${v}`, [vars.handle(v), p], { dtype: F32 }));
    }
  }
  return {
    batch_stats: { inputs: { x }, outputs: statsOut },
    set_stats: {
      inputs: setIn,
      outputs: {
        done: spec(g.op('Identity', 'set_stats/done', [zero, ...sets.map((a) => `^${a}`)], { T: F32 }), DT.float, []),
      },
    },
  };
}

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

/**
 * Mean-only batch norm (MeanOnlyBatchNorm): training y = x - mu_B + beta with mu_B the batch mean
 * per channel over `axes` (every axis but the channel; returned as `mean` [C] for the moving
 * average); inference y = x - moving_mean + beta.
 */
export function meanOnlyForward(
  g: GraphBuilder,
  s: string,
  x: string,
  beta: string,
  movingMean: string | null,
  axes: string,
): { y: string; mean: string } {
  const mean =
    movingMean ?? g.op('Mean', `${s}/mean_only/mean`, [x, axes], { T: F32, Tidx: I32, keep_dims: { b: false } });
  const y = g.op('AddV2', `${s}/mean_only/y`, [g.op('Sub', `${s}/mean_only/centered`, [x, mean], { T: F32 }), beta], {
    T: F32,
  });
  return { y, mean };
}

/** Mean-only batch norm's backward pass (the mean is the batch's): dx = dy - mean(dy), dbeta = sum dy, over `axes`. */
export function meanOnlyBackward(g: GraphBuilder, s: string, dy: string, axes: string): { dx: string; dbeta: string } {
  const dbeta = g.op('Sum', `${s}/mean_only/dbeta`, [dy, axes], { T: F32, Tidx: I32, keep_dims: { b: false } });
  const dx = g.op(
    'Sub',
    `${s}/mean_only/dx`,
    [dy, g.op('Mean', `${s}/mean_only/dy_mean`, [dy, axes], { T: F32, Tidx: I32, keep_dims: { b: false } })],
    { T: F32 },
  );
  return { dx, dbeta };
}

/**
 * The end every compiler shares, once its training forward pass (`train.saved`) and gradients
 * (`train.grads`) are built: the step's updates and, unless `population` (Algorithm 2's estimate
 * sets them instead), the moving averages of its batch statistics; `train_step`'s outputs taken
 * after all of them; `eval` (an inference-mode forward pass); `read`; and with `population` the
 * `batch_stats` / `set_stats` signatures of a training-mode pass.
 */
export function assembleGraph<Saved>(
  g: GraphBuilder,
  p: {
    config: RunConfig;
    features: number;
    population: boolean;
    vars: GraphVariables;
    optimizer: GraphOptimizer;
    init: { signature: Signature; zero: string };
    axes: { axis0: string; axis1: string };
    train: {
      x: string;
      labels: string;
      lr: string;
      loss: string;
      correct: string;
      grads: Map<string, string>;
      saved: Saved;
    };
    /** Noisy batch norm's inputs of `train_step` (none without noise). */
    noise: NoiseInput[];
    /** The forward pass (noise-free: the compiler applies the noise to its own training pass). */
    forward: (scope: string, x: string, training: boolean) => { saved: Saved; logits: string };
    statisticsOf: (saved: Saved) => BatchStatistic[];
  },
): CompiledGraph {
  const { vars, features, train } = p;
  const { axis0, axis1 } = p.axes;
  const statistics = p.population ? [] : p.statisticsOf(train.saved);
  const read = (name: string) => vars.read(name);
  const handle = (name: string) => vars.handle(name);
  const updates = p.optimizer.updates(train.grads, train.lr, (afterReads) =>
    statistics.length
      ? movingAverageUpdatesOf(
          g,
          p.config.model.batch_norm.momentum,
          statisticPairs(statistics),
          read,
          handle,
          afterReads,
        )
      : [],
  );
  const afterUpdates = updates.map((u) => `^${u}`);
  const trainLoss = g.op('Identity', 'train/loss_out', [train.loss, ...afterUpdates], { T: F32 });
  const trainCorrect = g.op('Identity', 'train/correct_out', [train.correct, ...afterUpdates], { T: F32 });

  // ---- eval ----
  const ex = g.op('Placeholder', 'eval/x', [], { dtype: F32, shape: { shape: [-1, features] } });
  const elabels = g.op('Placeholder', 'eval/labels', [], { dtype: I32, shape: { shape: [-1] } });
  const efwd = p.forward('eval', ex, false);
  const ev = lossAndCorrect(g, 'eval', efwd.logits, elabels, axis0, axis1);
  const lossSum = g.op('Sum', 'eval/loss_sum', [ev.ce, axis0], { T: F32, Tidx: I32, keep_dims: { b: false } });

  const readSig = readSignature(g, vars);

  // ---- population statistics (Algorithm 2) ----
  let extra: Partial<Record<'batch_stats' | 'set_stats', Signature>> = {};
  if (p.population) {
    const sx = g.op('Placeholder', 'stats/x', [], { dtype: F32, shape: { shape: [-1, features] } });
    const sfwd = p.forward('stats', sx, true);
    extra = populationSignatures(g, spec(sx, DT.float, [-1, features]), p.statisticsOf(sfwd.saved), vars, p.init.zero);
  }

  const noiseIn: Record<string, TensorSpec> = {};
  for (const n of p.noise) {
    noiseIn[`noise/${n.layer}/scale`] = spec(n.scale, DT.float, [n.channels]);
    noiseIn[`noise/${n.layer}/shift`] = spec(n.shift, DT.float, [n.channels]);
  }

  return {
    nodes: g.nodes,
    variables: vars.list,
    signatures: {
      init: p.init.signature,
      train_step: {
        inputs: {
          x: spec(train.x, DT.float, [-1, features]),
          labels: spec(train.labels, DT.int32, [-1]),
          lr: spec(train.lr, DT.float, []),
          ...noiseIn,
        },
        outputs: { loss: spec(trainLoss, DT.float, []), correct: spec(trainCorrect, DT.float, []) },
      },
      eval: {
        inputs: { x: spec(ex, DT.float, [-1, features]), labels: spec(elabels, DT.int32, [-1]) },
        outputs: { loss_sum: spec(lossSum, DT.float, []), correct: spec(ev.correct, DT.float, []) },
      },
      read: readSig,
      ...extra,
    },
    ...(p.noise.length ? { noise: p.noise.map(({ layer, channels }) => ({ layer, channels })) } : {}),
  };
}
