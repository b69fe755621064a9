import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import {
  crc32c,
  eventFiles,
  readEventFile,
  readEventLog,
  readRecords,
  type EventLog,
} from '../src/analyze/tensorboard.js';
import { planFrom } from '../src/cli/plan.js';
import { InputError } from '../src/util/errors.js';
import { readMetrics, type MetricsRow } from '../src/store/metrics.js';
import { TENSORBOARD_SUBDIR, TensorBoardWriter, tensorboardDir } from '../src/store/tensorboard.js';
import { initBackend, type BackendInfo } from '../src/train/backend.js';
import { runSweep } from '../src/store/sweep.js';
import { bnx, tmpDir, TINY_SPEC, writeSpec } from './helpers.js';

const runDirs = (dir: string) =>
  fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();

/** float32 rounding of the event value plus metrics.csv's 6 decimals (lr: 6 significant digits). */
const close = (a: number, b: number) => Math.abs(a - b) <= 1e-6 + 1e-6 * Math.abs(b);

/** Every metrics.csv value is in the event log at the same step, and nothing else is under those tags. */
function assertScalarsMatch(log: EventLog, rows: MetricsRow[]): void {
  for (const column of ['train_loss', 'train_acc', 'val_loss', 'val_acc', 'lr'] as const) {
    const expected = rows.filter((r) => r[column] !== null).map((r) => ({ step: r.step, value: r[column] as number }));
    const got = log.scalars.get(column) ?? [];
    assert.deepEqual(
      got.map((p) => p.step),
      expected.map((p) => p.step),
      `${column} steps`,
    );
    got.forEach((p, i) =>
      assert.ok(
        close(p.value, expected[i].value),
        `${column} at step ${p.step}: event ${p.value}, csv ${expected[i].value}`,
      ),
    );
  }
}

function assertFileVersionFirst(file: string): void {
  const events = readEventFile(file);
  assert.equal(events[0].fileVersion, 'brain.Event:2');
  assert.ok(events.slice(1).every((e) => e.fileVersion === null));
}

