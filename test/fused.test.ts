import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { DEFAULT_CONFIG } from '../src/spec/schema.js';
import type { RunConfig } from '../src/spec/types.js';
import { readMetrics } from '../src/store/metrics.js';
import { initBackend } from '../src/train/backend.js';
import { compileFusedMlp, fuseMembers, memberSlice, type FusedVariable } from '../src/train/graph/compile-fused.js';
import { fusedGroups, MAX_FUSED } from '../src/train/fused.js';
import { bnx, tmpDir, writeSpec } from './helpers.js';

/** TINY_SPEC with two hidden layers (so the per-member BatchMatMulV2 path runs) and a norm. */
const spec = (norm: 'none' | 'batch') => `name: fused
seed: 3
data:
  dataset: synthetic
  synthetic: { features: 8, classes: 3, train_size: 300, test_size: 90, noise: 0.5 }
  val_size: 60
model:
  hidden: [16, 12]
  norm: ${norm}
train:
  lr: 0.5
  batch_size: 20
  steps: 40
  eval_every: 20
  log_every: 10
`;

const rel = (x: number, y: number) => Math.abs(x - y) / Math.max(1, Math.abs(y));
/** Float32 round-off over 40 steps; a wrong member, order or layout differs at 1e-2 or more. */
const TOLERANCE = 1e-4;

/** Trains the sweep fused and with --no-fuse into two temp dirs; returns both sweep folders and the fused stdout. */
function runBoth(specText: string, sets: string[]): { fused: string; plain: string; stdout: string } {
  const dir = tmpDir('bnx-fused-');
  const file = writeSpec(dir, specText);
  const args = (out: string) => ['run', file, ...sets.flatMap((s) => ['--set', s]), '--out', path.join(dir, out)];
  const fused = bnx(args('fused'));
  assert.equal(fused.code, 0, fused.stderr);
  const plain = bnx([...args('plain'), '--no-fuse']);
  assert.equal(plain.code, 0, plain.stderr);
  assert.doesNotMatch(plain.stdout, /runs .* fused/);
  return { fused: path.join(dir, 'fused', 'fused'), plain: path.join(dir, 'plain', 'fused'), stdout: fused.stdout };
}

const runIds = (sweep: string) => fs.readdirSync(sweep).filter((f) => fs.existsSync(path.join(sweep, f, 'run.json'))).sort();
const record = (sweep: string, id: string) => JSON.parse(fs.readFileSync(path.join(sweep, id, 'run.json'), 'utf8')) as Record<string, unknown>;

/** Every metrics.csv value of every run (and run.json's status and test result) fused vs unfused; returns the largest relative deviation. */
function compareSweeps(fused: string, plain: string, expectedRuns: number): number {
  const ids = runIds(fused);
  assert.deepEqual(ids, runIds(plain));
  assert.equal(ids.length, expectedRuns);
  let worst = 0;
  for (const id of ids) {
    const [a, b] = [readMetrics(path.join(fused, id, 'metrics.csv')), readMetrics(path.join(plain, id, 'metrics.csv'))];
    assert.equal(a.length, b.length, `${id}: rows`);
    a.forEach((row, k) => {
      for (const [key, value] of Object.entries(row)) {
        const other = (b[k] as unknown as Record<string, unknown>)[key];
        if (typeof value === 'number' && Number.isFinite(value)) worst = Math.max(worst, rel(value, other as number));
        else assert.deepEqual(value, other, `${id} row ${k} ${key}`);
      }
    });
    const [ra, rb] = [record(fused, id), record(plain, id)];
    assert.equal(ra.status, rb.status, `${id}: status`);
    assert.equal(ra.engine, 'graph');
    assert.deepEqual(ra.config, rb.config);
    assert.equal(ra.hash, rb.hash);
    if (rb.status === 'completed') {
      const [ta, tb] = [ra.test as { loss: number; acc: number }, rb.test as { loss: number; acc: number }];
      worst = Math.max(worst, rel(ta.loss, tb.loss), rel(ta.acc, tb.acc));
      assert.ok(fs.existsSync(path.join(fused, id, 'config.yaml')));
    }
  }
  return worst;
}

