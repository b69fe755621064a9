import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { createRequire } from 'node:module';
import { loadDataset, type Dataset } from '../src/data/index.js';
import { buildModel, type Mlp } from '../src/model/index.js';
import { configHash } from '../src/spec/expand.js';
import { DEFAULT_CONFIG } from '../src/spec/schema.js';
import type { ModelConfig, RunConfig, TrainConfig } from '../src/spec/types.js';
import type { MetricsRow } from '../src/store/metrics.js';
import { initBackend } from '../src/train/backend.js';
import { compileConfig, graphUnsupported } from '../src/train/graph/compile.js';
import { decodeSavedModel, encodeSavedModel, writeSavedModel } from '../src/train/graph/graph-def.js';
import { GraphEngine } from '../src/train/graph/engine.js';
import { chooseEngine } from '../src/train/engine.js';
import { deviation, trainOutcome } from './engine-compare.js';
import { bnx, tmpDir, TINY_SPEC, writeSpec } from './helpers.js';

/** A small synthetic task (the graph and eager engines both train it in well under a second). */
function config(model: Partial<ModelConfig>, trainCfg: Partial<TrainConfig> = {}): RunConfig {
  const c = structuredClone({ ...DEFAULT_CONFIG, name: 'graph' }) as RunConfig;
  c.seed = 7;
  c.data = {
    ...c.data,
    dataset: 'synthetic',
    val_size: 100,
    synthetic: { features: 12, classes: 3, train_size: 500, test_size: 150, noise: 0.5 },
  };
  c.model = { ...c.model, hidden: [16, 8], init: 'glorot_uniform', ...model } as ModelConfig;
  c.train = { ...c.train, lr: 0.3, batch_size: 20, steps: 60, eval_every: 20, log_every: 10, ...trainCfg };
  return c;
}

const run = (c: RunConfig, engine: 'graph' | 'eager') => trainOutcome(c, engine, data);

let data: Dataset;

/** Agreement of the two engines: float32 round-off (the graph uses TensorFlow's fused kernels, eager tf.js ops). */
const TOLERANCE = { metrics: 1e-5, weights: 1e-5 };

