import * as tf from '@tensorflow/tfjs';
import type { Split } from '../data/index.js';
import type { Mlp } from '../model/index.js';

export interface EvalResult {
  loss: number;
  acc: number;
}

/** Mean cross-entropy of logits [batch, classes] against integer labels [batch]. */
export function crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D, classes: number): tf.Scalar {
  return tf.losses.softmaxCrossEntropy(tf.oneHot(labels, classes), logits) as tf.Scalar;
}

/** Number of rows whose largest logit is the label. */
export function correctCount(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  return tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), labels), 'float32'));
}

/**
 * Loss and accuracy of the model in inference mode (BN uses its moving statistics) on the first
 * `limit` examples of a split, in chunks so memory stays flat on large sets.
 */
export function evaluate(model: Mlp, split: Split, features: number, limit: number | null, chunk = 2000): EvalResult {
  const n = limit === null ? split.n : Math.min(limit, split.n);
  let lossSum = 0;
  let correct = 0;
  for (let start = 0; start < n; start += chunk) {
    const count = Math.min(chunk, n - start);
    const [l, c] = tf.tidy(() => {
      const x = tf.tensor2d(split.x.subarray(start * features, (start + count) * features), [count, features]);
      const y = tf.tensor1d(split.y.subarray(start, start + count), 'int32');
      const logits = model.forward(x, false);
      return [tf.mul(crossEntropy(logits, y, model.classes), count), correctCount(logits, y)];
    });
    lossSum += (l.dataSync() as Float32Array)[0];
    correct += (c.dataSync() as Float32Array)[0];
    tf.dispose([l, c]);
  }
  return { loss: lossSum / n, acc: correct / n };
}
