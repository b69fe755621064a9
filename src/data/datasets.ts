/**
 * Datasets as flat typed arrays: MNIST from IDX files and a synthetic classification task, split
 * into train / validation / test and preprocessed with statistics of the training split only.
 */
import { InputError } from '../util/errors.js';
import type { DataConfig, SyntheticConfig } from '../spec/types.js';
import { Rng } from '../util/rng.js';
import {
  CIFAR_CHANNELS,
  CIFAR_CLASSES,
  CIFAR_SIDE,
  readCifarBatch,
  readCifarBatches,
  type CifarBatch,
} from './cifar.js';
import { readIdx, type IdxFile } from './idx.js';
import { CIFAR10_FILES, locateDataset, MNIST_FILES } from './sources.js';

export { MNIST_FILES } from './sources.js';

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

const IMAGE_CLASSES = 10;

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
  /**
   * Preprocessing statistics are per channel: the last axis of `inputShape` for images (1 for
   * MNIST, 3 for CIFAR-10; channels-last, so feature j is channel j % channels), every feature for
   * synthetic data.
   */
  statChannels: number;
  /** Values are 0..255 pixels (`scale` divides by 255). */
  pixels: boolean;
  trainX: Uint8Array | Float32Array;
  trainY: Int32Array;
  testX: Uint8Array | Float32Array;
  testY: Int32Array;
}

/** The directory the MNIST files are read from (see `locateDataset`). */
export function mnistDir(cfg: Pick<DataConfig, 'path'>): string {
  return locateDataset('mnist', cfg.path).dir;
}

/** Parsed files by absolute path: a sweep of many runs in one process reads a dataset once. */
const fileCache = new Map<string, IdxFile | CifarBatch>();

function cached<T extends IdxFile | CifarBatch>(path: string, read: (p: string) => T): T {
  let file = fileCache.get(path) as T | undefined;
  if (!file) {
    file = read(path);
    fileCache.set(path, file);
  }
  return file;
}

function readImagesAndLabels(
  imagesPath: string,
  labelsPath: string,
): { x: Uint8Array; y: Int32Array; rows: number; cols: number } {
  const images = cached(imagesPath, (p) => readIdx(p, { count: 3, what: 'an IDX images file' }));
  const labels = cached(labelsPath, (p) => readIdx(p, { count: 1, what: 'an IDX labels file' }));
  if (images.dims.length !== 3) {
    throw new InputError(imagesPath, `images have ${images.dims.length} dimensions (expected 3: count x rows x cols)`);
  }
  if (labels.dims.length !== 1) {
    throw new InputError(labelsPath, `labels have ${labels.dims.length} dimensions (expected 1: count)`);
  }
  const [n, rows, cols] = images.dims;
  if (n === 0 || rows === 0 || cols === 0) {
    throw new InputError(
      imagesPath,
      `images have shape ${images.dims.join(' x ')} (expected at least one non-empty image)`,
    );
  }
  if (labels.dims[0] !== n) {
    throw new InputError(labelsPath, `${labels.dims[0]} labels (expected ${n}, one per image in ${imagesPath})`);
  }
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const label = labels.data[i];
    if (label >= IMAGE_CLASSES) {
      throw new InputError(labelsPath, `label ${label} at index ${i} (expected 0..${IMAGE_CLASSES - 1})`);
    }
    y[i] = label;
  }
  return { x: images.data, y, rows, cols };
}

/** MNIST or Fashion-MNIST: the same four IDX files, 28 x 28 grey images, 10 classes. */
function loadIdxDataset(name: 'mnist' | 'fashion_mnist', cfg: DataConfig): RawData {
  const { dir, files } = locateDataset(name, cfg.path);
  const f = (k: keyof typeof MNIST_FILES) => files[MNIST_FILES[k]];
  const train = readImagesAndLabels(f('trainImages'), f('trainLabels'));
  const test = readImagesAndLabels(f('testImages'), f('testLabels'));
  if (train.rows !== test.rows || train.cols !== test.cols) {
    throw new InputError(
      f('testImages'),
      `images are ${test.rows} x ${test.cols} (expected ${train.rows} x ${train.cols} like ${f('trainImages')})`,
    );
  }
  return {
    name,
    source: dir,
    features: train.rows * train.cols,
    classes: IMAGE_CLASSES,
    inputShape: [train.rows, train.cols, 1],
    statChannels: 1,
    pixels: true,
    trainX: train.x,
    trainY: train.y,
    testX: test.x,
    testY: test.y,
  };
}

