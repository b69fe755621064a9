import { Augmenter, augments, EpochBatcher, gather, type Dataset } from '../data/index.js';
import { buildModel, DropoutSampler, modelPlan, type Classifier } from '../model/index.js';
import { canonicalJson } from '../spec/expand.js';
import type { InstrumentName, RunConfig } from '../spec/types.js';
import { EagerEngine } from './eager-engine.js';
import { chooseEngine, type Batch, type Engine, type EngineKind, type StepInputs } from './engine.js';
import { learningRate } from './schedule.js';
import { DivergedError, RunMetrics, totalSteps, type MetricsRow, type TrainResult } from './metrics.js';
import { GraphEngine } from './graph/engine.js';
import { InstrumentRunner } from './instruments/index.js';

export { DivergedError, RunMetrics, totalSteps, type MetricsRow, type TrainResult };

/** Training was asked to stop (Ctrl-C): the run is interrupted, not failed. */
export class InterruptedError extends Error {
  override name = 'InterruptedError';
}

/** What the loop tells about one run (a member of its group). */
export interface RunHooks {
  /** A metrics row, every `log_every` steps, at every evaluation and at the last step. */
  onRow?(row: MetricsRow): void;
  /**
   * After the last step and the test evaluation, before the model is disposed: the trained model
   * with its final inference statistics (e.g. to save its weights for `bnx export`).
   */
  onTrained?(model: Classifier): void;
  /** Once, before the first step: the engine chosen, and a one-line note when `auto` fell back to eager. */
  onEngine?(engine: EngineKind, note: string | null): void;
  /**
   * One measurement of an enabled instrument at `step`: its CSV rows (column -> value, in column
   * order), and for activation_percentiles the raw probe activations by layer name (for
   * TensorBoard's histograms).
   */
  onInstrument?(
    name: InstrumentName,
    step: number,
    rows: Record<string, number | string>[],
    activations?: Map<string, Float32Array>,
  ): void;
  /** Once, however training ends, when an instrument is enabled: the wall time each enabled instrument took, in seconds. */
  onInstrumentOverhead?(seconds: Partial<Record<InstrumentName, number>>): void;
}

/** What the loop tells about a group as a whole, and asks of it. */
export interface GroupHooks {
  /** Member m's hooks. */
  members: RunHooks[];
  /** After every step: the mean loss of the members still training, for progress display. */
  onStep?(step: number, totalSteps: number, loss: number): void;
  /** Checked between steps; when it returns true, training stops with InterruptedError (every member). */
  shouldStop?(): boolean;
}

/** A run trained alone: its hooks and the group's in one. */
export interface TrainHooks extends RunHooks, Omit<GroupHooks, 'members'> {}

/** How often the loop lets the event loop run, so that signals (Ctrl-C) are seen mid-run. */
const YIELD_EVERY_MS = 100;

/**
 * A training loop's pause point: every YIELD_EVERY_MS it lets the event loop run (signal handlers
 * set the stop flag there), then stops the loop with InterruptedError when `shouldStop` says so.
 */
export function pausePoint(shouldStop?: () => boolean): (step: number) => Promise<void> {
  let last = performance.now();
  return async (step) => {
    if (performance.now() - last <= YIELD_EVERY_MS) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    last = performance.now();
    if (shouldStop?.()) throw new InterruptedError(`interrupted at step ${step}`);
  };
}

/**
 * Where a member's batches come from: its seeded epoch shuffle (and augmentation). Members whose
 * seed, batch size and augmentation agree draw the same batches: they share one feeder, and the
 * engine gets the batch once.
 */
class Feeder {
  private readonly batcher: EpochBatcher;
  private readonly augmenter: Augmenter | null;
  /** One buffer for every step: each step's tensors are disposed before the next one fills it. */
  readonly batch: Batch;

  constructor(
    config: RunConfig,
    private readonly data: Dataset,
  ) {
    const n = config.train.batch_size;
    this.batcher = new EpochBatcher(data.train.n, n, config.seed);
    // data.augment: random crops and flips of each training batch, from their own seeded stream.
    this.augmenter = augments(config.data.augment)
      ? new Augmenter(data.inputShape, config.data.augment, config.seed)
      : null;
    this.batch = { x: new Float32Array(n * data.features), y: new Int32Array(n) };
  }

  static key(config: RunConfig): string {
    return canonicalJson({ seed: config.seed, batch_size: config.train.batch_size, augment: config.data.augment });
  }

  next(): Batch {
    const { indices, start } = this.batcher.next();
    const n = this.batcher.batchSize;
    gather(this.data.train, this.data.features, indices, start, n, this.batch);
    this.augmenter?.apply(this.batch.x, n);
    return this.batch;
  }
}

/** One member of a training group: its model, its batches, its metrics, its instruments. */
class Member {
  readonly metrics: RunMetrics;
  /**
   * Set when the member diverged (DivergedError) or one of its own hooks failed (its files: a full
   * disk, ...): it is no longer reported, and the others go on (its values stay its own in the engine).
   */
  ended: Error | null = null;
  instruments: InstrumentRunner | null = null;

  constructor(
    readonly config: RunConfig,
    readonly hooks: RunHooks,
    readonly model: Classifier,
    readonly feeder: Feeder,
    data: Dataset,
  ) {
    this.metrics = new RunMetrics(config, data.train.n);
    this.dropout = new DropoutSampler(modelPlan(config.model, data.inputShape, data.classes), config.seed);
  }

