import * as tf from '@tensorflow/tfjs';
import type { Classifier } from '../../model/index.js';
import type { InstrumentName } from '../../spec/types.js';
import { crossEntropy } from '../evaluate.js';

/** One CSV row: column -> value, in column order. */
export type InstrumentRow = Record<string, number | string>;

/** What one measurement gives: its rows, and for activation_percentiles the raw values by layer. */
export interface Measurement {
  rows: InstrumentRow[];
  activations?: Map<string, Float32Array>;
}

/** The training batch of the current step: x [n * features], y [n]. */
export interface TrainingBatch {
  x: Float32Array;
  y: Int32Array;
}

/**
 * An instrument measures at steps that are multiples of its `every`, either `before_step` (on the
 * step's training batch and the weights the optimizer is about to update) or `after_step` (on
 * the weights the step produced). A measurement must leave training exactly as it found it.
 */
export interface Instrument {
  readonly name: InstrumentName;
  readonly phase: 'before_step' | 'after_step';
  measure(step: number, model: Classifier, batch: TrainingBatch): Measurement;
}

/** Mean cross-entropy of a batch in training mode (batch statistics), as the training step computes it. */
export function trainingLoss(model: Classifier, x: tf.Tensor2D, y: tf.Tensor1D): tf.Scalar {
  return crossEntropy(model.forward(x, true), y, model.classes);
}

/** Euclidean norm over several tensors taken as one vector. */
export function globalNorm(tensors: tf.Tensor[]): tf.Scalar {
  return tf.sqrt(tf.addN(tensors.map((t) => tf.sum(tf.square(t))))) as tf.Scalar;
}

export function scalarValue(t: tf.Scalar): number {
  return (t.dataSync() as Float32Array)[0];
}
