import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expandGrid } from '../src/spec/expand.js';
import { applyOverrides, loadSpec, seedsOverride } from '../src/spec/load.js';
import type { RunConfig } from '../src/spec/types.js';

/** The repository root (this file runs from dist/bench/). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const PAPER_SPEC = path.join(ROOT, 'experiments', 'paper-mnist.yaml');

/** A paper-spec run for the bench: `steps` long on `engine` at `lr`, one evaluation (1,000 validation examples) at the end. */
export function sweepConfig(base: RunConfig, engine: 'graph' | 'eager', lr: number, steps: number): RunConfig {
  const c = structuredClone(base);
  c.train = {
    ...c.train,
    engine,
    lr,
    steps,
    epochs: null,
    eval_every: steps,
    log_every: steps,
    eval_limit: 1000,
    max_loss: null,
  };
  return c;
}

/**
 * The paper spec's run for each norm with seed 1: the spec has replicates (`seeds:`), the bench
 * times one run of each.
 */
export function paperConfigs(): Record<'none' | 'batch', RunConfig> {
  const runs = expandGrid(applyOverrides(loadSpec(PAPER_SPEC), [seedsOverride('1')]));
  return Object.fromEntries(runs.map((r) => [r.config.model.norm, r.config])) as Record<'none' | 'batch', RunConfig>;
}
