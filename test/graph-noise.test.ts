import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { loadDataset, type Dataset } from '../src/data/index.js';
import { BatchNorm, NoisyBatchNorm, drawNoise, noiseSeed } from '../src/layers/index.js';
import { DEFAULT_CONFIG } from '../src/spec/schema.js';
import type { ModelConfig, RunConfig, TrainConfig } from '../src/spec/types.js';
import type { MetricsRow } from '../src/store/metrics.js';
import { initBackend } from '../src/train/backend.js';
import { compileConfig, graphUnsupported } from '../src/train/graph/compile.js';
import { groupKey } from '../src/train/groups.js';
import { chooseEngine } from '../src/train/engine.js';
import { Rng } from '../src/util/rng.js';
import { deviation, trainOutcome } from './engine-compare.js';

/** Noisy batch norm (`model.batch_norm.noise`) on the graph engine: the eager engine's draws and numbers. */

const IMAGE: [number, number, number] = [6, 6, 2];
const bnDefaults = DEFAULT_CONFIG.model.batch_norm;
const noisy = (noise: number, more: Partial<ModelConfig['batch_norm']> = {}) => ({ ...bnDefaults, noise, ...more });

/** The synthetic mlp task of graph.test.ts (12 features, 3 classes), batch norm with noise 0.5. */
function mlpConfig(model: Partial<ModelConfig>, trainCfg: Partial<TrainConfig> = {}): RunConfig {
  const c = structuredClone({ ...DEFAULT_CONFIG, name: 'graph-noise' }) as RunConfig;
  c.seed = 7;
  c.data = {
    ...c.data,
    dataset: 'synthetic',
    val_size: 100,
    synthetic: { features: IMAGE[0] * IMAGE[1] * IMAGE[2], classes: 3, train_size: 500, test_size: 150, noise: 0.5 },
  };
  c.model = {
    ...c.model,
    hidden: [16, 8],
    init: 'glorot_uniform',
    norm: 'batch',
    batch_norm: noisy(0.5),
    ...model,
  } as ModelConfig;
  c.train = { ...c.train, lr: 0.3, batch_size: 20, steps: 60, eval_every: 20, log_every: 10, ...trainCfg };
  return c;
}

/** The tiny cnn of graph-cnn.test.ts (6 x 6 x 2 images, two blocks of 4 channels, a dense layer of 8). */
function cnnConfig(model: Partial<ModelConfig>, trainCfg: Partial<TrainConfig> = {}): RunConfig {
  const c = mlpConfig(
    {
      arch: 'cnn',
      activation: 'relu',
      init: 'he_normal',
      cnn: { channels: [4, 4], kernel: 3, pool: 2, dense: [8] },
      ...model,
    },
    { lr: 0.05, steps: 30, eval_every: 15, log_every: 5, ...trainCfg },
  );
  c.seed = 5;
  return c;
}

let rows: Dataset;
let images: Dataset;

const run = (c: RunConfig, engine: 'graph' | 'eager' | 'auto') =>
  trainOutcome(c, engine, c.model.arch === 'cnn' ? images : rows);

/** As graph.test.ts and graph-cnn.test.ts: float32 round-off between TensorFlow's fused kernels and tf.js ops. */
const TOLERANCE = { metrics: 1e-5, weights: 1e-5 };

