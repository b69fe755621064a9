import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { writeFileAtomic } from '../util/files.js';
import type { Classifier } from './classifier.js';

/** Files a trained model is saved to, in its run directory. */
export const WEIGHT_FILES = { manifest: 'weights.json', data: 'weights.bin' } as const;

/** weights.json: a TensorFlow.js weights manifest (one group, float32) plus what bnx needs to check it. */
export interface WeightsFile {
  format: 'bnx-weights';
  version: 1;
  /** `tf.io.decodeWeights(weights.bin, weightsManifest[0].weights)` reads the values back. */
  weightsManifest: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
}

/**
 * Writes every variable of a trained model (weights, normalization parameters and inference
 * statistics, by `Mlp.namedWeights` names) to `dir`/weights.json + weights.bin: the values in
 * float32 little-endian, one after the other, in the manifest's order.
 */
export function saveWeights(model: Classifier, dir: string): void {
  const specs: tf.io.WeightsManifestEntry[] = [];
  const chunks: Buffer[] = [];
  for (const [name, v] of model.namedWeights) {
    specs.push({ name, shape: [...v.shape], dtype: 'float32' });
    const values = v.dataSync() as Float32Array;
    chunks.push(Buffer.from(values.buffer, values.byteOffset, values.byteLength));
  }
  const manifest: WeightsFile = {
    format: 'bnx-weights',
    version: 1,
    weightsManifest: [{ paths: [WEIGHT_FILES.data], weights: specs }],
  };
  // Data first, manifest last: a manifest on disk always describes a complete weights.bin.
  writeFileAtomic(path.join(dir, WEIGHT_FILES.data), Buffer.concat(chunks));
  writeFileAtomic(path.join(dir, WEIGHT_FILES.manifest), `${JSON.stringify(manifest, null, 2)}\n`);
}

/** True when `dir` holds a saved model. */
export function hasWeights(dir: string): boolean {
  return fs.existsSync(path.join(dir, WEIGHT_FILES.manifest)) && fs.existsSync(path.join(dir, WEIGHT_FILES.data));
}

/**
 * Loads weights saved by `saveWeights` into a model built from the same configuration. Every
 * variable of the model must be in the file with the same shape, and nothing else.
 */
export function loadWeights(model: Classifier, dir: string): void {
  const file = JSON.parse(fs.readFileSync(path.join(dir, WEIGHT_FILES.manifest), 'utf8')) as WeightsFile;
  if (file.format !== 'bnx-weights' || file.version !== 1)
    throw new Error(`${WEIGHT_FILES.manifest}: not a bnx weights file (version 1)`);
  const group = file.weightsManifest[0];
  const data = fs.readFileSync(path.join(dir, group.paths[0]));
  const buffer = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
  const tensors = tf.io.decodeWeights(buffer, group.weights);
  try {
    const named = model.namedWeights;
    const missing = [...named.keys()].filter((k) => !(k in tensors));
    const extra = Object.keys(tensors).filter((k) => !named.has(k));
    if (missing.length > 0 || extra.length > 0) {
      throw new Error(
        `${WEIGHT_FILES.manifest} does not match the model: missing [${missing.join(', ')}], unexpected [${extra.join(', ')}]`,
      );
    }
    for (const [name, v] of named) {
      const t = tensors[name];
      if (t.shape.join(',') !== v.shape.join(','))
        throw new Error(`${WEIGHT_FILES.manifest}: ${name} has shape [${t.shape}], the model [${v.shape}]`);
      v.assign(t);
    }
  } finally {
    tf.dispose(Object.values(tensors));
  }
}
