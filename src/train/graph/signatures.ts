/**
 * The signatures of a compiled run (what bnx calls: init, train_step, eval, read, and Algorithm 2's
 * batch_stats / set_stats), and the end every compiled graph shares (`assembleGraph`).
 */
import type { RunConfig } from '../../spec/types.js';
import {
  DT,
  F32,
  I32,
  spec,
  type CompiledGraph,
  type GraphBuilder,
  type Signature,
  type TensorSpec,
} from './graph-def.js';
import { lossAndCorrect } from './ops/loss.js';
import type { NoiseInput } from './ops/noisy-batch-norm.js';
import type { GraphOptimizer } from './optimizer.js';
import type { GraphVariables, VariableAccess } from './variables.js';

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
    /** Dropout's inputs of `train_step`: the step's scale (and alpha dropout's shift) per dropout layer, [N, units]. */
    dropout: { layer: string; units: number; scale: string; shift: string | null }[];
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
  for (const d of p.dropout) {
    noiseIn[`dropout/${d.layer}/scale`] = spec(d.scale, DT.float, [-1, d.units]);
    if (d.shift) noiseIn[`dropout/${d.layer}/shift`] = spec(d.shift, DT.float, [-1, d.units]);
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
