import type { RunConfig } from '../../spec/types.js';
import { graphUnsupported } from './compile.js';
import type { CompiledGraph } from './graph-def.js';
import { GraphBuilder, type Attr } from './graph-def.js';
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
  I32,
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

/** A conv block's variables by name (null where the block has none), and its output's shape. */
interface BlockVars {
  /** `conv1`, `conv2`, ...: the prefix of the block's variables (Cnn.namedWeights). */
  name: string;
  /** Input [H, W, Cin] and output channels Cout; the conv keeps H x W (same padding). */
  height: number;
  width: number;
  cin: number;
  cout: number;
  /** Max-pool window and stride (1: no pooling). */
  pool: number;
  /** K [k, k, Cin, Cout], or V under weight norm (with its gains `g` [Cout]). */
  kernel: string;
  g: string | null;
  bias: string | null;
  gamma: string | null;
  beta: string | null;
  movingMean: string | null;
  movingVar: string | null;
}

/** What a block's normalization keeps for its backward pass. */
interface NormSaved {
  /** Batch norm: its input and the FusedBatchNormV3 node (reserve spaces :3 :4 :5). */
  input?: string;
  fused?: string;
  group?: GroupNormSaved;
  /** Mean-only batch norm: the batch mean [C]. */
  mean?: string;
  /** Noisy batch norm: the step's noise applied to the output. */
  noise?: NoiseInput;
}

interface BlockSaved {
  /** The block's input [N, H, W, Cin] and the kernel applied (K, or g V / ||V||). */
  input: string;
  kernel: string;
  weightNorm: WeightNormSaved | null;
  /** The activation's output. */
  act: string;
  norm: NormSaved | null;
  /** Max pooling's input and output (null without pooling). */
  pooled: { input: string; output: string } | null;
}

const ints = (values: number[]): Attr => ({ list: { i: values } });

/**
 * Compiles a `cnn` run (src/model/cnn.ts, `Cnn`) on images [H, W, C] (`inputShape`) into one
 * TensorFlow graph with explicit backward ops, with the signatures and contract of `compileMlp`
 * (`train_step`: x [N, H·W·C] float32, labels [N] int32, lr [] -> loss, correct). Channels last:
 *
 *   forward   x as [N, H, W, C]; per block: Conv2D k x k, stride 1, SAME (+ BiasAdd unless batch
 *             norm before the activation or mean-only batch norm); the block's norm before or
 *             after the activation; MaxPool pool x pool, stride pool, VALID when the block pools.
 *             Flatten, dense layers with the activation (not normalized), the linear head.
 *   norms     per channel [C]: batch norm FusedBatchNormV3 on the NHWC values (m = N·H·W), noisy
 *             batch norm then y' = s y + m with the step's s, m (backward: dy = s dy', see compileMlp);
 *             layer norm per example over its H·W·C values; group norm per example and group over
 *             [N, H·W, G, C/G] (axes 1 and 3), instance norm its G = C case; weight norm
 *             K = g V / ||V|| per output channel (norm over k·k·Cin), mean-only batch norm
 *             y = x - mu_B + beta (mu_B over N·H·W)
 *   backward  Conv2DBackpropInput, Conv2DBackpropFilter, BiasAddGrad, MaxPoolGrad,
 *             FusedBatchNormGradV3, the closed forms of layers.ts (group norm, weight norm,
 *             mean-only batch norm); dense layers and loss as compileMlp
 *   update    GraphOptimizer (SGD, momentum, Adam); batch statistics' moving averages or
 *             Algorithm 2's `batch_stats` / `set_stats`, as compileMlp.
 */
