import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { BatchNorm } from '../src/layers/index.js';
import { initBackend } from '../src/train/backend.js';
import { close, referenceCases, type ReferenceCase } from './norm-helpers.js';

/** A batch-norm case: the common fields plus running and population statistics. */
interface BatchCase extends ReferenceCase {
  decay: number;
  running_mean: number[];
  running_var: number[];
  y_eval: number[];
  population_batches: number[][];
  population_mean: number[];
  population_var: number[];
}

const reference = { cases: referenceCases() as BatchCase[] };

const GRADIENTS = ['closed_form', 'autodiff'] as const;

describe('BatchNorm (dense [N, C] and convolutional [N, H, W, C]) against the PyTorch float64 reference', () => {
  before(async () => {
    await initBackend('tensorflow');
  });
  for (const c of reference.cases.filter((k) => k.op === 'batch')) {
    for (const gradient of GRADIENTS) {
      it(`${c.name} (${gradient} gradient): training forward, gradients, moving statistics, inference`, (t) => {
        const channels = c.shape[c.shape.length - 1];
        const bn = new BatchNorm({
          channels,
          eps: c.eps,
          momentum: c.decay,
          gradient,
          name: `ref-${c.name}-${gradient}`,
        });
        bn.gamma.assign(tf.tensor1d(c.gamma));
        bn.beta.assign(tf.tensor1d(c.beta));
        const x = tf.tensor(c.x, c.shape);
        const dy = tf.tensor(c.dy, c.shape);
        // Gradients of sum(y * dy) are the vector-Jacobian products PyTorch's backward(dy) gives.
        const { value, grads } = tf.variableGrads(
          () => tf.sum(tf.mul(bn.apply(x, true), dy)) as tf.Scalar,
          [bn.gamma, bn.beta],
        );
        const dx = tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(bn.apply(xx, true), dy)))(x);
        const worst = [
          close(tf.tidy(() => bn.apply(x, true)).dataSync(), c.y, 'y'),
          close(dx.dataSync(), c.dx, 'dx'),
          close(grads[bn.gamma.name].dataSync(), c.dgamma, 'dgamma'),
          close(grads[bn.beta.name].dataSync(), c.dbeta, 'dbeta'),
        ];
        // One training step's statistics: apply() again so exactly one update happens.
        bn.apply(x, true).dispose();
        bn.updateMovingStats();
        worst.push(
          close(bn.movingMean.dataSync(), c.running_mean, 'running_mean'),
          close(bn.movingVar.dataSync(), c.running_var, 'running_var'),
          close(tf.tidy(() => bn.apply(x, false)).dataSync(), c.y_eval, 'y_eval'),
        );
        t.diagnostic(`largest relative error ${Math.max(...worst).toExponential(2)}`);
        tf.dispose([value, x, dy, dx, ...Object.values(grads)]);
        bn.dispose();
      });
    }
    it(`${c.name}: Algorithm 2 population statistics over ${c.population_batches.length} mini-batches`, (t) => {
      const channels = c.shape[c.shape.length - 1];
      const bn = new BatchNorm({
        channels,
        eps: c.eps,
        momentum: c.decay,
        inference: 'population',
        name: `ref-pop-${c.name}`,
      });
      bn.beginPopulation();
      for (const batch of c.population_batches) tf.tidy(() => bn.apply(tf.tensor(batch, c.shape), true));
      bn.endPopulation();
      const worst = Math.max(
        close(bn.movingMean.dataSync(), c.population_mean, 'population_mean'),
        close(bn.movingVar.dataSync(), c.population_var, 'population_var'),
      );
      t.diagnostic(`largest relative error ${worst.toExponential(2)}`);
      bn.dispose();
    });
  }

  it('population mode does not touch the statistics between estimates; ema mode does', () => {
    const x = tf.tensor2d([1, 2, 3, 4, 5, 7], [3, 2]);
    const pop = new BatchNorm({ channels: 2, eps: 1e-3, momentum: 0.9, inference: 'population', name: 'pop-idle' });
    const ema = new BatchNorm({ channels: 2, eps: 1e-3, momentum: 0.9, name: 'ema-idle' });
    for (const bn of [pop, ema]) {
      tf.tidy(() => bn.apply(x, true));
      bn.updateMovingStats();
    }
    assert.deepEqual([...pop.movingMean.dataSync()], [0, 0]);
    assert.notDeepEqual([...ema.movingMean.dataSync()], [0, 0]);
    tf.dispose(x);
    pop.dispose();
    ema.dispose();
  });
});