/** Largest relative deviation between the fused and unfused runs' saved weights (weights.bin, float32). */
function compareWeights(fused: string, plain: string): number {
  let worst = 0;
  for (const id of runIds(plain)) {
    const read = (sweep: string) => new Float32Array(new Uint8Array(fs.readFileSync(path.join(sweep, id, 'weights.bin'))).buffer);
    const [a, b] = [read(fused), read(plain)];
    assert.equal(a.length, b.length);
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, rel(a[i], b[i]));
  }
  return worst;
}

describe('fused sweeps: one graph per group, each member as its unfused run', () => {
  it('an lr sweep with batch norm: metrics, test results and weights match --no-fuse', () => {
    const { fused, plain, stdout } = runBoth(spec('batch'), ['train.lr=0.1,0.5,2']);
    assert.match(stdout, /runs 1-3 of 3, fused/);
    const metrics = compareSweeps(fused, plain, 3);
    const weights = compareWeights(fused, plain);
    console.log(`# lr sweep, batch norm: max relative deviation fused vs unfused: metrics ${metrics.toExponential(2)}, weights ${weights.toExponential(2)}`);
    assert.ok(metrics < TOLERANCE && weights < TOLERANCE, `metrics ${metrics}, weights ${weights}`);
  });

  it('an lr x momentum sweep without norm matches --no-fuse; members that diverge do not disturb the others', () => {
    const { fused, plain, stdout } = runBoth(spec('none'), ['train.lr=0.1,1e6,2', 'train.momentum=0,0.9']);
    assert.match(stdout, /runs 1-6 of 6, fused/);
    const metrics = compareSweeps(fused, plain, 6);
    console.log(`# lr x momentum sweep, no norm: max relative deviation ${metrics.toExponential(2)}`);
    assert.ok(metrics < TOLERANCE, `metrics ${metrics}`);
    const ids = runIds(fused);
    const diverged = ids.filter((id) => record(fused, id).status === 'diverged');
    assert.deepEqual(diverged, ids.filter((id) => id.startsWith('lr=1e+06') || id.startsWith('lr=1000000')));
    assert.equal(diverged.length, 2);
    for (const id of diverged) {
      const [a, b] = [record(fused, id).diverged as { step: number; loss: number }, record(plain, id).diverged as { step: number; loss: number }];
      assert.equal(a.step, b.step);
      assert.ok(rel(a.loss, b.loss) < TOLERANCE, `${id}: diverged at loss ${a.loss} vs ${b.loss}`);
    }
  });

  it('a seed x init_std sweep (per-member batches) with batch norm after the activation and population statistics matches --no-fuse', () => {
    const model = '  norm: batch\n  norm_placement: after\n  init: gaussian\n  batch_norm: { inference: population, population_batches: 3 }';
    const { fused, plain } = runBoth(spec('batch').replace('  norm: batch', model), ['seed=1,2', 'model.init_std=0.1,0.5']);
    const metrics = compareSweeps(fused, plain, 4);
    const weights = compareWeights(fused, plain);
    console.log(`# seed x init_std sweep, batch norm after, population: max relative deviation metrics ${metrics.toExponential(2)}, weights ${weights.toExponential(2)}`);
    assert.ok(metrics < TOLERANCE && weights < TOLERANCE, `metrics ${metrics}, weights ${weights}`);
  });

  // eps 0.1 against 1e-5 changes a layer's output by several percent (its pre-activations' variances are about 0.1 to 1).
  const epsAxis = 'train.lr,model.batch_norm.eps=[0.1,1e-5],[0.5,1e-3],[2,0.1]';

  it('an eps sweep with batch norm (one eps per member, moving averages) is one group and matches --no-fuse', () => {
    const { fused, plain, stdout } = runBoth(spec('batch'), [epsAxis]);
    assert.match(stdout, /runs 1-3 of 3, fused/);
    const metrics = compareSweeps(fused, plain, 3);
    const weights = compareWeights(fused, plain);
    console.log(`# lr x eps sweep, batch norm: max relative deviation fused vs unfused: metrics ${metrics.toExponential(2)}, weights ${weights.toExponential(2)}`);
    assert.ok(metrics < TOLERANCE && weights < TOLERANCE, `metrics ${metrics}, weights ${weights}`);
  });

  it('an eps sweep with batch norm after the activation and population statistics matches --no-fuse', () => {
    const model = '  norm: batch\n  norm_placement: after\n  batch_norm: { inference: population, population_batches: 3 }';
    const { fused, plain, stdout } = runBoth(spec('batch').replace('  norm: batch', model), [epsAxis]);
    assert.match(stdout, /runs 1-3 of 3, fused/);
    const metrics = compareSweeps(fused, plain, 3);
    const weights = compareWeights(fused, plain);
    console.log(`# lr x eps sweep, batch norm after, population: max relative deviation metrics ${metrics.toExponential(2)}, weights ${weights.toExponential(2)}`);
    assert.ok(metrics < TOLERANCE && weights < TOLERANCE, `metrics ${metrics}, weights ${weights}`);
  });

});

