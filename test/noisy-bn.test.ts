import assert from 'node:assert/strict';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../src/util/errors.js';
import { BatchNorm, NoisyBatchNorm } from '../src/layers/index.js';
import { expandGrid } from '../src/spec/expand.js';
import { applyOverrides, loadSpec, parseOverride } from '../src/spec/load.js';
import { initBackend } from '../src/train/backend.js';
import { chooseEngine } from '../src/train/engine.js';
import { Rng } from '../src/util/rng.js';
import { ROOT } from './helpers.js';
import { checkGradients, randomTensor } from './norm-helpers.js';

let made = 0;
const noisyBn = (
  channels: number,
  strength: number,
  seed: number,
  gradient: 'closed_form' | 'autodiff' = 'closed_form',
) => {
  const args = { channels, eps: 1e-3, momentum: 0.9, gradient, name: `noisy-${++made}` };
  // Strength 0 is plain batch norm (the config's `noise: 0`), the reference the noisy layer is compared with.
  return strength > 0 ? new NoisyBatchNorm({ ...args, noise: { strength, seed } }) : new BatchNorm(args);
};

const values = (t: tf.Tensor) => {
  const v = Array.from(t.dataSync());
  t.dispose();
  return v;
};

/** The training-mode outputs of `steps` consecutive steps on the same input. */
function stepOutputs(bn: BatchNorm | NoisyBatchNorm, x: tf.Tensor, steps: number): number[][] {
  const out: number[][] = [];
  for (let s = 0; s < steps; s++) {
    out.push(values(tf.tidy(() => bn.apply(x, true))));
    bn.updateMovingStats();
  }
  return out;
}

describe('noisy batch norm (model.batch_norm.noise)', () => {
  before(async () => {
    await initBackend('tensorflow');
  });

  it('is deterministic given the seed, differs across seeds and steps, and is fixed within a step', () => {
    const x = randomTensor([16, 6], new Rng(1), 2, 1);
    const [a, b, c] = [noisyBn(6, 1, 42), noisyBn(6, 1, 42), noisyBn(6, 1, 43)];
    const ya = stepOutputs(a, x, 3);
    assert.deepEqual(stepOutputs(b, x, 3), ya);
    assert.notDeepEqual(stepOutputs(c, x, 3)[0], ya[0]);
    assert.notDeepEqual(ya[1], ya[0], 'a new draw every step');
    const first = values(tf.tidy(() => a.apply(x, true)));
    assert.deepEqual(values(tf.tidy(() => a.apply(x, true))), first, 'one draw per step');
    for (const bn of [a, b, c]) bn.dispose();
    x.dispose();
  });

  it('changes training-mode outputs by a per-channel scale in [1, 1 + n] and shift in [-n, n]', () => {
    const x = randomTensor([32, 5, 5, 4], new Rng(2), 3, -1);
    const n = 0.5;
    const [plain, noisy] = [noisyBn(4, 0, 7), noisyBn(4, n, 7)];
    const y = tf.tidy(() => plain.apply(x, true));
    const yNoisy = tf.tidy(() => noisy.apply(x, true));
    assert.ok(tf.tidy(() => tf.max(tf.abs(tf.sub(y, yNoisy))).dataSync()[0]) > 0.05, 'the noise changes the output');
    // BN's output has mean beta = 0 and variance ~1 per channel, so the noisy output's per-channel
    // mean is the shift m and its std is the scale s.
    const { mean, variance } = tf.moments(yNoisy, [0, 1, 2]);
    const m = values(mean);
    const s = values(variance).map(Math.sqrt);
    for (let ch = 0; ch < 4; ch++) {
      assert.ok(m[ch] >= -n - 1e-4 && m[ch] <= n + 1e-4, `shift ${m[ch]}`);
      assert.ok(s[ch] >= 1 - 1e-2 && s[ch] <= 1 + n + 1e-2, `scale ${s[ch]}`);
    }
    tf.dispose([x, y, yNoisy]);
    plain.dispose();
    noisy.dispose();
  });

  it('is the identity in inference mode and stays out of population estimates', () => {
    const x = randomTensor([20, 3], new Rng(3), 1.5, 0.5);
    const [plain, noisy] = [noisyBn(3, 0, 9), noisyBn(3, 2, 9)];
    for (const bn of [plain, noisy]) stepOutputs(bn, x, 4);
    assert.deepEqual(
      values(noisy.apply(x, false)),
      values(plain.apply(x, false)),
      'same moving statistics, same inference output',
    );
    noisy.beginPopulation();
    const duringPopulation = values(tf.tidy(() => noisy.apply(x, true)));
    noisy.endPopulation();
    assert.deepEqual(duringPopulation, values(tf.tidy(() => plain.apply(x, true))));
    plain.dispose();
    noisy.dispose();
    x.dispose();
  });

  it('closed-form gradients match autodiff and finite differences under the same noise', () => {
    const rng = new Rng(4);
    const x = randomTensor([12, 5], rng, 2, 1);
    const layers = (['closed_form', 'autodiff'] as const).map((g) => noisyBn(5, 1, 11, g));
    const dy = randomTensor([12, 5], rng);
    const grads = layers.map((bn) =>
      tf.tidy(() => {
        const f = (xx: tf.Tensor) => tf.sum(tf.mul(bn.apply(xx, true), dy)) as tf.Scalar;
        const { grads: g } = tf.variableGrads(() => f(x), [bn.gamma, bn.beta]);
        return [tf.grad(f)(x), g[bn.gamma.name], g[bn.beta.name]].map(values);
      }),
    );
    grads[0].forEach((closed, i) =>
      closed.forEach((v, j) =>
        assert.ok(Math.abs(v - grads[1][i][j]) <= 1e-4 + 1e-4 * Math.abs(v), `${['dx', 'dgamma', 'dbeta'][i]}[${j}]`),
      ),
    );
    const worst = checkGradients((xx) => layers[0].apply(xx, true), x, layers[0].trainable, 12);
    assert.ok(worst < 5e-3);
    for (const bn of layers) bn.dispose();
    tf.dispose([x, dy]);
  });

  it('needs model.norm batch, and runs on the graph engine', () => {
    const spec = path.join(ROOT, 'experiments/paper-mnist.yaml');
    const plan = (sets: string[]) => expandGrid(applyOverrides(loadSpec(spec), sets.map(parseOverride)));
    assert.throws(
      () => plan(['model.norm=none', 'model.batch_norm.noise=1']),
      (e: unknown) =>
        e instanceof InputError && /--set model\.batch_norm\.noise: .*needs model\.norm batch/.test(e.message),
    );
    const [run] = plan(['model.norm=batch', 'model.batch_norm.noise=1']);
    assert.deepEqual(chooseEngine(run.config), { kind: 'graph', note: null });
  });
});
