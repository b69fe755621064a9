import { Augmenter, augments, EpochBatcher, type Dataset } from '../data/index.js';
import { buildModel, Mlp } from '../model/index.js';
import { canonicalJson } from '../spec/expand.js';
import type { RunConfig } from '../spec/types.js';
import { fusedUnsupported } from './graph/compile-fused.js';
import { FusedGraphEngine, nextBatches } from './graph/fused-engine.js';
import { chooseEngine, DivergedError, pausePoint, RunMetrics, totalSteps, type TrainHooks, type TrainResult } from './loop.js';

/**
 * The key of the fused group a run may join, or null when it trains alone: runs with equal keys
 * differ at most in train.lr, train.momentum, seed, model.init, model.init_std and
 * model.batch_norm.eps, and train on the graph engine with a configuration `compileFusedMlp` covers.
 */
export function fuseKey(config: RunConfig): string | null {
  if (fusedUnsupported(config) !== null) return null;
  try {
    if (chooseEngine(config).kind !== 'graph') return null;
  } catch {
    return null; // train.engine=graph on a run it does not cover: trainOne reports it
  }
  const { lr: _lr, momentum: _momentum, ...train } = config.train;
  const { init: _init, init_std: _std, ...model } = config.model;
  const { eps: _eps, ...batchNorm } = config.model.batch_norm;
  return canonicalJson({ ...config, seed: null, train, model: { ...model, batch_norm: batchNorm } });
}

/**
 * Most runs in one fused group: its activations grow with the members (an evaluation chunk of
 * 2,000 examples holds [2000, members * width] per layer), while on the paper's MNIST net the
 * model-steps per second stopped growing at about 8 members (measured 4, 8, 16 on 2 cores).
 */
export const MAX_FUSED = 16;

/**
 * Groups runs by `fuseKey`, in order of each group's first run, at most MAX_FUSED per group; runs
 * that cannot fuse come out as groups of one. Returns indices into `configs`.
 */
export function fusedGroups(configs: RunConfig[]): number[][] {
  const byKey = new Map<string, number[]>();
  const groups: number[][] = [];
  configs.forEach((c, i) => {
    const key = fuseKey(c);
    const group = key === null ? undefined : byKey.get(key);
    if (group && group.length < MAX_FUSED) group.push(i);
    else {
      const fresh = [i];
      groups.push(fresh);
      if (key !== null) byKey.set(key, fresh);
    }
  });
  return groups;
}

/** What the fused loop tells its caller: each member's own hooks, and the group's. */
export interface FusedHooks {
  /** Member m's onRow, onTrained and onEngine (called as for an unfused run). */
  members: TrainHooks[];
  /** After every step: the mean loss of the members still training, for progress display. */
  onStep?(step: number, totalSteps: number, loss: number): void;
  /** Checked between steps; when it returns true, training stops with InterruptedError (every member). */
  shouldStop?(): boolean;
}

/** One member: its metrics as `train()` keeps them for a run, its batches, and whether it diverged. */
class MemberState {
  readonly metrics: RunMetrics;
  /** Set when the member diverged: it stops being reported (its values stay its own in the graph). */
  diverged: DivergedError | null = null;
  readonly batcher: EpochBatcher;
  readonly augmenter: Augmenter | null;

  constructor(
    readonly config: RunConfig,
    readonly hooks: TrainHooks,
    data: Dataset,
  ) {
    this.metrics = new RunMetrics(config, data.train.n);
    this.batcher = new EpochBatcher(data.train.n, config.train.batch_size, config.seed);
    this.augmenter = augments(config.data.augment) ? new Augmenter(data.inputShape, config.data.augment, config.seed) : null;
  }
}

/**
 * Trains a group of runs (`fusedGroups`) as one fused graph: each member sees the batches, initial
 * weights and metrics rows its unfused `train()` would, within float32 round-off. A member that
 * diverges gets its DivergedError as its outcome and the others go on; an interruption or a fault
 * ends every member (thrown).
 */
export async function trainFused(configs: RunConfig[], data: Dataset, hooks: FusedHooks): Promise<(TrainResult | DivergedError)[]> {
  const t = configs[0].train;
  const features = data.features;
  const N = t.batch_size;
  const steps = totalSteps(configs[0], data.train.n);
  const models = configs.map((c) => buildModel(c.model, data.inputShape, data.classes, c.seed) as Mlp);
  const members = configs.map((c, m) => new MemberState(c, hooks.members[m], data));
  let engine: FusedGraphEngine | null = null;
  const pause = pausePoint(hooks.shouldStop);
  try {
    for (const s of members) s.hooks.onEngine?.('graph', null);
    engine = await FusedGraphEngine.create(configs, models, data);
    // Members sharing their batches (one seed) take them from the first member's batcher.
    const feeders = engine.sharedBatch ? [members[0]] : members;
    const [batchers, augmenters] = [feeders.map((s) => s.batcher), feeders.map((s) => s.augmenter)];
    const x = new Float32Array(feeders.length * N * features);
    const y = new Int32Array(feeders.length * N);
    for (let step = 1; step <= steps; step++) {
      nextBatches(data.train, features, batchers, x, y, augmenters);
      const { loss, correct } = engine.step(x, y);
      let lossTotal = 0;
      let reporting = 0;
      for (const [m, s] of members.entries()) {
        if (s.diverged) continue;
        lossTotal += loss[m];
        reporting++;
        const diverged = s.metrics.add(step, loss[m], correct[m]);
        if (diverged) {
          s.hooks.onRow?.(diverged.row);
          s.diverged = diverged.error;
        }
      }
      hooks.onStep?.(step, steps, lossTotal / reporting);
      if (members.every((s) => s.diverged)) break;
      await pause(step);

      const lead = members[0].metrics;
      if (lead.rowDue(step, steps)) {
        const vals = lead.evalDue(step, steps) ? engine.evaluate(data.val, t.eval_limit, step) : null;
        for (const [m, s] of members.entries()) {
          if (s.diverged) continue;
          const row = s.metrics.row(step, vals?.[m] ?? null); // always: it also keeps the final and best values
          s.hooks.onRow?.(row);
        }
      }
    }
    const tests = members.some((s) => !s.diverged) ? engine.evaluate(data.test, null, steps) : [];
    return members.map((s, m) => {
      if (s.diverged) return s.diverged;
      s.hooks.onTrained?.((engine as FusedGraphEngine).weights(m));
      return s.metrics.result(steps, 'graph', tests[m], models[m].parameterCount);
    });
  } finally {
    engine?.dispose();
    for (const model of models) model.dispose();
  }
}
