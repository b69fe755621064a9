import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { loadDataset, writeCifarBatch, CIFAR10_FILES, type Dataset } from '../src/data/index.js';
import { InputError } from '../src/util/errors.js';
import { exportRun } from '../src/analyze/export.js';
import { Conv2D } from '../src/layers/index.js';
import { Cnn, loadWeights, saveWeights } from '../src/model/index.js';
import { Rng } from '../src/util/rng.js';
import { DEFAULT_CONFIG } from '../src/spec/schema.js';
import type { ModelConfig, RunConfig } from '../src/spec/types.js';
import { initBackend } from '../src/train/backend.js';
import { train } from '../src/train/loop.js';
import { bnx, quadrantImages, tmpDir, writeFashionQuadrants, writeSpec } from './helpers.js';

function writeCifarQuadrants(dir: string): void {
  const rng = new Rng(8);
  for (const name of [...CIFAR10_FILES.train, CIFAR10_FILES.test]) {
    const { x, y } = quadrantImages(40, 32, 3, rng);
    writeCifarBatch(path.join(dir, name), x, y);
  }
}

function cnnConfig(dataDir: string, model: Partial<ModelConfig> & Record<string, unknown> = {}): RunConfig {
  const c = structuredClone({ ...DEFAULT_CONFIG, name: 'cnn' }) as RunConfig;
  c.seed = 3;
  c.data = { ...c.data, dataset: 'fashion_mnist', path: dataDir, val_size: 100 };
  c.model = {
    ...c.model,
    arch: 'cnn',
    activation: 'relu',
    init: 'he_normal',
    cnn: { channels: [4, 8], kernel: 3, pool: 2, dense: [16] },
    ...model,
  } as ModelConfig;
  // Plain SGD: tf.train.momentum leaks one scalar per optimizer (a TensorFlow.js quirk), which would hide a model leak.
  c.train = { ...c.train, lr: 0.1, momentum: 0, batch_size: 20, steps: 40, eval_every: 20, log_every: 10 };
  return c;
}

const bn = DEFAULT_CONFIG.model.batch_norm;
const VARIANTS: [string, Partial<ModelConfig> & Record<string, unknown>][] = [
  ['none', { norm: 'none' }],
  ['batch before', { norm: 'batch' }],
  ['batch after', { norm: 'batch', norm_placement: 'after' }],
  [
    'batch before, population statistics',
    { norm: 'batch', batch_norm: { ...bn, inference: 'population', population_batches: 3 } },
  ],
  ['layer', { norm: 'layer' }],
  ['group (2 groups)', { norm: 'group', group_norm: { groups: 2, eps: 1e-5 } }],
  ['instance', { norm: 'instance' }],
  ['weight', { norm: 'weight' }],
  ['weight + mean-only BN', { norm: 'weight', weight_norm: { mean_only_bn: true } }],
];

let fashionDir = '';
let data: Dataset;

