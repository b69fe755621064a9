import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import type * as tfTypes from '@tensorflow/tfjs';
import type * as protobuf from 'protobufjs';
import type { InstrumentName } from '../spec/types.js';
import { EVENT_PROTO } from '../util/proto/event-proto.js';
import { SAVED_MODEL_PROTO } from '../util/proto/saved-model-proto.js';
import { METRICS_COLUMNS, type MetricsRow } from './metrics.js';

/** Without `--tensorboard DIR`, a run's event files go to this folder inside its run folder. */
export const TENSORBOARD_SUBDIR = 'tensorboard';

/** TensorBoard reads only files whose names contain this (TensorFlow names them `events.out.tfevents.<time>.<host>...`). */
export const EVENT_FILE_MARK = 'tfevents';

/**
 * The log directory of a run: `<root>/<sweep folder name>/<run id>/` when `--tensorboard <root>`
 * is given (so that `tensorboard --logdir <root>` shows one line per run), else
 * `<run dir>/tensorboard/`.
 */
export function tensorboardDir(runDir: string, root: string | null | undefined): string {
  const resolved = path.resolve(runDir);
  return root
    ? path.join(root, path.basename(path.dirname(resolved)), path.basename(resolved))
    : path.join(runDir, TENSORBOARD_SUBDIR);
}

/** The metrics.csv columns written as scalars, under the same names. */
const SCALAR_COLUMNS = METRICS_COLUMNS.filter((c) => c !== 'step' && c !== 'epoch');

/**
 * Columns of an instrument's rows that say which series a row belongs to rather than measuring
 * something (string-valued columns, e.g. `layer`, always do). They become part of the tag.
 */
const SERIES_COLUMNS = new Set(['step_size', 'percentile']);

/** Buckets per activation histogram: TensorFlow's default. */
const HISTOGRAM_BUCKETS = 30;

/**
 * TensorFlow's writer flushes when its queue exceeds this many events or when a write comes this
 * long after the last flush, so that a live `tensorboard` sees a run as it trains.
 */
const MAX_QUEUE = 100;
const FLUSH_MILLIS = 5_000;

/**
 * One scalar per measured column of each row: the tag is the instrument, the row's series columns
 * (string values as they are, numeric ones as `column=value`) and the column, joined by `/`:
 * `ics/dense1/cosine`, `eval_gap/gap`, `smoothness/step_size=0.5/beta`.
 */
export function instrumentScalars(
  name: InstrumentName,
  rows: Record<string, number | string>[],
): { tag: string; value: number }[] {
  const scalars: { tag: string; value: number }[] = [];
  for (const row of rows) {
    const series: string[] = [name];
    const measured: [string, number][] = [];
    for (const [column, value] of Object.entries(row)) {
      if (column === 'step') continue;
      if (typeof value === 'string') series.push(value);
      else if (SERIES_COLUMNS.has(column)) series.push(`${column}=${value}`);
      else measured.push([column, value]);
    }
    for (const [column, value] of measured) scalars.push({ tag: [...series, column].join('/'), value });
  }
  return scalars;
}

let eventRoot: protobuf.Root | null = null;
/** TensorFlow's Event and Summary schema (with the TensorProto they use), parsed on first use. */
export function eventSchema(): protobuf.Root {
  if (eventRoot) return eventRoot;
  const pb = createRequire(import.meta.url)('protobufjs') as typeof protobuf;
  const root = pb.parse(SAVED_MODEL_PROTO, { keepCase: false }).root;
  pb.parse(EVENT_PROTO, root, { keepCase: false });
  eventRoot = root;
  return root;
}

/**
 * TensorFlow's histogram (tensorboard/plugins/histogram/summary_v2.py, as tfjs-node computes it):
 * `count` equal-width buckets from the minimum to the maximum, a value on an inner edge counted in
 * the bucket to its right and the maximum in the last; when all values are equal, one bucket
 * [v - 0.5, v + 0.5]. Rows of (left edge, right edge, count): shape [buckets, 3].
 */