describe('TensorBoard event files: the writer and the reader', () => {
  before(async () => {
    await initBackend('tensorflow');
  });

  it('writes scalars and activation histograms that read back with the right count, min and max', () => {
    const dir = tmpDir('bnx-tb-');
    const writer = TensorBoardWriter.open(dir);
    // 1000 values on [-3, 5] plus a NaN and an Inf, which have no bucket.
    const values = Float32Array.from({ length: 1000 }, (_, i) => -3 + (8 * i) / 999);
    const withNonFinite = Float32Array.from([...values, NaN, Infinity]);
    const activations = new Map([
      ['dense1', withNonFinite],
      ['dense2', new Float32Array(64).fill(0.25)],
    ]);
    writer.instrument('activation_percentiles', 7, [{ step: 7, layer: 'dense1', p15: -1.8, p50: 1 }], activations);
    writer.instrument('ics', 7, [{ step: 7, layer: 'dense1', l2: 0.5, cosine: 0.875, grad_norm: 2 }]);
    writer.instrument('smoothness', 7, [
      { step: 7, step_size: 0.5, loss: 1, loss_change: -0.1, grad_change: 0.2, beta: 3 },
      { step: 7, step_size: 2, loss: 1.5, loss_change: 0.4, grad_change: 0.6, beta: 4.5 },
    ]);
    writer.instrument('eval_gap', 7, [{ step: 7, val_loss_train_mode: 0.75, val_loss_inference: 0.5, gap: 0.25 }]);
    writer.close();
    writer.close(); // idempotent

    const files = eventFiles(dir);
    assert.equal(files.length, 1);
    assertFileVersionFirst(files[0]);
    const log = readEventLog(dir);
    const h = log.histograms.get('activations/dense1');
    assert.ok(h);
    assert.equal(h.length, 1);
    assert.equal(h[0].step, 7);
    const buckets = h[0].buckets;
    assert.equal(buckets.length, 30);
    assert.equal(
      buckets.reduce((s, b) => s + b.count, 0),
      1000,
    );
    assert.equal(buckets[0].left, -3);
    assert.equal(buckets.at(-1)?.right, 5);
    // One value per 8/999 on [-3, 5]: each of the 30 equal buckets holds 33 or 34 of them.
    assert.ok(
      buckets.every((b) => b.count >= 33 && b.count <= 34),
      buckets.map((b) => b.count).join(' '),
    );
    // All values equal: one bucket, centred on the value, holding them all (TensorFlow's convention).
    assert.deepEqual(log.histograms.get('activations/dense2')?.[0].buckets, [{ left: -0.25, right: 0.75, count: 64 }]);

    const scalar = (tag: string) => log.scalars.get(tag)?.map((p) => [p.step, p.value]);
    assert.deepEqual(scalar('activation_percentiles/dense1/p50'), [[7, 1]]);
    assert.deepEqual(scalar('ics/dense1/cosine'), [[7, 0.875]]);
    assert.deepEqual(scalar('ics/dense1/grad_norm'), [[7, 2]]);
    assert.deepEqual(scalar('smoothness/step_size=0.5/beta'), [[7, 3]]);
    assert.deepEqual(scalar('smoothness/step_size=2/beta'), [[7, 4.5]]);
    assert.deepEqual(scalar('eval_gap/gap'), [[7, 0.25]]);
    assert.ok(!log.scalars.has('ics/dense1/step') && ![...log.scalars.keys()].some((t) => t.includes('layer')));
  });

  it("reopening a log directory replaces the earlier attempt's event file", () => {
    const dir = tmpDir('bnx-tb-');
    const first = TensorBoardWriter.open(dir);
    first.scalar('x', 1, 1);
    first.close();
    assert.throws(() => first.scalar('x', 2, 2), /closed/);
    const second = TensorBoardWriter.open(dir);
    second.scalar('x', 3, 1);
    second.close();
    const log = readEventLog(dir);
    assert.equal(log.files.length, 1);
    assert.deepEqual(
      log.scalars.get('x')?.map((p) => p.value),
      [3],
    );
  });

  it("verifies both CRCs of every record: a corrupted byte is reported with its record's offset", () => {
    // The CRC-32C check value (RFC 3720): crc32c("123456789").
    assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
    const dir = tmpDir('bnx-tb-');
    const writer = TensorBoardWriter.open(dir);
    writer.scalar('loss', 0.5, 1);
    writer.close();
    const [file] = eventFiles(dir);
    const bytes = fs.readFileSync(file);
    const records = readRecords(bytes, file);
    assert.equal(records.length, 2); // file_version, then the scalar
    const second = 8 + 4 + records[0].length + 4; // offset of the second record

    const corrupt = (at: number) => {
      const copy = Buffer.from(bytes);
      copy[at] ^= 0x01;
      return copy;
    };
    // A byte of the second record's data, of its length, and of its data checksum.
    assert.throws(
      () => readRecords(corrupt(second + 12 + 3), file),
      (e: Error) =>
        e instanceof InputError &&
        e.message === `${file} at byte ${second}: record data checksum mismatch: the file is corrupt`,
    );
    assert.throws(() => readRecords(corrupt(second), file), /at byte \d+: record length checksum mismatch/);
    assert.throws(() => readRecords(corrupt(bytes.length - 1), file), /record data checksum mismatch/);
    assert.throws(
      () => readRecords(bytes.subarray(0, bytes.length - 2), file),
      /truncated record: \d+ data bytes announced/,
    );
    // Through the file reader too.
    fs.writeFileSync(file, corrupt(second + 12 + 3));
    assert.throws(() => readEventLog(dir), /record data checksum mismatch/);
  });

  it('an interrupted run keeps the rows it logged in a readable event file', async () => {
    const specDir = tmpDir();
    const spec = writeSpec(
      specDir,
      TINY_SPEC.replace('steps: 40', 'steps: 100000').replace('log_every: 10', 'log_every: 5'),
    );
    const { runs } = planFrom(spec, ['train.tensorboard=true']);
    const out = tmpDir();
    const started = performance.now();
    const result = await runSweep(runs, {
      out,
      backend: (await initBackend('tensorflow')) as BackendInfo,
      // The loop asks between steps, at most every 100 ms: stop on the third time it asks.
      shouldStop: (() => {
        let asked = 0;
        return () => ++asked >= 3;
      })(),
    });
    assert.ok(performance.now() - started < 20_000);
    assert.equal(result.interrupted, true);
    const runDir = path.join(result.dir, runs[0].id);
    assert.equal(JSON.parse(fs.readFileSync(path.join(runDir, 'run.json'), 'utf8')).status, 'interrupted');
    const rows = readMetrics(path.join(runDir, 'metrics.csv'));
    assert.ok(rows.length > 0);
    assertScalarsMatch(readEventLog(path.join(runDir, TENSORBOARD_SUBDIR)), rows);
  });
});

