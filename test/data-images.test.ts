import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import {
  Augmenter,
  CIFAR10_FILES,
  download,
  findInstalled,
  loadDataset,
  locateDataset,
  MNIST_FILES,
  readCifarBatch,
  untarMembers,
  writeCifarBatch,
  writeIdx,
} from '../src/data/index.js';
import { InputError } from '../src/util/errors.js';
import { configHash, expandGrid, trainSetSize } from '../src/spec/expand.js';
import { applyOverrides, loadSpec, parseOverride } from '../src/spec/load.js';
import { DEFAULT_CONFIG } from '../src/spec/schema.js';
import type { DataConfig, RunConfig } from '../src/spec/types.js';
import { tmpDir, writeSpec } from './helpers.js';

function dataConfig(over: Partial<DataConfig>): DataConfig {
  return { ...structuredClone(DEFAULT_CONFIG.data), ...over };
}

/** Runs `fn` with environment variables set, restoring them afterwards. */
function withEnv<T>(vars: Record<string, string>, fn: () => T): T {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  try {
    return fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/**
 * A Fashion-MNIST-shaped directory: `n` 3x3 images per split; image i has all pixels i % 256 and
 * label i % 10, so rows can be traced. gz: write the files gzipped, as Debian installs them.
 */
function writeFashionFixture(dir: string, nTrain: number, nTest: number, gz: boolean): void {
  fs.mkdirSync(dir, { recursive: true });
  const put = (name: string, dims: number[], data: Uint8Array) => {
    const file = path.join(dir, name);
    writeIdx(file, dims, data);
    if (gz) {
      fs.writeFileSync(`${file}.gz`, gzipSync(fs.readFileSync(file)));
      fs.rmSync(file);
    }
  };
  for (const [images, labels, n] of [
    [MNIST_FILES.trainImages, MNIST_FILES.trainLabels, nTrain],
    [MNIST_FILES.testImages, MNIST_FILES.testLabels, nTest],
  ] as const) {
    const x = new Uint8Array(n * 9);
    for (let i = 0; i < n; i++) x.fill(i % 256, i * 9, (i + 1) * 9);
    put(images, [n, 3, 3], x);
    put(
      labels,
      [n],
      Uint8Array.from({ length: n }, (_, i) => i % 10),
    );
  }
}

/**
 * One CIFAR-10 binary record, built byte by byte as the format describes (label, then the red,
 * green and blue planes of 32 x 32 values, row by row): pixel (r, c) of channel k holds
 * (r + 2c + 50k + seed) % 256.
 */
function cifarRecord(label: number, seed: number): Buffer {
  const rec = Buffer.alloc(3073);
  rec[0] = label;
  for (let k = 0; k < 3; k++) {
    for (let r = 0; r < 32; r++)
      for (let c = 0; c < 32; c++) rec[1 + k * 1024 + r * 32 + c] = (r + 2 * c + 50 * k + seed) % 256;
  }
  return rec;
}

/** Five training batches of `perBatch` records and a test batch of `test` records. */
function writeCifarFixture(dir: string, perBatch: number, test: number): void {
  fs.mkdirSync(dir, { recursive: true });
  let seed = 0;
  for (const name of CIFAR10_FILES.train) {
    fs.writeFileSync(
      path.join(dir, name),
      Buffer.concat(Array.from({ length: perBatch }, () => cifarRecord(seed % 10, seed++))),
    );
  }
  fs.writeFileSync(
    path.join(dir, CIFAR10_FILES.test),
    Buffer.concat(Array.from({ length: test }, () => cifarRecord(seed % 10, seed++))),
  );
}

function assertOneLineInputError(fn: () => unknown, pattern: RegExp): InputError {
  let caught: InputError | null = null;
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof InputError, `expected InputError, got ${String(e)}`);
    assert.ok(!e.message.includes('\n'), 'one line');
    assert.match(e.message, pattern);
    caught = e;
    return true;
  });
  return caught as unknown as InputError;
}

