import { canonicalJson } from '../spec/expand.js';
import type { RunConfig } from '../spec/types.js';
import { chooseEngine } from './engine.js';

/**
 * The key of the training group a run may join, or null when it trains alone. Runs with equal
 * keys train together on the graph engine, one native call stepping them all (`trainGroup`).
 * What they must share is what the loop shares: the dataset (augmentation aside: it acts on each
 * member's batches), the step count, the logging and evaluation schedule, and (Algorithm 2) the
 * number of population batches. Everything else (architecture, norm, optimizer, learning rate,
 * seed, init, eps, noise, instruments) may differ: each member's graph is its own (see
 * src/train/graph/members.ts), so grouping never changes a run's numbers, only how fast it trains.
 * Runs on the eager engine train alone: grouping them would save nothing.
 */
export function groupKey(config: RunConfig): string | null {
  try {
    if (chooseEngine(config).kind !== 'graph') return null;
  } catch {
    return null; // train.engine=graph on a run it does not cover: training it alone reports it
  }
  const t = config.train;
  const population =
    config.model.batch_norm.inference === 'population' ? config.model.batch_norm.population_batches : null;
  return canonicalJson({
    data: { ...config.data, augment: null },
    steps: t.steps,
    epochs: t.epochs,
    // With epochs, the step count follows the batch size.
    batch_size: t.steps === null ? t.batch_size : null,
    log_every: t.log_every,
    eval_every: t.eval_every,
    eval_limit: t.eval_limit,
    population,
  });
}

/**
 * Most runs in one group: a group's graph grows with its members (its compile and load time, and
 * an evaluation holds every member's activations of a 2,000-example chunk at once), while the
 * model-steps per second of the paper's MNIST net stop growing well before (see `npm run bench`).
 */
export const MAX_GROUP = 16;

/**
 * Groups runs by `groupKey`, in order of each group's first run, at most MAX_GROUP per group;
 * runs that cannot join one come out as groups of one. Returns indices into `configs`.
 */
export function trainingGroups(configs: RunConfig[]): number[][] {
  const byKey = new Map<string, number[]>();
  const groups: number[][] = [];
  configs.forEach((c, i) => {
    const key = groupKey(c);
    const group = key === null ? undefined : byKey.get(key);
    if (group && group.length < MAX_GROUP) group.push(i);
    else {
      const fresh = [i];
      groups.push(fresh);
      if (key !== null) byKey.set(key, fresh);
    }
  });
  return groups;
}
