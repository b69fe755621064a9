import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { EpochBatcher, loadDataset, type Dataset } from '../src/data/index.js';
import {
  disposeFolded,
  foldMlp,
  foldedForward,
  loadWeights,
  Mlp,
  saveWeights,
  toLayersModel,
  type FoldedNetwork,
} from '../src/model/index.js';
import { DEFAULT_CONFIG } from '../src/spec/schema.js';
import type { ModelConfig, RunConfig } from '../src/spec/types.js';
import { initBackend } from '../src/train/backend.js';
import { PopulationStatistics, populationSeed } from '../src/train/evaluate.js';
import { train } from '../src/train/loop.js';
import { bnx, tmpDir, TINY_SPEC, writeSpec } from './helpers.js';

/** A small synthetic task: trains in well under a second. */
function tinyConfig(model: Partial<ModelConfig> & Record<string, unknown> = {}): RunConfig {
  const c = structuredClone({ ...DEFAULT_CONFIG, name: 'norm-model' }) as RunConfig;
  c.seed = 5;
  c.data = {
    ...c.data,
    dataset: 'synthetic',
    val_size: 100,
    synthetic: { features: 12, classes: 3, train_size: 500, test_size: 150, noise: 0.5 },
  };
  c.model = { ...c.model, hidden: [16, 8], activation: 'tanh', init: 'glorot_uniform', ...model } as ModelConfig;
  c.train = { ...c.train, lr: 0.5, batch_size: 20, steps: 40, eval_every: 20, log_every: 10 };
  return c;
}

const VARIANTS: [string, Partial<ModelConfig> & Record<string, unknown>][] = [
  ['none', { norm: 'none' }],
  ['batch before (ema)', { norm: 'batch' }],
  [
    'batch before (population)',
    {
      norm: 'batch',
      batch_norm: { ...DEFAULT_CONFIG.model.batch_norm, inference: 'population', population_batches: 5 },
    },
  ],
  ['batch after', { norm: 'batch', norm_placement: 'after' }],
  [
    'batch after (population, autodiff)',
    {
      norm: 'batch',
      norm_placement: 'after',
      batch_norm: {
        ...DEFAULT_CONFIG.model.batch_norm,
        inference: 'population',
        population_batches: 3,
        gradient: 'autodiff',
      },
    },
  ],
  ['layer before', { norm: 'layer' }],
  ['layer after', { norm: 'layer', norm_placement: 'after' }],
  ['group, 1 group', { norm: 'group', group_norm: { groups: 1, eps: 1e-5 } }],
  ['weight', { norm: 'weight' }],
  ['weight + mean-only BN', { norm: 'weight', weight_norm: { mean_only_bn: true } }],
];

let data: Dataset;

describe('models with each normalization: training, saved weights, folding', () => {
  before(async () => {
    await initBackend('tensorflow');
    data = loadDataset(tinyConfig().data);
  });

  for (const [label, model] of VARIANTS) {
    it(`${label}: trains without leaking tensors; saved weights reload; folded = unfolded`, async () => {
      const config = tinyConfig(model);
      const dir = tmpDir('bnx-norm-model-');
      const before = tf.memory().numTensors;
      const result = await train(config, data, { onTrained: (m) => saveWeights(m, dir) });
      assert.equal(tf.memory().numTensors, before, 'tensors leaked by training');
      assert.ok(
        Number.isFinite(result.final.train_loss) && result.test.acc > 0.5,
        `trained: ${JSON.stringify(result)}`,
      );

      const m = new Mlp(config.model, data.features, data.classes, 99); // another seed: every value must come from the file
      loadWeights(m, dir);
      const x = tf.tensor2d(data.test.x, [data.test.n, data.features]);
      const net: FoldedNetwork = foldMlp(m);
      const unfolded = tf.tidy(() => m.forward(x, false));
      const correct = tf.tidy(
        () =>
          tf.sum(tf.cast(tf.equal(tf.argMax(unfolded, 1), tf.tensor1d(data.test.y, 'int32')), 'float32')).dataSync()[0],
      );
      assert.ok(
        Math.abs(correct / data.test.n - result.test.acc) < 1e-9,
        'reloaded model reproduces the test accuracy',
      );
      const folded = foldedForward(net, x);
      const layersModel = toLayersModel(net);
      const viaLayers = tf.tidy(() => layersModel.predict(x) as tf.Tensor);
      const diff = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
      assert.ok(diff(unfolded, folded) < 1e-5, `folded ops differ by ${diff(unfolded, folded)}`);
      assert.ok(diff(unfolded, viaLayers) < 1e-5, `layers model differs by ${diff(unfolded, viaLayers)}`);
      const expectFolded =
        config.model.norm === 'batch'
          ? 2
          : config.model.norm === 'weight' && config.model.weight_norm.mean_only_bn
            ? 2
            : 0;
      assert.equal(net.folded, expectFolded);
      tf.dispose([x, unfolded, folded, viaLayers]);
      layersModel.dispose();
      disposeFolded(net);
      m.dispose();
      fs.rmSync(dir, { recursive: true });
    });
  }

  it('ema and population inference train identically and evaluate differently', async () => {
    const rows = async (inference: 'ema' | 'population') => {
      const out: { train: number; val: number | null }[] = [];
      const bn = { ...DEFAULT_CONFIG.model.batch_norm, inference, population_batches: 10 };
      await train(tinyConfig({ norm: 'batch', batch_norm: bn }), data, {
        onRow: (r) => out.push({ train: r.train_loss, val: r.val_loss }),
      });
      return out;
    };
    const ema = await rows('ema');
    const pop = await rows('population');
    assert.deepEqual(
      ema.map((r) => r.train),
      pop.map((r) => r.train),
      'the same training trajectory',
    );
    const vals = (rs: typeof ema) => rs.filter((r) => r.val !== null).map((r) => r.val);
    assert.notDeepEqual(vals(ema), vals(pop));
  });

  it('population statistics: mean of batch means and m/(m-1) x mean of batch variances, computed from the network', () => {
    const config = tinyConfig({
      norm: 'batch',
      hidden: [6],
      batch_norm: { ...DEFAULT_CONFIG.model.batch_norm, inference: 'population' },
    });
    const m = new Mlp(config.model, data.features, data.classes, 1);
    const layer = m.hidden[0];
    const pop = new PopulationStatistics(m, data.train, data.features, 20, 4, 3);
    pop.estimate(1);
    // The same four batches, by hand: the pre-BN activations x W of each, their mean and biased variance.
    const batcher = new EpochBatcher(data.train.n, 20, populationSeed(3));
    const sums = { mean: new Float64Array(6), variance: new Float64Array(6) };
    for (let b = 0; b < 4; b++) {
      const { indices, start } = batcher.next();
      const rows = Array.from(indices.subarray(start, start + 20));
      const z = tf.tidy(() =>
        layer.dense.apply(tf.gather(tf.tensor2d(data.train.x, [data.train.n, data.features]), rows)).arraySync(),
      );
      for (let c = 0; c < 6; c++) {
        const col = z.map((r) => r[c]);
        const mu = col.reduce((a, v) => a + v, 0) / 20;
        sums.mean[c] += mu / 4;
        sums.variance[c] += ((col.reduce((a, v) => a + (v - mu) ** 2, 0) / 20) * (20 / 19)) / 4;
      }
    }
    const bn = layer.norm as unknown as { movingMean: tf.Variable; movingVar: tf.Variable };
    const [mean, variance] = [bn.movingMean.dataSync(), bn.movingVar.dataSync()];
    for (let c = 0; c < 6; c++) {
      assert.ok(Math.abs(mean[c] - sums.mean[c]) < 1e-4 * Math.max(1, Math.abs(sums.mean[c])), `mean[${c}]`);
      assert.ok(Math.abs(variance[c] - sums.variance[c]) < 1e-4 * Math.max(1, sums.variance[c]), `variance[${c}]`);
    }
    m.dispose();
  });

  it('group norm with several groups and models without weights are refused by export with a reason', () => {
    const m = new Mlp(tinyConfig({ norm: 'group', group_norm: { groups: 2, eps: 1e-5 } }).model, 12, 3, 1);
    assert.throws(() => foldMlp(m), /cannot export group norm with 2 groups/);
    m.dispose();
  });
});

