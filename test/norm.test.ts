import assert from 'node:assert/strict';
import fs from 'node:fs';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import {
  BatchNorm,
  Dense,
  GroupNorm,
  InstanceNorm,
  LayerNorm,
  MeanOnlyBatchNorm,
  WeightNormDense,
  normalize,
  type NormLayer,
} from '../src/layers/index.js';
import { foldBatchNorm } from '../src/model/index.js';
import { initBackend } from '../src/train/backend.js';
import { Rng } from '../src/util/rng.js';
import {
  checkGradients,
  close,
  randomTensor,
  referenceCases,
  SHARED_REFERENCE,
  VENDORED_REFERENCE,
} from './norm-helpers.js';

let made = 0;
const uniq = (s: string) => `${s}-${++made}`;

/** Gives a layer non-trivial gamma/beta so that gradient checks exercise them. */
function randomizeAffine(layer: { gamma?: tf.Variable; beta?: tf.Variable }, rng: Rng): void {
  tf.tidy(() => {
    if (layer.gamma) layer.gamma.assign(tf.add(randomTensor(layer.gamma.shape, rng, 0.5), 1));
    if (layer.beta) layer.beta.assign(randomTensor(layer.beta.shape, rng, 0.5));
  });
}

describe('layer and group/instance norm against the PyTorch float64 reference', () => {
  before(async () => {
    await initBackend('tensorflow');
  });
  it('the repository copy of the reference equals the shared one (where the shared one is present)', (t) => {
    if (!fs.existsSync(SHARED_REFERENCE))
      return t.skip(`${SHARED_REFERENCE} is not here; the tests use ${VENDORED_REFERENCE}`);
    assert.equal(fs.readFileSync(VENDORED_REFERENCE, 'utf8'), fs.readFileSync(SHARED_REFERENCE, 'utf8'));
  });
  for (const c of referenceCases().filter((k) => k.op !== 'batch')) {
    const channels = c.shape[c.shape.length - 1];
    const makers: [string, () => LayerNorm | GroupNorm][] =
      c.op === 'layer'
        ? [['LayerNorm', () => new LayerNorm({ channels, eps: c.eps, name: uniq(c.name) })]]
        : [
            [
              `GroupNorm(${c.groups})`,
              () => new GroupNorm({ channels, groups: c.groups as number, eps: c.eps, name: uniq(c.name) }),
            ],
            ...(c.groups === channels
              ? [
                  ['InstanceNorm', () => new InstanceNorm({ channels, eps: c.eps, name: uniq(c.name) })] as [
                    string,
                    () => GroupNorm,
                  ],
                ]
              : []),
          ];
    for (const [label, make] of makers) {
      it(`${c.name} with ${label}: forward (training and inference), dx, dgamma, dbeta`, (t) => {
        const layer = make();
        layer.gamma.assign(tf.tensor1d(c.gamma));
        layer.beta.assign(tf.tensor1d(c.beta));
        const x = tf.tensor(c.x, c.shape);
        const dy = tf.tensor(c.dy, c.shape);
        const objective = (xx: tf.Tensor) => tf.sum(tf.mul(layer.apply(xx, true), dy)) as tf.Scalar;
        const { value, grads } = tf.variableGrads(() => objective(x), [layer.gamma, layer.beta]);
        const dx = tf.grad(objective)(x);
        const worst = Math.max(
          close(tf.tidy(() => normalize(layer, x, 'training')).dataSync(), c.y, 'y (training)'),
          close(tf.tidy(() => normalize(layer, x, 'inference')).dataSync(), c.y, 'y (inference: batch independent)'),
          close(dx.dataSync(), c.dx, 'dx'),
          close(grads[layer.gamma.name].dataSync(), c.dgamma, 'dgamma'),
          close(grads[layer.beta.name].dataSync(), c.dbeta, 'dbeta'),
        );
        t.diagnostic(`largest relative error ${worst.toExponential(2)}`);
        tf.dispose([value, x, dy, dx, ...Object.values(grads)]);
        layer.dispose();
      });
    }
  }

  it('GroupNorm with 1 group is LayerNorm over channels and space; with C groups it is InstanceNorm', () => {
    const rng = new Rng(4);
    const x = randomTensor([2, 3, 3, 6], rng, 2, 1);
    const g1 = new GroupNorm({ channels: 6, groups: 1, eps: 1e-5, name: uniq('g1') });
    const ln = new LayerNorm({ channels: 6, eps: 1e-5, name: uniq('ln') });
    const gc = new GroupNorm({ channels: 6, groups: 6, eps: 1e-5, name: uniq('gc') });
    const inorm = new InstanceNorm({ channels: 6, eps: 1e-5, name: uniq('in') });
    for (const l of [g1, ln, gc, inorm]) randomizeAffine(l, new Rng(9));
    const diff = (a: NormLayer, b: NormLayer) =>
      tf.tidy(() => tf.max(tf.abs(tf.sub(a.apply(x, true), b.apply(x, true)))).dataSync()[0]);
    assert.ok(diff(g1, ln) < 1e-6);
    assert.ok(diff(gc, inorm) < 1e-6);
    tf.dispose(x);
    for (const l of [g1, ln, gc, inorm]) l.dispose();
  });

  it("rejects inputs that are not [N, C] / [N, H, W, C] with the layer's C, and InstanceNorm on dense inputs", () => {
    const ln = new LayerNorm({ channels: 4, eps: 1e-5, name: uniq('bad') });
    assert.throws(() => ln.apply(tf.zeros([2, 3]), true), /3 channels on its last axis; the layer has 4/);
    assert.throws(() => ln.apply(tf.zeros([2, 3, 4]), true), /expected \[N, C\] \(dense\) or \[N, H, W, C\]/);
    const inorm = new InstanceNorm({ channels: 4, eps: 1e-5, name: uniq('bad-in') });
    assert.throws(() => inorm.apply(tf.zeros([2, 4]), true), /needs \[N, H, W, C\]/);
    assert.throws(
      () => new GroupNorm({ channels: 6, groups: 4, eps: 1e-5, name: uniq('bad-g') }),
      /4 groups do not divide 6 channels/,
    );
    assert.throws(() => normalize(ln, tf.zeros([2, 4]), 'eval' as never), /expected training or inference/);
    ln.dispose();
    inorm.dispose();
  });
});

