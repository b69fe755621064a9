import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { InputError } from '../util/errors.js';
import { axisKeys, checkRunConfig, deepMerge, instrumentsFromList, setPath, type Spec } from './load.js';
import { modelConfigProblem } from './model-checks.js';
import { DEFAULT_CONFIG, MAX_STEPS } from './schema.js';
import type { RunConfig } from './types.js';

/** One point of the grid, ready to train. */
export interface PlannedRun {
  /** Stable id: the parameters set on top of the spec file, readable, plus a hash of the config. */
  id: string;
  /** Values of the keys set by the grid or the command line, in sweep order. */
  params: Record<string, unknown>;
  /** sha256 of the resolved configuration (name excluded), first 8 hex digits. */
  hash: string;
  config: RunConfig;
}

/**
 * The most runs one spec plans (grid points). Each trains for seconds at least; a larger grid is a
 * typo (an axis too many), and planning it would take minutes and gigabytes before a line is printed.
 */
export const MAX_RUNS = 10_000;

/** The most values a synthetic dataset holds (features x examples): 1 GiB as float32. */
const MAX_SYNTHETIC_VALUES = 2 ** 28;

/** Training examples of each dataset's full training file(s) (before the hold-out). */
export const TRAIN_EXAMPLES = { mnist: 60000, fashion_mnist: 60000, cifar10: 50000 } as const;

/** Size of the dataset's training set before the hold-out, known without reading the data. */
export function fullTrainSize(d: RunConfig['data']): number {
  return d.dataset === 'synthetic' ? d.synthetic.train_size : TRAIN_EXAMPLES[d.dataset];
}

/** Number of training examples a configuration trains on, known without reading the data. */
export function trainSetSize(config: RunConfig): number {
  const d = config.data;
  const total = fullTrainSize(d);
  const afterHoldout = d.validation === 'holdout' ? total - d.val_size : total;
  return d.train_limit === null ? afterHoldout : Math.min(d.train_limit, afterHoldout);
}

/**
 * Expands a spec into its runs: the cartesian product of the grid axes (the first axis varies
 * slowest), each point merged over the defaults, the file's base configuration and the command
 * line's single-value assignments, then validated.
 */
export function expandGrid(spec: Spec): PlannedRun[] {
  const sizes = spec.grid.map((a) => a.values.length);
  const points = sizes.reduce((a, b) => a * b, 1);
  if (points > MAX_RUNS) {
    throw new InputError(
      spec.file,
      `the grid has ${points.toLocaleString('en-US')} points (${spec.grid.map((a) => `${a.key}: ${a.values.length}`).join(' x ')}); ` +
        `a spec plans at most ${MAX_RUNS.toLocaleString('en-US')} runs: shrink an axis, or split the sweep with --set`,
    );
  }
  const base = deepMerge(DEFAULT_CONFIG, spec.base) as unknown as Record<string, unknown>;
  for (const [key, { value, where }] of spec.assignments) assign(base, key, value, where);
  base.name = spec.name;

  let grid: { values: Record<string, unknown>; where: Record<string, string> }[] = [{ values: {}, where: {} }];
  for (const axis of spec.grid) {
    // A linked axis (`train.batch_size,train.lr`) sets each of its keys from one list value.
    const keys = axisKeys(axis.key);
    const entries = (v: unknown) =>
      keys.length === 1 ? [[axis.key, v]] : keys.map((k, j) => [k, (v as unknown[])[j]]);
    grid = grid.flatMap((p) =>
      axis.values.map((v, i) => ({
        values: { ...p.values, ...Object.fromEntries(entries(v)) },
        where: { ...p.where, ...Object.fromEntries(keys.map((k) => [k, axis.where[i]])) },
      })),
    );
  }
  const setKeys = [...spec.grid.flatMap((a) => axisKeys(a.key)), ...spec.assignments.keys()].filter(
    (k) => k !== 'name',
  );
  const runs = grid.map((point) => {
    const config = structuredClone(base);
    for (const [k, v] of Object.entries(point.values)) assign(config, k, v, point.where[k]);
    const whereOf = (keyPath: string) => {
      const owner = Object.keys(point.where).find((k) => keyPath === k || keyPath.startsWith(`${k}.`));
      if (owner) return point.where[owner];
      const assigned = [...spec.assignments.entries()].find(([k]) => keyPath === k || keyPath.startsWith(`${k}.`));
      return assigned ? assigned[1].where : spec.locate(keyPath);
    };
    const checked = checkRunConfig(config, whereOf);
    checkConsistency(checked, whereOf);
    const params = Object.fromEntries(
      setKeys.map((k) => [k, k in point.values ? point.values[k] : spec.assignments.get(k)?.value]),
    );
    const hash = configHash(checked);
    return { id: runId(params, hash), params, hash, config: checked };
  });
  const seen = new Map<string, PlannedRun>();
  for (const r of runs) {
    if (seen.has(r.id)) {
      throw new InputError(
        spec.file,
        `two grid points resolve to the same configuration (${r.id}); remove the repeated value`,
      );
    }
    seen.set(r.id, r);
  }
  return runs;
}