describe('Fashion-MNIST', () => {
  it('reads gzipped IDX files (as Debian installs them) and plain ones from data.path', () => {
    for (const gz of [true, false]) {
      const dir = path.join(tmpDir('bnx-fashion-'), 'fashion-mnist');
      writeFashionFixture(dir, 40, 12, gz);
      const d = loadDataset(dataConfig({ dataset: 'fashion_mnist', path: dir, val_size: 10, preprocess: 'none' }));
      assert.equal(d.name, 'fashion_mnist');
      assert.equal(d.source, dir);
      assert.deepEqual(d.inputShape, [3, 3, 1]);
      assert.equal(d.classes, 10);
      assert.equal(d.train.n, 30);
      assert.equal(d.val.n, 10);
      assert.equal(d.test.n, 12);
      // Row identity survives the split: pixel value i%256 goes with label i%10.
      for (let i = 0; i < d.test.n; i++) assert.equal(d.test.x[i * 9] % 10, d.test.y[i]);
    }
  });

  it('a data.path missing files names them, in one line', () => {
    const dir = tmpDir('bnx-fashion-missing-');
    writeFashionFixture(dir, 20, 5, true);
    fs.rmSync(path.join(dir, `${MNIST_FILES.testLabels}.gz`));
    assertOneLineInputError(
      () => loadDataset(dataConfig({ dataset: 'fashion_mnist', path: dir, val_size: 5 })),
      /missing Fashion-MNIST file\(s\) t10k-labels-idx1-ubyte/,
    );
  });

  it('without data.path: a well-known install, else the cache directory (BNX_DATA_DIR)', () => {
    const cache = tmpDir('bnx-cache-');
    writeFashionFixture(path.join(cache, 'fashion-mnist'), 20, 5, true);
    const found = withEnv({ BNX_DATA_DIR: cache, BNX_OFFLINE: '1' }, () => locateDataset('fashion_mnist', null));
    // This machine may have Debian's dataset-fashion-mnist: that well-known copy comes first.
    const debian = '/usr/share/datasets/fashion-mnist';
    if (fs.existsSync(debian)) assert.equal(found.dir, debian);
    else assert.equal(found.dir, path.join(cache, 'fashion-mnist'));
    assert.equal(Object.keys(found.files).length, 4);
  });
});