describe('finite-difference gradient checks (float32, every layer, dense and convolutional)', () => {
  before(async () => {
    await initBackend('tensorflow');
  });
  const shapes = { dense: [8, 6], conv: [3, 3, 2, 6] } as const;
  for (const [kind, shape] of Object.entries(shapes)) {
    const cases: [string, () => NormLayer][] = [
      [
        'BatchNorm, training, closed-form gradient',
        () => new BatchNorm({ channels: 6, eps: 1e-3, momentum: 0.9, gradient: 'closed_form', name: uniq('fd-bn') }),
      ],
      [
        'BatchNorm, training, autodiff',
        () => new BatchNorm({ channels: 6, eps: 1e-3, momentum: 0.9, gradient: 'autodiff', name: uniq('fd-bn-ad') }),
      ],
      ['MeanOnlyBatchNorm, training', () => new MeanOnlyBatchNorm({ channels: 6, momentum: 0.9, name: uniq('fd-mo') })],
      ['LayerNorm', () => new LayerNorm({ channels: 6, eps: 1e-5, name: uniq('fd-ln') })],
      ['GroupNorm(3)', () => new GroupNorm({ channels: 6, groups: 3, eps: 1e-5, name: uniq('fd-gn') })],
      ...(kind === 'conv'
        ? [
            ['InstanceNorm', () => new InstanceNorm({ channels: 6, eps: 1e-5, name: uniq('fd-in') })] as [
              string,
              () => NormLayer,
            ],
          ]
        : []),
    ];
    for (const [label, make] of cases) {
      it(`${label} on ${kind} [${shape}]`, (t) => {
        const rng = new Rng(11);
        const layer = make();
        randomizeAffine(layer as { gamma?: tf.Variable; beta?: tf.Variable }, rng);
        const x = randomTensor([...shape], rng, 1.5, 0.5);
        const worst = checkGradients((xx) => layer.apply(xx, true), x, layer.trainable, 5);
        t.diagnostic(`largest |finite difference - gradient| ${worst.toExponential(2)}`);
        tf.dispose(x);
        layer.dispose();
      });
    }
  }

  it("the check catches a wrong gradient: BN with the batch statistics outside the gradient (the paper's warning)", () => {
    const rng = new Rng(14);
    const x = randomTensor([8, 6], rng, 1.5, 0.5);
    const detached = (xx: tf.Tensor) => {
      // mean and variance as constants: the gradient ignores that they depend on x.
      const { mean, variance } = tf.tidy(() => tf.moments(xx, 0));
      const [mu, s2] = [tf.tensor(mean.dataSync(), mean.shape), tf.tensor(variance.dataSync(), variance.shape)];
      tf.dispose([mean, variance]);
      return tf.mul(tf.sub(xx, mu), tf.rsqrt(tf.add(s2, 1e-3)));
    };
    assert.throws(() => checkGradients(detached, x, [], 8), /dx\[\d+\]: finite difference/);
    tf.dispose(x);
  });

  it('BatchNorm in inference mode (fixed statistics) on [8, 6]', (t) => {
    const rng = new Rng(12);
    const bn = new BatchNorm({ channels: 6, eps: 1e-3, momentum: 0.5, name: uniq('fd-bn-inf') });
    randomizeAffine(bn, rng);
    const x = randomTensor([8, 6], rng, 1.5, 0.5);
    tf.tidy(() => bn.apply(x, true));
    bn.updateMovingStats();
    const worst = checkGradients((xx) => bn.apply(xx, false), x, bn.trainable, 6);
    t.diagnostic(`largest |finite difference - gradient| ${worst.toExponential(2)}`);
    tf.dispose(x);
    bn.dispose();
  });

  for (const useBias of [true, false]) {
    it(`WeightNormDense (w = g v / ||v||${useBias ? ', with bias' : ''}) [8, 5] -> [8, 4]`, (t) => {
      const rng = new Rng(13);
      const v0 = randomTensor([5, 4], rng, 0.7) as tf.Tensor2D;
      const layer = new WeightNormDense(v0, useBias, uniq('fd-wn'));
      tf.tidy(() => layer.g.assign(tf.add(randomTensor([4], rng, 0.3), 1)));
      if (layer.bias) tf.tidy(() => layer.bias?.assign(randomTensor([4], rng, 0.3)));
      const x = randomTensor([8, 5], rng, 1);
      const worst = checkGradients((xx) => layer.apply(xx as tf.Tensor2D), x, layer.trainable, 7);
      t.diagnostic(`largest |finite difference - gradient| ${worst.toExponential(2)}`);
      tf.dispose([x, v0]);
      layer.dispose();
    });
  }
});

