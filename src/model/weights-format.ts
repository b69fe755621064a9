import fs from 'node:fs';
import path from 'node:path';
import { DamagedFileError, InputError } from '../util/errors.js';

/** Files a trained model is saved to, in its run directory. */
export const WEIGHT_FILES = { manifest: 'weights.json', data: 'weights.bin' } as const;

/** One weight in the manifest (the fields of a TensorFlow.js WeightsManifestEntry that bnx writes). */
interface WeightEntry {
  name: string;
  shape: number[];
  dtype: 'float32';
}

/** weights.json: a TensorFlow.js weights manifest (one group, float32) plus what bnx needs to check it. */
export interface WeightsFile {
  format: 'bnx-weights';
  version: 1;
  /** `tf.io.decodeWeights(weights.bin, weightsManifest[0].weights)` reads the values back. */
  weightsManifest: { paths: string[]; weights: WeightEntry[] }[];
}

/**
 * Reads a run's weights.json and checks weights.bin against it, without TensorFlow: both files are
 * there, the manifest is a bnx one, and weights.bin holds exactly the float32 values it lists.
 * A missing file is an InputError naming it; a truncated or garbage one is a DamagedFileError.
 */
export function checkWeightsFiles(dir: string): WeightsFile {
  const manifestFile = path.join(dir, WEIGHT_FILES.manifest);
  const dataFile = path.join(dir, WEIGHT_FILES.data);
  const [hasManifest, hasData] = [fs.existsSync(manifestFile), fs.existsSync(dataFile)];
  if (!hasManifest && !hasData)
    throw new InputError(
      dir,
      `no ${WEIGHT_FILES.manifest} and ${WEIGHT_FILES.data}: the run saved no weights (trained before bnx saved them); retrain it (bnx run SPEC --force)`,
    );
  if (!hasManifest || !hasData)
    throw new InputError(
      hasManifest ? dataFile : manifestFile,
      `missing (its ${hasManifest ? WEIGHT_FILES.manifest : WEIGHT_FILES.data} is there): the run's weights are incomplete; retrain it (bnx run SPEC --force)`,
    );
  const hint = 'retrain the run (bnx run SPEC --force) to write the weights again';
  let file: WeightsFile;
  try {
    file = JSON.parse(fs.readFileSync(manifestFile, 'utf8')) as WeightsFile;
  } catch (e) {
    throw new DamagedFileError(manifestFile, `not valid JSON (${(e as Error).message})`, hint);
  }
  const group = file?.weightsManifest?.[0];
  if (file?.format !== 'bnx-weights' || file.version !== 1 || !Array.isArray(group?.weights))
    throw new DamagedFileError(manifestFile, 'not a bnx weights file (format bnx-weights, version 1)', hint);
  let expected = 0;
  for (const w of group.weights) {
    if (!Array.isArray(w?.shape) || !w.shape.every((d) => Number.isInteger(d) && d >= 0) || w.dtype !== 'float32')
      throw new DamagedFileError(manifestFile, `weight ${JSON.stringify(w?.name)} has no float32 shape`, hint);
    expected += 4 * w.shape.reduce((a, b) => a * b, 1);
  }
  const size = fs.statSync(dataFile).size;
  if (size !== expected)
    throw new DamagedFileError(
      dataFile,
      `${size} bytes, but ${WEIGHT_FILES.manifest} lists ${expected} (${group.weights.length} float32 weights)`,
      hint,
    );
  return file;
}