/** CIFAR-10, binary version: 50,000 + 10,000 colour images [32, 32, 3], 10 classes. */
function loadCifar10(cfg: DataConfig): RawData {
  const { dir, files } = locateDataset('cifar10', cfg.path);
  const train = cached(`cifar10:${dir}:train`, () => readCifarBatches(CIFAR10_FILES.train.map((n) => files[n])));
  const test = cached(files[CIFAR10_FILES.test], readCifarBatch);
  return {
    name: 'cifar10',
    source: dir,
    features: CIFAR_SIDE * CIFAR_SIDE * CIFAR_CHANNELS,
    classes: CIFAR_CLASSES,
    inputShape: [CIFAR_SIDE, CIFAR_SIDE, CIFAR_CHANNELS],
    statChannels: CIFAR_CHANNELS,
    pixels: true,
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
    statChannels: f,
    pixels: false,
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
  const channels = raw.statChannels;
  const shift = new Float64Array(channels);
  const div = new Float64Array(channels).fill(1);
  if (preprocess === 'scale' && raw.pixels) {
    div.fill(255); // pixels are 0..255 by the file format, whatever this training set holds
    return { shift, div };
  }
  // Column c of the train matrix viewed as rows of `channels` values: for MNIST the whole split
  // is one column, for CIFAR-10 each colour channel (channels-last); for synthetic each feature.
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

/** Applies the per-channel map; channels-last, so value i belongs to channel i % channels. */
function applyAffine(s: Split, a: Affine): void {
  const { x } = s;
  const channels = a.shift.length;
  if (channels === 1) {
    const shift = a.shift[0];
    const inv = 1 / a.div[0];
    for (let i = 0; i < x.length; i++) x[i] = (x[i] - shift) * inv;
    return;
  }
  const inv = a.div.map((d) => 1 / d);
  for (let row = 0; row < x.length; row += channels) {
    for (let c = 0; c < channels; c++) x[row + c] = (x[row + c] - a.shift[c]) * inv[c];
  }
}

/** Loads, splits and preprocesses the dataset `cfg` describes. Every call returns fresh arrays. */
export function loadDataset(cfg: DataConfig): Dataset {
  const raw =
    cfg.dataset === 'synthetic'
      ? generateSynthetic(cfg.synthetic)
      : cfg.dataset === 'cifar10'
        ? loadCifar10(cfg)
        : loadIdxDataset(cfg.dataset, cfg);
  const { train, val, test } = split(raw, cfg);
  const affine = trainStatistics(raw, train, cfg.preprocess);
  if (affine) {
    // val may be the test split itself (validation: test): transform each array once.
    for (const s of new Set([train, val, test])) applyAffine(s, affine);
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

/**
 * Copies rows `indices[start .. start + count)` of `split` (one mini-batch) into `into`, or into new
 * arrays. A training loop passes the same buffers at every step: a fresh batch-sized array per step
 * is garbage the collector then has to chase, at hundreds of steps per second.
 */
export function gather(
  split: Split,
  features: number,
  indices: Int32Array,
  start: number,
  count: number,
  into?: { x: Float32Array; y: Int32Array },
): { x: Float32Array; y: Int32Array } {
  if (start < 0 || count < 0 || start + count > indices.length) {
    throw new Error(`gather: rows ${start}..${start + count} out of ${indices.length} indices`);
  }
  if (into && (into.x.length !== count * features || into.y.length !== count))
    throw new Error(`gather: buffers of ${into.y.length} rows for a batch of ${count}`);
  const x = into?.x ?? new Float32Array(count * features);
  const y = into?.y ?? new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const r = indices[start + i];
    x.set(split.x.subarray(r * features, (r + 1) * features), i * features);
    y[i] = split.y[r];
  }
  return { x, y };
}
