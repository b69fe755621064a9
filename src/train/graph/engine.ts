import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { EpochBatcher, gather, type Dataset, type Split } from '../../data/index.js';
import type { NoiseDraw } from '../../model/batch-norm.js';
import { BatchNorm, Cnn, type Classifier } from '../../model/index.js';
import type { RunConfig } from '../../spec/types.js';
import { evaluateInChunks, populationSeed, type EvalResult } from '../evaluate.js';
import type { Engine } from '../loop.js';
import { compileMlp, type CompiledGraph } from './compile.js';
import { compileCnn } from './compile-cnn.js';
import { isAlive } from '../../store/lock.js';
import { writeSavedModel, type NodeDef, type Signature } from './graph-def.js';

/** What tfjs-node's SavedModel runtime gives back: one signature of one session. */
export interface SavedModelSignature {
  predict(inputs: tf.NamedTensorMap): tf.NamedTensorMap;
  dispose(): void;
}
type SignatureName = 'init' | 'train_step' | 'eval' | 'read' | 'batch_stats' | 'set_stats';
type LoadSavedModel = (dir: string, tags: string[], signature: string) => Promise<SavedModelSignature>;

function loadSavedModelFn(): LoadSavedModel {
  if (tf.getBackend() !== 'tensorflow') throw new Error(`the graph engine needs the native tensorflow backend (active: ${tf.getBackend()})`);
  const require = createRequire(import.meta.url);
  return (require('@tensorflow/tfjs-node') as { node: { loadSavedModel: LoadSavedModel } }).node.loadSavedModel;
}

/** Temporary SavedModel folders: `bnx-graph-<pid>-XXXXXX`. */
const FOLDER_PREFIX = 'bnx-graph-';

/** Removes the (empty) folders left by bnx processes that were killed while training on the graph engine. */
function removeStaleFolders(): void {
  const pattern = new RegExp(`^${FOLDER_PREFIX}(\\d+)-`);
  let names: string[];
  try {
    names = fs.readdirSync(os.tmpdir());
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(pattern.exec(name)?.[1] ?? NaN);
    if (!Number.isInteger(pid) || pid === process.pid || isAlive(pid)) continue;
    fs.rmSync(path.join(os.tmpdir(), name), { recursive: true, force: true });
  }
}

/**
 * Writes a graph as a SavedModel to a temporary folder and loads each signature on one session
 * (same path and tags). `unload` disposes the signatures and removes the folder.
 */
