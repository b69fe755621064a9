import { blockOutput, modelPlan, sizeOf, type LayerPlan, type ModelPlan } from '../../model/plan.js';
import type { RunConfig } from '../../spec/types.js';
import { GRADIENT_INSTRUMENTS } from '../instruments/index.js';
import { F32, GraphBuilder, I32, type Attr, type CompiledGraph } from './graph-def.js';
import { normOps, type GraphConstants, type NormOps, type NormSaved } from './norms.js';
import { activationBackward, activationForward } from './ops/activations.js';
import { trainingLoss } from './ops/loss.js';
import { noiseInputs, type NoiseInput } from './ops/noisy-batch-norm.js';
import { weightNormBackward, weightNormForward, type WeightNormSaved } from './ops/weight-norm.js';
import { GraphOptimizer } from './optimizer.js';
import { assembleGraph, initSignature, type BatchStatistic } from './signatures.js';
import { GraphVariables } from './variables.js';

export type { CompiledGraph, GraphVariable } from './graph-def.js';

/**
 * Why the graph compiler cannot compile a run yet (`instruments.ics`, ...), or null when it can.
 * Covered: every network a model plan describes (the `mlp` and the `cnn`) with every `model.norm`
 * (none; batch with inference statistics `ema` or `population`, noisy or not; layer; group;
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

/** One planned layer's variables and normalization. */
interface CompiledLayer {
  plan: LayerPlan;
  /** The kernel W, or V under weight norm (with its gains `g`). */
  kernel: string;
  g: string | null;
  bias: string | null;
  norm: NormOps | null;
}

/** What a layer's backward pass needs from the forward pass. */
interface LayerSaved {
  input: string;
  /** The kernel applied (W, or g V / ||V||) and what weight norm's backward pass needs. */
  kernel: string;
  weightNorm: WeightNormSaved | null;
  /** The activation's output (what SigmoidGrad, TanhGrad and ReluGrad take). */
  act: string;
  norm: NormSaved | null;
  /** Max pooling's input and output (null without pooling). */
  pooled: { input: string; output: string } | null;
  /** Dropout's scale of this step (training pass only; null without dropout). */
  dropout: string | null;
}

/** A dropout layer's `train_step` inputs: y = x scale (+ shift), [N, units] each. */
interface DropoutInput {
  layer: string;
  units: number;
  scale: string;
  shift: string | null;
}

const ints = (values: number[]): Attr => ({ list: { i: values } });
const CONV_ATTRS = {
  T: F32,
  strides: ints([1, 1, 1, 1]),
  padding: { s: 'SAME' },
  data_format: { s: 'NHWC' },
  dilations: ints([1, 1, 1, 1]),
  use_cudnn_on_gpu: { b: true },
  explicit_paddings: ints([]),
};
const poolAttrs = (p: number) => ({
  T: F32,
  ksize: ints([1, p, p, 1]),
  strides: ints([1, p, p, 1]),
  padding: { s: 'VALID' },
  data_format: { s: 'NHWC' },
});

/**
 * Compiles a run's training step, evaluation and variable access into one TensorFlow graph with
 * explicit backward ops (no autodiff), from the network's plan (src/model/plan.ts, the plan the
 * eager Mlp and Cnn are built from). Values are channels last: dense [N, C], conv [N, H, W, C].
 *
 *   forward   a cnn reshapes the rows [N, H·W·C] to images. Per layer: z = x W (MatMul) or
 *             Conv2D k x k, stride 1, SAME, with W = g V / ||V|| under weight norm; + b (BiasAdd)
 *             unless the norm's beta replaces it; the norm before the activation,
 *             h = act(norm(z)), or after it, h = norm(act(z)) (ops: src/train/graph/norms.ts);
 *             MaxPool pool x pool, VALID, after a pooling conv block; the flatten after the last
 *             conv block; the head is a dense layer with the `linear` activation.
 *   loss      SparseSoftmaxCrossEntropyWithLogits, mean over the batch (its backprop is
 *             softmax - onehot; times 1/N for the mean)
 *   backward  the transposes of the forward ops: dW = h^T dz and dh = dz W^T (MatMul),
 *             Conv2DBackpropFilter and Conv2DBackpropInput, db by BiasAddGrad, MaxPoolGrad,
 *             SigmoidGrad / TanhGrad / ReluGrad, the norms' closed forms, weight norm's
 *             dg = sum(dK V/||V||), dV = g/||V|| (dK - dg V/||V||)
 *   update    GraphOptimizer (SGD, momentum, Adam: the arithmetic of tf.train's optimizers);
 *             batch statistics' moving averages (running = k running + (1 - k) batch, with the
 *             unbiased batch variance), or Algorithm 2's `batch_stats` / `set_stats`.
 * Every update reads the variables' values from before the step (the reads are control inputs of
 * every update), so the step is the eager engine's step.
 */
