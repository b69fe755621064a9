import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { DEFAULT_CONFIG } from '../src/spec/schema.js';
import type { RunConfig } from '../src/spec/types.js';
import { initBackend } from '../src/train/backend.js';
import { MAX_GROUP, trainingGroups } from '../src/train/groups.js';
import { bnx, BNX, ROOT, tmpDir, writeFashionQuadrants, writeSpec } from './helpers.js';

/**
 * A run's numbers are a function of its configuration: its metrics.csv and weights.bin are the
 * same bytes whether it trains alone, in any group (any size, any position, any mix of learning
 * rates, seeds, optimizers, norms), in a shard, in worker processes, or after a kill -9 and a
 * resume. Each case below trains the same target run (seed 7) another way and compares bytes.
 */
const SPECS = {
  'mlp, no norm': `name: layout
seed: 7
data:
  dataset: synthetic
  synthetic: { features: 16, classes: 4, train_size: 600, test_size: 100, noise: 0.8 }
  val_size: 100
model: { hidden: [24, 16], activation: sigmoid, init: gaussian, init_std: 0.3, norm: none }
train: { lr: 0.5, momentum: 0.9, batch_size: 20, steps: 600, eval_every: 200, log_every: 20 }
`,
  'mlp, batch norm': `name: layout
seed: 7
data:
  dataset: synthetic
  synthetic: { features: 16, classes: 4, train_size: 600, test_size: 100, noise: 0.8 }
  val_size: 100
model: { hidden: [24, 16], activation: relu, init: he_normal, norm: batch }
train: { lr: 0.2, batch_size: 20, steps: 600, eval_every: 200, log_every: 20 }
`,
  // Dropout masks, weight decay and a schedule: the masks come from the run's own generators.
  'mlp, selu, alpha dropout, weight decay, step schedule': `name: layout
seed: 7
data:
  dataset: synthetic
  synthetic: { features: 16, classes: 4, train_size: 600, test_size: 100, noise: 0.8 }
  val_size: 100
model: { hidden: [24, 16], activation: selu, init: lecun_normal, norm: batch, dropout: 0.2 }
train: { lr: 0.1, momentum: 0.9, weight_decay: 0.001, schedule: { kind: step, every: 200, factor: 0.5 }, batch_size: 20, steps: 600, eval_every: 200, log_every: 20 }
`,
  // DATA: 8x8 quadrant images written as Fashion-MNIST files (writeFashionQuadrants).
  cnn: `name: layout
seed: 7
data: { dataset: fashion_mnist, path: DATA, val_size: 100, preprocess: standardize }
model: { arch: cnn, activation: relu, init: he_normal, norm: batch, cnn: { channels: [4, 8], kernel: 3, pool: 2, dense: [16] } }
train: { lr: 0.05, momentum: 0.9, batch_size: 20, steps: 60, eval_every: 30, log_every: 5 }
`,
};

/** The files whose bytes must not depend on how the run was scheduled. */
const FILES = ['metrics.csv', 'weights.bin'];

/** The folder of the run with this config hash (its id's suffix) under a sweep folder. */
function targetRun(sweep: string, hash: string): string {
  const ids = fs.readdirSync(sweep).filter((id) => id.endsWith(`_${hash}`));
  assert.equal(ids.length, 1, `one run ${hash} in ${sweep}: ${fs.readdirSync(sweep).join(', ')}`);
  return path.join(sweep, ids[0]);
}

function run(spec: string, out: string, args: string[]): void {
  const res = bnx(['run', spec, '--out', out, ...args]);
  assert.equal(res.code, 0, `bnx run ${args.join(' ')}: ${res.stderr}`);
}

/** Starts bnx; kills it with SIGKILL once `ready()` holds (checked every 5 ms), before it ends. */
async function killWhen(args: string[], ready: () => boolean): Promise<boolean> {
  const child = spawn(process.execPath, [BNX, ...args], { cwd: ROOT, stdio: 'ignore' });
  let exited = false;
  const done = new Promise<void>((resolve) => child.on('close', () => ((exited = true), resolve())));
  while (!exited && !ready()) await new Promise((r) => setTimeout(r, 5));
  const killed = !exited;
  child.kill('SIGKILL');
  await done;
  return killed;
}

/** Data rows in a metrics.csv (0 when it does not exist yet). */
function rows(file: string): number {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').length - 2;
  } catch {
    return 0;
  }
}