describe('bnx run with TensorBoard (end to end)', () => {
  it('train.tensorboard=true writes <run dir>/tensorboard/ with the metrics.csv values', () => {
    const spec = writeSpec(tmpDir(), TINY_SPEC);
    const out = tmpDir();
    const res = bnx(['run', spec, '--set', 'train.tensorboard=true', '--out', out]);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, new RegExp(`tensorboard --logdir ${path.join(out, 'tiny').replace(/[/\\]/g, '.')}`));
    const [id] = runDirs(path.join(out, 'tiny'));
    const runDir = path.join(out, 'tiny', id);
    const logDir = path.join(runDir, TENSORBOARD_SUBDIR);
    assert.equal(tensorboardDir(runDir, null), logDir);
    const files = eventFiles(logDir);
    assert.equal(files.length, 1);
    assert.match(path.basename(files[0]), /^events\.out\.tfevents\.\d+\..+\.v2$/);
    assertFileVersionFirst(files[0]);
    const rows = readMetrics(path.join(runDir, 'metrics.csv'));
    assert.deepEqual(
      rows.map((r) => r.step),
      [10, 20, 30, 40],
    );
    assertScalarsMatch(readEventLog(logDir), rows);
  });

  it('--tensorboard DIR writes <DIR>/<spec name>/<run id>/ for every run and leaves run ids alone', () => {
    const spec = writeSpec(tmpDir(), `${TINY_SPEC}grid:\n  model.norm: [none, batch]\n`);
    const [plain, out, board] = [tmpDir(), tmpDir(), tmpDir()];
    assert.equal(bnx(['run', spec, '--out', plain]).code, 0);
    const res = bnx(['run', spec, '--out', out, '--tensorboard', board]);
    assert.equal(res.code, 0, res.stderr);
    const ids = runDirs(path.join(out, 'tiny'));
    assert.equal(ids.length, 2);
    assert.deepEqual(ids, runDirs(path.join(plain, 'tiny')));
    assert.deepEqual(runDirs(path.join(board, 'tiny')), ids);
    for (const id of ids) {
      const runDir = path.join(out, 'tiny', id);
      assert.ok(!fs.existsSync(path.join(runDir, TENSORBOARD_SUBDIR)));
      assert.equal(JSON.parse(fs.readFileSync(path.join(runDir, 'run.json'), 'utf8')).config.train.tensorboard, false);
      const logDir = path.join(board, 'tiny', id);
      assert.equal(tensorboardDir(runDir, board), logDir);
      assertFileVersionFirst(eventFiles(logDir)[0]);
      assertScalarsMatch(readEventLog(logDir), readMetrics(path.join(runDir, 'metrics.csv')));
      // The metrics themselves do not depend on where event files go.
      assert.ok(
        fs
          .readFileSync(path.join(runDir, 'metrics.csv'))
          .equals(fs.readFileSync(path.join(plain, 'tiny', id, 'metrics.csv'))),
      );
    }
  });

  it('needs the native backend: --backend cpu with TensorBoard is bad input', () => {
    const spec = writeSpec(tmpDir(), TINY_SPEC);
    const out = tmpDir();
    const res = bnx(['run', spec, '--backend', 'cpu', '--tensorboard', tmpDir(), '--out', out]);
    assert.equal(res.code, 2);
    assert.match(
      res.stderr,
      /--tensorboard .*: TensorBoard event files are written by the native tensorflow backend; drop --backend cpu/,
    );
    assert.deepEqual(fs.readdirSync(out), []);
  });
});
