/**
 * `npm run bench`: training speed of the paper's MNIST network (784-100-100-100-10, sigmoid, batch
 * 60), without and with batch norm, measured side by side in one process (shared machines are
 * noisy: compare the ratio, not the absolute numbers). BENCH_STEPS sets the steps per measurement.
 */
import { loadDataset } from '../src/data/index.js';
import { DEFAULT_CONFIG } from '../src/spec/schema.js';
import type { RunConfig } from '../src/spec/types.js';
import { describeBackend, initBackend } from '../src/train/backend.js';
import { train } from '../src/train/loop.js';

const steps = Number(process.env.BENCH_STEPS ?? 600);
const backend = await initBackend('tensorflow');
console.log(`backend: ${describeBackend(backend)}; ${steps} steps per measurement, 2 rounds`);

const base = structuredClone({ ...DEFAULT_CONFIG, name: 'bench' }) as RunConfig;
base.train = { ...base.train, steps, eval_every: steps, log_every: steps, eval_limit: 1000 };
const data = loadDataset(base.data);

function stepsPerSecond(norm: 'none' | 'batch'): number {
  const config = structuredClone(base);
  config.model.norm = norm;
  const t0 = performance.now();
  train(config, data);
  return steps / ((performance.now() - t0) / 1000);
}

stepsPerSecond('none'); // warm-up: kernel caches, JIT
const results: Record<string, number[]> = { none: [], batch: [] };
for (let round = 0; round < 2; round++) for (const norm of ['none', 'batch'] as const) results[norm].push(stepsPerSecond(norm));
const best = (xs: number[]) => Math.max(...xs);
console.log(`eager, no norm: ${best(results.none).toFixed(0)} steps/s`);
console.log(`eager, BN:      ${best(results.batch).toFixed(0)} steps/s`);
console.log(`BN / no-norm speed ratio: ${(best(results.batch) / best(results.none)).toFixed(2)}`);
