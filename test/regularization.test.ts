import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { loadDataset, type Dataset } from '../src/data/index.js';
import { drawDropout, SELU_ALPHA, SELU_LAMBDA } from '../src/layers/dropout.js';
import { buildModel, modelPlan } from '../src/model/index.js';
import { DropoutSampler } from '../src/model/dropout.js';
import { configHash } from '../src/spec/expand.js';
import { DEFAULT_CONFIG } from '../src/spec/schema.js';
import type { ModelConfig, RunConfig, TrainConfig } from '../src/spec/types.js';
import { initBackend } from '../src/train/backend.js';
import { learningRate } from '../src/train/schedule.js';
import { Rng } from '../src/util/rng.js';
import { trainOutcome } from './engine-compare.js';
import { bnx, tmpDir } from './helpers.js';
import { checkGradients, randomTensor } from './norm-helpers.js';

function config(model: Partial<ModelConfig>, trainCfg: Partial<TrainConfig> = {}): RunConfig {
  const c = structuredClone({ ...DEFAULT_CONFIG, name: 'regularization' }) as RunConfig;
  c.seed = 3;
  c.data = {
    ...c.data,
    dataset: 'synthetic',
    val_size: 50,
    synthetic: { features: 10, classes: 3, train_size: 300, test_size: 60, noise: 0.5 },
  };
  c.model = { ...c.model, hidden: [12, 8], init: 'glorot_uniform', ...model } as ModelConfig;
  c.train = { ...c.train, lr: 0.2, batch_size: 16, steps: 20, eval_every: 10, log_every: 5, ...trainCfg };
  return c;
}

const schedule = (s: Partial<TrainConfig['schedule']>): TrainConfig =>
  ({ ...DEFAULT_CONFIG.train, lr: 1, schedule: { ...DEFAULT_CONFIG.train.schedule, ...s } }) as TrainConfig;