export function compileCnn(config: RunConfig, inputShape: readonly number[], classes: number): CompiledGraph {
  const why = graphUnsupported(config);
  if (why) throw new Error(`the graph engine does not cover ${why} yet`);
  const m = config.model;
  if (m.arch !== 'cnn') throw new Error(`compileCnn: model.arch=${m.arch} (compileMlp compiles the mlp)`);
  if (inputShape.length !== 3)
    throw new Error(`compileCnn: input shape [${inputShape.join(', ')}] (expected images [H, W, C])`);
  const [h0, w0, c0] = inputShape;
  const features = h0 * w0 * c0;
  const bn = m.norm === 'batch';
  const ln = m.norm === 'layer';
  const gn = m.norm === 'group' || m.norm === 'instance';
  const wn = m.norm === 'weight';
  const meanOnly = wn && m.weight_norm.mean_only_bn;
  // Weight norm places its (mean-only batch) norm before the activation, as the Cnn.
  const before = wn || m.norm_placement === 'before';
  const normVariables: NormVariables = bn ? 'batch' : ln || gn ? 'affine' : meanOnly ? 'mean_only' : null;
  const activation = m.activation;
  const { channels, kernel: k, pool } = m.cnn;
  const g = new GraphBuilder();
  const vars = new GraphVariables(g);
  const read = (name: string) => vars.read(name);

  // Variables, in Cnn.namedWeights order.
  const blocks: BlockVars[] = [];
  let [height, width, cin] = [h0, w0, c0];
  channels.forEach((cout, i) => {
    const name = `conv${i + 1}`;
    const kernel = vars.add(`${name}/${wn ? 'v' : 'kernel'}`, [k, k, cin, cout]);
    const gain = wn ? vars.add(`${name}/g`, [cout]) : null;
    const bias = (bn && before) || meanOnly ? null : vars.add(`${name}/bias`, [cout]);
    const norm = addNormVariables(vars, name, cout, normVariables);
    if (m.norm === 'group' && cout % m.group_norm.groups !== 0)
      throw new Error(`compileCnn: ${m.group_norm.groups} groups do not divide the ${cout} channels of block ${i + 1}`);
    const blockPool = pool > 1 && height >= pool && width >= pool ? pool : 1;
    if (pool > 1 && blockPool === 1)
      throw new Error(
        `compileCnn: block ${i + 1} gets ${height} x ${width} images, smaller than the ${pool} x ${pool} pooling window`,
      );
    blocks.push({ name, height, width, cin, cout, pool: blockPool, kernel, g: gain, bias, ...norm });
    [height, width, cin] = [Math.floor(height / blockPool), Math.floor(width / blockPool), cout];
  });
  const outShape = [height, width, cin];
  const dense: { name: string; kernel: string; bias: string }[] = [];
  let fanIn = height * width * cin;
  m.cnn.dense.forEach((units, i) => {
    const name = `dense${i + 1}`;
    dense.push({ name, kernel: vars.add(`${name}/kernel`, [fanIn, units]), bias: vars.add(`${name}/bias`, [units]) });
    fanIn = units;
  });
  const headKernel = vars.add('head/kernel', [fanIn, classes]);
  const headBias = vars.add('head/bias', [classes]);

  const optimizer = new GraphOptimizer(g, config, vars);
  const init = initSignature(g, vars, optimizer);

  // ---- shared pieces ----
  const consts = new Map<string, string>();
  /** An int32 vector constant, one node per distinct value. */
  const intConst = (dims: number[]) => {
    const key = dims.join('_').replace(/-/g, 'm');
    return (
      consts.get(key) ?? (consts.set(key, g.constInt(`const/${key}`, dims, [dims.length])), consts.get(key) as string)
    );
  };
  const axis0 = g.constInt('axis0', [0], [1]);
  const axis1 = g.constInt('axis1', [1], []);
  /** Every axis of [N, H, W, C] but the channel; of [k, k, Cin, Cout] but the output channel. */
  const allButChannel = intConst([0, 1, 2]);
  const matmul = (name: string, a: string, b: string, ta = false, tb = false) =>
    g.op('MatMul', name, [a, b], { T: F32, transpose_a: { b: ta }, transpose_b: { b: tb } });
  const reshape = (name: string, x: string, dims: number[]) =>
    g.op('Reshape', name, [x, intConst(dims)], { T: F32, Tshape: I32 });
  const mean = (axes: number[]) => (name: string, v: string) =>
    g.op('Mean', name, [v, intConst(axes)], { T: F32, Tidx: I32, keep_dims: { b: true } });
  const sumBatch = (name: string, v: string) =>
    g.op('Sum', name, [v, allButChannel], { T: F32, Tidx: I32, keep_dims: { b: false } });
  const normEps = ln
    ? g.scalar('layer_norm/eps', m.layer_norm.eps)
    : gn
      ? g.scalar('group_norm/eps', m.group_norm.eps)
      : '';
  const convAttrs = {
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
   * Layer norm over each example's H·W·C values ([N, H, W, C], axes 1..3), as LayerNorm on 4-D
   * inputs; group norm (instance norm: G = C) over [N, H·W, G, C/G], axes 1 and 3, as GroupNorm.
   */
  const groupView = (b: BlockVars): GroupView => {
    if (ln) return { toGroups: (_, v) => v, fromGroups: (_, v) => v, mean: mean([1, 2, 3]), sumBatch };
    const groups = m.norm === 'instance' ? b.cout : m.group_norm.groups;
    return {
      toGroups: (name, v) => reshape(name, v, [-1, b.height * b.width, groups, b.cout / groups]),
      fromGroups: (name, v) => reshape(name, v, [-1, b.height, b.width, b.cout]),
      mean: mean([1, 3]),
      sumBatch,
    };
  };

  /** A block's normalization on v: [N, H, W, C]; `noise` (noisy batch norm, training) perturbs its output. */
  const normForward = (
    s: string,
    b: BlockVars,
    v: string,
    training: boolean,
    noise?: NoiseInput,
  ): { y: string; saved: NormSaved } => {
    if (meanOnly) {
      const { y, mean: batchMean } = meanOnlyForward(
        g,
        s,
        v,
        read(b.beta as string),
        training ? null : read(b.movingMean as string),
        allButChannel,
      );
      return { y, saved: { mean: batchMean } };
    }
    if (bn) {
      const moving: [string, string] | null = training
        ? null
        : [read(b.movingMean as string), read(b.movingVar as string)];
      const fused = fusedBatchNorm(g, s, v, read(b.gamma as string), read(b.beta as string), moving, m.batch_norm.eps);
      return noise
        ? { y: noiseForward(g, s, fused, noise), saved: { input: v, fused, noise } }
        : { y: fused, saved: { input: v, fused } };
    }
    const { y, saved } = groupNormForward(
      g,
      s,
      v,
      read(b.gamma as string),
      read(b.beta as string),
      normEps,
      groupView(b),
    );
    return { y, saved: { group: saved } };
  };

  /** A block's normalization backward: dy -> dx; records the gradients of gamma and beta in `grads`. */
  const normBackward = (s: string, b: BlockVars, sv: NormSaved, dy: string, grads: Map<string, string>): string => {
    if (meanOnly) {
      const { dx, dbeta } = meanOnlyBackward(g, s, dy, allButChannel);
      grads.set(b.beta as string, dbeta);
      return dx;
    }
    if (bn) {
      const bng = fusedBatchNormGrad(
        g,
        s,
        sv.noise ? noiseBackward(g, s, dy, sv.noise) : dy,
        sv.input as string,
        read(b.gamma as string),
        sv.fused as string,
        m.batch_norm.eps,
      );
      grads.set(b.gamma as string, `${bng}:1`);
      grads.set(b.beta as string, `${bng}:2`);
      return bng;
    }
    const { dx, dgamma, dbeta } = groupNormBackward(
      g,
      s,
      sv.group as GroupNormSaved,
      dy,
      read(b.gamma as string),
      groupView(b),
    );
    grads.set(b.gamma as string, dgamma);
    grads.set(b.beta as string, dbeta);
    return dx;
  };

  /**
   * The forward pass on rows x [N, H·W·C]; `training` selects batch statistics (and keeps what the
   * backward pass needs); `noise` (the training step's, by block name) perturbs noisy batch norm's outputs.
   */
  const forward = (scope: string, x: string, training: boolean, noise?: Map<string, NoiseInput>) => {
    const saved: BlockSaved[] = [];
    let h = reshape(`${scope}/to_images`, x, [-1, h0, w0, c0]);
    for (const b of blocks) {
      const s = `${scope}/${b.name}`;
      const wnKernel = b.g ? weightNormForward(g, s, read(b.kernel), read(b.g), allButChannel) : null;
      const kernel = wnKernel?.kernel ?? read(b.kernel);
      let z = g.op('Conv2D', `${s}/conv`, [h, kernel], convAttrs);
      if (b.bias) z = g.op('BiasAdd', `${s}/bias_add`, [z, read(b.bias)], { T: F32, data_format: { s: 'NHWC' } });
      let norm: NormSaved | null = null;
      if (b.beta && before) ({ y: z, saved: norm } = normForward(s, b, z, training, noise?.get(b.name)));
      const a = activationForward(g, activation, s, z);
      let out = a;
      if (b.beta && !before) ({ y: out, saved: norm } = normForward(s, b, a, training, noise?.get(b.name)));
      let pooled: BlockSaved['pooled'] = null;
      if (b.pool > 1) {
        pooled = { input: out, output: g.op('MaxPool', `${s}/max_pool`, [out], poolAttrs(b.pool)) };
        out = pooled.output;
      }
      saved.push({ input: h, kernel, weightNorm: wnKernel?.saved ?? null, act: a, norm, pooled });
      h = out;
    }
    let flat = reshape(`${scope}/flatten`, h, [-1, outShape[0] * outShape[1] * outShape[2]]);
    const denseSaved: { input: string; act: string }[] = [];
    for (const d of dense) {
      const s = `${scope}/${d.name}`;
      const z = g.op('BiasAdd', `${s}/bias_add`, [matmul(`${s}/matmul`, flat, read(d.kernel)), read(d.bias)], {
        T: F32,
      });
      const a = activationForward(g, activation, s, z);
      denseSaved.push({ input: flat, act: a });
      flat = a;
    }
    const logits = g.op(
      'BiasAdd',
      `${scope}/head/bias_add`,
      [matmul(`${scope}/head/matmul`, flat, read(headKernel)), read(headBias)],
      { T: F32 },
    );
    return { saved, denseSaved, last: flat, logits };
  };

  /** The batch statistics of a training-mode forward pass, per batch-statistics block. */
  const statisticsOf = (saved: BlockSaved[]): BatchStatistic[] =>
    !bn && !meanOnly
      ? []
      : blocks.map((b, i) => {
          const norm = saved[i].norm as NormSaved;
          const [batchMean, variance] = bn ? [`${norm.fused}:1`, `${norm.fused}:2`] : [`${norm.mean}:0`, null];
          return {
            layer: b.name,
            channels: b.cout,
            mean: batchMean,
            variance,
            movingMean: b.movingMean as string,
            movingVar: b.movingVar,
          };
        });

  // ---- train_step ----
  const x = g.op('Placeholder', 'train/x', [], { dtype: F32, shape: { shape: [-1, features] } });
  const labels = g.op('Placeholder', 'train/labels', [], { dtype: I32, shape: { shape: [-1] } });
  const lr = g.op('Placeholder', 'train/lr', [], { dtype: F32, shape: { shape: [] } });
  const noise =
    bn && m.batch_norm.noise > 0
      ? noiseInputs(
          g,
          blocks.map((b) => ({ name: b.name, channels: b.cout })),
        )
      : [];
  const fwd = forward('train', x, true, new Map(noise.map((n) => [n.layer, n])));
  const { loss, correct, dLogits } = trainingLoss(g, fwd.logits, labels, axis0, axis1);
  const grads = new Map<string, string>();
  grads.set(headKernel, matmul('grad/head/kernel', fwd.last, dLogits, true, false));
  grads.set(headBias, g.op('BiasAddGrad', 'grad/head/bias', [dLogits], { T: F32 }));
  let dh = matmul('grad/head/input', dLogits, read(headKernel), false, true);
  for (let i = dense.length - 1; i >= 0; i--) {
    const d = dense[i];
    const sv = fwd.denseSaved[i];
    const s = `grad/${d.name}`;
    const dz = activationBackward(g, activation, s, sv.act, dh);
    grads.set(d.bias, g.op('BiasAddGrad', `${s}/bias`, [dz], { T: F32 }));
    grads.set(d.kernel, matmul(`${s}/kernel`, sv.input, dz, true, false));
    dh = matmul(`${s}/input`, dz, read(d.kernel), false, true);
  }
  dh = reshape('grad/unflatten', dh, [-1, ...outShape]);
  for (let i = blocks.length - 1; i >= 0; i--) {
    const b = blocks[i];
    const sv = fwd.saved[i];
    const s = `grad/${b.name}`;
    if (sv.pooled)
      dh = g.op('MaxPoolGrad', `${s}/max_pool`, [sv.pooled.input, sv.pooled.output, dh], poolAttrs(b.pool));
    if (sv.norm && !before) dh = normBackward(s, b, sv.norm, dh, grads);
    let dz = activationBackward(g, activation, s, sv.act, dh);
    if (sv.norm && before) dz = normBackward(s, b, sv.norm, dz, grads);
    if (b.bias) grads.set(b.bias, g.op('BiasAddGrad', `${s}/bias`, [dz], { T: F32, data_format: { s: 'NHWC' } }));
    const dKernel = g.op(
      'Conv2DBackpropFilter',
      `${s}/kernel`,
      [sv.input, intConst([k, k, b.cin, b.cout]), dz],
      convAttrs,
    );
    if (sv.weightNorm) {
      const { dv, dg } = weightNormBackward(g, s, sv.weightNorm, dKernel, allButChannel);
      grads.set(b.kernel, dv);
      grads.set(b.g as string, dg);
    } else {
      grads.set(b.kernel, dKernel);
    }
    if (i > 0) {
      const inputSizes = g.op('Shape', `${s}/input_shape`, [sv.input], { T: F32, out_type: I32 });
      dh = g.op('Conv2DBackpropInput', `${s}/input`, [inputSizes, sv.kernel, dz], convAttrs);
    }
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