export function compileRun(config: RunConfig, plan: ModelPlan): CompiledGraph {
  const why = graphUnsupported(config);
  if (why) throw new Error(`the graph engine does not cover ${why} yet`);
  const m = config.model;
  const g = new GraphBuilder();
  const vars = new GraphVariables(g);
  const read = (name: string) => vars.read(name);

  const constants = new Map<string, string>();
  const consts: GraphConstants = {
    ints: (values, scalar = false) => {
      const key = `${values.join('_').replace(/-/g, 'm')}${scalar ? '_scalar' : ''}`;
      let node = constants.get(key);
      if (!node) constants.set(key, (node = g.constInt(`const/${key}`, values, scalar ? [] : [values.length])));
      return node;
    },
    reshape: (name, x, dims) => g.op('Reshape', name, [x, consts.ints(dims)], { T: F32, Tshape: I32 }),
  };

  // Variables, in the model's namedWeights order.
  const layers: CompiledLayer[] = plan.layers.map((l) => {
    const shape = l.kind === 'conv' ? [l.kernel, l.kernel, l.input[2], l.units] : [l.input[0], l.units];
    const kernel = vars.add(`${l.name}/${l.weightNorm ? 'v' : 'kernel'}`, shape);
    const gain = l.weightNorm ? vars.add(`${l.name}/g`, [l.units]) : null;
    const bias = l.bias ? vars.add(`${l.name}/bias`, [l.units]) : null;
    return { plan: l, kernel, g: gain, bias, norm: normOps(g, vars, consts, m, l) };
  });
  const optimizer = new GraphOptimizer(g, config, vars);
  const init = initSignature(g, vars, optimizer);

  const axis0 = consts.ints([0]);
  const axis1 = consts.ints([1], true);
  const matmul = (name: string, a: string, b: string, ta = false, tb = false) =>
    g.op('MatMul', name, [a, b], { T: F32, transpose_a: { b: ta }, transpose_b: { b: tb } });
  // A cnn flattens the last conv block's output for its dense layers (and unflattens the gradient).
  const lastConv = layers.map((l) => l.plan.kind).lastIndexOf('conv');
  const features = sizeOf(plan.inputShape);

  /**
   * The forward pass on rows x [N, features]; `training` selects batch statistics (and keeps what
   * the backward pass needs); `noise` (the training step's, by layer name) perturbs noisy batch norm.
   */
  const forward = (
    scope: string,
    x: string,
    training: boolean,
    noise?: Map<string, NoiseInput>,
    dropout?: Map<string, DropoutInput>,
  ) => {
    const saved: LayerSaved[] = [];
    let h = plan.arch === 'cnn' ? consts.reshape(`${scope}/to_images`, x, [-1, ...plan.inputShape]) : x;
    layers.forEach((l, i) => {
      const p = l.plan;
      const s = `${scope}/${p.name}`;
      const conv = p.kind === 'conv';
      const axes = conv ? consts.ints([0, 1, 2]) : axis0;
      const wn = l.g ? weightNormForward(g, s, read(l.kernel), read(l.g), axes) : null;
      const kernel = wn?.kernel ?? read(l.kernel);
      let z = conv ? g.op('Conv2D', `${s}/conv`, [h, kernel], CONV_ATTRS) : matmul(`${s}/matmul`, h, kernel);
      if (l.bias) {
        z = g.op(
          'BiasAdd',
          `${s}/bias_add`,
          [z, read(l.bias)],
          conv ? { T: F32, data_format: { s: 'NHWC' } } : { T: F32 },
        );
      }
      let norm: NormSaved | null = null;
      if (l.norm && p.norm?.placement === 'before')
        ({ y: z, saved: norm } = l.norm.forward(s, z, training, noise?.get(p.name)));
      const a = activationForward(g, p.activation, s, z);
      let out = a;
      if (l.norm && p.norm?.placement === 'after')
        ({ y: out, saved: norm } = l.norm.forward(s, a, training, noise?.get(p.name)));
      let pooled: LayerSaved['pooled'] = null;
      if (p.pool > 1) {
        pooled = { input: out, output: g.op('MaxPool', `${s}/max_pool`, [out], poolAttrs(p.pool)) };
        out = pooled.output;
      }
      const drop = dropout?.get(p.name);
      if (drop) {
        out = g.op('Mul', `${s}/dropout/scaled`, [out, drop.scale], { T: F32 });
        if (drop.shift) out = g.op('AddV2', `${s}/dropout/y`, [out, drop.shift], { T: F32 });
      }
      saved.push({
        input: h,
        kernel,
        weightNorm: wn?.saved ?? null,
        act: a,
        norm,
        pooled,
        dropout: drop?.scale ?? null,
      });
      h = i === lastConv ? consts.reshape(`${scope}/flatten`, out, [-1, sizeOf(blockOutput(p))]) : out;
    });
    return { saved, logits: h };
  };

  /** The batch statistics of a training-mode forward pass, per batch-statistics layer. */
  const statisticsOf = (saved: LayerSaved[]): BatchStatistic[] =>
    layers.flatMap((l, i) => {
      const stats = l.norm && saved[i].norm ? l.norm.statistics(saved[i].norm as NormSaved) : null;
      if (!stats || !l.norm) return [];
      const { movingMean, movingVar } = l.norm;
      return [{ layer: l.plan.name, channels: l.plan.units, ...stats, movingMean: movingMean as string, movingVar }];
    });

  // ---- train_step ----
  const x = g.op('Placeholder', 'train/x', [], { dtype: F32, shape: { shape: [-1, features] } });
  const labels = g.op('Placeholder', 'train/labels', [], { dtype: I32, shape: { shape: [-1] } });
  const lr = g.op('Placeholder', 'train/lr', [], { dtype: F32, shape: { shape: [] } });
  const noisy = m.norm === 'batch' && m.batch_norm.noise > 0;
  const noise = noisy
    ? noiseInputs(
        g,
        layers.filter((l) => l.norm).map((l) => ({ name: l.plan.name, channels: l.plan.units })),
      )
    : [];
  const dropoutInputs: DropoutInput[] = layers
    .filter((l) => l.plan.dropout > 0)
    .map(({ plan: p }) => {
      const input = (part: string) =>
        g.op('Placeholder', `train/dropout/${p.name}/${part}`, [], { dtype: F32, shape: { shape: [-1, p.units] } });
      return { layer: p.name, units: p.units, scale: input('scale'), shift: p.alphaDropout ? input('shift') : null };
    });
  const fwd = forward(
    'train',
    x,
    true,
    new Map(noise.map((n) => [n.layer, n])),
    new Map(dropoutInputs.map((d) => [d.layer, d])),
  );
  const { loss, correct, dLogits } = trainingLoss(g, fwd.logits, labels, axis0, axis1);
  const grads = new Map<string, string>();
  let dh = dLogits;
  for (let i = layers.length - 1; i >= 0; i--) {
    const l = layers[i];
    const p = l.plan;
    const sv = fwd.saved[i];
    const s = `grad/${p.name}`;
    const conv = p.kind === 'conv';
    if (i === lastConv) dh = consts.reshape('grad/unflatten', dh, [-1, ...blockOutput(p)]);
    if (sv.dropout) dh = g.op('Mul', `${s}/dropout`, [dh, sv.dropout], { T: F32 });
    if (sv.pooled)
      dh = g.op('MaxPoolGrad', `${s}/max_pool`, [sv.pooled.input, sv.pooled.output, dh], poolAttrs(p.pool));
    if (l.norm && sv.norm && p.norm?.placement === 'after') dh = l.norm.backward(s, sv.norm, dh, grads);
    let dz = activationBackward(g, p.activation, s, sv.act, dh);
    if (l.norm && sv.norm && p.norm?.placement === 'before') dz = l.norm.backward(s, sv.norm, dz, grads);
    if (l.bias)
      grads.set(
        l.bias,
        g.op('BiasAddGrad', `${s}/bias`, [dz], conv ? { T: F32, data_format: { s: 'NHWC' } } : { T: F32 }),
      );
    const dKernel = conv
      ? g.op(
          'Conv2DBackpropFilter',
          `${s}/kernel`,
          [sv.input, consts.ints([p.kernel, p.kernel, p.input[2], p.units]), dz],
          CONV_ATTRS,
        )
      : matmul(`${s}/kernel`, sv.input, dz, true, false);
    if (sv.weightNorm) {
      const { dv, dg } = weightNormBackward(g, s, sv.weightNorm, dKernel, conv ? consts.ints([0, 1, 2]) : axis0);
      grads.set(l.kernel, dv);
      grads.set(l.g as string, dg);
    } else {
      grads.set(l.kernel, dKernel);
    }
    // The first layer's input is the data: no gradient needed.
    if (i > 0) {
      dh = conv
        ? g.op(
            'Conv2DBackpropInput',
            `${s}/input`,
            [g.op('Shape', `${s}/input_shape`, [sv.input], { T: F32, out_type: I32 }), sv.kernel, dz],
            CONV_ATTRS,
          )
        : matmul(`${s}/input`, dz, sv.kernel, false, true);
    }
  }
  // train.weight_decay: lambda w added to the kernels' (V's) gradients before the optimizer, as the eager engine does.
  const decay = config.train.weight_decay;
  if (decay > 0) {
    const lambda = g.scalar('weight_decay', decay);
    for (const l of layers) {
      const s = `grad/${l.plan.name}/weight_decay`;
      grads.set(
        l.kernel,
        g.op(
          'AddV2',
          s,
          [grads.get(l.kernel) as string, g.op('Mul', `${s}/term`, [read(l.kernel), lambda], { T: F32 })],
          { T: F32 },
        ),
      );
    }
  }
  const batchStatistics = layers.some((l) => l.norm?.movingMean);
  return assembleGraph(g, {
    config,
    features,
    population: batchStatistics && m.batch_norm.inference === 'population',
    vars,
    optimizer,
    init,
    axes: { axis0, axis1 },
    train: { x, labels, lr, loss, correct, grads, saved: fwd.saved },
    noise,
    dropout: dropoutInputs,
    forward,
    statisticsOf,
  });
}

/** A run's graph for examples of shape `inputShape` (its plan built here). */
export function compileConfig(config: RunConfig, inputShape: readonly number[], classes: number): CompiledGraph {
  return compileRun(config, modelPlan(config.model, inputShape, classes));
}
