import { drawDropout, dropoutSeed } from '../layers/dropout.js';
import { Rng } from '../util/rng.js';
import type { DropoutDraws } from './classifier.js';
import type { ModelPlan } from './plan.js';

/**
 * A run's dropout draws, step after step: one seeded generator per dropout layer of its plan
 * (`dropoutSeed(seed, k)` for the k-th), one draw per layer per training step for a batch of
 * `batchSize`. Both engines apply the same draws; nothing else consumes these generators, so
 * evaluations and instruments leave the masks of later steps unchanged.
 */
export class DropoutSampler {
  private readonly layers: { name: string; units: number; p: number; alpha: boolean; rng: Rng }[];

  constructor(plan: ModelPlan, seed: number) {
    this.layers = plan.layers
      .filter((l) => l.dropout > 0)
      .map((l, k) => ({
        name: l.name,
        units: l.units,
        p: l.dropout,
        alpha: l.alphaDropout,
        rng: new Rng(dropoutSeed(seed, k)),
      }));
  }

  /** The layers with dropout, in forward order: name and units (the graph's inputs). */
  get shapes(): { name: string; units: number; alpha: boolean }[] {
    return this.layers.map(({ name, units, alpha }) => ({ name, units, alpha }));
  }

  /** The next training step's draws (empty without dropout). */
  next(batchSize: number): DropoutDraws {
    return new Map(this.layers.map((l) => [l.name, drawDropout(l.rng, batchSize * l.units, l.p, l.alpha)]));
  }
}
