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
import { atMovedWeights } from './layers.js';

/**
 * The loss landscape along the gradient (Santurkar et al. 2018, section 3.1, Figure 4): on the
 * step's training batch, before the optimizer step, with g = grad L(w) over every trainable
 * variable and, for each multiplier s of `step_sizes`, w' = w - s lr g:
 *   loss        = L(w')                    ("loss landscape")
 *   loss_change = L(w') - L(w)
 *   grad_change = ||grad L(w') - g||       ("gradient predictiveness")
 *   beta        = grad_change / ||s lr g|| (effective beta-smoothness)
 * All in training mode (batch statistics), as the step computes them. The weights are put back
 * bit for bit afterwards.
 */
export class Smoothness implements Instrument {
  readonly name = 'smoothness' as const;
  readonly phase = 'before_step' as const;
  private readonly lr: number;
  private readonly stepSizes: number[];

  constructor(
    config: RunConfig,
    private readonly features: number,
  ) {
    this.lr = config.train.lr;
    this.stepSizes = config.instruments.smoothness.step_sizes;
  }

  measure(step: number, model: Classifier, batch: TrainingBatch): Measurement {
    const variables = model.trainable;
    const rows: InstrumentRow[] = [];
    atMovedWeights(model, variables, batch, this.features, (loss, saved) => {
      const { value, grads } = tf.variableGrads(loss, variables);
      const lossHere = scalarValue(value);
      const gradNorm = scalarValue(globalNorm(variables.map((v) => grads[v.name])));
      for (const s of this.stepSizes) {
        const [lossThere, gradChange] = tf.tidy(() => {
          for (const v of variables) v.assign(tf.sub(saved.get(v) as tf.Tensor, tf.mul(grads[v.name], s * this.lr)));
          const there = tf.variableGrads(loss, variables);
          return [there.value, globalNorm(variables.map((v) => tf.sub(there.grads[v.name], grads[v.name])))].map((t) =>
            scalarValue(t),
          );
        });
        rows.push({
          step,
          step_size: s,
          loss: lossThere,
          loss_change: lossThere - lossHere,
          grad_change: gradChange,
          beta: gradChange / (s * this.lr * gradNorm),
        });
      }
    });
    return { rows };
  }
}
