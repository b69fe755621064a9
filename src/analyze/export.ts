import fs from 'node:fs';
import path from 'node:path';
import type { Tensor, Tensor2D } from '@tensorflow/tfjs';
import { DamagedFileError, InputError } from '../util/errors.js';
import { writeFileAtomic } from '../util/files.js';
import type { Mlp } from '../model/index.js';
import type { RunConfig } from '../spec/types.js';
import { checkWeightsFiles } from '../model/weights-format.js';
import { DAMAGED_RECORD_HINT, RUN_FILES } from '../store/runs.js';

/** Folded and unfolded predictions must agree to within this (largest absolute logit difference). */
export const EXPORT_TOLERANCE = 1e-4;

/** export.json: what `bnx export` measured. */
export interface ExportReport {
  run_dir: string;
  model: string;
  layers: string[];
  folded_batch_norms: number;
  test_examples: number;
  max_abs_logit_diff: number;
  max_abs_prob_diff: number;
  argmax_agree: number;
  test_acc: { unfolded: number; folded: number };
  tolerance: number;
  ok: boolean;
  timing: {
    batch_size: number;
    calls: number;
    unfolded_ms: number;
    folded_ms: number;
    speedup: number;
    layers_model_ms: number;
  }[];
  rounds: number;
}

export interface ExportOptions {
  out?: string;
  rounds: string;
  json: boolean;
}

function readRun(runDir: string): RunConfig {
  const recordFile = path.join(runDir, RUN_FILES.record);
  if (!fs.existsSync(runDir)) throw new InputError(runDir, 'no such run folder; give results/<spec>/<run id>');
  if (!fs.existsSync(recordFile))
    throw new InputError(runDir, 'not a run folder (no run.json); give results/<spec>/<run id>');
  // Export needs the outcome and the configuration only; anything unreadable is named, not traced.
  const damaged = (why: string) => new DamagedFileError(recordFile, why, DAMAGED_RECORD_HINT);
  let record: { status?: unknown; config?: RunConfig };
  try {
    record = JSON.parse(fs.readFileSync(recordFile, 'utf8')) as typeof record;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EISDIR') throw damaged('a folder, where a run.json file belongs');
    if (e instanceof SyntaxError) throw damaged(`not valid JSON (${e.message})`);
    throw e;
  }
  if (typeof record?.status !== 'string' || record.config === null || typeof record.config !== 'object')
    throw damaged('"status" or "config" is missing');
  if (record.status !== 'completed')
    throw new InputError(runDir, `the run is ${record.status}; only a completed run can be exported`);
  return record.config as RunConfig;
}