describe('weight normalization', () => {
  before(async () => {
    await initBackend('tensorflow');
  });
  it('starts with W = V, and each column of W has length g', () => {
    const rng = new Rng(3);
    const v0 = randomTensor([7, 3], rng) as tf.Tensor2D;
    const wn = new WeightNormDense(v0, true, uniq('wn'));
    const w0 = wn.effectiveKernel();
    assert.ok(tf.tidy(() => tf.max(tf.abs(tf.sub(w0, v0))).dataSync()[0]) < 1e-6);
    tf.tidy(() => wn.g.assign(tf.tensor1d([0.5, 2, 3])));
    const w = wn.effectiveKernel();
    const lengths = tf.tidy(() => tf.norm(w, 'euclidean', 0).dataSync());
    [0.5, 2, 3].forEach((g, j) => assert.ok(Math.abs(lengths[j] - g) < 1e-5, `column ${j}: ${lengths[j]}`));
    tf.dispose([v0, w0, w]);
    wn.dispose();
  });

  it('mean-only batch norm centers each channel with the batch mean (training) and the moving mean (inference)', () => {
    const mo = new MeanOnlyBatchNorm({ channels: 2, momentum: 0.5, name: uniq('mo') });
    tf.tidy(() => mo.beta.assign(tf.tensor1d([1, -1])));
    const x = tf.tensor2d([1, 10, 3, 20, 5, 60], [3, 2]);
    assert.deepEqual([...tf.tidy(() => mo.apply(x, true)).dataSync()], [-1, -21, 1, -11, 3, 29]);
    mo.updateMovingStats(); // moving_mean = 0.5 * 0 + 0.5 * [3, 30]
    assert.deepEqual([...mo.movingMean.dataSync()], [1.5, 15]);
    assert.deepEqual([...tf.tidy(() => mo.apply(x, false)).dataSync()], [0.5, -6, 2.5, 4, 4.5, 44]);
    tf.dispose(x);
    mo.dispose();
  });
});

