/**
 * The binary version of CIFAR-10 (https://www.cs.toronto.edu/~kriz/cifar.html): each file is a
 * sequence of 3,073-byte records, one label byte (0..9) then 3,072 pixel bytes: the 1,024 red values
 * of the 32 x 32 image row by row, then the green, then the blue. bnx stores images channels-last
 * ([32, 32, 3], pixel (r, c) channel k at (r * 32 + c) * 3 + k), as TensorFlow does.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { InputError } from '../util/errors.js';

export const CIFAR_SIDE = 32;
export const CIFAR_CHANNELS = 3;
export const CIFAR_CLASSES = 10;
const PLANE = CIFAR_SIDE * CIFAR_SIDE;
const PIXELS = PLANE * CIFAR_CHANNELS;
const RECORD = 1 + PIXELS;

export interface CifarBatch {
  /** n x 32 x 32 x 3 bytes, channels-last. */
  x: Uint8Array;
  y: Int32Array;
  n: number;
}

/** Reads one CIFAR-10 binary batch file (plain or gzipped). */
export function readCifarBatch(path: string): CifarBatch {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(
      path,
      code === 'ENOENT'
        ? 'file not found (expected a CIFAR-10 binary batch)'
        : `cannot read file: ${code ?? String(e)}`,
    );
  }
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      buf = gunzipSync(buf);
    } catch (e) {
      throw new InputError(
        path,
        `cannot gunzip: ${(e as Error).message.split('\n')[0]} (expected a complete gzip-compressed CIFAR-10 batch)`,
      );
    }
  }
  if (buf.length === 0 || buf.length % RECORD !== 0) {
    throw new InputError(
      path,
      `${buf.length} bytes is not a whole number of ${RECORD}-byte records (expected a CIFAR-10 binary batch: 1 label byte + 32x32x3 pixels per image)`,
    );
  }
  const n = buf.length / RECORD;
  const x = new Uint8Array(n * PIXELS);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const rec = i * RECORD;
    const label = buf[rec];
    if (label >= CIFAR_CLASSES)
      throw new InputError(path, `label ${label} in record ${i} (expected 0..${CIFAR_CLASSES - 1})`);
    y[i] = label;
    const out = i * PIXELS;
    // Planar (RRR..GGG..BBB) to channels-last (RGBRGB..).
    for (let k = 0; k < CIFAR_CHANNELS; k++) {
      const plane = rec + 1 + k * PLANE;
      for (let p = 0; p < PLANE; p++) x[out + p * CIFAR_CHANNELS + k] = buf[plane + p];
    }
  }
  return { x, y, n };
}

/** Reads and concatenates several batch files in order. */
export function readCifarBatches(paths: readonly string[]): CifarBatch {
  const parts = paths.map(readCifarBatch);
  const n = parts.reduce((s, p) => s + p.n, 0);
  const x = new Uint8Array(n * PIXELS);
  const y = new Int32Array(n);
  let at = 0;
  for (const p of parts) {
    x.set(p.x, at * PIXELS);
    y.set(p.y, at);
    at += p.n;
  }
  return { x, y, n };
}

/** Writes a CIFAR-10 binary batch from channels-last images (tests build fixtures with it). */
export function writeCifarBatch(path: string, x: Uint8Array, y: ArrayLike<number>): void {
  const n = y.length;
  if (x.length !== n * PIXELS)
    throw new Error(`writeCifarBatch: ${x.length} pixel bytes for ${n} images (expected ${n * PIXELS})`);
  const buf = Buffer.alloc(n * RECORD);
  for (let i = 0; i < n; i++) {
    const rec = i * RECORD;
    buf[rec] = y[i];
    for (let k = 0; k < CIFAR_CHANNELS; k++) {
      for (let p = 0; p < PLANE; p++) buf[rec + 1 + k * PLANE + p] = x[i * PIXELS + p * CIFAR_CHANNELS + k];
    }
  }
  writeFileSync(path, buf);
}
