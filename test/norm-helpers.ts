import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../src/util/rng.js';
import { ROOT } from './helpers.js';

/** One case of ../shared/reference/norm-vectors.json (PyTorch, float64; channels-last, row-major). */
export interface ReferenceCase {
  op: 'batch' | 'layer' | 'group';
  name: string;
  shape: number[];
  eps: number;
  groups?: number;
  x: number[];
  gamma: number[];
  beta: number[];
  dy: number[];
  y: number[];
  dx: number[];
  dgamma: number[];
  dbeta: number[];
}

/** The project's reference vectors, beside the repository (`../shared/reference/`) where it is checked out in the workplace. */
export const SHARED_REFERENCE = path.join(ROOT, '..', 'shared', 'reference', 'norm-vectors.json');
/** A copy in the repository, so that a clone anywhere (CI, a temp dir) tests against the same numbers. */
export const VENDORED_REFERENCE = path.join(ROOT, 'test', 'fixtures', 'norm-vectors.json');

/** The shared reference when it is there, else the repository's copy (test/norm.test.ts checks they are equal). */
export function referenceCases(): ReferenceCase[] {
  const file = fs.existsSync(SHARED_REFERENCE) ? SHARED_REFERENCE : VENDORED_REFERENCE;
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as { cases: ReferenceCase[] }).cases;
}

/**
 * float32 against float64: |actual - expected| <= 1e-4 * max(1, |expected|) (relative 1e-4, with
 * an absolute floor for values near 0). Returns the largest error relative to that scale.
 */
export function close(actual: ArrayLike<number>, expected: number[], what: string): number {
  assert.equal(actual.length, expected.length, what);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const scale = Math.max(1, Math.abs(expected[i]));
    const err = Math.abs(actual[i] - expected[i]) / scale;
    assert.ok(err <= 1e-4, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
    worst = Math.max(worst, err);
  }
  return worst;
}

export function randomTensor(shape: number[], rng: Rng, std = 1, mean = 0): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(n);
  for (let i = 0; i < n; i++) values[i] = mean + std * rng.normal();
  return tf.tensor(values, shape);
}

/**
 * Checks the gradients TensorFlow.js computes for f against central finite differences, for the
 * input x and every parameter, on the scalar L = sum(f(x) * dy) (dy fixed and random).
 *
 * float32 needs care: the step h is 1e-2 (rounding in L is ~1e-6, so smaller steps drown in it),
 * the actual step is taken from the float32 values (fl(v + h) - fl(v - h)), and L is summed in
 * float64 on the JS side. Truncation and rounding errors are then ~1e-4; a wrong gradient term is
 * off by O(0.1). Tolerance: |fd - analytic| <= 2e-3 + 1e-2 * |analytic|. At most `maxCoords`
 * coordinates per tensor (evenly spread) are checked. Returns the largest absolute difference.
 */
export function checkGradients(
  f: (x: tf.Tensor) => tf.Tensor,
  x0: tf.Tensor,
  params: tf.Variable[],
  seed = 1,
  maxCoords = 60,
): number {
  const rng = new Rng(seed);
  const probe = tf.tidy(() => f(x0));
  const dy = randomTensor(probe.shape, rng);
  probe.dispose();
  const dyValues = dy.dataSync();
  const loss = (x: tf.Tensor): number => {
    const y = tf.tidy(() => f(x));
    const values = y.dataSync();
    y.dispose();
    let sum = 0;
    for (let i = 0; i < values.length; i++) sum += values[i] * dyValues[i];
    return sum;
  };
  const objective = (x: tf.Tensor) => tf.sum(tf.mul(f(x), dy)) as tf.Scalar;
  const dx = tf.grad(objective)(x0);
  const { value, grads } =
    params.length > 0
      ? tf.variableGrads(() => objective(x0), params)
      : { value: tf.scalar(0), grads: {} as tf.NamedTensorMap };
  value.dispose();

  const h = 1e-2;
  let worst = 0;
  const compare = (
    label: string,
    analytic: Float32Array | Int32Array | Uint8Array,
    values: Float32Array,
    evaluate: (v: Float32Array) => number,
  ) => {
    const stride = Math.max(1, Math.floor(values.length / maxCoords));
    for (let i = 0; i < values.length; i += stride) {
      const orig = values[i];
      const plus = Math.fround(orig + h);
      const minus = Math.fround(orig - h);
      values[i] = plus;
      const lPlus = evaluate(values);
      values[i] = minus;
      const lMinus = evaluate(values);
      values[i] = orig;
      const fd = (lPlus - lMinus) / (plus - minus);
      const err = Math.abs(fd - analytic[i]);
      assert.ok(
        err <= 2e-3 + 1e-2 * Math.abs(analytic[i]),
        `${label}[${i}]: finite difference ${fd} vs gradient ${analytic[i]}`,
      );
      worst = Math.max(worst, err);
    }
  };

  const xValues = new Float32Array(x0.dataSync());
  compare('dx', dx.dataSync(), xValues, (v) => {
    const x = tf.tensor(v, x0.shape);
    const l = loss(x);
    x.dispose();
    return l;
  });
  for (const p of params) {
    const original = new Float32Array(p.dataSync());
    const values = new Float32Array(original);
    compare(`d${p.name}`, grads[p.name].dataSync(), values, (v) => {
      tf.tidy(() => p.assign(tf.tensor(v, p.shape)));
      return loss(x0);
    });
    tf.tidy(() => p.assign(tf.tensor(original, p.shape)));
  }
  tf.dispose([dy, dx, ...Object.values(grads)]);
  return worst;
}