export async function exportRun(runDir: string, opts: ExportOptions): Promise<ExportReport> {
  const config = readRun(runDir);
  const rounds = Number(opts.rounds);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 10_000)
    throw new InputError('--rounds', `is ${opts.rounds}, must be an integer from 1 to 10000`);
  // Missing, truncated or garbage weights are named before TensorFlow loads.
  checkWeightsFiles(runDir);
  if (opts.out !== undefined && fs.existsSync(opts.out) && !fs.statSync(opts.out).isDirectory())
    throw new InputError(`--out ${opts.out}`, 'exists and is not a directory');
  const {
    loadWeights,
    foldMlp,
    foldCnn,
    foldedForward,
    toLayersModel,
    disposeFolded,
    buildModel,
    describeFoldedLayer,
    Cnn,
  } = await import('../model/index.js');
  const { initBackend } = await import('../train/backend.js');
  await initBackend('tensorflow');
  const tf = await import('@tensorflow/tfjs');
  const { loadDataset } = await import('../data/index.js');

  const data = loadDataset(config.data);
  const model = buildModel(config.model, data.inputShape, data.classes, config.seed);
  loadWeights(model, runDir);
  let net: ReturnType<typeof foldMlp>;
  try {
    net = model instanceof Cnn ? foldCnn(model) : foldMlp(model as Mlp);
  } catch (e) {
    model.dispose();
    throw new InputError(runDir, (e as Error).message);
  }
  const outDir = path.resolve(opts.out ?? path.join(runDir, 'export'));
  fs.mkdirSync(outDir, { recursive: true });
  const layersModel = toLayersModel(net);
  await layersModel.save(`file://${outDir}`);
  layersModel.dispose();
  // Check the artifact itself: read it back as a user would.
  const loaded = await tf.loadLayersModel(`file://${path.join(outDir, 'model.json')}`);

  const n = data.test.n;
  const x = tf.tensor2d(data.test.x, [n, data.features]);
  const labels = tf.tensor1d(data.test.y, 'int32');
  const unfolded = tf.tidy(() => model.forward(x, false));
  const folded = tf.tidy(() => loaded.predict(x, { batchSize: n }) as Tensor2D);
  const foldedOps = foldedForward(net, x);
  const [logitDiff, opsDiff, probDiff, agree, accU, accF] = tf.tidy(() => {
    const maxAbs = (a: Tensor, b: Tensor) => tf.max(tf.abs(tf.sub(a, b)));
    const predU = tf.argMax(unfolded, 1);
    const predF = tf.argMax(folded, 1);
    const count = (a: Tensor, b: Tensor) => tf.sum(tf.cast(tf.equal(a, b), 'int32'));
    return [
      maxAbs(unfolded, folded),
      maxAbs(unfolded, foldedOps),
      maxAbs(tf.softmax(unfolded), tf.softmax(folded)),
      count(predU, predF),
      count(predU, labels),
      count(predF, labels),
    ].map((t) => t.dataSync()[0]);
  });
  const maxLogitDiff = Math.max(logitDiff, opsDiff);

  // Timing, side by side: each round runs every variant once, in rotating order; medians over the rounds.
  const timing: ExportReport['timing'] = [];
  for (const batchSize of [n, 60]) {
    const chunks: Tensor2D[] = [];
    for (let s = 0; s + batchSize <= n; s += batchSize) chunks.push(tf.slice(x, [s, 0], [batchSize, data.features]));
    const run = (f: (c: Tensor2D) => Tensor) => {
      const t0 = performance.now();
      for (const c of chunks) f(c).dispose();
      return performance.now() - t0;
    };
    const variants = {
      unfolded: (c: Tensor2D) => tf.tidy(() => model.forward(c, false)),
      folded: (c: Tensor2D) => foldedForward(net, c),
      layers: (c: Tensor2D) => tf.tidy(() => loaded.predict(c, { batchSize }) as Tensor),
    };
    const times: Record<keyof typeof variants, number[]> = { unfolded: [], folded: [], layers: [] };
    for (const f of Object.values(variants)) run(f); // warm-up
    const names = Object.keys(variants) as (keyof typeof variants)[];
    for (let r = 0; r < rounds; r++) {
      // Rotate the order every round, so that no variant always runs first (cache, frequency scaling).
      for (let i = 0; i < names.length; i++) {
        const k = names[(i + r) % names.length];
        times[k].push(run(variants[k]));
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const [u, f, l] = [median(times.unfolded), median(times.folded), median(times.layers)];
    timing.push({
      batch_size: batchSize,
      calls: chunks.length,
      unfolded_ms: u,
      folded_ms: f,
      speedup: u / f,
      layers_model_ms: l,
    });
    tf.dispose(chunks);
  }

  const report: ExportReport = {
    run_dir: path.resolve(runDir),
    model: path.join(outDir, 'model.json'),
    layers: net.layers.map(describeFoldedLayer),
    folded_batch_norms: net.folded,
    test_examples: n,
    max_abs_logit_diff: maxLogitDiff,
    max_abs_prob_diff: probDiff,
    argmax_agree: agree,
    test_acc: { unfolded: accU / n, folded: accF / n },
    tolerance: EXPORT_TOLERANCE,
    ok: maxLogitDiff < EXPORT_TOLERANCE,
    timing,
    rounds,
  };
  writeFileAtomic(path.join(outDir, 'export.json'), `${JSON.stringify(report, null, 2)}\n`);
  tf.dispose([x, labels, unfolded, folded, foldedOps]);
  loaded.dispose();
  disposeFolded(net);
  model.dispose();
  return report;
}
