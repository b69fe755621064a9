import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { EpochBatcher, gather, type Dataset, type Split } from '../../data/index.js';
import { NoisyBatchNorm } from '../../layers/noisy-batch-norm.js';
import type { Classifier } from '../../model/index.js';
import type { RunConfig } from '../../spec/types.js';
import type { Batch, Engine, StepInputs, StepOutcome } from '../engine.js';
import { evaluateInChunks, populationSeed, type EvalResult } from '../evaluate.js';
import { compileConfig } from './compile.js';
import type { CompiledGraph } from './graph-def.js';
import { isAlive } from '../../util/process.js';
import { writeSavedModel, type NodeDef, type Signature } from './graph-def.js';
import { groupGraph, memberKey, type GroupGraph, type GroupSignatureName } from './members.js';

/** What tfjs-node's SavedModel runtime gives back: one signature of one session. */
export interface SavedModelSignature {
  predict(inputs: tf.NamedTensorMap): tf.NamedTensorMap;
  dispose(): void;
}
type LoadSavedModel = (dir: string, tags: string[], signature: string) => Promise<SavedModelSignature>;

function loadSavedModelFn(): LoadSavedModel {
  if (tf.getBackend() !== 'tensorflow')
    throw new Error(`the graph engine needs the native tensorflow backend (active: ${tf.getBackend()})`);
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
export async function loadGraph<K extends string>(
  nodes: NodeDef[],
  signatures: Record<K, Signature>,
): Promise<{ dir: string; sig: Record<K, SavedModelSignature>; unload: () => void }> {
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
 * becomes the mean over `batches` training mini-batches (from `nextBatch`: the `batch_stats`
 * inputs, disposed after use) of the batch means and unbiased variances, summed in float32 as
 * the eager tf.add does. Output `<prefix><layer>/mean` feeds input `<prefix><layer>/norm/moving_mean`.
 */
export function setPopulationStatistics(
  sig: { batch_stats?: SavedModelSignature; set_stats?: SavedModelSignature },
  batches: number,
  nextBatch: () => tf.NamedTensorMap,
): void {
  const sums = new Map<string, Float32Array>();
  for (let b = 0; b < batches; b++) {
    const inputs = nextBatch();
    const out = (sig.batch_stats as SavedModelSignature).predict(inputs);
    for (const [k, t] of Object.entries(out)) {
      const v = t.dataSync() as Float32Array;
      const sum = sums.get(k) ?? (sums.set(k, new Float32Array(v.length)).get(k) as Float32Array);
      for (let i = 0; i < v.length; i++) sum[i] += v[i];
    }
    tf.dispose([...Object.values(inputs), ...Object.values(out)]);
  }
  const inputs: tf.NamedTensorMap = {};
  for (const [k, sum] of sums) {
    const [layer, stat] = [k.slice(0, k.lastIndexOf('/')), k.slice(k.lastIndexOf('/') + 1)];
    inputs[`${layer}/norm/${stat === 'mean' ? 'moving_mean' : 'moving_variance'}`] = tf.tensor1d(
      sum.map((s) => s / batches),
    );
  }
  const done = (sig.set_stats as SavedModelSignature).predict(inputs);
  tf.dispose([...Object.values(inputs), ...Object.values(done)]);
}

/** One member of the graph engine: its model, its learning rate, its noise and population state. */
interface GraphMember {
  model: Classifier;
  graph: CompiledGraph;
  /** The learning rate fed last, as a tensor (a schedule changes it; a constant rate is made once). */
  lr: { value: number; tensor: tf.Scalar };
  /**
   * Noisy batch norm: the graph's noise inputs and the model's layer of each. The layer draws the
   * step's noise from its own generator (`NoisyBatchNorm.stepNoise`), so the draws are the eager
   * engine's, also when an instrument's training-mode pass on the model made the step's draw first.
   */
  noise: { layer: string; bn: NoisyBatchNorm }[];
  /** Algorithm 2 (`inference: population`): the estimate's own batch order, as the eager `PopulationStatistics`. */
  population: { batcher: EpochBatcher; batches: number; batchSize: number } | null;
}

/**
 * The graph engine: each member's training step compiled to TensorFlow ops (see `compileRun`),
 * the members' graphs side by side in one graph (`groupGraph`), written as a SavedModel to a
 * temporary folder and executed through tfjs-node's SavedModel runtime: one native call steps
 * every member. The signatures share one session (same path and tags), so the
 * variables `init` sets are those `train_step` updates and `read` returns. TensorFlow runs the
 * members' independent ops side by side on its inter-op threads.
 */
export class GraphEngine implements Engine {
  readonly kind = 'graph' as const;
  private disposed = false;
  /** The training step at which the population statistics were last estimated. */
  private estimatedAt: number | null = null;
  /** `read`'s values of every member, until the next step changes them. */
  private readCache: tf.NamedTensorMap | null = null;

  private constructor(
    private readonly list: GraphMember[],
    readonly graph: GroupGraph,
    private readonly sig: Partial<Record<GroupSignatureName, SavedModelSignature>> &
      Record<'init' | 'train_step' | 'eval' | 'read', SavedModelSignature>,
    private readonly unload: () => void,
    private readonly data: Dataset,
  ) {}

  get members(): number {
    return this.list.length;
  }

  /** Compiles the members, loads their graph and sets each member's variables to its model's (initial) values. */
  static async create(members: { config: RunConfig; model: Classifier }[], data: Dataset): Promise<GraphEngine> {
    const graph = groupGraph(members.map(({ config }) => compileConfig(config, data.inputShape, data.classes)));
    const { sig, unload } = await loadGraph(graph.nodes, graph.signatures as Record<GroupSignatureName, Signature>);
    const list: GraphMember[] = [];
    const engine = new GraphEngine(list, graph, sig as GraphEngine['sig'], unload, data);
    try {
      members.forEach(({ config, model }, k) => {
        const compiled = graph.members[k];
        const bns = model.batchStatisticsLayers.filter((l): l is NoisyBatchNorm => l instanceof NoisyBatchNorm);
        const noise = (compiled.noise ?? []).map(({ layer, channels }, i) => {
          const bn = bns[i];
          if (!bn || bn.channels !== channels)
            throw new Error(`graph noise input ${layer} [${channels}] has no batch norm counterpart in the model`);
          return { layer, bn };
        });
        const t = config.train;
        const population = compiled.signatures.batch_stats
          ? {
              batcher: new EpochBatcher(data.train.n, t.batch_size, populationSeed(config.seed)),
              batches: config.model.batch_norm.population_batches,
              batchSize: t.batch_size,
            }
          : null;
        list.push({ model, graph: compiled, lr: { value: t.lr, tensor: tf.scalar(t.lr) }, noise, population });
      });
      engine.assign();
      return engine;
    } catch (e) {
      engine.dispose();
      throw e;
    }
  }

  /** Sets every member's graph variables to its model's current values (and zeroes the optimizers' slots). */
  assign(): void {
    this.dropReadCache();
    const inputs: tf.NamedTensorMap = {};
    this.list.forEach(({ model, graph }, k) => {
      const named = model.namedWeights;
      for (const v of graph.variables) {
        const w = named.get(v.name);
        if (!w || w.shape.join(',') !== v.shape.join(','))
          throw new Error(`graph variable ${v.name} [${v.shape}] has no counterpart in the model`);
        inputs[memberKey(k, v.name)] = w;
      }
    });
    tf.dispose(Object.values(this.sig.init.predict(inputs)));
  }

  /** Each distinct batch as tensors, once (members sharing a Batch object share its tensors). */
  private static batchTensors(batches: Batch[], features: number): Map<Batch, [tf.Tensor2D, tf.Tensor1D]> {
    const tensors = new Map<Batch, [tf.Tensor2D, tf.Tensor1D]>();
    for (const b of batches)
      if (!tensors.has(b)) tensors.set(b, [tf.tensor2d(b.x, [b.y.length, features]), tf.tensor1d(b.y, 'int32')]);
    return tensors;
  }

  step(batches: Batch[], stepInputs: StepInputs[]): StepOutcome[] {
    this.dropReadCache();
    const tensors = GraphEngine.batchTensors(batches, this.data.features);
    const inputs: tf.NamedTensorMap = {};
    const noise: tf.Tensor[] = [];
    try {
      this.list.forEach((m, k) => {
        const [x, labels] = tensors.get(batches[k]) as [tf.Tensor2D, tf.Tensor1D];
        inputs[memberKey(k, 'x')] = x;
        inputs[memberKey(k, 'labels')] = labels;
        const { lr, dropout } = stepInputs[k];
        if (lr !== m.lr.value) {
          m.lr.tensor.dispose();
          m.lr = { value: lr, tensor: tf.scalar(lr) };
        }
        inputs[memberKey(k, 'lr')] = m.lr.tensor;
        for (const [layer, draw] of dropout) {
          const shape = [labels.shape[0], draw.scale.length / labels.shape[0]];
          const scale = tf.tensor2d(draw.scale, shape as [number, number]);
          noise.push(scale);
          inputs[memberKey(k, `dropout/${layer}/scale`)] = scale;
          if (draw.shift) {
            const shift = tf.tensor2d(draw.shift, shape as [number, number]);
            noise.push(shift);
            inputs[memberKey(k, `dropout/${layer}/shift`)] = shift;
          }
        }
        for (const { layer, bn } of m.noise) {
          const { scale, shift } = bn.stepNoise();
          const [s, t] = [tf.tensor1d(scale), tf.tensor1d(shift)];
          noise.push(s, t);
          inputs[memberKey(k, `noise/${layer}/scale`)] = s;
          inputs[memberKey(k, `noise/${layer}/shift`)] = t;
        }
      });
      const out = this.sig.train_step.predict(inputs);
      const outcomes = this.list.map((_, k) => ({
        loss: (out[memberKey(k, 'loss')].dataSync() as Float32Array)[0],
        correct: (out[memberKey(k, 'correct')].dataSync() as Float32Array)[0],
      }));
      tf.dispose(Object.values(out));
      return outcomes;
    } finally {
      tf.dispose([...[...tensors.values()].flat(), ...noise]);
      // The step is taken: the next one draws afresh (the eager step's updateMovingStats).
      for (const m of this.list) for (const { bn } of m.noise) bn.endStepNoise();
    }
  }

  /**
   * Algorithm 2, as the eager `PopulationStatistics.estimate`, for every member with
   * `inference: population`: its inference statistics become the mean over `population_batches`
   * training mini-batches (of its own shuffle) of the batch means and of the unbiased batch
   * variances, with the weights fixed. Once per training step.
   */
  private estimatePopulation(step: number): void {
    const members = this.list.map((m, k) => ({ k, p: m.population })).filter((m) => m.p !== null);
    if (members.length === 0 || this.estimatedAt === step) return;
    this.dropReadCache();
    const f = this.data.features;
    const batches = (members[0].p as NonNullable<GraphMember['population']>).batches;
    setPopulationStatistics(this.sig, batches, () => {
      const inputs: tf.NamedTensorMap = {};
      for (const { k, p } of members) {
        const { batcher, batchSize } = p as NonNullable<GraphMember['population']>;
        const { indices, start } = batcher.next();
        inputs[memberKey(k, 'x')] = tf.tensor2d(gather(this.data.train, f, indices, start, batchSize).x, [
          batchSize,
          f,
        ]);
      }
      return inputs;
    });
    this.estimatedAt = step;
  }

  /**
   * Every member's mean loss and accuracy in inference mode (batch norm: the moving averages, or
   * the population estimate taken at training step `step`) on the first `limit` examples, chunked
   * as the eager `evaluate`; every member sees the same chunk tensors.
   */
  evaluate(split: Split, limit: number | null, step: number): EvalResult[] {
    this.estimatePopulation(step);
    return evaluateInChunks(split, this.data.features, limit, this.members, (x, labels) => {
      const inputs: tf.NamedTensorMap = {};
      this.list.forEach((_, k) => {
        inputs[memberKey(k, 'x')] = x;
        inputs[memberKey(k, 'labels')] = labels;
      });
      const out = this.sig.eval.predict(inputs);
      const totals = this.list.map((_, k) => ({
        lossSum: (out[memberKey(k, 'loss_sum')].dataSync() as Float32Array)[0],
        correct: (out[memberKey(k, 'correct')].dataSync() as Float32Array)[0],
      }));
      tf.dispose(Object.values(out));
      return totals;
    });
  }

  /** Member m's variables' current values, by the model's `namedWeights` name. */
  read(member: number): Map<string, Float32Array> {
    this.readCache ??= this.sig.read.predict({});
    const values = new Map<string, Float32Array>();
    for (const v of this.list[member].graph.variables)
      values.set(v.name, this.readCache[memberKey(member, v.name)].dataSync() as Float32Array);
    return values;
  }

  private dropReadCache(): void {
    if (this.readCache) tf.dispose(Object.values(this.readCache));
    this.readCache = null;
  }

  /** Member m's model with its graph variables copied into it (for `onTrained`: saved weights, export; instruments). */
  weights(member: number): Classifier {
    const values = this.read(member);
    const model = this.list[member].model;
    for (const [name, w] of model.namedWeights) {
      const v = values.get(name);
      if (!v) throw new Error(`model variable ${name} is not in the graph`);
      tf.tidy(() => w.assign(tf.tensor(v, w.shape)));
    }
    return model;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.dropReadCache();
    this.unload();
    tf.dispose(this.list.map((m) => m.lr.tensor));
  }
}
