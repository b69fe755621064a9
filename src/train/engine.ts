import * as tf from '@tensorflow/tfjs';
import type { Split } from '../data/index.js';
import type { Classifier, DropoutDraws } from '../model/index.js';
import type { RunConfig } from '../spec/types.js';
import type { EvalResult } from './evaluate.js';
import { graphUnsupported } from './graph/compile.js';

/** Which engine trains a run: `graph` (one native call per step, see src/train/graph/) or `eager`. */
export type EngineKind = 'graph' | 'eager';

/** One member's training batch: x [n * features] float32, y [n] int32 labels. */
export interface Batch {
  x: Float32Array;
  y: Int32Array;
}

/** What a member's training step takes besides its batch: its learning rate at this step (`train.schedule`) and its dropout draws. */
export interface StepInputs {
  lr: number;
  dropout: DropoutDraws;
}

/** A training step's result for one member: its loss before the update and its correct count. */
export interface StepOutcome {
  loss: number;
  correct: number;
}

/**
 * A training engine for a group of runs (its members; a run trained alone is a group of one),
 * driven by the loop in loop.ts. Both engines start from the members' models (their seeded initial
 * weights) and see the same batches, so they give the same metrics within float32 round-off; and
 * each member's arithmetic is its own, so its numbers do not depend on the group it is in.
 */
export interface Engine {
  readonly kind: EngineKind;
  readonly members: number;
  /**
   * One optimizer step of every member, member m on `batches[m]` with `inputs[m]` (members given
   * the same Batch object share it: it is fed once).
   */
  step(batches: Batch[], inputs: StepInputs[]): StepOutcome[];
  /** Every member's inference-mode loss and accuracy on the first `limit` examples, at training step `step`. */
  evaluate(split: Split, limit: number | null, step: number): EvalResult[];
  /** Member m's model holding its trained variables (weights, gamma/beta, inference statistics). */
  weights(member: number): Classifier;
  dispose(): void;
}

/**
 * The engine that trains a run. `train.engine: auto` takes the graph engine where its compiler
 * covers the run (and the native backend is loaded), else the eager one, with a one-line note why.
 * `graph` asked for explicitly on a run it does not cover is an error.
 */
export function chooseEngine(config: RunConfig): { kind: EngineKind; note: string | null } {
  const asked = config.train.engine;
  if (asked === 'eager') return { kind: 'eager', note: null };
  const why =
    tf.getBackend() !== 'tensorflow'
      ? `the ${tf.getBackend()} backend (it needs tensorflow)`
      : graphUnsupported(config);
  if (why === null) return { kind: 'graph', note: null };
  if (asked === 'graph')
    throw new Error(`train.engine=graph: the graph engine does not cover ${why} yet; use train.engine=auto or eager`);
  return { kind: 'eager', note: `engine: eager (graph engine does not cover ${why} yet)` };
}
