import * as tf from '@tensorflow/tfjs';
import { EpochBatcher, gather, type Augmenter, type Dataset, type Split } from '../../data/index.js';
import { Mlp } from '../../model/index.js';
import type { RunConfig } from '../../spec/types.js';
import { evaluateInChunks, populationSeed, type EvalResult } from '../evaluate.js';
import { compileFusedMlp, fuseMembers, memberSlice, type FusedGraph } from './compile-fused.js';
import { loadGraph, setPopulationStatistics, type SavedModelSignature } from './engine.js';
import type { Signature } from './graph-def.js';

/**
 * Fills x [B * batchSize * features] and y [B * batchSize] with the next batch of each of the B
 * batchers (member-major), augmented by its augmenter when given.
 */
export function nextBatches(split: Split, features: number, batchers: EpochBatcher[], x: Float32Array, y: Int32Array, augmenters?: (Augmenter | null)[]): void {
  batchers.forEach((batcher, m) => {
    const { indices, start } = batcher.next();
    const n = batcher.batchSize;
    const batch = gather(split, features, indices, start, n, { x: x.subarray(m * n * features, (m + 1) * n * features), y: y.subarray(m * n, (m + 1) * n) });
    augmenters?.[m]?.apply(batch.x, n);
  });
}

/** Algorithm 2's estimate for the group: each member's population batches (one shuffle for members sharing their batches). */
interface PopulationState {
  batchers: EpochBatcher[];
  batches: number;
  estimatedAt: number | null;
}

/**
 * The graph engine for a fused group: M runs of one mlp (see `compileFusedMlp`) trained by one
 * native call per step. Members that share their seed share their batches (`sharedBatch`): the
 * step then takes one batch, else one batch per member.
 */
export class FusedGraphEngine {
  private disposed = false;

  private constructor(
    private readonly models: Mlp[],
    readonly graph: FusedGraph,
    readonly sharedBatch: boolean,
    private readonly sig: Record<'init' | 'train_step' | 'eval' | 'read', SavedModelSignature> & Partial<Record<'batch_stats' | 'set_stats', SavedModelSignature>>,
    private readonly unload: () => void,
    private readonly rates: { lr: tf.Tensor1D; momentum: tf.Tensor1D | null },
    private readonly data: Dataset,
    private readonly population: PopulationState | null,
  ) {}

  get members(): number {
    return this.models.length;
  }

  /** Compiles the group, loads it and sets each member's variables to its model's (initial) values. */
  static async create(configs: RunConfig[], models: Mlp[], data: Dataset): Promise<FusedGraphEngine> {
    if (models.some((m) => !(m instanceof Mlp))) throw new Error('fused training compiles the mlp architecture only');
    const sharedBatch = configs.every((c) => c.seed === configs[0].seed);
    const momentum = configs.some((c) => c.train.momentum > 0);
    const eps = configs.map((c) => c.model.batch_norm.eps);
    const graph = compileFusedMlp(configs[0], configs.length, { sharedBatch, momentum, eps }, data.features, data.classes);
    const { sig, unload } = await loadGraph(graph.nodes, graph.signatures as Record<keyof FusedGraph['signatures'], Signature>);
    const rates = {
      lr: tf.tensor1d(configs.map((c) => c.train.lr)),
      momentum: momentum ? tf.tensor1d(configs.map((c) => c.train.momentum)) : null,
    };
    // inference: population, as the unfused engines: batches of their own shuffle (seeded from each member's seed).
    const t = configs[0].train;
    const population = graph.signatures.batch_stats
      ? { batchers: (sharedBatch ? configs.slice(0, 1) : configs).map((c) => new EpochBatcher(data.train.n, t.batch_size, populationSeed(c.seed))), batches: configs[0].model.batch_norm.population_batches, estimatedAt: null }
      : null;
    const engine = new FusedGraphEngine(models, graph, sharedBatch, sig, unload, rates, data, population);
    try {
      engine.assign();
      return engine;
    } catch (e) {
      engine.dispose();
      throw e;
    }
  }