describe('a run trains to the same bytes however it is scheduled', () => {
  for (const [label, text] of Object.entries(SPECS)) {
    it(`${label}: alone, in two different groups, in shard 1/3, with --workers 2, resumed after kill -9 mid-group`, async () => {
      const dir = tmpDir('bnx-layout-');
      fs.mkdirSync(path.join(dir, 'data'));
      writeFashionQuadrants(path.join(dir, 'data'));
      const spec = writeSpec(dir, text.replace('DATA', path.join(dir, 'data')));
      const out = (name: string) => path.join(dir, name);
      const sweep = (name: string) => path.join(dir, name, 'layout');
      const cases: [string, string][] = [];

      run(spec, out('alone'), ['--workers', '1']);
      const [id] = fs
        .readdirSync(sweep('alone'))
        .filter((f) => fs.existsSync(path.join(sweep('alone'), f, 'run.json')));
      const hash = id.slice(id.lastIndexOf('_') + 1);
      const reference = path.join(sweep('alone'), id);

      // At the front of a group of two (the position that used to change the numbers).
      run(spec, out('front'), ['--set', 'seed=7,8', '--workers', '1']);
      cases.push(['group seeds 7,8 (index 0)', targetRun(sweep('front'), hash)]);
      // Last in a group of six, beside other seeds and learning rates.
      run(spec, out('mixed'), [
        '--set',
        'seed=5,6,7',
        '--set',
        `train.lr=0.01,${/lr: ([\d.]+)/.exec(text)?.[1]}`,
        '--workers',
        '1',
      ]);
      cases.push(['group seeds 5,6,7 x two learning rates', targetRun(sweep('mixed'), hash)]);
      // Shard 1 of 3 of a 6-seed sweep: seed 7 is the fifth run (index 4, 4 % 3 = 1).
      run(spec, out('shard'), ['--set', 'seed=3,4,5,6,7,8', '--shard', '1/3']);
      cases.push(['shard 1/3', targetRun(sweep('shard'), hash)]);
      run(spec, out('workers'), ['--set', 'seed=6,7,8', '--workers', '2']);
      cases.push(['--workers 2', targetRun(sweep('workers'), hash)]);

      // kill -9 while the group of three trains (the target has logged a few rows), then resume.
      const resumeArgs = ['run', spec, '--out', out('resumed'), '--set', 'seed=7,8,9', '--workers', '1'];
      const metrics = path.join(sweep('resumed'), path.basename(targetRun(sweep('front'), hash)), 'metrics.csv');
      const killed = await killWhen(resumeArgs, () => rows(metrics) >= 3);
      assert.ok(killed, 'the kill landed before the group finished');
      assert.ok(rows(metrics) < rows(path.join(reference, 'metrics.csv')), 'killed mid-run');
      const resumed = bnx(resumeArgs);
      assert.equal(resumed.code, 0, resumed.stderr);
      cases.push(['resumed after kill -9', targetRun(sweep('resumed'), hash)]);

      for (const [how, runDir] of cases) {
        for (const file of FILES) {
          const same = fs.readFileSync(path.join(runDir, file)).equals(fs.readFileSync(path.join(reference, file)));
          assert.ok(same, `${label}: ${file} ${how} differs from the run alone`);
        }
        const [a, b] = [path.join(runDir, 'run.json'), path.join(reference, 'run.json')].map((f) =>
          JSON.parse(fs.readFileSync(f, 'utf8')),
        );
        assert.deepEqual(
          [a.final, a.best, a.test, a.numerics],
          [b.final, b.best, b.test, b.numerics],
          `${label}: run.json results ${how}`,
        );
        assert.equal(a.numerics.intra_op_threads, 1);
      }
    });
  }
});

describe('trainingGroups', () => {
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

  it('groups runs that share data and schedule, whatever their model, optimizer or seed; keeps the others apart', () => {
    const configs = [
      with_((c) => (c.train.lr = 0.1)),
      with_((c) => (c.model.hidden = [9])),
      with_((c) => ((c.seed = 5), (c.train.momentum = 0.9), (c.model.init_std = 0.3))),
      with_((c) => (c.train.optimizer = 'adam')),
      with_((c) => ((c.model.norm = 'batch'), (c.model.batch_norm.eps = 1e-5))),
      with_((c) => (c.model.norm = 'layer')),
      with_((c) => (c.train.engine = 'eager')),
      with_((c) => (c.train.steps = 7)),
      with_((c) => (c.train.eval_every = 3)),
      with_((c) => (c.data.val_size = 11)),
      with_((c) => ((c.model.norm = 'batch'), (c.model.batch_norm.inference = 'population'))),
      with_((c) => (c.data.augment = { ...c.data.augment, flip: true })),
    ];
    assert.deepEqual(trainingGroups(configs), [[0, 1, 2, 3, 4, 5, 11], [6], [7], [8], [9], [10]]);
  });

  it('splits a group at MAX_GROUP members', () => {
    const configs = Array.from({ length: MAX_GROUP + 3 }, (_, i) => with_((c) => (c.train.lr = 0.01 * (i + 1))));
    assert.deepEqual(
      trainingGroups(configs).map((g) => g.length),
      [MAX_GROUP, 3],
    );
  });
});