export async function loadGraph<K extends string>(nodes: NodeDef[], signatures: Record<K, Signature>): Promise<{ dir: string; sig: Record<K, SavedModelSignature>; unload: () => void }> {
  const load = loadSavedModelFn();
  removeStaleFolders();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${FOLDER_PREFIX}${process.pid}-`));
  const loaded: SavedModelSignature[] = [];
  const unload = () => {
    for (const s of loaded) s.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    writeSavedModel(dir, nodes, signatures);
    const sig = {} as Record<K, SavedModelSignature>;
    for (const name of Object.keys(signatures) as K[]) {
      sig[name] = await load(dir, ['serve'], name);
      loaded.push(sig[name]);
    }
    // The session holds the graph now: remove the files at once, so a killed process leaves at most
    // an empty folder. The folder itself stays until unload: tfjs-node reuses a session by path.
    fs.rmSync(path.join(dir, 'saved_model.pb'));
    fs.rmSync(path.join(dir, 'variables'), { recursive: true });
    return { dir, sig, unload };
  } catch (e) {
    unload();
    throw e;
  }
}

/**
 * Algorithm 2 through the `batch_stats` and `set_stats` signatures: each moving_mean/variance
 * becomes the mean over `batches` training mini-batches (from `nextBatch`: the `x` input first,
 * other tensors to dispose after) of the batch means and unbiased variances, summed in float32 as
 * the eager tf.add does.
 */
export function setPopulationStatistics(sig: { batch_stats?: SavedModelSignature; set_stats?: SavedModelSignature }, batches: number, nextBatch: () => tf.Tensor[]): void {
  const sums = new Map<string, Float32Array>();
  for (let b = 0; b < batches; b++) {
    const tensors = nextBatch();
    const out = (sig.batch_stats as SavedModelSignature).predict({ x: tensors[0] });
    for (const [k, t] of Object.entries(out)) {
      const v = t.dataSync() as Float32Array;
      const sum = sums.get(k) ?? (sums.set(k, new Float32Array(v.length)).get(k) as Float32Array);
      for (let i = 0; i < v.length; i++) sum[i] += v[i];
    }
    tf.dispose([...tensors, ...Object.values(out)]);
  }
  const inputs: tf.NamedTensorMap = {};
  for (const [k, sum] of sums) {
    const [layer, stat] = [k.slice(0, k.lastIndexOf('/')), k.slice(k.lastIndexOf('/') + 1)];
    inputs[`${layer}/norm/${stat === 'mean' ? 'moving_mean' : 'moving_variance'}`] = tf.tensor1d(sum.map((s) => s / batches));
  }
  const done = (sig.set_stats as SavedModelSignature).predict(inputs);
  tf.dispose([...Object.values(inputs), ...Object.values(done)]);
}

/**
 * The graph engine: a run's training step compiled to one TensorFlow graph (see `compileMlp` and `compileCnn`),
 * written as a SavedModel to a temporary folder and executed through tfjs-node's SavedModel
 * runtime, one native call per step. The four signatures share one session (same path and tags),
 * so the variables `init` sets are those `train_step` updates and `read` returns.
 */
export class GraphEngine implements Engine {
  readonly kind = 'graph' as const;
  private disposed = false;
  /** Algorithm 2 (`inference: population`): the estimate's own batch order, as the eager `PopulationStatistics`. */
  private readonly population: { batcher: EpochBatcher; batches: number; batchSize: number; estimatedAt: number | null } | null;
  /**
   * Noisy batch norm: the graph's noise inputs and the model's layer of each. The layer draws the
   * step's noise from its own generator (`BatchNorm.stepNoise`), so the draws are the eager
   * engine's, also when an instrument's training-mode pass on the model made the step's draw first.
   */
  private readonly noise: { layer: string; bn: BatchNorm }[];

  private constructor(
    private readonly model: Classifier,
    readonly graph: CompiledGraph,
    private readonly dir: string,
    private readonly sig: Partial<Record<SignatureName, SavedModelSignature>> & Record<'init' | 'train_step' | 'eval' | 'read', SavedModelSignature>,
    private readonly lr: tf.Scalar,
    private readonly data: Dataset,
    config: RunConfig,
  ) {
    const t = config.train;
    this.population = graph.signatures.batch_stats
      ? { batcher: new EpochBatcher(data.train.n, t.batch_size, populationSeed(config.seed)), batches: config.model.batch_norm.population_batches, batchSize: t.batch_size, estimatedAt: null }
      : null;
    const bns = model.batchStatisticsLayers.filter((l): l is BatchNorm => l instanceof BatchNorm);
    this.noise = (graph.noise ?? []).map(({ layer, channels }, i) => {
      const bn = bns[i];
      if (!bn || bn.channels !== channels) throw new Error(`graph noise input ${layer} [${channels}] has no batch norm counterpart in the model`);
      return { layer, bn };
    });
  }

  get features(): number {
    return this.data.features;
  }

  /** Compiles the run, loads it and sets its variables to the model's (initial) values. */
  static async create(config: RunConfig, model: Classifier, data: Dataset): Promise<GraphEngine> {
    const graph = model instanceof Cnn ? compileCnn(config, model.inputShape, data.classes) : compileMlp(config, data.features, data.classes);
    const { dir, sig, unload } = await loadGraph(graph.nodes, graph.signatures as Record<SignatureName, Signature>);
    try {
      const engine = new GraphEngine(model, graph, dir, sig as Record<'init' | 'train_step' | 'eval' | 'read', SavedModelSignature>, tf.scalar(config.train.lr), data, config);
      engine.assign(model);
      return engine;
    } catch (e) {
      unload();
      throw e;
    }
  }

  /** Sets every graph variable to the model's value (and zeroes the optimizer's slots). */
  assign(model: Classifier): void {
    const named = model.namedWeights;
    const inputs: tf.NamedTensorMap = {};
    for (const v of this.graph.variables) {
      const w = named.get(v.name);
      if (!w || w.shape.join(',') !== v.shape.join(',')) throw new Error(`graph variable ${v.name} [${v.shape}] has no counterpart in the model`);
      inputs[v.name] = w;
    }
    const out = this.sig.init.predict(inputs);
    tf.dispose(Object.values(out));
  }

  /** One training step on a batch: x [n * features], y [n]. Returns the loss before the update and the correct count. */
  step(x: Float32Array, y: Int32Array): { loss: number; correct: number } {
    const n = y.length;
    const xt = tf.tensor2d(x, [n, this.features]);
    const yt = tf.tensor1d(y, 'int32');
    const noise: tf.NamedTensorMap = {};
    for (const { layer, bn } of this.noise) {
      const { scale, shift } = bn.stepNoise() as NoiseDraw;
      noise[`noise/${layer}/scale`] = tf.tensor1d(scale);
      noise[`noise/${layer}/shift`] = tf.tensor1d(shift);
    }
    try {
      const out = this.sig.train_step.predict({ x: xt, labels: yt, lr: this.lr, ...noise });
      const loss = (out.loss.dataSync() as Float32Array)[0];
      const correct = (out.correct.dataSync() as Float32Array)[0];
      tf.dispose(Object.values(out));
      return { loss, correct };
    } finally {
      tf.dispose([xt, yt, ...Object.values(noise)]);
      // The step is taken: the next one draws afresh (the eager step's updateMovingStats).
      for (const { bn } of this.noise) bn.endStepNoise();
    }
  }

  /**
   * Algorithm 2, as the eager `PopulationStatistics.estimate`: the inference statistics become the
   * mean over `population_batches` training mini-batches (of their own shuffle) of the batch means
   * and of the unbiased batch variances, with the weights fixed. Once per training step.
   */
  private estimatePopulation(step: number): void {
    const p = this.population;
    if (!p || p.estimatedAt === step) return;
    setPopulationStatistics(this.sig, p.batches, () => {
      const { indices, start } = p.batcher.next();
      const batch = gather(this.data.train, this.features, indices, start, p.batchSize);
      return [tf.tensor2d(batch.x, [p.batchSize, this.features])];
    });
    p.estimatedAt = step;
  }

  /**
   * Mean loss and accuracy in inference mode (batch norm: the moving averages, or the population
   * estimate taken at training step `step`) on the first `limit` examples, chunked as the eager
   * `evaluate`.
   */
  evaluate(split: Split, limit: number | null, step: number): EvalResult {
    this.estimatePopulation(step);
    return evaluateInChunks(split, this.features, limit, (x, labels) => {
      const out = this.sig.eval.predict({ x, labels });
      const totals = { lossSum: (out.loss_sum.dataSync() as Float32Array)[0], correct: (out.correct.dataSync() as Float32Array)[0] };
      tf.dispose(Object.values(out));
      return totals;
    });
  }

  /** Every variable's current value, by the model's `namedWeights` name. */
  read(): Map<string, Float32Array> {
    const out = this.sig.read.predict({});
    const values = new Map<string, Float32Array>();
    for (const v of this.graph.variables) values.set(v.name, out[v.name].dataSync() as Float32Array);
    tf.dispose(Object.values(out));
    return values;
  }

  /** The run's model with the graph's current variables copied into it (for `onTrained`: saved weights, export). */
  weights(): Classifier {
    const values = this.read();
    for (const [name, w] of this.model.namedWeights) {
      const v = values.get(name);
      if (!v) throw new Error(`model variable ${name} is not in the graph`);
      tf.tidy(() => w.assign(tf.tensor(v, w.shape)));
    }
    return this.model;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const s of Object.values(this.sig)) s.dispose();
    this.lr.dispose();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