describe('graph engine: noisy batch norm', () => {
  before(async () => {
    await initBackend('tensorflow');
    rows = loadDataset(mlpConfig({}).data);
    images = { ...rows, inputShape: [...IMAGE] };
  });

  it('draws through drawNoise: BatchNorm.stepNoise is drawNoise on Rng(noiseSeed(seed, layer)), one draw per step', () => {
    const seed = noiseSeed(7, 1);
    const bn = new NoisyBatchNorm({
      channels: 5,
      eps: 1e-3,
      momentum: 0.9,
      noise: { strength: 0.5, seed },
      name: 'draw-test',
    });
    const rng = new Rng(seed);
    try {
      for (let step = 0; step < 3; step++) {
        const expected = drawNoise(rng, 5, 0.5);
        const draw = bn.stepNoise();
        assert.deepEqual(draw, expected);
        assert.equal(bn.stepNoise(), draw, 'the same draw until the step ends');
        // Its training-mode output is s * y + m with that draw.
        const x = tf.tensor2d(
          Float32Array.from({ length: 30 }, (_, i) => Math.sin(i * 1.3)),
          [6, 5],
        );
        const y = tf.tidy(() => bn.apply(x, true));
        bn.updateMovingStats();
        const plain = new BatchNorm({ channels: 5, eps: 1e-3, momentum: 0.9, name: 'draw-test-plain' });
        const y0 = tf.tidy(() => plain.apply(x, true));
        const want = tf.tidy(() => tf.add(tf.mul(y0, tf.tensor1d(expected.scale)), tf.tensor1d(expected.shift)));
        assert.deepEqual(y.dataSync(), want.dataSync());
        tf.dispose([x, y, y0, want]);
        plain.dispose();
      }
      for (let c = 0; c < 5; c++) {
        const { scale, shift } = drawNoise(new Rng(seed), 5, 0.5);
        assert.ok(scale[c] >= 1 && scale[c] <= 1.5 && shift[c] >= -0.5 && shift[c] <= 0.5);
      }
    } finally {
      bn.dispose();
    }
  });

  it('auto picks the graph engine for noisy batch norm, which trains in groups too; the graph takes the noise as train_step inputs', () => {
    for (const c of [
      mlpConfig({}),
      mlpConfig({ norm_placement: 'after', batch_norm: noisy(0.2, { inference: 'population' }) }),
      cnnConfig({}),
    ]) {
      assert.equal(graphUnsupported(c), null);
      assert.deepEqual(chooseEngine(c), { kind: 'graph', note: null });
    }
    assert.equal(groupKey(mlpConfig({})), groupKey(mlpConfig({}, { momentum: 0.9 })));

    const mlp = compileConfig(mlpConfig({ batch_norm: noisy(0.5, { inference: 'population' }) }), [72], 3);
    const inputs = mlp.signatures.train_step.inputs;
    assert.deepEqual(Object.keys(inputs), [
      'x',
      'labels',
      'lr',
      'noise/hidden1/scale',
      'noise/hidden1/shift',
      'noise/hidden2/scale',
      'noise/hidden2/shift',
    ]);
    assert.deepEqual(
      [inputs['noise/hidden1/scale'].shape, inputs['noise/hidden2/shift'].shape, inputs['noise/hidden2/shift'].dtype],
      [[16], [8], 1],
    );
    assert.deepEqual(mlp.noise, [
      { layer: 'hidden1', channels: 16 },
      { layer: 'hidden2', channels: 8 },
    ]);
    assert.deepEqual(Object.keys(mlp.signatures.eval.inputs), ['x', 'labels']);
    assert.deepEqual(Object.keys(mlp.signatures.batch_stats?.inputs ?? {}), ['x']);
    // Only the training step's pass is perturbed.
    const noiseOps = mlp.nodes.filter((n) => n.name.includes('/noise/')).map((n) => n.name);
    assert.ok(
      noiseOps.length > 0 && noiseOps.every((name) => name.startsWith('train/') || name.startsWith('grad/')),
      noiseOps.join(' '),
    );

    const cnn = compileConfig(cnnConfig({}), IMAGE, 3);
    assert.deepEqual(cnn.noise, [
      { layer: 'conv1', channels: 4 },
      { layer: 'conv2', channels: 4 },
    ]);
    assert.deepEqual(Object.keys(cnn.signatures.train_step.inputs).slice(3), [
      'noise/conv1/scale',
      'noise/conv1/shift',
      'noise/conv2/scale',
      'noise/conv2/shift',
    ]);
    // Without noise: no noise inputs, no `noise` field.
    const plain = compileConfig(mlpConfig({ batch_norm: noisy(0) }), [72], 3);
    assert.deepEqual(Object.keys(plain.signatures.train_step.inputs), ['x', 'labels', 'lr']);
    assert.equal('noise' in plain, false);
  });

  const CASES: [string, RunConfig][] = [
    ['mlp, noisy BN before, sgd, sigmoid', mlpConfig({ activation: 'sigmoid' })],
    ['mlp, noisy BN after, sgd, relu', mlpConfig({ norm_placement: 'after', activation: 'relu' })],
    ['mlp, noisy BN before, adam, tanh', mlpConfig({ activation: 'tanh' }, { optimizer: 'adam', lr: 0.01 })],
    // Adam's epsilon 1e-4 here: with the default 1e-7 the first step's gradient of one hidden1 kernel
    // entry is 5e-7 (the kernel's reach 0.42; a sum that nearly cancels), where the engines' float32
    // round-off differs by 0.7%, and Adam's first update lr g / (|g| + eps) turns that into 1.2e-5.
    [
      'mlp, noisy BN after, adam (epsilon 1e-4), sigmoid',
      mlpConfig(
        { norm_placement: 'after', activation: 'sigmoid' },
        { optimizer: 'adam', lr: 0.01, adam: { ...DEFAULT_CONFIG.train.adam, epsilon: 1e-4 } },
      ),
    ],
    [
      'mlp, noisy BN before, population statistics, momentum',
      mlpConfig(
        { activation: 'sigmoid', batch_norm: noisy(0.5, { inference: 'population', population_batches: 3 }) },
        { momentum: 0.9, lr: 0.1 },
      ),
    ],
    [
      'mlp, noisy BN after, population statistics, sgd, relu',
      mlpConfig({
        norm_placement: 'after',
        activation: 'relu',
        batch_norm: noisy(0.3, { inference: 'population', population_batches: 4 }),
      }),
    ],
    ['cnn, noisy BN before, sgd, relu', cnnConfig({})],
    [
      'cnn, noisy BN after, adam, relu, pool 1',
      cnnConfig(
        { norm_placement: 'after', cnn: { channels: [4, 4], kernel: 3, pool: 1, dense: [8] } },
        { optimizer: 'adam', lr: 0.01 },
      ),
    ],
    [
      'cnn, noisy BN before, population statistics, momentum',
      cnnConfig({ batch_norm: noisy(0.5, { inference: 'population', population_batches: 3 }) }, { momentum: 0.9 }),
    ],
  ];
  for (const [name, c] of CASES) {
    it(`gives the eager engine's metrics and weights within float32 round-off: ${name}`, async () => {
      const graph = await run(c, 'graph');
      const eager = await run(c, 'eager');
      assert.equal(graph.engine, 'graph');
      assert.equal(eager.engine, 'eager');
      const d = deviation(graph, eager);
      console.log(
        `# ${name}: max relative deviation graph vs eager: metrics ${d.metrics.toExponential(2)}, weights ${d.weights.toExponential(2)}`,
      );
      assert.ok(d.metrics <= TOLERANCE.metrics, `metrics deviate by ${d.metrics}`);
      assert.ok(d.weights <= TOLERANCE.weights, `weights deviate by ${d.weights}`);
    });
  }

  it('the noise changes training but not evaluation: a noise-free run differs; auto trains on the graph', async () => {
    const c = mlpConfig({ activation: 'sigmoid' });
    const withNoise = await run(c, 'auto');
    assert.equal(withNoise.engine, 'graph');
    const without = await run(mlpConfig({ activation: 'sigmoid', batch_norm: noisy(0) }), 'graph');
    assert.notDeepEqual(
      withNoise.rows.map((r) => r.train_loss),
      without.rows.map((r) => r.train_loss),
    );
    assert.ok((withNoise.rows.at(-1) as MetricsRow).train_loss < withNoise.rows[0].train_loss, 'it learned');
  });

  it('instruments on the model see the eager draws: activation_percentiles and eval_gap match the eager engine', async () => {
    const c = mlpConfig({ activation: 'tanh' }, { steps: 20 });
    c.instruments.activation_percentiles = { ...c.instruments.activation_percentiles, enabled: true, every: 3 };
    c.instruments.eval_gap = { ...c.instruments.eval_gap, enabled: true, every: 4 };
    const graph = await run(c, 'graph');
    const eager = await run(c, 'eager');
    assert.equal(graph.engine, 'graph');
    const d = deviation(graph, eager);
    console.log(`# with instruments: metrics ${d.metrics.toExponential(2)}, weights ${d.weights.toExponential(2)}`);
    assert.ok(d.metrics <= TOLERANCE.metrics && d.weights <= TOLERANCE.weights, JSON.stringify(d));
    let worst = 0;
    for (const name of ['activation_percentiles', 'eval_gap']) {
      const [a, b] = [eager.instruments.get(name) ?? [], graph.instruments.get(name) ?? []];
      assert.ok(a.length > 0);
      assert.equal(b.length, a.length);
      a.forEach((row, i) => {
        for (const [k, v] of Object.entries(row)) {
          if (typeof v === 'string' || k === 'step') assert.equal(b[i][k], v);
          else worst = Math.max(worst, Math.abs(Number(b[i][k]) - v) / (1 + Math.abs(v)));
        }
      });
    }
    console.log(`# with instruments: instrument values ${worst.toExponential(2)}`);
    assert.ok(worst < 1e-4, `instrument values deviate by ${worst}`);
  });

  it('leaks no tensors across a noisy run', async () => {
    const c = cnnConfig({}, { steps: 10 });
    await run(c, 'graph'); // warm-up
    const before = tf.memory().numTensors;
    await run(c, 'graph');
    assert.equal(tf.memory().numTensors, before);
  });
});