  /** `model.dropout`'s draws, step after step (none without dropout). */
  readonly dropout: DropoutSampler;

  /** What the member's step `step` of `steps` takes besides its batch. */
  inputs(step: number, steps: number): StepInputs {
    return {
      lr: learningRate(this.config.train, step, steps),
      dropout: this.dropout.next(this.config.train.batch_size),
    };
  }

  /** Runs one of the member's hooks; a fault there ends this member only. */
  report(call: () => void): void {
    if (this.ended) return;
    try {
      call();
    } catch (e) {
      this.ended = e instanceof Error ? e : new Error(String(e));
    }
  }
}

/**
 * The training loop, for a group of runs (`trainingGroups`; a run alone is a group of one):
 * mini-batch SGD on the dataset through one engine that steps every member, logging training
 * metrics every `log_every` steps and validation metrics every `eval_every` steps. Deterministic
 * for each member's config: its weights and batch order come from its seed, and its arithmetic is
 * its own, so a member's rows and weights are those it has trained alone. The members share the
 * schedule (steps, log_every, eval_every, eval_limit: see `groupKey`). A member that diverges gets
 * its DivergedError as its outcome, one whose own hooks fail (writing its files) that error, and
 * the others go on; an interruption or a fault of the engine ends every member (thrown).
 */
export async function trainGroup(
  configs: RunConfig[],
  data: Dataset,
  hooks: GroupHooks,
): Promise<(TrainResult | Error)[]> {
  const t = configs[0].train;
  const steps = totalSteps(configs[0], data.train.n);
  const feeders = new Map<string, Feeder>();
  const members: Member[] = [];
  const pause = pausePoint(hooks.shouldStop);
  let engine: Engine | null = null;
  try {
    configs.forEach((config, m) => {
      const key = Feeder.key(config);
      const feeder = feeders.get(key) ?? (feeders.set(key, new Feeder(config, data)).get(key) as Feeder);
      // model.arch: mlp or cnn (a cnn reshapes the [N, features] rows to data.inputShape itself).
      members.push(
        new Member(
          config,
          hooks.members[m],
          buildModel(config.model, data.inputShape, data.classes, config.seed),
          feeder,
          data,
        ),
      );
    });
    for (const s of members) {
      // instruments: measured between steps, their time kept apart (see src/train/instruments/).
      s.instruments = InstrumentRunner.create(s.config, data, (name, step, m) =>
        s.hooks.onInstrument?.(name, step, m.rows, m.activations),
      );
    }
    const choices = configs.map(chooseEngine);
    if (choices.some((c) => c.kind !== choices[0].kind))
      throw new Error('trainGroup: the members of a group train on one engine');
    members.forEach((s, m) => s.report(() => s.hooks.onEngine?.(choices[m].kind, choices[m].note)));
    engine = choices[0].kind === 'graph' ? await GraphEngine.create(members, data) : new EagerEngine(members, data);
    const live = engine;
    for (let step = 1; step <= steps; step++) {
      for (const feeder of feeders.values()) feeder.next();
      const batches = members.map((s) => s.feeder.batch);
      for (const s of members) s.report(() => s.instruments?.beforeStep(step, s.model, s.feeder.batch));
      const outcomes = live.step(
        batches,
        members.map((s) => s.inputs(step, steps)),
      );
      let lossTotal = 0;
      let reporting = 0;
      for (const [m, s] of members.entries()) {
        if (s.ended) continue;
        const { loss, correct } = outcomes[m];
        lossTotal += loss;
        reporting++;
        const diverged = s.metrics.add(step, loss, correct);
        if (diverged) {
          s.report(() => s.hooks.onRow?.(diverged.row));
          s.ended ??= diverged.error;
        }
      }
      if (reporting > 0) hooks.onStep?.(step, steps, lossTotal / reporting);
      if (members.every((s) => s.ended)) break;
      await pause(step);

      const lead = members[0].metrics;
      if (lead.rowDue(step, steps)) {
        const vals = lead.evalDue(step, steps) ? live.evaluate(data.val, t.eval_limit, step) : null;
        for (const [m, s] of members.entries()) {
          if (s.ended) continue;
          const row = s.metrics.row(step, vals?.[m] ?? null); // always: it also keeps the final and best values
          s.report(() => s.hooks.onRow?.(row));
        }
      }
      members.forEach((s, m) => s.report(() => s.instruments?.afterStep(step, () => live.weights(m), s.feeder.batch)));
    }
    const tests = members.some((s) => !s.ended) ? live.evaluate(data.test, null, steps) : [];
    return members.map((s, m) => {
      s.report(() => s.hooks.onTrained?.(live.weights(m)));
      return s.ended ?? s.metrics.result(steps, live.kind, tests[m], s.model.parameterCount);
    });
  } finally {
    engine?.dispose();
    for (const s of members) {
      s.model.dispose();
      if (s.instruments) s.hooks.onInstrumentOverhead?.(s.instruments.overhead());
    }
  }
}

/** One run trained alone (a group of one): its result; DivergedError (or its hooks' fault) thrown. */
export async function train(config: RunConfig, data: Dataset, hooks: TrainHooks = {}): Promise<TrainResult> {
  const [outcome] = await trainGroup([config], data, {
    members: [hooks],
    onStep: hooks.onStep,
    shouldStop: hooks.shouldStop,
  });
  if (outcome instanceof Error) throw outcome;
  return outcome;
}