/**
 * Assigns a key; setting one of train.steps / train.epochs clears the other (the later layer wins);
 * `instruments` given as a list enables exactly the listed ones.
 */
function assign(config: Record<string, unknown>, key: string, value: unknown, where: string): void {
  setPath(config, key, key === 'instruments' && Array.isArray(value) ? instrumentsFromList(value, () => where) : value);
  if (value !== null && (key === 'train.steps' || key === 'train.epochs')) {
    setPath(config, key === 'train.steps' ? 'train.epochs' : 'train.steps', null);
  }
}

/** Checks that involve more than one key. */
function checkConsistency(c: RunConfig, whereOf: (k: string) => string): void {
  if (c.train.steps === null && c.train.epochs === null) {
    throw new InputError(whereOf('train'), 'set train.steps or train.epochs (how long to train)');
  }
  if (c.train.optimizer === 'adam' && c.train.momentum !== 0) {
    throw new InputError(
      whereOf('train.momentum'),
      `train.momentum is ${c.train.momentum}, but train.optimizer adam has its own (train.adam.beta1); set train.momentum to 0`,
    );
  }
  const sch = c.train.schedule;
  if (sch.kind === 'cosine' && sch.min_lr >= c.train.lr) {
    throw new InputError(
      whereOf('train.schedule.min_lr'),
      `train.schedule.min_lr is ${sch.min_lr}, must be < train.lr (${c.train.lr}): cosine anneals from lr down to min_lr`,
    );
  }
  if (sch.warmup_steps > 0 && c.train.steps !== null && sch.warmup_steps >= c.train.steps) {
    throw new InputError(
      whereOf('train.schedule.warmup_steps'),
      `train.schedule.warmup_steps is ${sch.warmup_steps}, must be < train.steps (${c.train.steps}): the run would never reach its rate`,
    );
  }
  const d = c.data;
  const total = fullTrainSize(d);
  if (d.validation === 'holdout' && d.val_size >= total) {
    throw new InputError(
      whereOf('data.val_size'),
      `data.val_size is ${d.val_size}, must be < ${total} (the ${d.dataset} training set)`,
    );
  }
  if (d.path !== null && d.dataset === 'synthetic') {
    throw new InputError(
      whereOf('data.path'),
      `data.path is "${d.path}", but the synthetic dataset is generated in memory and reads no files; remove data.path`,
    );
  }
  if (d.path !== null && !fs.existsSync(d.path)) {
    throw new InputError(
      whereOf('data.path'),
      `data.path is "${d.path}", which does not exist; give the directory holding the dataset's files, or null to search the usual places`,
    );
  }
  if (d.path !== null && !fs.statSync(d.path).isDirectory()) {
    throw new InputError(
      whereOf('data.path'),
      `data.path is "${d.path}", a file; give the directory holding the dataset's files, or null to search the usual places`,
    );
  }
  if (d.dataset === 'synthetic') {
    const s = d.synthetic;
    const values = s.features * (s.train_size + s.test_size);
    if (values > MAX_SYNTHETIC_VALUES) {
      throw new InputError(
        whereOf('data.synthetic'),
        `the synthetic dataset would hold ${values.toLocaleString('en-US')} values (features x (train_size + test_size)); at most ${MAX_SYNTHETIC_VALUES.toLocaleString('en-US')} fit in memory`,
      );
    }
  }
  const n = trainSetSize(c);
  if (c.train.batch_size > n) {
    throw new InputError(
      whereOf('train.batch_size'),
      `train.batch_size is ${c.train.batch_size}, larger than the training set (${n} examples)`,
    );
  }
  if (c.train.epochs !== null) {
    const steps = c.train.epochs * Math.floor(n / c.train.batch_size);
    if (steps > MAX_STEPS) {
      throw new InputError(
        whereOf('train.epochs'),
        `train.epochs is ${c.train.epochs}: ${steps.toLocaleString('en-US')} steps of batch ${c.train.batch_size} over ${n} examples, more than the ${MAX_STEPS.toLocaleString('en-US')} a run may train`,
      );
    }
  }
  if (c.model.norm === 'batch' && c.train.batch_size < 2) {
    throw new InputError(
      whereOf('train.batch_size'),
      'batch normalization needs train.batch_size >= 2 (the batch variance of one example is 0)',
    );
  }
  const modelProblem = modelConfigProblem(c);
  if (modelProblem) throw new InputError(whereOf(modelProblem.key), modelProblem.message);
}

