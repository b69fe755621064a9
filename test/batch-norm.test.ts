import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { BatchNorm } from '../src/model/index.js';
import { initBackend } from '../src/train/backend.js';
import { ROOT } from './helpers.js';

interface BatchCase {
  op: string;
  name: string;
  shape: number[];
  eps: number;
  decay: number;
  x: number[];
  gamma: number[];
  beta: number[];
  dy: number[];
  y: number[];
  dx: number[];
  dgamma: number[];
  dbeta: number[];
  running_mean: number[];
  running_var: number[];
  y_eval: number[];
}

const reference = JSON.parse(fs.readFileSync(path.join(ROOT, '..', 'shared', 'reference', 'norm-vectors.json'), 'utf8')) as { cases: BatchCase[] };

/** float32 against PyTorch float64: relative 1e-4 with an absolute floor for values near 0. */
function close(actual: ArrayLike<number>, expected: number[], what: string): void {
  assert.equal(actual.length, expected.length, what);
  for (let i = 0; i < expected.length; i++) {
    const tol = 1e-4 * Math.max(1, Math.abs(expected[i]));
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

describe('BatchNorm (dense) against the PyTorch float64 reference', () => {
  before(async () => {
    await initBackend('tensorflow');
  });
  for (const c of reference.cases.filter((k) => k.op === 'batch' && k.shape.length === 2)) {
    it(`${c.name}: training forward, gradients, moving statistics, inference`, () => {
      const [m, f] = c.shape;
      const bn = new BatchNorm(f, { eps: c.eps, momentum: c.decay }, `ref-${c.name}`);
      bn.gamma.assign(tf.tensor1d(c.gamma));
      bn.beta.assign(tf.tensor1d(c.beta));
      const x = tf.tensor2d(c.x, [m, f]);
      const dy = tf.tensor2d(c.dy, [m, f]);
      // Gradients of sum(y * dy) are the vector-Jacobian products PyTorch's backward(dy) gives.
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(bn.apply(x, true), dy)) as tf.Scalar, [bn.gamma, bn.beta]);
      const dx = tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(bn.apply(xx as tf.Tensor2D, true), dy)))(x);
      close(tf.tidy(() => bn.apply(x, true)).dataSync(), c.y, 'y');
      close(dx.dataSync(), c.dx, 'dx');
      close(grads[bn.gamma.name].dataSync(), c.dgamma, 'dgamma');
      close(grads[bn.beta.name].dataSync(), c.dbeta, 'dbeta');
      // One training step's statistics: apply() again so exactly one update happens.
      bn.apply(x, true).dispose();
      bn.updateMovingStats();
      close(bn.movingMean.dataSync(), c.running_mean, 'running_mean');
      close(bn.movingVar.dataSync(), c.running_var, 'running_var');
      close(bn.apply(x, false).dataSync(), c.y_eval, 'y_eval');
      tf.dispose([value, x, dy, dx, ...Object.values(grads)]);
      bn.dispose();
    });
  }
});
