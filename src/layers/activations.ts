import * as tf from '@tensorflow/tfjs';

/** A hidden layer's nonlinearity (`model.activation`); `linear` is none. */
export type Activation = 'sigmoid' | 'relu' | 'tanh' | 'linear' | 'selu';

/** Each activation as TensorFlow.js ops (the graph compiler's counterparts: src/train/graph/ops/activations.ts). */
export const ACTIVATIONS: Record<Activation, (x: tf.Tensor) => tf.Tensor> = {
  sigmoid: tf.sigmoid,
  relu: tf.relu,
  tanh: tf.tanh,
  linear: (x: tf.Tensor) => x,
  // SELU (Klambauer et al. 2017): lambda * (x > 0 ? x : alpha (e^x - 1)), lambda 1.0507..., alpha 1.6732...
  selu: tf.selu,
};
