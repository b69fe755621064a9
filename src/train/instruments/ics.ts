import * as tf from '@tensorflow/tfjs';
import type { Classifier } from '../../model/index.js';
import type { RunConfig } from '../../spec/types.js';
import {
  globalNorm,
  scalarValue,
  type Instrument,
  type InstrumentRow,
  type Measurement,
  type TrainingBatch,
} from './instrument.js';
import { atMovedWeights, weightLayers } from './layers.js';

/**
 * Internal covariate shift as Santurkar et al. (2018, section 2.2) define it. For weight layer i
 * (from the second on) on the step's training batch (x, y), before the optimizer step:
 *   G  = dL/dW_i (x, y; W_1, ..., W_n)
 *   G' = dL/dW_i (x, y; W_1 - lr g_1, ..., W_{i-1} - lr g_{i-1}, W_i, ..., W_n)
 * with g_j the gradient of layer j's variables at the current weights (plain SGD, whatever the
 * optimizer): G' is what layer i's gradient becomes once the layers below it took their step.
 *   l2 = ||G - G'||,  cosine = <G, G'> / (||G|| ||G'||),  grad_norm = ||G||
 * W_i is the kernel (the direction V under weight norm); "layers before i" includes their biases
 * and normalization parameters. The weights are put back bit for bit afterwards.
 */
export class InternalCovariateShift implements Instrument {
  readonly name = 'ics' as const;
  readonly phase = 'before_step' as const;
  private readonly lr: number;

  constructor(
    config: RunConfig,
    private readonly features: number,
  ) {
    this.lr = config.train.lr;
  }

  measure(step: number, model: Classifier, batch: TrainingBatch): Measurement {
    const layers = weightLayers(model);
    const all = layers.flatMap((l) => l.trainable);
    const rows: InstrumentRow[] = [];
    atMovedWeights(model, all, batch, this.features, (loss, saved) => {
      const { grads } = tf.variableGrads(loss, all);
      // Layers 1..i-1 take their SGD step one at a time: after i-1 of them, G' of layer i.
      for (let i = 1; i < layers.length; i++) {
        for (const v of layers[i - 1].trainable)
          v.assign(tf.sub(saved.get(v) as tf.Tensor, tf.mul(grads[v.name], this.lr)));
        const kernel = layers[i].kernel;
        const [l2, cosine, norm] = tf.tidy(() => {
          const before = grads[kernel.name];
          const after = tf.variableGrads(loss, [kernel]).grads[kernel.name];
          const normBefore = globalNorm([before]);
          const cos = tf.div(tf.sum(tf.mul(before, after)), tf.mul(normBefore, globalNorm([after])));
          return [globalNorm([tf.sub(before, after)]), cos, normBefore].map((t) => scalarValue(t as tf.Scalar));
        });
        rows.push({ step, layer: layers[i].name, l2, cosine, grad_norm: norm });
      }
    });
    return { rows };
  }
}
