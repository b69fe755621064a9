import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { parse } from 'csv-parse/sync';
import * as tf from '@tensorflow/tfjs';
import { loadDataset, type Dataset } from '../src/data/index.js';
import { buildModel } from '../src/model/index.js';
import type { InstrumentName, ModelConfig, RunConfig } from '../src/spec/types.js';
import { DEFAULT_CONFIG } from '../src/spec/schema.js';
import { InstrumentCsv, instrumentColumns, instrumentCsvPath } from '../src/store/instrument-csv.js';
import { MetricsWriter } from '../src/store/metrics.js';
import { readRecord, type RunRecord } from '../src/store/runs.js';
import { initBackend } from '../src/train/backend.js';
import { percentiles } from '../src/train/instruments/index.js';
import { InternalCovariateShift } from '../src/train/instruments/ics.js';
import { nonlinearityInputs } from '../src/train/instruments/layers.js';
import { chooseEngine } from '../src/train/engine.js';
import { train } from '../src/train/loop.js';
import { bnx, ROOT, tmpDir, writeSpec } from './helpers.js';

type Row = Record<string, string>;

/** A small synthetic task: 3 classes, 12 features, two hidden layers. */
function config(model: Partial<ModelConfig>, on: Partial<Record<InstrumentName, number>>, steps = 6): RunConfig {
  const c = structuredClone({ ...DEFAULT_CONFIG, name: 'instruments' }) as RunConfig;
  c.seed = 5;
  c.data = {
    ...c.data,
    dataset: 'synthetic',
    val_size: 90,
    synthetic: { features: 12, classes: 3, train_size: 400, test_size: 60, noise: 0.5 },
  };
  c.model = { ...c.model, hidden: [16, 8], activation: 'sigmoid', init: 'glorot_uniform', ...model } as ModelConfig;
  c.train = { ...c.train, lr: 0.3, batch_size: 20, steps, eval_every: 3, log_every: 2, engine: 'eager' };
  c.instruments.activation_percentiles.probe_size = 64;
  c.instruments.smoothness.step_sizes = [0.25, 1, 4];
  for (const [name, every] of Object.entries(on) as [InstrumentName, number][])
    Object.assign(c.instruments[name], { enabled: true, every });
  return c;
}

interface Trained {
  dir: string;
  metrics: string;
  csv: Partial<Record<InstrumentName, Row[]>>;
  activations: Map<string, Float32Array>[];
  overhead: Record<string, number> | null;
  weights: Map<string, Float32Array>;
}

/** Trains through the loop with the writers `bnx run` uses: metrics.csv and one CSV per enabled instrument. */
async function trainRun(c: RunConfig, data: Dataset): Promise<Trained> {
  const dir = tmpDir('bnx-instruments-');
  const metrics = new MetricsWriter(path.join(dir, 'metrics.csv'));
  const names = (Object.keys(c.instruments) as InstrumentName[]).filter((n) => c.instruments[n].enabled);
  const csvs = new Map(names.map((n) => [n, new InstrumentCsv(instrumentCsvPath(dir, n), instrumentColumns(c, n))]));
  const activations: Map<string, Float32Array>[] = [];
  let overhead: Record<string, number> | null = null;
  const weights = new Map<string, Float32Array>();
  await train(c, data, {
    onRow: (row) => metrics.append(row),
    onInstrument: (name, _step, rows, acts) => {
      csvs.get(name)?.append(rows);
      if (acts) activations.push(acts);
    },
    onInstrumentOverhead: (seconds) => (overhead = seconds as Record<string, number>),
    onTrained: (model) => {
      for (const [k, v] of model.namedWeights) weights.set(k, v.dataSync() as Float32Array);
    },
  });
  metrics.close();
  for (const csv of csvs.values()) csv.close();
  const csv: Trained['csv'] = {};
  for (const n of names) csv[n] = parse(fs.readFileSync(instrumentCsvPath(dir, n), 'utf8'), { columns: true }) as Row[];
  return { dir, metrics: fs.readFileSync(path.join(dir, 'metrics.csv'), 'utf8'), csv, activations, overhead, weights };
}

function header(file: string): string {
  return fs.readFileSync(file, 'utf8').split('\n')[0];
}

