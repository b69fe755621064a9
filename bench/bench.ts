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

/** What is measured: `model.*` settings on top of the paper's network. */
const VARIANTS = {
  none: { norm: 'none' },
  batch: { norm: 'batch' }, // the default backward pass: closed_form
  'batch-closed-form': { norm: 'batch', gradient: 'closed_form' },
  'batch-autodiff': { norm: 'batch', gradient: 'autodiff' },
  layer: { norm: 'layer' },
  group: { norm: 'group' },
  'graph-none': { norm: 'none', engine: 'graph' },
  'graph-batch': { norm: 'batch', engine: 'graph' },
  'graph-layer': { norm: 'layer', engine: 'graph' },
} as const;
type Variant = keyof typeof VARIANTS;

async function stepsPerSecond(variant: Variant): Promise<number> {
  const config = structuredClone(base);
  const v: { norm: RunConfig['model']['norm']; gradient?: RunConfig['model']['batch_norm']['gradient']; engine?: 'graph' } = VARIANTS[variant];
  config.model.norm = v.norm;
  if (v.gradient) config.model.batch_norm.gradient = v.gradient;
  config.train.engine = v.engine ?? 'eager'; // the eager rows stay eager; graph rows are marked
  const t0 = performance.now();
  await train(config, data);
  return steps / ((performance.now() - t0) / 1000);
}

await stepsPerSecond('none'); // warm-up: kernel caches, JIT
await stepsPerSecond('graph-batch');
const measured: Variant[] = ['none', 'batch-closed-form', 'batch-autodiff', 'layer', 'group', 'graph-none', 'graph-batch', 'graph-layer'];
const results = Object.fromEntries(measured.map((v) => [v, [] as number[]])) as Record<Variant, number[]>;
// Interleaved rounds: every variant sees the same machine load, side by side.
for (let round = 0; round < 2; round++) for (const v of measured) results[v].push(await stepsPerSecond(v));
results.batch = DEFAULT_CONFIG.model.batch_norm.gradient === 'closed_form' ? results['batch-closed-form'] : results['batch-autodiff'];
const best = (xs: number[]) => Math.max(...xs);
console.log(`eager, no norm: ${best(results.none).toFixed(0)} steps/s`);
console.log(`eager, BN:      ${best(results.batch).toFixed(0)} steps/s`);
console.log(`BN / no-norm speed ratio: ${(best(results.batch) / best(results.none)).toFixed(2)}`);
console.log(`BN backward, closed-form (tf.customGrad): ${best(results['batch-closed-form']).toFixed(0)} steps/s`);
console.log(`BN backward, autodiff through the moments: ${best(results['batch-autodiff']).toFixed(0)} steps/s`);
console.log(`closed-form / autodiff speed ratio: ${(best(results['batch-closed-form']) / best(results['batch-autodiff'])).toFixed(2)} (default: ${DEFAULT_CONFIG.model.batch_norm.gradient})`);
console.log(`eager, layer norm: ${best(results.layer).toFixed(0)} steps/s; group norm (${DEFAULT_CONFIG.model.group_norm.groups} groups): ${best(results.group).toFixed(0)} steps/s`);
console.log(`graph engine (one SavedModel call per step; compile and load included), no norm: ${best(results['graph-none']).toFixed(0)} steps/s, ${(best(results['graph-none']) / best(results.none)).toFixed(2)}x eager`);
console.log(`graph engine, BN:      ${best(results['graph-batch']).toFixed(0)} steps/s, ${(best(results['graph-batch']) / best(results.batch)).toFixed(2)}x eager`);
console.log(`graph engine, layer norm: ${best(results['graph-layer']).toFixed(0)} steps/s, ${(best(results['graph-layer']) / best(results.layer)).toFixed(2)}x eager`);
