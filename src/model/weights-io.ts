import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { DamagedFileError } from '../util/errors.js';
import { writeFileAtomic } from '../util/files.js';
import type { Classifier } from './classifier.js';

import { checkWeightsFiles, WEIGHT_FILES, type WeightsFile } from './weights-format.js';

export { WEIGHT_FILES, type WeightsFile };

/**
 * Writes every variable of a trained model (weights, normalization parameters and inference
 * statistics, by `Mlp.namedWeights` names) to `dir`/weights.json + weights.bin: the values in
 * float32 little-endian, one after the other, in the manifest's order.
 */
export function saveWeights(model: Classifier, dir: string): void {
  const specs: WeightsFile['weightsManifest'][number]['weights'] = [];
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
  // Both files there, and weights.bin as long as the manifest says: else one line naming the file.
  const file = checkWeightsFiles(dir);
  const group = file.weightsManifest[0];
  const data = fs.readFileSync(path.join(dir, WEIGHT_FILES.data));
  const buffer = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
  const tensors = tf.io.decodeWeights(buffer, group.weights);
  try {
    const named = model.namedWeights;
    const missing = [...named.keys()].filter((k) => !(k in tensors));
    const extra = Object.keys(tensors).filter((k) => !named.has(k));
    const manifest = path.join(dir, WEIGHT_FILES.manifest);
    if (missing.length > 0 || extra.length > 0) {
      throw new DamagedFileError(
        manifest,
        `does not match the run's model: missing [${missing.join(', ')}], unexpected [${extra.join(', ')}]`,
      );
    }
    for (const [name, v] of named) {
      const t = tensors[name];
      if (t.shape.join(',') !== v.shape.join(','))
        throw new DamagedFileError(manifest, `${name} has shape [${t.shape}], the run's model [${v.shape}]`);
      v.assign(t);
    }
  } finally {
    tf.dispose(Object.values(tensors));
  }
}
