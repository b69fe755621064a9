import * as tf from '@tensorflow/tfjs';

/** A hidden layer's nonlinearity (`model.activation`); `linear` is none. */
export type Activation = 'sigmoid' | 'relu' | 'tanh' | 'linear';

/** Each activation as TensorFlow.js ops (the graph compiler's counterparts: src/train/graph/ops/activations.ts). */
export const ACTIVATIONS: Record<Activation, (x: tf.Tensor) => tf.Tensor> = {
  sigmoid: tf.sigmoid,
  relu: tf.relu,
  tanh: tf.tanh,
  linear: (x: tf.Tensor) => x,
};