/** JSON with sorted keys, so that equal configurations hash equally. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * Keys added after bnx 0.1 leave the hash alone while they have no effect, so that existing result
 * folders keep their run ids (and resume): `data.augment` while it is off, `model.cnn` on an mlp,
 * `train.engine` at its default `auto`, `model.batch_norm.noise` at 0, `train.adam` under sgd,
 * `train.tensorboard` off, `instruments` while none is enabled, `model.dropout` and
 * `train.weight_decay` at 0, `train.schedule` while it is constant without warm-up.
 */
function hashedView(config: RunConfig): Record<string, unknown> {
  const { name: _name, ...rest } = config;
  const view = structuredClone(rest) as unknown as {
    data: Record<string, unknown>;
    model: Record<string, unknown>;
    train: Record<string, unknown>;
    instruments?: unknown;
  };
  const aug = config.data.augment;
  if (aug && aug.crop_padding === 0 && !aug.flip) delete view.data.augment;
  if (config.model.arch === 'mlp') delete view.model.cnn;
  // train.engine: auto (the default) picks an engine; both give the same metrics within round-off.
  if (config.train.engine === 'auto') delete view.train.engine;
  if (config.model.batch_norm.noise === 0) delete (view.model.batch_norm as Record<string, unknown>).noise;
  if (config.train.optimizer === 'sgd') delete view.train.adam;
  if (!config.train.tensorboard) delete view.train.tensorboard;
  if (!Object.values(config.instruments).some((i) => i.enabled)) delete view.instruments;
  if (config.model.dropout === 0) delete view.model.dropout;
  if (config.train.weight_decay === 0) delete view.train.weight_decay;
  const sched = config.train.schedule;
  if (sched.kind === 'constant' && sched.warmup_steps === 0) delete view.train.schedule;
  return view;
}

export function configHash(config: RunConfig): string {
  return createHash('sha256')
    .update(canonicalJson(hashedView(config)))
    .digest('hex')
    .slice(0, 8);
}

/** `lr=0.5_norm=batch_1a2b3c4d`: leaf names (full paths where two leaves share a name), then the hash. */
export function runId(params: Record<string, unknown>, hash: string): string {
  const keys = Object.keys(params);
  const leaf = (k: string) => k.split('.').pop() as string;
  const parts = keys.map((k) => {
    const label = keys.filter((o) => leaf(o) === leaf(k)).length > 1 ? k : leaf(k);
    return `${label}=${formatValue(params[k])}`;
  });
  return [...(parts.length > 0 ? parts : ['run']), hash].join('_');
}

function formatValue(v: unknown): string {
  // A list item that is a mapping (`instruments: [{smoothness: {...}}]`) is labelled by its keys.
  const item = (x: unknown) => (x !== null && typeof x === 'object' ? Object.keys(x).join('+') : String(x));
  const s = Array.isArray(v) ? v.map(item).join('x') : String(v);
  return s.replace(/[^A-Za-z0-9.+-]/g, '-');
}