export function histogramBuckets(values: Float32Array, count: number): { rows: Float32Array; buckets: number } {
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (min === max) return { rows: Float32Array.of(min - 0.5, min + 0.5, values.length), buckets: 1 };
  const width = (max - min) / count;
  const counts = new Float64Array(count);
  for (const v of values) counts[Math.min(Math.floor((v - min) / width), count - 1)]++;
  const rows = new Float32Array(3 * count);
  for (let i = 0; i < count; i++)
    rows.set([min + i * width, i === count - 1 ? max : min + (i + 1) * width, counts[i]], 3 * i);
  return { rows, buckets: count };
}

/** The parts of tfjs-node's summary writer bnx uses (tf.node.SummaryFileWriter). */
interface NativeSummaryWriter {
  scalar(name: string, value: number, step: number): void;
  flush(): void;
}

/**
 * The tfjs-node backend kernels behind tf.node.summaryFileWriter and its histogram, plus
 * TensorFlow's CloseSummaryWriter op.
 */
interface SummaryKernels {
  summaryWriter(logdir: string): tfTypes.Tensor;
  createSummaryFileWriter(
    handle: tfTypes.Tensor,
    logdir: string,
    maxQueue: number,
    flushMillis: number,
    filenameSuffix: string,
  ): void;
  executeMultipleOutputs(op: string, attrs: unknown[], inputs: tfTypes.Tensor[], outputs: number): tfTypes.Tensor[];
  getInputTensorIds(inputs: unknown[]): number[];
  binding: {
    executeOp(op: string, attrs: unknown[], inputs: number[], outputs: number): unknown;
    deleteTensor(id: number): void;
    TF_ATTR_TYPE: number;
    TF_FLOAT: number;
  };
}

/** tfjs-node's int64 scalar: summary steps are int64 and tfjs has no int64 tensors. */
type Int64ScalarClass = new (value: number) => unknown;

/**
 * Writes a run's TensorBoard event files through tfjs-node's summary writer (TensorFlow's own
 * EventsWriter: TFRecord framing, CRCs and the Event protos are TensorFlow's). Needs the native
 * `tensorflow` backend, which it loads on open, never at import: `bnx --help` and `bnx plan` do not
 * pay for it.
 *
 * tf.node.summaryFileWriter caches one writer per log directory for the life of the process and
 * never closes it; bnx opens the same writer (same kernels, same class) without that cache so that
 * `close` can end it with TensorFlow's CloseSummaryWriter op: the file is complete and released at
 * the end of each run, and a run retrained in the same process gets a fresh file. Histograms are
 * bucketed here (histogramBuckets) and written with the same WriteSummary op tfjs-node's
 * `histogram` uses: its own bucketing fails when all values are equal (a dead ReLU layer).
 */
export class TensorBoardWriter {
  private closed = false;

  private constructor(
    /** The log directory the event file is in. */
    readonly dir: string,
    private readonly tf: typeof tfTypes,
    private readonly kernels: SummaryKernels,
    private readonly handle: tfTypes.Tensor,
    private readonly native: NativeSummaryWriter,
    private readonly Int64Scalar: Int64ScalarClass,
    /** A serialized SummaryMetadata that marks a summary as a histogram for TensorBoard. */
    private readonly histogramMetadata: Uint8Array,
  ) {}

