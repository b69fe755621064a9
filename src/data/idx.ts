/**
 * The IDX file format of the MNIST distribution (http://yann.lecun.com/exdb/mnist/): a 4-byte
 * magic number (0x00 0x00, element type, number of dimensions), one big-endian uint32 per
 * dimension, then the elements in row-major order. bnx only needs unsigned bytes (type 0x08).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { InputError } from '../util/errors.js';

export interface IdxFile {
  dims: number[];
  data: Uint8Array;
}

const UBYTE = 0x08;
/** The other element types the format defines, named so the error says what the file holds. */
const TYPE_NAMES: Record<number, string> = {
  0x09: 'signed byte',
  0x0b: 'int16',
  0x0c: 'int32',
  0x0d: 'float32',
  0x0e: 'float64',
};

const hex = (n: number, width: number): string => '0x' + n.toString(16).padStart(width, '0');

function readBytes(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new InputError(path, 'file not found (expected an IDX file)');
    if (code === 'EISDIR') throw new InputError(path, 'is a directory (expected an IDX file)');
    throw new InputError(path, `cannot read file: ${code ?? String(e)} (expected a readable IDX file)`);
  }
}

/**
 * Reads an unsigned-byte IDX file, gzipped or not. The returned `data` may be a view into the
 * file's buffer: treat it as read-only.
 */
export function readIdx(path: string, expectedDims?: { count: number; what: string }): IdxFile {
  let buf = readBytes(path);
  const gzipMagic = buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b;
  if (gzipMagic || path.endsWith('.gz')) {
    try {
      buf = gunzipSync(buf);
    } catch (e) {
      const why = (e as Error).message.split('\n')[0];
      throw new InputError(path, `cannot gunzip: ${why} (expected a complete gzip-compressed IDX file)`);
    }
  }
  if (buf.length < 4) {
    throw new InputError(path, `file has only ${buf.length} bytes (expected an IDX file with a 4-byte magic number)`);
  }
  const magic = buf.readUInt32BE(0);
  if (buf[0] !== 0 || buf[1] !== 0) {
    throw new InputError(
      path,
      `bad magic number ${hex(magic, 8)} (expected an IDX file: 0x0000, type 0x08, number of dimensions)`,
    );
  }
  const type = buf[2];
  if (type !== UBYTE) {
    const name = TYPE_NAMES[type] ? ` (${TYPE_NAMES[type]})` : '';
    throw new InputError(
      path,
      `IDX element type ${hex(type, 2)}${name} is not supported (expected 0x08, unsigned byte)`,
    );
  }
  const ndims = buf[3];
  if (ndims === 0) throw new InputError(path, 'IDX header declares 0 dimensions (expected at least 1)');
  // The magic number says how many dimensions follow: a labels file has 1 (0x00000801), an images
  // file 3 (0x00000803). Checked before the sizes, which are read from a header of that many dimensions.
  if (expectedDims && ndims !== expectedDims.count) {
    const want = hex(0x800 + expectedDims.count, 8);
    throw new InputError(
      path,
      `bad magic number ${hex(magic, 8)}: ${ndims} dimension(s), expected ${want} (${expectedDims.what}: ${expectedDims.count} dimension(s))${ndims === 3 ? '; is it an images file?' : ndims === 1 ? '; is it a labels file?' : ''}`,
    );
  }
  const headerLength = 4 + 4 * ndims;
  if (buf.length < headerLength) {
    throw new InputError(
      path,
      `truncated header: ${buf.length} bytes (expected ${headerLength} bytes for ${ndims} dimensions)`,
    );
  }
  const dims: number[] = [];
  for (let i = 0; i < ndims; i++) dims.push(buf.readUInt32BE(4 + 4 * i));
  const expected = dims.reduce((a, b) => a * b, 1);
  const payload = buf.length - headerLength;
  if (payload !== expected) {
    const what = payload < expected ? 'truncated' : 'oversized';
    throw new InputError(
      path,
      `${what}: ${payload} data bytes (expected ${expected} = ${dims.join(' x ')} from the IDX header)`,
    );
  }
  return { dims, data: new Uint8Array(buf.buffer, buf.byteOffset + headerLength, expected) };
}

/** Writes an uncompressed unsigned-byte IDX file (tests use it to build fixtures). */
export function writeIdx(path: string, dims: readonly number[], data: Uint8Array): void {
  if (dims.length < 1 || dims.length > 255) throw new Error(`writeIdx: ${dims.length} dimensions (expected 1..255)`);
  const expected = dims.reduce((a, b) => a * b, 1);
  if (data.length !== expected) {
    throw new Error(`writeIdx: ${data.length} bytes of data for dims ${dims.join(' x ')} (expected ${expected})`);
  }
  const header = Buffer.alloc(4 + 4 * dims.length);
  header[2] = UBYTE;
  header[3] = dims.length;
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  writeFileSync(path, Buffer.concat([header, data]));
}