describe('folding batch norm into the preceding layer', () => {
  before(async () => {
    await initBackend('tensorflow');
  });

  /** A BN layer with non-trivial inference statistics and affine parameters. */
  function trainedBn(channels: number, rng: Rng, inputShape: number[]): BatchNorm {
    const bn = new BatchNorm({ channels, eps: 1e-3, momentum: 0.9, inference: 'population', name: uniq('fold-bn') });
    randomizeAffine(bn, rng);
    bn.beginPopulation();
    for (let i = 0; i < 3; i++) tf.tidy(() => bn.apply(randomTensor(inputShape, rng, 3, 2), true));
    bn.endPopulation();
    return bn;
  }

  it("dense: (x W + b) -> BN(inference) equals x W' + b'", () => {
    const rng = new Rng(21);
    const x = randomTensor([16, 10], rng) as tf.Tensor2D;
    const dense = new Dense(randomTensor([10, 5], rng) as tf.Tensor2D, true, uniq('fold-dense'));
    tf.tidy(() => dense.bias?.assign(randomTensor([5], rng)));
    const bn = trainedBn(5, rng, [16, 5]);
    const affine = bn.scaleShift();
    const folded = foldBatchNorm(dense.kernel as tf.Tensor2D, dense.bias as tf.Tensor1D, affine);
    const diff = tf.tidy(
      () =>
        tf
          .max(tf.abs(tf.sub(bn.apply(dense.apply(x), false), tf.add(tf.matMul(x, folded.kernel), folded.bias))))
          .dataSync()[0],
    );
    assert.ok(diff < 1e-5, `max difference ${diff}`);
    tf.dispose([x, affine.scale, affine.shift, folded.kernel, folded.bias]);
    dense.dispose();
    bn.dispose();
  });

  it("convolutional (NHWC, kernel [3, 3, in, C]): conv2d + b -> BN(inference) equals conv2d with K' and b'", () => {
    const rng = new Rng(22);
    const x = randomTensor([2, 6, 6, 3], rng) as tf.Tensor4D;
    const kernel = randomTensor([3, 3, 3, 4], rng, 0.3) as tf.Tensor4D;
    const bias = randomTensor([4], rng) as tf.Tensor1D;
    const bn = trainedBn(4, rng, [2, 6, 6, 4]);
    const affine = bn.scaleShift();
    const folded = foldBatchNorm(kernel, bias, affine);
    const diff = tf.tidy(() => {
      const unfolded = bn.apply(tf.add(tf.conv2d(x, kernel, 1, 'same'), bias), false);
      const direct = tf.add(tf.conv2d(x, folded.kernel, 1, 'same'), folded.bias);
      return tf.max(tf.abs(tf.sub(unfolded, direct))).dataSync()[0];
    });
    assert.ok(diff < 1e-5, `max difference ${diff}`);
    tf.dispose([x, kernel, bias, affine.scale, affine.shift, folded.kernel, folded.bias]);
    bn.dispose();
  });
});