  /**
   * Opens a new event file in `dir`, first removing the event files an earlier attempt at the same
   * run left there: a run always trains from step 1, so old files would only duplicate its lines.
   */
  static open(dir: string): TensorBoardWriter {
    const require = createRequire(import.meta.url);
    require('@tensorflow/tfjs-node');
    const tf = require('@tensorflow/tfjs') as typeof tfTypes;
    if (tf.getBackend() !== 'tensorflow') {
      throw new Error(
        `TensorBoard event files are written by the native tensorflow backend, but the ${tf.getBackend()} backend is active; train with --backend tensorflow`,
      );
    }
    const { SummaryFileWriter } = require('@tensorflow/tfjs-node/dist/tensorboard.js') as {
      SummaryFileWriter: new (handle: tfTypes.Tensor) => NativeSummaryWriter;
    };
    const { Int64Scalar } = require('@tensorflow/tfjs-node/dist/int64_tensors.js') as { Int64Scalar: Int64ScalarClass };
    const metadata = eventSchema().lookupType('tensorflow.SummaryMetadata');
    const histogramMetadata = metadata
      .encode(metadata.fromObject({ pluginData: { pluginName: 'histograms' } }))
      .finish();
    fs.mkdirSync(dir, { recursive: true });
    for (const name of fs.readdirSync(dir)) {
      if (name.includes(EVENT_FILE_MARK)) fs.rmSync(path.join(dir, name), { force: true });
    }
    const kernels = tf.findBackend('tensorflow') as unknown as SummaryKernels;
    const logdir = path.resolve(dir);
    const handle = kernels.summaryWriter(logdir);
    kernels.createSummaryFileWriter(handle, logdir, MAX_QUEUE, FLUSH_MILLIS, '.v2');
    return new TensorBoardWriter(
      dir,
      tf,
      kernels,
      handle,
      new SummaryFileWriter(handle),
      Int64Scalar,
      histogramMetadata,
    );
  }

  /** One metrics row: train_loss, train_acc and lr always; val_loss and val_acc on rows with an evaluation. */
  metrics(row: MetricsRow): void {
    for (const column of SCALAR_COLUMNS) {
      const value = row[column];
      if (value !== null) this.scalar(column, value, row.step);
    }
  }

  /** One instrument measurement (TrainHooks.onInstrument): its scalars, and a histogram per layer of raw activations. */
  instrument(
    name: InstrumentName,
    step: number,
    rows: Record<string, number | string>[],
    activations?: Map<string, Float32Array>,
  ): void {
    for (const { tag, value } of instrumentScalars(name, rows)) this.scalar(tag, value, step);
    for (const [layer, values] of activations ?? []) this.histogram(`activations/${layer}`, values, step);
  }

  scalar(tag: string, value: number, step: number): void {
    this.ensureOpen();
    this.native.scalar(tag, value, step);
  }

  /**
   * A histogram of `values` in HISTOGRAM_BUCKETS equal-width buckets between their minimum and
   * maximum. Non-finite values are left out (they have no bucket); with none left, nothing is written.
   */
  histogram(tag: string, values: Float32Array, step: number, buckets = HISTOGRAM_BUCKETS): void {
    this.ensureOpen();
    if (!Number.isInteger(step)) throw new Error(`step must be an integer, got ${step}`);
    const finite = values.every(Number.isFinite) ? values : values.filter(Number.isFinite);
    if (finite.length === 0) return;
    const { rows, buckets: k } = histogramBuckets(finite, buckets);
    const { tf, kernels } = this;
    tf.tidy(() => {
      const inputs = [
        this.handle,
        new this.Int64Scalar(step),
        tf.tensor2d(rows, [k, 3]),
        tf.scalar(tag, 'string'),
        tf.scalar(this.histogramMetadata, 'string'),
      ];
      const ids = kernels.getInputTensorIds(inputs);
      try {
        kernels.binding.executeOp(
          'WriteSummary',
          [{ name: 'T', type: kernels.binding.TF_ATTR_TYPE, value: kernels.binding.TF_FLOAT }],
          ids,
          0,
        );
      } finally {
        kernels.binding.deleteTensor(ids[1]); // the step's int64 tensor, which no tfjs tensor owns
      }
    });
  }

  /** Writes the queued events to the file. */
  flush(): void {
    this.ensureOpen();
    this.native.flush();
  }

  /** Flushes and closes the event file. Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.native.flush();
      this.tf.dispose(this.kernels.executeMultipleOutputs('CloseSummaryWriter', [], [this.handle], 0));
    } finally {
      this.handle.dispose();
    }
  }

  private ensureOpen(): void {
    if (this.closed) throw new Error(`TensorBoard writer for ${this.dir} is closed`);
  }
}
