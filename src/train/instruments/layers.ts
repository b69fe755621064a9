import * as tf from '@tensorflow/tfjs';
import { Cnn, Mlp, type Classifier } from '../../model/index.js';
import { trainingLoss } from './instrument.js';

/**
 * The layer-by-layer view of a model that the instruments need, by the layer names of a saved
 * model (`hidden1`, ..., `conv1`, ..., `dense1`, ..., `head`). The instruments work on `Mlp` and
 * `Cnn`, the two `Classifier`s bnx builds.
 */

/** A layer with weights, in forward order: its kernel (the direction V under weight norm) and every variable the optimizer updates in it. */
export interface WeightLayer {
  name: string;
  kernel: tf.Variable;
  trainable: tf.Variable[];
}

export function weightLayers(model: Classifier): WeightLayer[] {
  if (model instanceof Mlp) {
    return [
      ...model.hidden.map((l) => ({
        name: l.name,
        kernel: l.dense.trainable[0],
        trainable: [...l.dense.trainable, ...(l.norm?.trainable ?? [])],
      })),
      { name: 'head', kernel: model.head.kernel, trainable: model.head.trainable },
    ];
  }
  if (model instanceof Cnn) {
    return [
      ...model.blocks.map((b) => ({
        name: b.name,
        kernel: b.conv.kernel as tf.Variable,
        trainable: [...b.conv.trainable, ...(b.norm?.trainable ?? [])],
      })),
      ...model.dense.map((d) => ({
        name: d.name,
        kernel: d.layer.kernel as tf.Variable,
        trainable: d.layer.trainable,
      })),
      { name: 'head', kernel: model.head.kernel, trainable: model.head.trainable },
    ];
  }
  throw new Error('instruments: the model is neither an Mlp nor a Cnn');
}

/**
 * The input to the nonlinearity of every layer that has one, by layer name, for x: [N, features]
 * (see `Classifier.forward`'s tap): mlp: [N, units] per hidden layer; cnn: [N, H, W, C] per conv
 * block, [N, units] per dense layer of the head. A batch norm in training mode records its batch
 * statistics, as in any training-mode forward pass.
 */
export function nonlinearityInputs(model: Classifier, x: tf.Tensor2D, training: boolean): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  const logits = model.forward(x, training, (layer, z) => out.set(layer, z));
  logits.dispose();
  return out;
}

/** Copies of the variables' values, to put back bit for bit with `restore`. */
export function snapshot(variables: tf.Variable[]): Map<tf.Variable, tf.Tensor> {
  return new Map(variables.map((v) => [v, tf.clone(v)]));
}

export function restore(saved: Map<tf.Variable, tf.Tensor>): void {
  for (const [v, value] of saved) v.assign(value);
}

export function disposeSnapshot(saved: Map<tf.Variable, tf.Tensor>): void {
  tf.dispose([...saved.values()]);
}

/**
 * Runs `measure` with the batch's training loss as a function of the weights, free to move
 * `variables` (from their values in `saved`); afterwards they are put back bit for bit and every
 * tensor `measure` made is released.
 */
export function atMovedWeights(
  model: Classifier,
  variables: tf.Variable[],
  batch: { x: Float32Array; y: Int32Array },
  features: number,
  measure: (loss: () => tf.Scalar, saved: Map<tf.Variable, tf.Tensor>) => void,
): void {
  const saved = snapshot(variables);
  try {
    tf.tidy(() => {
      const x = tf.tensor2d(batch.x, [batch.y.length, features]);
      const y = tf.tensor1d(batch.y, 'int32');
      measure(() => trainingLoss(model, x, y), saved);
    });
  } finally {
    restore(saved);
    disposeSnapshot(saved);
  }
}