describe('CIFAR-10 (binary version)', () => {
  it('reads records into channels-last [32, 32, 3] images with their labels', () => {
    const file = path.join(tmpDir('bnx-cifar-'), 'data_batch_1.bin');
    fs.writeFileSync(file, Buffer.concat([cifarRecord(3, 0), cifarRecord(9, 7)]));
    const b = readCifarBatch(file);
    assert.equal(b.n, 2);
    assert.deepEqual([...b.y], [3, 9]);
    for (const [i, seed] of [
      [0, 0],
      [1, 7],
    ]) {
      for (const [r, c, k] of [
        [0, 0, 0],
        [0, 1, 0],
        [5, 7, 1],
        [31, 31, 2],
        [10, 3, 2],
      ]) {
        assert.equal(
          b.x[i * 3072 + (r * 32 + c) * 3 + k],
          (r + 2 * c + 50 * k + seed) % 256,
          `image ${i} pixel (${r}, ${c}) channel ${k}`,
        );
      }
    }
    // The test's writer produces the same bytes as the hand-built records.
    const again = path.join(path.dirname(file), 'again.bin');
    writeCifarBatch(again, b.x, b.y);
    assert.deepEqual(fs.readFileSync(again), fs.readFileSync(file));
    // Gzipped batches read too.
    fs.writeFileSync(`${file}.gz`, gzipSync(fs.readFileSync(file)));
    assert.deepEqual(readCifarBatch(`${file}.gz`).x, b.x);
  });

  it('rejects a file that is not whole records, and bad labels, in one line', () => {
    const dir = tmpDir('bnx-cifar-bad-');
    const cut = path.join(dir, 'cut.bin');
    fs.writeFileSync(cut, cifarRecord(1, 0).subarray(0, 3000));
    assertOneLineInputError(() => readCifarBatch(cut), /3000 bytes is not a whole number of 3073-byte records/);
    const label = path.join(dir, 'label.bin');
    fs.writeFileSync(label, cifarRecord(12, 0));
    assertOneLineInputError(() => readCifarBatch(label), /label 12 in record 0/);
  });

  it('loads five training batches and the test batch; standardizes each colour channel with training statistics', () => {
    const parent = tmpDir('bnx-cifar-ds-');
    const dir = path.join(parent, 'cifar-10-batches-bin');
    writeCifarFixture(dir, 4, 6);
    // data.path may name the folder of .bin files or its parent (where the archive unpacks).
    for (const p of [dir, parent]) {
      const d = loadDataset(dataConfig({ dataset: 'cifar10', path: p, val_size: 5 }));
      assert.equal(d.name, 'cifar10');
      assert.equal(d.source, dir);
      assert.deepEqual(d.inputShape, [32, 32, 3]);
      assert.equal(d.features, 3072);
      assert.equal(d.train.n + d.val.n, 20);
      assert.equal(d.test.n, 6);
      for (let k = 0; k < 3; k++) {
        let sum = 0;
        let sq = 0;
        let n = 0;
        for (let i = k; i < d.train.x.length; i += 3, n++) {
          sum += d.train.x[i];
          sq += d.train.x[i] ** 2;
        }
        const mean = sum / n;
        assert.ok(Math.abs(mean) < 1e-4, `channel ${k} mean ${mean}`);
        assert.ok(Math.abs(Math.sqrt(sq / n - mean * mean) - 1) < 1e-3, `channel ${k} std`);
      }
    }
    const scaled = loadDataset(dataConfig({ dataset: 'cifar10', path: dir, val_size: 5, preprocess: 'scale' }));
    const raw = readCifarBatch(path.join(dir, CIFAR10_FILES.test));
    assert.ok(Math.abs(scaled.test.x[100] - raw.x[100] / 255) < 1e-7);
  });

  it('nothing found: one line naming every place searched and how to get the files', () => {
    const cache = tmpDir('bnx-empty-cache-');
    const err = withEnv({ BNX_DATA_DIR: cache, BNX_OFFLINE: '1' }, () => {
      if (findInstalled('cifar10')) return null; // a real copy on this machine: nothing to test
      return assertOneLineInputError(() => loadDataset(dataConfig({ dataset: 'cifar10' })), /CIFAR-10 not found in /);
    });
    if (err) {
      assert.ok(err.message.includes(path.join(cache, 'cifar-10-batches-bin')), err.message);
      assert.ok(err.message.includes('/usr/share/datasets/cifar-10-batches-bin'), err.message);
      assert.match(
        err.message,
        /download from https:\/\/www\.cs\.toronto\.edu\/~kriz\/cifar-10-binary\.tar\.gz failed \(BNX_OFFLINE=1\)/,
      );
    }
  });
});

