import fs from 'node:fs';
import path from 'node:path';
import type * as protobuf from 'protobufjs';
import { InputError } from '../util/errors.js';
import { EVENT_FILE_MARK, eventSchema } from '../store/tensorboard.js';

/**
 * Reads TensorBoard event files (`events.out.tfevents.*`): the ones bnx writes, and scalars and
 * histograms written by TensorFlow itself. An event file is a sequence of TFRecords, each
 *
 *   uint64 length (little-endian) | uint32 masked crc32c(length bytes) | data[length] | uint32 masked crc32c(data)
 *
 * where the data is one serialized `tensorflow.Event`. Both checksums are verified.
 */

const HEADER_BYTES = 8 + 4;
const FOOTER_BYTES = 4;

/** CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord uses. */
const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32c(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) crc = CRC32C_TABLE[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** TFRecord stores CRCs rotated right by 15 bits plus a constant, so that a CRC of CRCs is not trivial. */
export function maskedCrc32c(bytes: Uint8Array): number {
  const crc = crc32c(bytes);
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/**
 * Splits TFRecord bytes into their records' data, verifying both checksums of each. `where` names
 * the source in errors (which also give the byte offset of the bad record).
 */
export function readRecords(bytes: Uint8Array, where = 'TFRecord data'): Uint8Array[] {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const records: Uint8Array[] = [];
  let offset = 0;
  while (offset < view.length) {
    const at = `${where} at byte ${offset}`;
    if (view.length - offset < HEADER_BYTES)
      throw new InputError(at, `truncated record header (${view.length - offset} of ${HEADER_BYTES} bytes)`);
    const lengthBytes = view.subarray(offset, offset + 8);
    if (view.readUInt32LE(offset + 8) !== maskedCrc32c(lengthBytes))
      throw new InputError(at, 'record length checksum mismatch: the file is corrupt');
    const length = view.readBigUInt64LE(offset);
    const start = offset + HEADER_BYTES;
    if (length > BigInt(view.length - start - FOOTER_BYTES)) {
      throw new InputError(
        at,
        `truncated record: ${length} data bytes announced, ${Math.max(0, view.length - start - FOOTER_BYTES)} present`,
      );
    }
    const end = start + Number(length);
    const data = view.subarray(start, end);
    if (view.readUInt32LE(end) !== maskedCrc32c(data))
      throw new InputError(at, 'record data checksum mismatch: the file is corrupt');
    records.push(data);
    offset = end + FOOTER_BYTES;
  }
  return records;
}

export interface HistogramBucket {
  left: number;
  right: number;
  count: number;
}

/** One summary value of an event: TensorBoard's scalars and histograms; other tensors as they are. */
export type SummaryValue =
  | { tag: string; kind: 'scalar'; value: number }
  | { tag: string; kind: 'histogram'; buckets: HistogramBucket[] }
  | { tag: string; kind: 'tensor'; plugin: string; shape: number[]; values: number[] | null };

export interface TensorBoardEvent {
  /** Seconds since the epoch, when the event was written. */
  wallTime: number;
  step: number;
  /** Set on the first event of a file only: `brain.Event:2`. */
  fileVersion: string | null;
  values: SummaryValue[];
}

let eventType: protobuf.Type | null = null;
function eventMessage(): protobuf.Type {
  // Loaded on first use, as the SavedModel schema is: `bnx --help` and `bnx plan` stay fast.
  eventType ??= eventSchema().lookupType('tensorflow.Event');
  return eventType;
}

/** DataType numbers (types.proto) of the tensors a summary holds as numbers. */
const DT_FLOAT = 1;
const DT_DOUBLE = 2;

interface TensorObject {
  dtype?: number;
  tensorShape?: { dim?: { size?: number }[] };
  tensorContent?: Uint8Array;
  floatVal?: number[];
}

/** The numbers of a float32/float64 TensorProto (packed content or repeated values); null for other types. */
function tensorValues(t: TensorObject): number[] | null {
  const content = t.tensorContent;
  if (content && content.length > 0) {
    const bytes = Buffer.from(content);
    if (t.dtype === DT_FLOAT) return Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readFloatLE(4 * i));
    if (t.dtype === DT_DOUBLE) return Array.from({ length: bytes.length / 8 }, (_, i) => bytes.readDoubleLE(8 * i));
    return null;
  }
  if (t.dtype === DT_FLOAT) return t.floatVal ?? [];
  return null;
}

interface ValueObject {
  tag?: string;
  metadata?: { pluginData?: { pluginName?: string } };
  simpleValue?: number;
  histo?: { min?: number; max?: number; bucketLimit?: number[]; bucket?: number[] };
  tensor?: TensorObject;
}

function summaryValue(v: ValueObject): SummaryValue {
  const tag = v.tag ?? '';
  if (v.simpleValue !== undefined) return { tag, kind: 'scalar', value: v.simpleValue };
  if (v.histo) {
    // TF1 histograms give right edges only; the left edge of bucket i is the right edge of bucket
    // i-1 (of the first, the minimum), and the last right edge (DBL_MAX) is clamped to the maximum.
    const limits = v.histo.bucketLimit ?? [];
    const counts = v.histo.bucket ?? [];
    const buckets = counts.map((count, i) => ({
      left: i === 0 ? (v.histo?.min ?? 0) : limits[i - 1],
      right: i === counts.length - 1 ? (v.histo?.max ?? 0) : limits[i],
      count,
    }));
    return { tag, kind: 'histogram', buckets };
  }
  const tensor = v.tensor ?? {};
  const plugin = v.metadata?.pluginData?.pluginName ?? '';
  const shape = (tensor.tensorShape?.dim ?? []).map((d) => d.size ?? 0);
  const values = tensorValues(tensor);
  // TF2 summaries: a histogram is a [k, 3] tensor of (left edge, right edge, count) rows.
  if (plugin === 'histograms' && values && shape.length === 2 && shape[1] === 3) {
    const buckets = Array.from({ length: shape[0] }, (_, i) => ({
      left: values[3 * i],
      right: values[3 * i + 1],
      count: values[3 * i + 2],
    }));
    return { tag, kind: 'histogram', buckets };
  }
  if (plugin === 'scalars' && values && values.length === 1) return { tag, kind: 'scalar', value: values[0] };
  return { tag, kind: 'tensor', plugin, shape, values };
}

/** Decodes one record's data as a `tensorflow.Event`. */
export function decodeEvent(data: Uint8Array): TensorBoardEvent {
  const type = eventMessage();
  const e = type.toObject(type.decode(data), { longs: Number, defaults: false }) as {
    wallTime?: number;
    step?: number;
    fileVersion?: string;
    summary?: { value?: ValueObject[] };
  };
  return {
    wallTime: e.wallTime ?? 0,
    step: e.step ?? 0,
    fileVersion: e.fileVersion ?? null,
    values: (e.summary?.value ?? []).map(summaryValue),
  };
}

/** Every event of one event file, in the order written. */
export function readEventFile(file: string): TensorBoardEvent[] {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new InputError(file, `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return readRecords(bytes, file).map((data, i) => {
    try {
      return decodeEvent(data);
    } catch (e) {
      throw new InputError(`${file} record ${i}`, `not a tensorflow.Event: ${(e as Error).message}`);
    }
  });
}

/** The event files directly inside `dir`, oldest first (their names start with the creation time). */
export function eventFiles(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((name) => name.includes(EVENT_FILE_MARK))
    .sort()
    .map((name) => path.join(dir, name));
}

export interface ScalarPoint {
  step: number;
  wallTime: number;
  value: number;
}

export interface HistogramPoint {
  step: number;
  wallTime: number;
  buckets: HistogramBucket[];
}

/** A log directory's (or one file's) series by tag, as TensorBoard would plot them. */
export interface EventLog {
  files: string[];
  scalars: Map<string, ScalarPoint[]>;
  histograms: Map<string, HistogramPoint[]>;
}

/** Reads all event files of a log directory (not its subdirectories: those are other runs), or one event file. */
export function readEventLog(dirOrFile: string): EventLog {
  if (!fs.existsSync(dirOrFile)) throw new InputError(dirOrFile, 'no such file or directory');
  const files = fs.statSync(dirOrFile).isDirectory() ? eventFiles(dirOrFile) : [dirOrFile];
  const log: EventLog = { files, scalars: new Map(), histograms: new Map() };
  const push = <T>(map: Map<string, T[]>, tag: string, point: T) => {
    const series = map.get(tag);
    if (series) series.push(point);
    else map.set(tag, [point]);
  };
  for (const file of files) {
    for (const event of readEventFile(file)) {
      for (const v of event.values) {
        if (v.kind === 'scalar')
          push(log.scalars, v.tag, { step: event.step, wallTime: event.wallTime, value: v.value });
        else if (v.kind === 'histogram')
          push(log.histograms, v.tag, { step: event.step, wallTime: event.wallTime, buckets: v.buckets });
      }
    }
  }
  return log;
}