describe('learning-rate schedules, dropout, weight decay, SELU', () => {
  let data: Dataset;
  before(async () => {
    await initBackend('tensorflow');
    data = loadDataset(config({}).data);
  });

  it('train.schedule: step, exponential, cosine and linear warm-up give the documented rates', () => {
    const step = schedule({ kind: 'step', every: 100, factor: 0.5 });
    assert.deepEqual(
      [1, 100, 101, 200, 201, 301].map((s) => learningRate(step, s, 400)),
      [1, 1, 0.5, 0.5, 0.25, 0.125],
    );
    const exp = schedule({ kind: 'exponential', every: 10, factor: 0.1 });
    assert.equal(learningRate(exp, 1, 100), 1);
    assert.ok(Math.abs(learningRate(exp, 11, 100) - 0.1) < 1e-15);
    assert.ok(Math.abs(learningRate(exp, 6, 100) - Math.sqrt(0.1)) < 1e-15);
    const cos = schedule({ kind: 'cosine', min_lr: 0.1 });
    assert.equal(learningRate(cos, 1, 100), 1);
    assert.ok(Math.abs(learningRate(cos, 51, 100) - 0.55) < 1e-12);
    assert.ok(learningRate(cos, 100, 100) < 0.1 + 1e-3);
    const warm = schedule({ kind: 'step', every: 10, factor: 0.5, warmup_steps: 4 });
    assert.deepEqual(
      [1, 2, 4, 5, 14, 15].map((s) => learningRate(warm, s, 50)),
      [0.25, 0.5, 1, 1, 1, 0.5],
    );
    assert.equal(learningRate(schedule({}), 77, 100), 1);
  });

  it('dropout draws: inverted dropout keeps the expectation; alpha dropout keeps mean 0 and variance 1', () => {
    const rng = new Rng(11);
    const n = 200_000;
    const p = 0.2;
    const d = drawDropout(rng, n, p, false);
    const kept = d.scale.filter((s) => s > 0).length / n;
    assert.ok(Math.abs(kept - (1 - p)) < 0.005, `kept ${kept}`);
    assert.ok(Math.abs(d.scale.reduce((a, b) => a + b, 0) / n - 1) < 0.01);
    // Alpha dropout on standard-normal inputs through SELU (the self-normalizing fixed point).
    const a = drawDropout(rng, n, 0.1, true);
    const x = Array.from({ length: n }, () => {
      const z = rng.normal();
      return SELU_LAMBDA * (z > 0 ? z : SELU_ALPHA * (Math.exp(z) - 1));
    });
    const y = x.map((v, i) => v * a.scale[i] + (a.shift as Float32Array)[i]);
    const mean = y.reduce((s, v) => s + v, 0) / n;
    const variance = y.reduce((s, v) => s + (v - mean) ** 2, 0) / n;
    assert.ok(Math.abs(mean) < 0.02, `mean ${mean}`);
    assert.ok(Math.abs(variance - 1) < 0.03, `variance ${variance}`);
  });

  for (const [name, model] of [
    // Smooth activations around the norms: a finite difference across relu's or selu's kink at 0
    // measures the kink, not the gradient.
    ['sigmoid, BN, dropout', { norm: 'batch', activation: 'sigmoid', dropout: 0.3 }],
    [
      'tanh, BN after the activation, dropout',
      { norm: 'batch', norm_placement: 'after', activation: 'tanh', dropout: 0.3 },
    ],
    ['selu, lecun_normal, alpha dropout', { norm: 'none', activation: 'selu', init: 'lecun_normal', dropout: 0.2 }],
  ] as [string, Partial<ModelConfig>][]) {
    it(`the network's gradients with dropout match central finite differences: ${name}`, () => {
      const c = config(model);
      const net = buildModel(c.model, [10], 3, 5);
      const sampler = new DropoutSampler(modelPlan(c.model, [10], 3), 9);
      const draws = sampler.next(16);
      assert.equal(draws.size, 2);
      const x = randomTensor([16, 10], new Rng(4));
      const worst = checkGradients((xx) => net.forward(xx as tf.Tensor2D, true, undefined, draws), x, net.trainable, 8);
      console.log(`# ${name}: largest |finite difference - gradient| ${worst.toExponential(2)}`);
      x.dispose();
      net.dispose();
    });
  }

  for (const engine of ['graph', 'eager'] as const) {
    it(`weight decay is coupled L2 on kernels only (${engine}): one SGD step moves a kernel by -lr*lambda*w more, and gamma, beta and biases not at all`, async () => {
      const lr = 0.2;
      const lambda = 0.05;
      const c = config({ norm: 'batch', norm_placement: 'after' }, { steps: 1, eval_every: 1, log_every: 1 });
      const init = buildModel(c.model, [10], 3, c.seed);
      const w0 = new Map([...init.namedWeights].map(([k, v]) => [k, (v.dataSync() as Float32Array).slice()]));
      init.dispose();
      const plain = await trainOutcome(c, engine, data);
      const decayed = await trainOutcome({ ...c, train: { ...c.train, weight_decay: lambda } }, engine, data);
      let kernels = 0;
      for (const [k, w] of plain.weights) {
        const d = decayed.weights.get(k) as Float32Array;
        const before = w0.get(k) as Float32Array;
        const isKernel = /\/kernel$/.test(k);
        if (isKernel) kernels++;
        for (let i = 0; i < w.length; i++) {
          const expected = isKernel ? -lr * lambda * before[i] : 0;
          assert.ok(Math.abs(d[i] - w[i] - expected) < 1e-6, `${k}[${i}]: ${d[i] - w[i]} vs ${expected}`);
        }
      }
      assert.equal(kernels, 3);
    });
  }

  it('model.dropout, train.weight_decay and train.schedule at their defaults leave run ids as before they existed', () => {
    // The self-experiment's ids, as issue 13 measured them before these keys existed.
    const plan = bnx([
      'plan',
      'experiments/self-experiment.yaml',
      '--set',
      'model.dropout=0',
      '--set',
      'train.weight_decay=0',
    ]);
    assert.equal(plan.code, 0, plan.stderr);
    assert.match(plan.stdout, /_1bae4a26\b/);
    assert.match(plan.stdout, /_5a210f88\b/);
    const c = config({});
    assert.notEqual(configHash(config({ dropout: 0.1 })), configHash(c));
    assert.notEqual(configHash(config({}, { weight_decay: 1e-4 })), configHash(c));
    const schedule = { ...c.train.schedule, kind: 'cosine' as const };
    assert.notEqual(configHash(config({}, { schedule })), configHash(c));
  });

  it('bnx run: the lr column halves every 100 steps, a second run gives the same bytes, nonsense is refused', () => {
    const out = tmpDir();
    const args = [
      'run',
      'experiments/quick.yaml',
      ...['model.activation=selu', 'model.init=lecun_normal', 'model.dropout=0.1', 'train.weight_decay=0.0001'],
      ...['train.schedule.kind=step', 'train.schedule.every=100', 'train.schedule.factor=0.5', 'model.norm=batch'],
    ].flatMap((a, i) => (i >= 2 ? ['--set', a] : [a]));
    const first = bnx([...args, '--out', path.join(out, 'a')]);
    assert.equal(first.code, 0, first.stderr);
    const second = bnx([...args, '--out', path.join(out, 'b')]);
    assert.equal(second.code, 0, second.stderr);
    const [run] = fs
      .readdirSync(path.join(out, 'a', 'quick'))
      .filter((f) => fs.existsSync(path.join(out, 'a', 'quick', f, 'metrics.csv')));
    const csv = (root: string) => fs.readFileSync(path.join(out, root, 'quick', run, 'metrics.csv'), 'utf8');
    assert.equal(csv('a'), csv('b'));
    const rows = csv('a')
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => l.split(','));
    assert.deepEqual(
      rows.map((r) => [Number(r[0]), Number(r.at(-1))]),
      [50, 100, 150, 200, 250, 300].map((s) => [s, 0.5 * 0.5 ** Math.floor((s - 1) / 100)]),
    );
    const record = JSON.parse(fs.readFileSync(path.join(out, 'a', 'quick', run, 'run.json'), 'utf8'));
    assert.equal(record.engine, 'graph');
    const refused = bnx([
      'run',
      'experiments/quick.yaml',
      '--set',
      'model.hidden=[]',
      '--set',
      'model.dropout=0.1',
      '--out',
      out,
    ]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /model\.dropout/);
    for (const [set, message] of [
      ['train.schedule.kind=cosine,train.schedule.min_lr=0.5', /train\.schedule\.min_lr is 0\.5, must be < train\.lr/],
      ['train.schedule.warmup_steps=300', /train\.schedule\.warmup_steps is 300, must be < train\.steps/],
    ] as const) {
      const args = set.split(',').flatMap((a) => ['--set', a]);
      const r = bnx(['plan', 'experiments/quick.yaml', ...args]);
      assert.equal(r.code, 2, set);
      assert.match(r.stderr, message);
    }
    const bad = bnx(['run', 'experiments/quick.yaml', '--set', 'train.schedule.kind=linear', '--out', out]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /train\.schedule\.kind.*constant/);
  });
});