describe('cnn: conv-norm-activation blocks, pooling, a dense head', () => {
  before(async () => {
    await initBackend('tensorflow');
    fashionDir = tmpDir('bnx-cnn-fashion-');
    writeFashionQuadrants(fashionDir);
    data = loadDataset(cnnConfig(fashionDir).data);
  });

  for (const [label, model] of VARIANTS) {
    it(`${label}: trains on images without leaking tensors; saved weights reload`, async () => {
      const config = cnnConfig(fashionDir, model);
      const dir = tmpDir('bnx-cnn-w-');
      const before = tf.memory().numTensors;
      const result = await train(config, data, { onTrained: (m) => saveWeights(m, dir) });
      assert.equal(tf.memory().numTensors, before, 'tensors leaked by training');
      assert.ok(Number.isFinite(result.final.train_loss), JSON.stringify(result));
      assert.ok(result.test.acc > 0.6, `test accuracy ${result.test.acc} on the quadrant task`);

      const m = new Cnn(config.model, data.inputShape, data.classes, 99);
      loadWeights(m, dir);
      const x = tf.tensor2d(data.test.x, [data.test.n, data.features]);
      const acc = tf.tidy(
        () =>
          tf
            .mean(tf.cast(tf.equal(tf.argMax(m.forward(x, false), 1), tf.tensor1d(data.test.y, 'int32')), 'float32'))
            .dataSync()[0],
      );
      assert.ok(Math.abs(acc - result.test.acc) < 1e-6, `reloaded accuracy ${acc} vs ${result.test.acc}`);
      x.dispose();
      m.dispose();
    });
  }

  it('names its weights by layer; batch norm before the activation drops the conv bias, after keeps it', () => {
    const names = (model: Partial<ModelConfig> & Record<string, unknown>) => {
      const m = new Cnn(cnnConfig(fashionDir, model).model, [8, 8, 1], 10, 1);
      const keys = [...m.namedWeights.keys()];
      m.dispose();
      return keys;
    };
    assert.deepEqual(names({ norm: 'batch' }), [
      'conv1/kernel',
      'conv1/norm/gamma',
      'conv1/norm/beta',
      'conv1/norm/moving_mean',
      'conv1/norm/moving_variance',
      'conv2/kernel',
      'conv2/norm/gamma',
      'conv2/norm/beta',
      'conv2/norm/moving_mean',
      'conv2/norm/moving_variance',
      'dense1/kernel',
      'dense1/bias',
      'head/kernel',
      'head/bias',
    ]);
    assert.ok(names({ norm: 'batch', norm_placement: 'after' }).includes('conv1/bias'));
    assert.ok(names({ norm: 'none' }).includes('conv1/bias'));
    assert.deepEqual(names({ norm: 'weight' }).slice(0, 3), ['conv1/v', 'conv1/g', 'conv1/bias']);
    const m = new Cnn(cnnConfig(fashionDir, { norm: 'batch' }).model, [8, 8, 1], 10, 1);
    assert.equal(
      m.describe(),
      'conv 3x3 1->4 + batch norm + relu + maxpool 2 | conv 3x3 4->8 + batch norm + relu + maxpool 2 | dense 32->16 relu | dense 16->10',
    );
    m.dispose();
  });

  it('batch norm normalizes each channel over the batch and all positions (m = N·H·W)', () => {
    const m = new Cnn(cnnConfig(fashionDir, { norm: 'batch' }).model, [8, 8, 1], 10, 1);
    const [mean, variance] = tf.tidy(() => {
      const x = tf.reshape(tf.tensor2d(data.train.x.subarray(0, 20 * 64), [20, 64]), [20, 8, 8, 1]) as tf.Tensor4D;
      const b = m.blocks[0];
      const z = (b.norm as NonNullable<typeof b.norm>).apply(b.conv.apply(x), true);
      const mo = tf.moments(z, [0, 1, 2]);
      return [mo.mean.dataSync(), mo.variance.dataSync()];
    });
    for (let c = 0; c < 4; c++) {
      assert.ok(Math.abs(mean[c]) < 1e-4, `channel ${c} mean ${mean[c]}`);
      assert.ok(Math.abs(variance[c] - 1) < 1e-2, `channel ${c} variance ${variance[c]}`);
    }
    m.dispose();
  });

  it('Conv2D is a same-padded stride-1 convolution; weight norm gives each filter length g', () => {
    const rng = new Rng(2);
    const [h, w, cin, cout, k] = [4, 5, 2, 3, 3];
    const xs = Float32Array.from({ length: h * w * cin }, () => rng.normal());
    const ks = Float32Array.from({ length: k * k * cin * cout }, () => rng.normal());
    const conv = new Conv2D(tf.tensor4d(ks, [k, k, cin, cout]), true, false, 'test-conv');
    conv.bias?.assign(tf.tensor1d([0.5, -1, 2]));
    const out = tf.tidy(() => conv.apply(tf.tensor4d(xs, [1, h, w, cin])).dataSync());
    for (let r = 0; r < h; r++) {
      for (let c = 0; c < w; c++) {
        for (let o = 0; o < cout; o++) {
          let acc = [0.5, -1, 2][o];
          for (let dy = 0; dy < k; dy++) {
            for (let dx = 0; dx < k; dx++) {
              const [sr, sc] = [r + dy - 1, c + dx - 1];
              if (sr < 0 || sr >= h || sc < 0 || sc >= w) continue;
              for (let i = 0; i < cin; i++)
                acc += xs[(sr * w + sc) * cin + i] * ks[((dy * k + dx) * cin + i) * cout + o];
            }
          }
          assert.ok(
            Math.abs(out[(r * w + c) * cout + o] - acc) < 1e-4,
            `(${r}, ${c}, ${o}): ${out[(r * w + c) * cout + o]} vs ${acc}`,
          );
        }
      }
    }
    conv.dispose();
    const wn = new Conv2D(tf.tensor4d(ks, [k, k, cin, cout]), false, true, 'test-wn');
    (wn.g as tf.Variable).assign(tf.tensor1d([1, 2, 3]));
    const norms = tf.tidy(() => tf.sqrt(tf.sum(tf.square(wn.effectiveKernel()), [0, 1, 2])).dataSync());
    assert.ok(
      [1, 2, 3].every((g, i) => Math.abs(norms[i] - g) < 1e-5),
      `filter lengths ${[...norms]}`,
    );
    wn.dispose();
  });

  it('CIFAR-10 with augmentation: seeded (same seed, same run) and different from no augmentation', async () => {
    const dir = tmpDir('bnx-cnn-cifar-');
    writeCifarQuadrants(dir);
    const base = cnnConfig(dir, { norm: 'batch', cnn: { channels: [4], kernel: 3, pool: 4, dense: [] } });
    base.data = { ...base.data, dataset: 'cifar10', val_size: 40 };
    base.train = { ...base.train, steps: 15, batch_size: 16 };
    const cifar = loadDataset(base.data);
    assert.deepEqual(cifar.inputShape, [32, 32, 3]);
    const aug = structuredClone(base);
    aug.data.augment = { crop_padding: 4, flip: true };
    const losses = async (c: RunConfig) => {
      const rows: number[] = [];
      await train(c, cifar, { onRow: (r) => rows.push(r.train_loss) });
      return rows;
    };
    const a1 = await losses(aug);
    const a2 = await losses(aug);
    const plain = await losses(base);
    assert.deepEqual(a1, a2);
    assert.notDeepEqual(a1, plain);
    assert.ok(a1.every(Number.isFinite));
  });

  it('bnx run: a cnn spec on Fashion-MNIST files with augmentation, end to end through the CLI', () => {
    const dir = tmpDir('bnx-cnn-cli-');
    const spec = writeSpec(
      dir,
      `name: cnn-cli\nseed: 2\ndata: { dataset: fashion_mnist, path: ${fashionDir}, val_size: 100, augment: { crop_padding: 1, flip: true } }\n` +
        'model: { arch: cnn, activation: relu, init: he_normal, cnn: { channels: [4], kernel: 3, pool: 2, dense: [] } }\n' +
        'train: { lr: 0.1, batch_size: 20, steps: 20, eval_every: 10, log_every: 10 }\ngrid:\n  model.norm: [batch, group]\n  model.group_norm.groups: [2]\n',
    );
    const res = bnx(['run', spec, '--out', path.join(dir, 'results')], dir);
    assert.equal(res.code, 0, res.stderr + res.stdout);
    assert.match(res.stdout, /done norm=batch_groups=2_\w+: val_loss/);
    assert.match(res.stdout, /done norm=group_groups=2_\w+: val_loss/);
    const runs = fs.readdirSync(path.join(dir, 'results', 'cnn-cli')).filter((f) => f.startsWith('norm='));
    assert.equal(runs.length, 2);
    for (const r of runs) {
      const record = JSON.parse(fs.readFileSync(path.join(dir, 'results', 'cnn-cli', r, 'run.json'), 'utf8')) as {
        status: string;
        dataset: { name: string; source: string };
      };
      assert.equal(record.status, 'completed');
      assert.deepEqual([record.dataset.name, record.dataset.source], ['fashion_mnist', fashionDir]);
      assert.ok(fs.existsSync(path.join(dir, 'results', 'cnn-cli', r, 'weights.bin')));
    }
  });

  it('bnx export folds conv + batch norm (and weight norm) exactly, and refuses the norms that do not fold, in one line', async () => {
    const trained = async (model: Partial<ModelConfig> & Record<string, unknown>) => {
      const dir = tmpDir('bnx-cnn-export-');
      const config = cnnConfig(fashionDir, model);
      config.train.steps = 20;
      await train(config, data, { onTrained: (m) => saveWeights(m, dir) });
      fs.writeFileSync(path.join(dir, 'run.json'), JSON.stringify({ status: 'completed', config }));
      return dir;
    };
    for (const [model, folded] of [
      [{ norm: 'batch' }, 2],
      [{ norm: 'weight', weight_norm: { mean_only_bn: true } }, 2],
      [{ norm: 'none' }, 0],
    ] as const) {
      const report = await exportRun(await trained(model), { rounds: '1', json: true });
      assert.ok(report.ok, JSON.stringify(report));
      assert.equal(report.folded_batch_norms, folded);
      assert.ok(report.max_abs_logit_diff < 1e-4, `${report.max_abs_logit_diff}`);
      assert.equal(report.argmax_agree, data.test.n);
      assert.deepEqual(report.layers, [
        'reshape [8, 8, 1]',
        'conv 3x3 1->4 relu',
        'maxpool 2',
        'conv 3x3 4->8 relu',
        'maxpool 2',
        'flatten',
        'dense 32->16 relu',
        'dense 16->10 linear',
      ]);
    }
    const layerRun = await trained({ norm: 'layer' });
    await assert.rejects(exportRun(layerRun, { rounds: '1', json: true }), (e: unknown) => {
      assert.ok(e instanceof InputError);
      assert.match(e.message, /cannot export a cnn with layer norm: only batch norm before the activation/);
      assert.ok(!e.message.includes('\n'));
      return true;
    });
  });
});