describe('fusedGroups', () => {
  before(async () => {
    await initBackend('tensorflow');
  });
  const base = (): RunConfig => {
    const c = structuredClone({ ...DEFAULT_CONFIG, name: 'g' }) as RunConfig;
    c.model = { ...c.model, hidden: [8] };
    return c;
  };
  const with_ = (f: (c: RunConfig) => void) => {
    const c = base();
    f(c);
    return c;
  };

  it('groups runs differing in lr, momentum, seed and init; keeps everything else apart', () => {
    const configs = [
      with_((c) => (c.train.lr = 0.1)),
      with_((c) => (c.model.hidden = [9])),
      with_((c) => ((c.seed = 5), (c.train.momentum = 0.9), (c.model.init_std = 0.3))),
      with_((c) => (c.train.optimizer = 'adam')),
      with_((c) => ((c.model.norm = 'batch'), (c.model.batch_norm.inference = 'population'))),
      with_((c) => (c.model.norm = 'layer')),
      with_((c) => (c.train.engine = 'eager')),
      with_((c) => (c.train.batch_size = 7)),
      with_((c) => (c.model.init = 'he_normal')),
    ];
    assert.deepEqual(fusedGroups(configs), [[0, 2, 8], [1], [3], [4], [5], [6], [7]]);
  });

  it('groups an eps sweep with batch norm (and its lr axis) into one group', () => {
    const eps = [1e-8, 1e-5, 1e-3, 1e-2, 3e-2, 1e-1];
    const configs = [0.5, 1.5].flatMap((lr) => eps.map((e) => with_((c) => ((c.model.norm = 'batch'), (c.train.lr = lr), (c.model.batch_norm.eps = e)))));
    assert.deepEqual(fusedGroups(configs), [configs.map((_, i) => i)]);
  });

  it('compiles members with equal eps without scaling, and different eps with it', () => {
    const c = with_((c) => (c.model.norm = 'batch'));
    const scaleOps = (eps: number[]) => compileFusedMlp(c, eps.length, { sharedBatch: true, momentum: false, eps }, 4, 3).nodes.filter((n) => n.name.includes('eps_')).length;
    assert.equal(scaleOps([1e-3, 1e-3, 1e-3]), 0);
    assert.ok(scaleOps([1e-3, 1e-5, 1e-3]) > 0);
  });

  it('splits a group at MAX_FUSED members', () => {
    const configs = Array.from({ length: MAX_FUSED + 3 }, (_, i) => with_((c) => (c.train.lr = 0.01 * (i + 1))));
    assert.deepEqual(fusedGroups(configs).map((g) => g.length), [MAX_FUSED, 3]);
  });
});

describe('fused variable layouts', () => {
  it('memberSlice inverts fuseMembers for stacked and column layouts', () => {
    const members = [0, 1, 2].map((m) => Float32Array.from({ length: 6 }, (_, i) => 10 * m + i));
    for (const v of [
      { name: 'k', memberShape: [2, 3], shape: [3, 2, 3], layout: 'stacked' },
      { name: 'k', memberShape: [2, 3], shape: [2, 9], layout: 'columns' },
      { name: 'b', memberShape: [6], shape: [18], layout: 'stacked' },
    ] as FusedVariable[]) {
      const fused = fuseMembers(v, members);
      members.forEach((w, m) => assert.deepEqual(memberSlice(v, fused, m, 3), w));
    }
    // Columns: row r holds every member's row r side by side.
    assert.deepEqual([...fuseMembers({ name: 'k', memberShape: [2, 3], shape: [2, 9], layout: 'columns' }, members).slice(0, 9)], [0, 1, 2, 10, 11, 12, 20, 21, 22]);
  });
});