describe('instruments', () => {
  let data: Dataset;
  before(async () => {
    await initBackend('tensorflow');
    data = loadDataset(config({}, {}).data);
  });

  it('percentiles interpolate between order statistics', () => {
    assert.deepEqual(percentiles(new Float32Array([4, 1, 3, 2, 5]), [0, 15, 50, 85, 100]), [1, 1.6, 3, 4.4, 5]);
  });

  it('activation_percentiles: ordered percentiles per hidden layer; batch norm standardizes the probe', async () => {
    const bn = await trainRun(config({ norm: 'batch' }, { activation_percentiles: 1 }, 3), data);
    const rows = bn.csv.activation_percentiles as Row[];
    assert.equal(header(instrumentCsvPath(bn.dir, 'activation_percentiles')), 'step,layer,p15,p50,p85');
    assert.deepEqual(
      rows.map((r) => `${r.step}:${r.layer}`),
      ['1:hidden1', '1:hidden2', '2:hidden1', '2:hidden2', '3:hidden1', '3:hidden2'],
    );
    for (const r of rows)
      assert.ok(Number(r.p15) <= Number(r.p50) && Number(r.p50) <= Number(r.p85), JSON.stringify(r));
    // After one step gamma ~ 1 and beta ~ 0: each unit is standardized over the probe, so the pooled
    // values are near N(0, 1) (15th and 85th percentiles near -1.04 and +1.04).
    for (const r of rows.filter((x) => x.step === '1')) {
      assert.ok(Math.abs(Number(r.p50)) < 0.3, `p50 ${r.p50}`);
      assert.ok(Number(r.p15) < -0.6 && Number(r.p15) > -1.5, `p15 ${r.p15}`);
      assert.ok(Number(r.p85) > 0.6 && Number(r.p85) < 1.5, `p85 ${r.p85}`);
    }
    // The raw values: every unit of every probe example.
    assert.equal(bn.activations.length, 3);
    assert.deepEqual(
      [...bn.activations[0].entries()].map(([k, v]) => [k, v.length]),
      [
        ['hidden1', 64 * 16],
        ['hidden2', 64 * 8],
      ],
    );

    // Configured percentiles name the columns; without normalization the pre-activations are not standardized.
    const c = config({}, { activation_percentiles: 2 }, 4);
    c.instruments.activation_percentiles.percentiles = [2.5, 50, 97.5];
    const plain = await trainRun(c, data);
    assert.equal(header(instrumentCsvPath(plain.dir, 'activation_percentiles')), 'step,layer,p2.5,p50,p97.5');
    assert.deepEqual(
      (plain.csv.activation_percentiles as Row[]).map((r) => r.step),
      ['2', '2', '4', '4'],
    );
  });

  it("ics: each layer after the first, gradient change under the preceding layers' update", async () => {
    const { csv, dir } = await trainRun(config({ norm: 'batch' }, { ics: 2 }, 4), data);
    assert.equal(header(instrumentCsvPath(dir, 'ics')), 'step,layer,l2,cosine,grad_norm');
    const rows = csv.ics as Row[];
    assert.deepEqual(
      rows.map((r) => `${r.step}:${r.layer}`),
      ['2:hidden2', '2:head', '4:hidden2', '4:head'],
    );
    for (const r of rows) {
      const [l2, cosine, norm] = [Number(r.l2), Number(r.cosine), Number(r.grad_norm)];
      assert.ok(cosine >= -1 && cosine <= 1, `cosine ${cosine}`);
      assert.ok(norm > 0 && l2 > 0, JSON.stringify(r));
    }
    // A vanishing learning rate barely moves the preceding layers: G' ~ G.
    const c = config({ norm: 'batch' }, { ics: 1 }, 1);
    c.train.lr = 1e-5;
    for (const r of (await trainRun(c, data)).csv.ics as Row[]) {
      assert.ok(Number(r.cosine) > 0.9999 && Number(r.l2) < 1e-3 * Number(r.grad_norm), JSON.stringify(r));
    }
  });

  it('smoothness: loss and gradient change along the gradient, one row per step size', async () => {
    const { csv, dir } = await trainRun(config({ norm: 'batch' }, { smoothness: 3 }, 3), data);
    assert.equal(header(instrumentCsvPath(dir, 'smoothness')), 'step,step_size,loss,loss_change,grad_change,beta');
    const rows = csv.smoothness as Row[];
    assert.deepEqual(
      rows.map((r) => r.step_size),
      ['0.25', '1', '4'],
    );
    for (const r of rows) {
      assert.ok(Number(r.loss) > 0 && Number(r.grad_change) >= 0 && Number(r.beta) >= 0, JSON.stringify(r));
    }
    // A small step along -g descends.
    assert.ok(Number(rows[0].loss_change) < 0, `loss_change ${rows[0].loss_change}`);
    // beta = grad_change / (s lr ||g||): for the same g, grad_change / (beta s) is the same lr ||g|| on every row.
    const lrNorm = rows.map((r) => Number(r.grad_change) / (Number(r.beta) * Number(r.step_size)));
    for (const v of lrNorm) assert.ok(Math.abs(v / lrNorm[0] - 1) < 1e-4, `${lrNorm}`);
  });

  it('eval_gap: zero without batch statistics, non-zero with moving averages lagging behind', async () => {
    const plain = await trainRun(config({}, { eval_gap: 3 }), data);
    assert.equal(header(instrumentCsvPath(plain.dir, 'eval_gap')), 'step,val_loss_train_mode,val_loss_inference,gap');
    for (const r of plain.csv.eval_gap as Row[]) assert.ok(Math.abs(Number(r.gap)) < 1e-5, JSON.stringify(r));
    const bn = await trainRun(config({ norm: 'batch' }, { eval_gap: 3 }), data);
    const rows = bn.csv.eval_gap as Row[];
    assert.deepEqual(
      rows.map((r) => r.step),
      ['3', '6'],
    );
    for (const r of rows) {
      assert.ok(
        Math.abs(Number(r.val_loss_train_mode) - Number(r.val_loss_inference) - Number(r.gap)) < 1e-5,
        JSON.stringify(r),
      );
      // momentum 0.99: after a few steps the moving averages are still close to their (0, 1) start.
      assert.ok(Math.abs(Number(r.gap)) > 1e-3, JSON.stringify(r));
    }
  });

  it('measuring changes nothing: metrics.csv and the trained weights are byte-identical (eager, batch norm, all four)', async () => {
    // Noisy BN draws one perturbation per step, at the step's first training-mode pass: a measurement
    // may make that draw, but the step then uses the same one.
    const variants = [
      { inference: 'ema', noise: 0 },
      { inference: 'population', noise: 0 },
      { inference: 'ema', noise: 0.5 },
    ] as const;
    for (const { inference, noise } of variants) {
      const model = {
        norm: 'batch',
        batch_norm: { ...DEFAULT_CONFIG.model.batch_norm, inference, noise, population_batches: 2 },
      } as Partial<ModelConfig>;
      const without = await trainRun(config(model, {}, 12), data);
      const withAll = await trainRun(
        config(model, { activation_percentiles: 2, ics: 3, smoothness: 4, eval_gap: 2 }, 12),
        data,
      );
      assert.equal(withAll.metrics, without.metrics, inference);
      for (const [k, v] of without.weights) assert.deepEqual(withAll.weights.get(k), v, `${inference} ${k}`);
      assert.deepEqual(Object.keys(withAll.overhead ?? {}), [
        'activation_percentiles',
        'ics',
        'smoothness',
        'eval_gap',
      ]);
      for (const s of Object.values(withAll.overhead ?? {})) assert.ok(s > 0);
      assert.equal(without.overhead, null);
    }
  });

  it("the graph engine runs activation_percentiles and eval_gap, with the eager engine's numbers", async () => {
    const on = { activation_percentiles: 2, eval_gap: 3 };
    const eager = await trainRun(config({ norm: 'batch' }, on), data);
    const cg = config({ norm: 'batch' }, on);
    cg.train.engine = 'graph';
    const graph = await trainRun(cg, data);
    for (const name of ['activation_percentiles', 'eval_gap'] as const) {
      const [a, b] = [eager.csv[name] as Row[], graph.csv[name] as Row[]];
      assert.equal(b.length, a.length);
      a.forEach((row, i) => {
        for (const [k, v] of Object.entries(row)) {
          if (k === 'layer' || k === 'step') assert.equal(b[i][k], v);
          else
            assert.ok(
              Math.abs(Number(b[i][k]) - Number(v)) < 1e-4 * (1 + Math.abs(Number(v))),
              `${name} ${k}: graph ${b[i][k]} eager ${v}`,
            );
        }
      });
    }
  });

  it('ics and smoothness need gradients: auto falls back to eager, graph is an error', () => {
    for (const name of ['ics', 'smoothness'] as const) {
      const c = config({ norm: 'batch' }, { [name]: 10 });
      c.train.engine = 'auto';
      const choice = chooseEngine(c);
      assert.equal(choice.kind, 'eager');
      assert.match(choice.note ?? '', new RegExp(`instruments\\.${name}`));
      c.train.engine = 'graph';
      assert.throws(() => chooseEngine(c), new RegExp(`train.engine=graph: .*instruments\\.${name}`));
    }
    const c = config({ norm: 'batch' }, { activation_percentiles: 10, eval_gap: 10 });
    c.train.engine = 'auto';
    assert.equal(chooseEngine(c).kind, 'graph');
  });

  it('cnn: conv blocks and dense head layers by name; ics puts every weight back bit for bit', () => {
    const c = config(
      {
        arch: 'cnn',
        norm: 'batch',
        activation: 'relu',
        init: 'he_normal',
        cnn: { channels: [3, 4], kernel: 3, pool: 2, dense: [5] },
      },
      { ics: 1 },
    );
    const model = buildModel(c.model, [6, 6, 1], 3, c.seed);
    try {
      const x = Float32Array.from({ length: 8 * 36 }, (_, i) => Math.sin(i));
      const y = Int32Array.from({ length: 8 }, (_, i) => i % 3);
      const shapes = tf.tidy(() =>
        [...nonlinearityInputs(model, tf.tensor2d(x, [8, 36]), true)].map(([k, v]) => `${k}:${v.shape}`),
      );
      assert.deepEqual(shapes, ['conv1:8,6,6,3', 'conv2:8,3,3,4', 'dense1:8,5']);
      const before = new Map([...model.namedWeights].map(([k, v]) => [k, v.dataSync().slice()]));
      const tensors = tf.memory().numTensors;
      const { rows } = new InternalCovariateShift(c, 36).measure(1, model, { x, y });
      assert.deepEqual(
        rows.map((r) => r.layer),
        ['conv2', 'dense1', 'head'],
      );
      // Nothing leaked but the batch statistics batch norm keeps for the next update (mean and variance per layer).
      assert.ok(tf.memory().numTensors - tensors <= 4, `${tf.memory().numTensors - tensors} tensors left`);
      for (const [k, v] of model.namedWeights) assert.deepEqual(v.dataSync(), before.get(k), k);
    } finally {
      model.dispose();
    }
  });

  it('an instrument row with other columns is refused before anything is written', () => {
    const dir = tmpDir('bnx-instrument-csv-');
    const csv = new InstrumentCsv(path.join(dir, 'ics.csv'), ['step', 'layer', 'l2', 'cosine', 'grad_norm']);
    csv.append([{ step: 2, layer: 'hidden2', l2: 1.25e-7, cosine: 0.5, grad_norm: NaN }]);
    assert.throws(
      () =>
        csv.append([
          { step: 3, layer: 'head', l2: 1, cosine: 1, grad_norm: 1 },
          { step: 3, layer: 'head', l2: 1 },
        ]),
      /expected step,layer,l2,cosine,grad_norm/,
    );
    csv.close();
    assert.equal(
      fs.readFileSync(path.join(dir, 'ics.csv'), 'utf8'),
      'step,layer,l2,cosine,grad_norm\n2,hidden2,1.25e-7,0.5,nan\n',
    );
  });

  it('bnx run: one CSV per instrument and their overhead in run.json; old run.json files still read', () => {
    const dir = tmpDir();
    const spec = writeSpec(
      dir,
      `name: tiny
seed: 3
data:
  dataset: synthetic
  synthetic: { features: 8, classes: 3, train_size: 300, test_size: 90, noise: 0.5 }
  val_size: 60
model: { hidden: [16], norm: batch }
train: { lr: 0.5, batch_size: 20, steps: 20, eval_every: 10, log_every: 10 }
instruments:
  - activation_percentiles: { every: 5 }
  - ics: { every: 10 }
  - smoothness: { every: 10 }
  - eval_gap: { every: 10 }
`,
    );
    const res = bnx(['run', spec, '--out', path.join(dir, 'out')]);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout + res.stderr, /engine: eager \(graph engine does not cover instruments\.ics/);
    const [runDir] = fs
      .readdirSync(path.join(dir, 'out', 'tiny'))
      .filter((e) => fs.existsSync(path.join(dir, 'out', 'tiny', e, 'run.json')))
      .map((e) => path.join(dir, 'out', 'tiny', e));
    for (const name of ['activation_percentiles', 'ics', 'smoothness', 'eval_gap'] as const) {
      const file = instrumentCsvPath(runDir, name);
      assert.ok(fs.existsSync(file), file);
    }
    assert.equal(
      fs.readFileSync(instrumentCsvPath(runDir, 'activation_percentiles'), 'utf8').trim().split('\n').length,
      1 + 4,
    );
    const record: RunRecord = readRecord(runDir);
    const overhead = record.instruments as NonNullable<RunRecord['instruments']>;
    assert.deepEqual(Object.keys(overhead), ['activation_percentiles', 'ics', 'smoothness', 'eval_gap']);
    for (const { seconds, share } of Object.values(overhead)) assert.ok(seconds > 0 && share > 0 && share < 1);

    // run.json files written before instruments existed read as "none enabled".
    const old = path.join(ROOT, 'test', 'fixtures', 'results', 'fixture');
    for (const run of fs.readdirSync(old)) {
      if (!fs.existsSync(path.join(old, run, 'run.json'))) continue;
      assert.ok(!('instruments' in JSON.parse(fs.readFileSync(path.join(old, run, 'run.json'), 'utf8'))));
      assert.equal(readRecord(path.join(old, run)).instruments, null);
    }
  });
});