describe('graph engine', () => {
  before(async () => {
    await initBackend('tensorflow');
    data = loadDataset(config({}).data);
  });

  const CASES: [string, Partial<ModelConfig>, Partial<TrainConfig>][] = [
    ['none, sgd, sigmoid', { norm: 'none', activation: 'sigmoid' }, {}],
    ['none, momentum, relu', { norm: 'none', activation: 'relu' }, { momentum: 0.9, lr: 0.05 }],
    ['none, sgd, tanh', { norm: 'none', activation: 'tanh' }, {}],
    ['none, sgd, linear', { norm: 'none', activation: 'linear' }, { lr: 0.05 }],
    ['batch, sgd, sigmoid', { norm: 'batch', activation: 'sigmoid' }, {}],
    ['batch, momentum, sigmoid', { norm: 'batch', activation: 'sigmoid' }, { momentum: 0.9, lr: 0.1 }],
    [
      'batch, sgd, relu (autodiff asked: same math)',
      {
        norm: 'batch',
        activation: 'relu',
        batch_norm: { ...DEFAULT_CONFIG.model.batch_norm, gradient: 'autodiff', eps: 1e-5, momentum: 0.9 },
      },
      {},
    ],
    ['batch, momentum, tanh', { norm: 'batch', activation: 'tanh' }, { momentum: 0.5 }],
    [
      'batch, population statistics, sgd',
      {
        norm: 'batch',
        batch_norm: { ...DEFAULT_CONFIG.model.batch_norm, inference: 'population', population_batches: 5 },
      },
      {},
    ],
    ['batch after the activation, sgd, relu', { norm: 'batch', norm_placement: 'after', activation: 'relu' }, {}],
    [
      'batch after the activation, population statistics, momentum',
      {
        norm: 'batch',
        norm_placement: 'after',
        batch_norm: { ...DEFAULT_CONFIG.model.batch_norm, inference: 'population', population_batches: 3 },
      },
      { momentum: 0.9, lr: 0.1 },
    ],
    ['layer before, sgd, sigmoid', { norm: 'layer', activation: 'sigmoid' }, {}],
    [
      'layer after, momentum, tanh',
      { norm: 'layer', norm_placement: 'after', activation: 'tanh' },
      { momentum: 0.9, lr: 0.05 },
    ],
    ['layer before, sgd, relu', { norm: 'layer', activation: 'relu', layer_norm: { eps: 1e-3 } }, {}],
    // Groups of 8 features: with 2 per group (8 units, 4 groups) the layer is so ill-conditioned that
    // float32 round-off grows chaotically over the steps on either engine (one step agrees to 2e-7).
    [
      'group (3 groups) before, sgd, sigmoid',
      { norm: 'group', activation: 'sigmoid', hidden: [24, 24], group_norm: { groups: 3, eps: 1e-5 } },
      {},
    ],
    [
      'group (2 groups) after, momentum, tanh',
      {
        norm: 'group',
        norm_placement: 'after',
        activation: 'tanh',
        hidden: [16, 16],
        group_norm: { groups: 2, eps: 1e-3 },
      },
      { momentum: 0.9, lr: 0.05 },
    ],
    [
      'batch, population statistics, momentum',
      {
        norm: 'batch',
        batch_norm: { ...DEFAULT_CONFIG.model.batch_norm, inference: 'population', population_batches: 3 },
      },
      { momentum: 0.9, lr: 0.1 },
    ],
    ['none, adam, relu', { norm: 'none', activation: 'relu' }, { optimizer: 'adam', lr: 0.01 }],
    ['batch, adam, sigmoid', { norm: 'batch', activation: 'sigmoid' }, { optimizer: 'adam', lr: 0.01 }],
    [
      'layer after, adam (beta1 0.8, beta2 0.99, epsilon 1e-3), tanh',
      { norm: 'layer', norm_placement: 'after', activation: 'tanh' },
      { optimizer: 'adam', lr: 0.005, adam: { beta1: 0.8, beta2: 0.99, epsilon: 1e-3 } },
    ],
    // Dropout masks, weight decay, schedules and SELU (issue 17): the masks are drawn by the run's
    // seeded generator and fed to the graph, so both engines drop the same units.
    ['none, dropout 0.2, sgd, relu', { norm: 'none', activation: 'relu', dropout: 0.2 }, { lr: 0.1 }],
    ['batch, dropout 0.3, momentum, sigmoid', { norm: 'batch', dropout: 0.3 }, { momentum: 0.9, lr: 0.1 }],
    [
      'batch after the activation, dropout 0.2, adam, relu',
      { norm: 'batch', norm_placement: 'after', activation: 'relu', dropout: 0.2 },
      { optimizer: 'adam', lr: 0.01 },
    ],
    ['none, weight decay 0.01, sgd, sigmoid', { norm: 'none' }, { weight_decay: 0.01 }],
    [
      'batch, weight decay 0.01, momentum, tanh',
      { norm: 'batch', activation: 'tanh' },
      { weight_decay: 0.01, momentum: 0.9, lr: 0.05 },
    ],
    [
      'layer, weight decay 0.001, adam, relu',
      { norm: 'layer', activation: 'relu' },
      { weight_decay: 0.001, optimizer: 'adam', lr: 0.01 },
    ],
    [
      'batch, step schedule (every 15, factor 0.5) with 10 warmup steps, sgd',
      { norm: 'batch' },
      { schedule: { kind: 'step', every: 15, factor: 0.5, min_lr: 0, warmup_steps: 10 } },
    ],
    [
      'none, exponential schedule, momentum',
      { norm: 'none' },
      { momentum: 0.9, lr: 0.1, schedule: { kind: 'exponential', every: 20, factor: 0.3, min_lr: 0, warmup_steps: 0 } },
    ],
    [
      'batch, cosine schedule to 0.01, adam',
      { norm: 'batch' },
      {
        optimizer: 'adam',
        lr: 0.01,
        schedule: { kind: 'cosine', every: 1000, factor: 0.1, min_lr: 0.001, warmup_steps: 5 },
      },
    ],
    ['none, selu, lecun_normal, sgd', { norm: 'none', activation: 'selu', init: 'lecun_normal' }, { lr: 0.05 }],
    [
      'none, selu, lecun_normal, alpha dropout 0.1, sgd',
      { norm: 'none', activation: 'selu', init: 'lecun_normal', dropout: 0.1 },
      { lr: 0.05 },
    ],
    [
      'batch, selu, alpha dropout 0.2, weight decay, step schedule, momentum (all at once)',
      { norm: 'batch', activation: 'selu', init: 'lecun_normal', dropout: 0.2 },
      {
        momentum: 0.9,
        lr: 0.05,
        weight_decay: 0.001,
        schedule: { kind: 'step', every: 20, factor: 0.5, min_lr: 0, warmup_steps: 0 },
      },
    ],
  ];
  for (const [name, model, t] of CASES) {
    it(`gives the eager engine's metrics and weights within float32 round-off: ${name}`, async () => {
      const c = config(model, t);
      const graph = await run(c, 'graph');
      const eager = await run(c, 'eager');
      assert.equal(graph.engine, 'graph');
      assert.equal(eager.engine, 'eager');
      assert.equal(graph.result.engine, 'graph');
      const d = deviation(graph, eager);
      console.log(
        `# ${name}: max relative deviation graph vs eager: metrics ${d.metrics.toExponential(2)}, weights ${d.weights.toExponential(2)}`,
      );
      assert.ok(d.metrics <= TOLERANCE.metrics, `metrics deviate by ${d.metrics}`);
      assert.ok(d.weights <= TOLERANCE.weights, `weights deviate by ${d.weights}`);
      // It learned: the last training loss is below the first.
      assert.ok((graph.rows.at(-1) as MetricsRow).train_loss < graph.rows[0].train_loss);
    });
  }

  it('population statistics: ema and population runs train identically (same train_loss) and validate differently', async () => {
    const ema = await run(config({ norm: 'batch' }), 'graph');
    const pop = await run(
      config({
        norm: 'batch',
        batch_norm: { ...DEFAULT_CONFIG.model.batch_norm, inference: 'population', population_batches: 4 },
      }),
      'graph',
    );
    assert.deepEqual(
      pop.rows.map((r) => r.train_loss),
      ema.rows.map((r) => r.train_loss),
    );
    assert.notDeepEqual(
      pop.rows.map((r) => r.val_loss),
      ema.rows.map((r) => r.val_loss),
    );
  });

  it('is deterministic: the same config gives identical metrics and weights', async () => {
    const c = config({ norm: 'batch' }, { momentum: 0.9, lr: 0.1 });
    const a = await run(c, 'graph');
    const b = await run(c, 'graph');
    assert.deepEqual(a.rows, b.rows);
    assert.deepEqual(a.weights, b.weights);
  });

  it('removes its temporary SavedModel folder, and those of killed bnx processes', async () => {
    const dead = spawnSync(process.execPath, ['-e', '0']).pid as number;
    const stale = path.join(os.tmpdir(), `bnx-graph-${dead}-stale0`);
    fs.mkdirSync(stale, { recursive: true });
    const mine = () => fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith(`bnx-graph-${process.pid}-`));
    await run(config({ norm: 'none' }), 'graph');
    assert.equal(fs.existsSync(stale), false);
    assert.deepEqual(mine(), []);
  });

  it('init zeroes the optimizer state: Adam restarted from the same weights repeats its steps exactly', async () => {
    const c = config({ norm: 'batch' }, { optimizer: 'adam', lr: 0.01 });
    const model = buildModel(c.model, data.inputShape, data.classes, c.seed) as Mlp;
    const engine = await GraphEngine.create([{ config: c, model }], data);
    const n = c.train.batch_size;
    const losses = () =>
      Array.from(
        { length: 5 },
        (_, k) =>
          engine.step(
            [
              {
                x: data.train.x.subarray(k * n * data.features, (k + 1) * n * data.features),
                y: data.train.y.subarray(k * n, (k + 1) * n),
              },
            ],
            [{ lr: c.train.lr, dropout: new Map() }],
          )[0].loss,
      );
    try {
      const first = losses();
      engine.assign(); // the model still holds the initial weights: the graph trained its own copies
      assert.deepEqual(losses(), first);
      assert.ok(first[4] < first[0]);
    } finally {
      engine.dispose();
      model.dispose();
    }
  });

  it('leaks no tensors across a run', async () => {
    const c = config({ norm: 'batch' });
    await run(c, 'graph'); // warm-up
    const before = tf.memory().numTensors;
    await run(c, 'graph');
    assert.equal(tf.memory().numTensors, before);
  });

  it('chooses the engine: graph where covered, else eager with one line why; graph asked on an uncovered run fails', () => {
    assert.deepEqual(chooseEngine(config({ norm: 'batch' })), { kind: 'graph', note: null });
    assert.deepEqual(chooseEngine(config({ norm: 'layer', norm_placement: 'after' })), { kind: 'graph', note: null });
    assert.deepEqual(chooseEngine(config({ norm: 'group' })), { kind: 'graph', note: null });
    const ics = config({ norm: 'batch' });
    ics.instruments.ics = { ...ics.instruments.ics, enabled: true };
    assert.equal(chooseEngine(ics).note, 'engine: eager (graph engine does not cover instruments.ics yet)');
    const pop = config({ norm: 'batch', batch_norm: { ...DEFAULT_CONFIG.model.batch_norm, inference: 'population' } });
    assert.deepEqual(chooseEngine(pop), { kind: 'graph', note: null });
    assert.equal(graphUnsupported(config({ norm: 'batch', norm_placement: 'after' })), null);
    assert.equal(graphUnsupported(config({ arch: 'cnn' })), null);
    const eager = config({ norm: 'none' }, { engine: 'eager' });
    assert.deepEqual(chooseEngine(eager), { kind: 'eager', note: null });
    assert.throws(
      () => chooseEngine({ ...ics, train: { ...ics.train, engine: 'graph' } }),
      /train\.engine=graph: the graph engine does not cover instruments\.ics yet/,
    );
  });

  it('train.engine: auto leaves run ids as before the key existed; graph and eager are new runs', () => {
    const auto = config({ norm: 'batch' });
    const without = structuredClone(auto) as unknown as { train: Record<string, unknown> };
    delete without.train.engine;
    assert.equal(configHash(auto), configHash(without as unknown as RunConfig));
    const hashes = new Set(
      (['auto', 'graph', 'eager'] as const).map((engine) => configHash({ ...auto, train: { ...auto.train, engine } })),
    );
    assert.equal(hashes.size, 3);
  });

  it('writes a SavedModel that TensorFlow.js reads back: tag serve, the four signatures, the variables', async () => {
    const c = config({ norm: 'batch' }, { momentum: 0.9 });
    const graph = compileConfig(c, [12], 3);
    const decoded = decodeSavedModel(encodeSavedModel(graph.nodes, graph.signatures)) as {
      metaGraphs: { metaInfoDef: { tags: string[] }; signatureDef: Record<string, unknown> }[];
    };
    assert.deepEqual(decoded.metaGraphs[0].metaInfoDef.tags, ['serve']);
    assert.deepEqual(Object.keys(decoded.metaGraphs[0].signatureDef).sort(), ['eval', 'init', 'read', 'train_step']);
    // tfjs-node's own (google-protobuf) reader of saved_model.pb.
    const dir = tmpDir('bnx-graph-test-');
    writeSavedModel(dir, graph.nodes, graph.signatures);
    const tfn = createRequire(import.meta.url)('@tensorflow/tfjs-node') as {
      node: {
        getMetaGraphsFromSavedModel(p: string): Promise<
          {
            tags: string[];
            signatureDefs: Record<
              string,
              {
                inputs: Record<string, { dtype: string; shape: { getSize(): number }[] }>;
                outputs: Record<string, unknown>;
              }
            >;
          }[]
        >;
      };
    };
    const metas = await tfn.node.getMetaGraphsFromSavedModel(dir);
    assert.deepEqual(metas[0].tags, ['serve']);
    const step = metas[0].signatureDefs.train_step;
    assert.deepEqual(Object.keys(step.inputs).sort(), ['labels', 'lr', 'x']);
    assert.equal(step.inputs.labels.dtype, 'int32');
    assert.deepEqual(
      step.inputs.x.shape.map((d) => d.getSize()),
      [-1, 12],
    );
    assert.deepEqual(
      Object.keys(metas[0].signatureDefs.read.outputs).sort(),
      graph.variables.map((v) => v.name).sort(),
    );
    assert.ok(fs.statSync(path.join(dir, 'variables')).isDirectory());
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('bnx run records the engine in run.json and says why a run falls back to eager', () => {
    const dir = tmpDir();
    const spec = writeSpec(dir, TINY_SPEC);
    const res = bnx([
      'run',
      spec,
      '--out',
      dir,
      '--set',
      'model.norm=batch',
      '--set',
      'instruments.ics.enabled=false,true',
    ]);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /\n {2}engine: eager \(graph engine does not cover instruments\.ics yet\)\n/);
    assert.equal(res.stdout.match(/engine:/g)?.length, 1);
    const records = fs
      .readdirSync(path.join(dir, 'tiny'), { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map(
        (e) =>
          JSON.parse(fs.readFileSync(path.join(dir, 'tiny', e.name, 'run.json'), 'utf8')) as {
            params: { 'instruments.ics.enabled': boolean };
            engine: string;
            status: string;
          },
      );
    assert.deepEqual(records.map((r) => [r.params['instruments.ics.enabled'], r.engine, r.status]).sort(), [
      [false, 'graph', 'completed'],
      [true, 'eager', 'completed'],
    ]);
    // The graph run's weights export like an eager run's.
    const batchDir = fs.readdirSync(path.join(dir, 'tiny')).find((n) => n.startsWith('enabled=false_')) as string;
    const exp = bnx(['export', path.join(dir, 'tiny', batchDir)]);
    assert.equal(exp.code, 0, exp.stderr);
    assert.match(exp.stdout, /1 batch norm\(s\) folded/);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