describe('spec keys of the normalization layers', () => {
  const plan = (extra: string) => bnx(['plan', writeSpec(tmpDir(), `${TINY_SPEC}${extra}`)]);
  it('accepts every model.norm and its options', () => {
    const res = bnx([
      'plan',
      writeSpec(tmpDir(), TINY_SPEC),
      '--set',
      'model.norm=none,batch,layer,group,weight',
      '--set',
      'model.group_norm.groups=2',
      '--set',
      'model.batch_norm.inference=ema,population',
    ]);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /10 run\(s\)/);
  });
  it('rejects instance norm on an mlp and groups that do not divide the widths, naming the key', () => {
    let res = plan('grid:\n  model.norm: [instance]\n');
    assert.equal(res.code, 2);
    assert.match(res.stderr, /spec\.yaml:\d+:\d+: instance norm normalizes each channel over spatial positions/);
    res = bnx([
      'plan',
      writeSpec(tmpDir(), TINY_SPEC),
      '--set',
      'model.norm=group',
      '--set',
      'model.group_norm.groups=3',
    ]);
    assert.equal(res.code, 2);
    assert.match(res.stderr, /--set model\.group_norm\.groups: .*3 does not divide 16/);
    res = bnx(['plan', writeSpec(tmpDir(), TINY_SPEC), '--set', 'model.batch_norm.inference=median']);
    assert.match(res.stderr, /model\.batch_norm\.inference is "median"; allowed: ema, population/);
  });
});

describe('bnx export', () => {
  it('exports a BN run: folded and unfolded agree within 1e-4; refuses a folder that is not a run', () => {
    const dir = tmpDir('bnx-export-');
    const spec = writeSpec(dir, `${TINY_SPEC}grid:\n  model.norm: [batch]\n`);
    const run = bnx(['run', spec, '--out', path.join(dir, 'results')]);
    assert.equal(run.code, 0, run.stderr);
    const runDir = path.join(
      dir,
      'results',
      'tiny',
      fs.readdirSync(path.join(dir, 'results', 'tiny')).find((d) => d.startsWith('norm=batch')) as string,
    );
    const res = bnx(['export', runDir, '--rounds', '2', '--json']);
    assert.equal(res.code, 0, res.stderr);
    const report = JSON.parse(res.stdout) as {
      ok: boolean;
      max_abs_logit_diff: number;
      folded_batch_norms: number;
      timing: unknown[];
    };
    assert.ok(report.ok && report.max_abs_logit_diff < 1e-4);
    assert.equal(report.folded_batch_norms, 1);
    assert.equal(report.timing.length, 2);
    for (const f of ['model.json', 'weights.bin', 'export.json'])
      assert.ok(fs.existsSync(path.join(runDir, 'export', f)), f);
    const bad = bnx(['export', dir]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /not a run folder/);
  });
});