describe('download into the cache', () => {
  let server: http.Server;
  let base = '';
  const payload = gzipSync(Buffer.from('fashion bytes'));

  /** A ustar archive of the given files (what `tar czf` writes, minus the extras bnx ignores). */
  function tarOf(files: Record<string, Buffer>): Buffer {
    const parts: Buffer[] = [];
    for (const [name, data] of Object.entries(files)) {
      const h = Buffer.alloc(512);
      h.write(name, 0, 'latin1');
      h.write('0000644\0', 100, 'latin1');
      h.write(data.length.toString(8).padStart(11, '0') + '\0', 124, 'latin1');
      h.write('0', 156, 'latin1');
      h.write('ustar\0', 257, 'latin1');
      parts.push(h, data, Buffer.alloc((512 - (data.length % 512)) % 512));
    }
    return gzipSync(Buffer.concat([...parts, Buffer.alloc(1024)]));
  }
  const archive = tarOf({
    'cifar-10-batches-bin/readme.html': Buffer.from('x'),
    'cifar-10-batches-bin/test_batch.bin': cifarRecord(4, 1),
  });

  before(async () => {
    server = http.createServer((req, res) => {
      if (req.url === '/moved') res.writeHead(302, { location: '/file.gz' }).end();
      else if (req.url === '/file.gz') res.writeHead(200, { 'content-length': payload.length }).end(payload);
      else if (req.url === '/data.tar.gz') res.writeHead(200).end(archive);
      else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  it('follows redirects and renames the finished file into place (no partial file left)', async () => {
    const dir = tmpDir('bnx-dl-');
    const dest = path.join(dir, 'sub', 'train-images-idx3-ubyte.gz');
    await download(`${base}/moved`, dest);
    assert.deepEqual(fs.readFileSync(dest), payload);
    assert.deepEqual(fs.readdirSync(path.dirname(dest)), ['train-images-idx3-ubyte.gz']);
  });

  it('a failed download leaves nothing behind and says why', async () => {
    const dir = tmpDir('bnx-dl-fail-');
    await assert.rejects(download(`${base}/missing`, path.join(dir, 'x.gz')), /HTTP 404/);
    assert.deepEqual(fs.readdirSync(dir), []);
  });

  it('unpacks the wanted members of a .tar.gz archive', async () => {
    const dir = tmpDir('bnx-dl-tar-');
    await download(`${base}/data.tar.gz`, path.join(dir, 'a.tar.gz'));
    const members = untarMembers(fs.readFileSync(path.join(dir, 'a.tar.gz')), new Set(['test_batch.bin']));
    assert.deepEqual([...members.keys()], ['test_batch.bin']);
    assert.deepEqual(Buffer.from(members.get('test_batch.bin') as Uint8Array), cifarRecord(4, 1));
  });
});

describe('data.augment', () => {
  const shape = [2, 3, 2];
  const image = () => Float32Array.from({ length: 12 }, (_, i) => i + 1);

  it('flip mirrors left-right; crop shifts by up to crop_padding, filling with zeros', () => {
    const flip = new Augmenter(shape, { crop_padding: 0, flip: true }, 0);
    let flipped = 0;
    for (let t = 0; t < 20; t++) {
      const x = image();
      flip.apply(x, 1);
      // (r, c, k) -> (r, 2 - c, k), or unchanged.
      const mirrored = Array.from({ length: 12 }, (_, i) => {
        const [r, c, k] = [Math.floor(i / 6), Math.floor(i / 2) % 3, i % 2];
        return (r * 3 + (2 - c)) * 2 + k + 1;
      });
      if (x[0] !== 1) {
        assert.deepEqual([...x], mirrored);
        flipped++;
      } else assert.deepEqual([...x], [...image()]);
    }
    assert.ok(flipped > 3 && flipped < 17, `flipped ${flipped} of 20`);

    const crop = new Augmenter(shape, { crop_padding: 1, flip: false }, 3);
    for (let t = 0; t < 20; t++) {
      const x = image();
      crop.apply(x, 1);
      // Every output pixel is 0 (padding) or the input pixel at one common offset (dy, dx) in -1..1.
      const src = image();
      const offsets = new Set<string>();
      for (let r = 0; r < 2; r++) {
        for (let c = 0; c < 3; c++) {
          const v = x[(r * 3 + c) * 2];
          if (v === 0) continue;
          const j = src.indexOf(v);
          offsets.add(`${Math.floor(j / 6) - r},${(Math.floor(j / 2) % 3) - c}`);
        }
      }
      assert.ok(offsets.size <= 1, [...offsets].join(' '));
      for (const o of offsets) for (const d of o.split(',')) assert.ok(Math.abs(Number(d)) <= 1);
    }
  });

  it('is seeded: the same seed gives the same images, another seed others', () => {
    const run = (seed: number) => {
      const a = new Augmenter([4, 4, 1], { crop_padding: 2, flip: true }, seed);
      const x = Float32Array.from({ length: 16 * 8 }, (_, i) => i);
      a.apply(x, 8);
      return [...x];
    };
    assert.deepEqual(run(1), run(1));
    assert.notDeepEqual(run(1), run(2));
  });
});

describe('spec: the new datasets, augment and cnn checks', () => {
  const plan = (text: string, overrides: string[] = []): RunConfig[] => {
    const file = writeSpec(tmpDir('bnx-spec-img-'), text);
    return expandGrid(applyOverrides(loadSpec(file), overrides.map(parseOverride))).map((r) => r.config);
  };

  it('trainSetSize knows Fashion-MNIST (60,000) and CIFAR-10 (50,000)', () => {
    const [f] = plan('name: f\ndata: { dataset: fashion_mnist }\ntrain: { steps: 1 }\n');
    assert.equal(trainSetSize(f), 50000);
    const [c] = plan('name: c\ndata: { dataset: cifar10, validation: test }\ntrain: { steps: 1 }\n');
    assert.equal(trainSetSize(c), 50000);
    const [c2] = plan('name: c\ndata: { dataset: cifar10, val_size: 5000 }\ntrain: { steps: 1 }\n');
    assert.equal(trainSetSize(c2), 45000);
  });

  it('refuses augment on synthetic data, cnn on synthetic data, bad group counts and pooling to nothing', () => {
    const base = 'name: s\ndata: { dataset: synthetic, val_size: 100 }\ntrain: { steps: 1 }\n';
    assert.throws(
      () => plan(base, ['data.augment.flip=true']),
      /data\.augment crops and flips images; the synthetic dataset has none/,
    );
    assert.throws(() => plan(base, ['model.arch=cnn']), /model\.arch cnn needs images/);
    const cnn =
      'name: c\ndata: { dataset: fashion_mnist }\nmodel: { arch: cnn, norm: group, cnn: { channels: [8, 12] } }\ntrain: { steps: 1 }\n';
    assert.throws(
      () => plan(cnn, ['model.group_norm.groups=8']),
      /model\.group_norm\.groups is 8: it must divide every conv block's channels .*8 does not divide 12/,
    );
    assert.equal(plan(cnn, ['model.group_norm.groups=4']).length, 1);
    assert.throws(() => plan(cnn, ['model.cnn.channels=[4,4,4,4,4,4]']), /model\.cnn\.pool is 2: after block 5 of 6/);
    assert.throws(() => plan(cnn, ['model.cnn.kernel=4']), /model\.cnn\.kernel is 4, must be odd/);
    assert.equal(plan(cnn, ['model.norm=instance', 'data.augment.crop_padding=2']).length, 1);
  });

  it('new keys at their defaults leave existing run ids alone', () => {
    const [a] = plan('name: h\ndata: { dataset: synthetic, val_size: 100 }\ntrain: { steps: 1 }\n');
    const [b] = plan(
      'name: h\ndata: { dataset: synthetic, val_size: 100 }\nmodel: { cnn: { channels: [3] } }\ntrain: { steps: 1 }\n',
    );
    assert.equal(a.model.arch, 'mlp');
    assert.equal(configHash(a), configHash(b), 'model.cnn does not matter to an mlp');
    const [c] = plan('name: h\ndata: { dataset: mnist }\ntrain: { steps: 1 }\n', ['data.augment.flip=true']);
    const [d] = plan('name: h\ndata: { dataset: mnist }\ntrain: { steps: 1 }\n');
    assert.notEqual(configHash(c), configHash(d));
  });
});