  /** Sets every fused variable to the members' models' values (and zeroes the momentum slots). */
  private assign(): void {
    const named = this.models.map((m) => m.namedWeights);
    const inputs: tf.NamedTensorMap = {};
    try {
      for (const v of this.graph.variables) {
        const values = named.map((n) => {
          const w = n.get(v.name);
          if (!w || w.shape.join(',') !== v.memberShape.join(',')) throw new Error(`fused variable ${v.name} [${v.memberShape}] has no counterpart in the model`);
          return w.dataSync() as Float32Array;
        });
        inputs[v.name] = tf.tensor(fuseMembers(v, values), v.shape);
      }
      tf.dispose(Object.values(this.sig.init.predict(inputs)));
    } finally {
      tf.dispose(Object.values(inputs));
    }
  }

  /**
   * One training step of every member. x: [N * features] (shared batch) or [M * N * features],
   * y: [N] or [M * N], member-major. Returns each member's loss before the update and correct count.
   */
  step(x: Float32Array, y: Int32Array): { loss: Float32Array; correct: Float32Array } {
    const [xt, yt] = this.batchTensors(x, y);
    try {
      const inputs: tf.NamedTensorMap = { x: xt, labels: yt, lr: this.rates.lr };
      if (this.rates.momentum) inputs.momentum = this.rates.momentum;
      const out = this.sig.train_step.predict(inputs);
      const result = { loss: out.loss.dataSync() as Float32Array, correct: out.correct.dataSync() as Float32Array };
      tf.dispose(Object.values(out));
      return result;
    } finally {
      tf.dispose([xt, yt]);
    }
  }

  /** x and labels as `train_step` and `batch_stats` take them: [N, F] and [N], or [M, N, F] and [M, N]. */
  private batchTensors(x: Float32Array, y: Int32Array): [tf.Tensor, tf.Tensor] {
    const f = this.data.features;
    const M = this.members;
    return this.sharedBatch
      ? [tf.tensor2d(x, [y.length, f]), tf.tensor1d(y, 'int32')]
      : [tf.tensor3d(x, [M, y.length / M, f]), tf.tensor2d(y, [M, y.length / M], 'int32')];
  }

  /**
   * Algorithm 2 as the unfused engines: each member's inference statistics become the mean over
   * `population_batches` training mini-batches of the batch means and unbiased batch variances
   * (float32 sums), weights fixed. Once per training step.
   */
  private estimatePopulation(step: number): void {
    const p = this.population;
    if (!p || p.estimatedAt === step) return;
    const n = p.batchers[0].batchSize;
    const x = new Float32Array(p.batchers.length * n * this.data.features);
    const y = new Int32Array(p.batchers.length * n);
    setPopulationStatistics(this.sig, p.batches, () => {
      nextBatches(this.data.train, this.data.features, p.batchers, x, y);
      return this.batchTensors(x, y);
    });
    p.estimatedAt = step;
  }

  /**
   * Each member's inference-mode loss and accuracy on the first `limit` examples (with
   * `inference: population`, the estimate taken at training step `step`), chunked as the unfused
   * engines.
   */
  evaluate(split: Split, limit: number | null, step: number): EvalResult[] {
    this.estimatePopulation(step);
    const lossSums = new Array<number>(this.members).fill(0);
    const corrects = new Array<number>(this.members).fill(0);
    evaluateInChunks(split, this.data.features, limit, (x, labels) => {
      const out = this.sig.eval.predict({ x, labels });
      const [l, c] = [out.loss_sum.dataSync() as Float32Array, out.correct.dataSync() as Float32Array];
      l.forEach((v, m) => (lossSums[m] += v));
      c.forEach((v, m) => (corrects[m] += v));
      tf.dispose(Object.values(out));
      return { lossSum: 0, correct: 0 };
    });
    const n = limit === null ? split.n : Math.min(limit, split.n);
    return lossSums.map((s, m) => ({ loss: s / n, acc: corrects[m] / n }));
  }

  /** Member m's model with its graph variables copied into it (for `onTrained`: saved weights, export). */
  weights(member: number): Mlp {
    const out = this.sig.read.predict({});
    try {
      const model = this.models[member];
      const named = model.namedWeights;
      for (const v of this.graph.variables) {
        const w = named.get(v.name) as tf.Variable;
        const values = memberSlice(v, out[v.name].dataSync() as Float32Array, member, this.members);
        tf.tidy(() => w.assign(tf.tensor(values, w.shape)));
      }
      return model;
    } finally {
      tf.dispose(Object.values(out));
    }
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.unload();
    tf.dispose([this.rates.lr, ...(this.rates.momentum ? [this.rates.momentum] : [])]);
  }
}
