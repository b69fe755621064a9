import { BATCH_NORM_DEFAULTS, GROUP_NORM_DEFAULTS, LAYER_NORM_DEFAULTS } from '../layers/defaults.js';
import type { RunConfig } from './types.js';

/**
 * Defaults for every key of a run's configuration. A spec file only states what differs. The
 * normalization layers' defaults are the layers' own (src/layers: BATCH_NORM_DEFAULTS, ...).
 */
export const DEFAULT_CONFIG: Omit<RunConfig, 'name'> = {
  seed: 0,
  data: {
    dataset: 'mnist',
    path: null,
    validation: 'holdout',
    val_size: 10000,
    train_limit: null,
    preprocess: 'standardize',
    split_seed: 0,
    synthetic: { features: 32, classes: 4, train_size: 4000, test_size: 1000, noise: 1.0 },
    augment: { crop_padding: 0, flip: false },
  },
  model: {
    arch: 'mlp',
    hidden: [100, 100, 100],
    cnn: { channels: [16, 32], kernel: 3, pool: 2, dense: [64] },
    activation: 'sigmoid',
    init: 'gaussian',
    init_std: 0.05,
    norm: 'none',
    norm_placement: 'before',
    batch_norm: { ...BATCH_NORM_DEFAULTS, population_batches: 100, noise: 0 },
    layer_norm: { ...LAYER_NORM_DEFAULTS },
    group_norm: { ...GROUP_NORM_DEFAULTS },
    weight_norm: { mean_only_bn: false },
    dropout: 0,
  },
  train: {
    optimizer: 'sgd',
    lr: 0.1,
    momentum: 0,
    batch_size: 60,
    steps: null,
    epochs: null,
    eval_every: 500,
    log_every: 100,
    eval_limit: null,
    max_loss: 1000,
    engine: 'auto',
    adam: { beta1: 0.9, beta2: 0.999, epsilon: 1e-7 },
    tensorboard: false,
    weight_decay: 0,
    schedule: { kind: 'constant', every: 1000, factor: 0.1, min_lr: 0, warmup_steps: 0 },
  },
  instruments: {
    activation_percentiles: { enabled: false, every: 100, probe_size: 256, percentiles: [15, 50, 85] },
    ics: { enabled: false, every: 500 },
    smoothness: { enabled: false, every: 500, step_sizes: [0.25, 0.5, 1, 2, 4] },
    eval_gap: { enabled: false, every: 500 },
  },
};

type Json = Record<string, unknown>;

const posInt = { type: 'integer', minimum: 1 };

/**
 * The most steps one run trains (train.steps, or train.epochs times the steps of an epoch): weeks of
 * training for the models bnx builds. A larger count is a typo, not an experiment.
 */
export const MAX_STEPS = 10_000_000;
/** The most epochs one run trains (its steps are bounded by MAX_STEPS too). */
export const MAX_EPOCHS = 100_000;
/** The largest synthetic train or test set, in examples. */
export const MAX_SYNTHETIC_EXAMPLES = 10_000_000;
const nullable = (s: Json): Json => ({ anyOf: [{ type: 'null' }, s] });

/** JSON schema of a fully resolved run configuration (ajv, draft-07). */
export const RUN_CONFIG_SCHEMA: Json = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'seed', 'data', 'model', 'train', 'instruments'],
  properties: {
    name: {
      type: 'string',
      pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$',
      maxLength: 100,
      description: 'letters, digits, ".", "_" and "-", starting with a letter or digit',
    },
    seed: { type: 'integer', minimum: 0, maximum: 2147483647 },
    data: {
      type: 'object',
      additionalProperties: false,
      required: [
        'dataset',
        'path',
        'validation',
        'val_size',
        'train_limit',
        'preprocess',
        'split_seed',
        'synthetic',
        'augment',
      ],
      properties: {
        dataset: { enum: ['mnist', 'fashion_mnist', 'cifar10', 'synthetic'] },
        path: nullable({ type: 'string', minLength: 1 }),
        validation: { enum: ['holdout', 'test'] },
        val_size: posInt,
        train_limit: nullable(posInt),
        preprocess: { enum: ['standardize', 'scale', 'none'] },
        split_seed: { type: 'integer', minimum: 0 },
        synthetic: {
          type: 'object',
          additionalProperties: false,
          required: ['features', 'classes', 'train_size', 'test_size', 'noise'],
          properties: {
            features: { type: 'integer', minimum: 1, maximum: 100000 },
            classes: { type: 'integer', minimum: 2, maximum: 1000 },
            train_size: { type: 'integer', minimum: 1, maximum: MAX_SYNTHETIC_EXAMPLES },
            test_size: { type: 'integer', minimum: 1, maximum: MAX_SYNTHETIC_EXAMPLES },
            noise: { type: 'number', minimum: 0 },
          },
        },
        augment: {
          type: 'object',
          additionalProperties: false,
          required: ['crop_padding', 'flip'],
          properties: {
            crop_padding: { type: 'integer', minimum: 0, maximum: 64 },
            flip: { type: 'boolean' },
          },
        },
      },
    },
    model: {
      type: 'object',
      additionalProperties: false,
      required: [
        'arch',
        'hidden',
        'cnn',
        'activation',
        'init',
        'init_std',
        'norm',
        'norm_placement',
        'batch_norm',
        'layer_norm',
        'group_norm',
        'weight_norm',
        'dropout',
      ],
      properties: {
        arch: { enum: ['mlp', 'cnn'] },
        hidden: { type: 'array', items: { type: 'integer', minimum: 1, maximum: 100000 }, maxItems: 100 },
        cnn: {
          type: 'object',
          additionalProperties: false,
          required: ['channels', 'kernel', 'pool', 'dense'],
          properties: {
            channels: {
              type: 'array',
              items: { type: 'integer', minimum: 1, maximum: 4096 },
              minItems: 1,
              maxItems: 50,
            },
            kernel: { type: 'integer', minimum: 1, maximum: 15 },
            pool: { type: 'integer', minimum: 1, maximum: 8 },
            dense: { type: 'array', items: { type: 'integer', minimum: 1, maximum: 100000 }, maxItems: 20 },
          },
        },
        activation: { enum: ['sigmoid', 'relu', 'tanh', 'linear', 'selu'] },
        init: { enum: ['gaussian', 'glorot_uniform', 'he_normal', 'lecun_normal'] },
        init_std: { type: 'number', exclusiveMinimum: 0 },
        norm: { enum: ['none', 'batch', 'layer', 'group', 'instance', 'weight'] },
        norm_placement: { enum: ['before', 'after'] },
        batch_norm: {
          type: 'object',
          additionalProperties: false,
          required: ['eps', 'momentum', 'inference', 'population_batches', 'gradient', 'noise'],
          properties: {
            eps: { type: 'number', exclusiveMinimum: 0 },
            momentum: { type: 'number', minimum: 0, exclusiveMaximum: 1 },
            inference: { enum: ['ema', 'population'] },
            population_batches: { type: 'integer', minimum: 1, maximum: 100000 },
            gradient: { enum: ['closed_form', 'autodiff'] },
            noise: { type: 'number', minimum: 0, maximum: 10 },
          },
        },
        layer_norm: {
          type: 'object',
          additionalProperties: false,
          required: ['eps'],
          properties: { eps: { type: 'number', exclusiveMinimum: 0 } },
        },
        group_norm: {
          type: 'object',
          additionalProperties: false,
          required: ['groups', 'eps'],
          properties: {
            groups: { type: 'integer', minimum: 1, maximum: 100000 },
            eps: { type: 'number', exclusiveMinimum: 0 },
          },
        },
        weight_norm: {
          type: 'object',
          additionalProperties: false,
          required: ['mean_only_bn'],
          properties: { mean_only_bn: { type: 'boolean' } },
        },
        dropout: { type: 'number', minimum: 0, exclusiveMaximum: 1 },
      },
    },
    train: {
      type: 'object',
      additionalProperties: false,
      required: [
        'optimizer',
        'lr',
        'momentum',
        'batch_size',
        'steps',
        'epochs',
        'eval_every',
        'log_every',
        'eval_limit',
        'max_loss',
        'engine',
        'adam',
        'tensorboard',
        'weight_decay',
        'schedule',
      ],
      properties: {
        optimizer: { enum: ['sgd', 'adam'] },
        lr: { type: 'number', exclusiveMinimum: 0 },
        momentum: { type: 'number', minimum: 0, exclusiveMaximum: 1 },
        batch_size: posInt,
        steps: nullable({ type: 'integer', minimum: 1, maximum: MAX_STEPS }),
        epochs: nullable({ type: 'integer', minimum: 1, maximum: MAX_EPOCHS }),
        eval_every: posInt,
        log_every: posInt,
        eval_limit: nullable(posInt),
        max_loss: nullable({ type: 'number', exclusiveMinimum: 0 }),
        engine: { enum: ['auto', 'graph', 'eager'] },
        adam: {
          type: 'object',
          additionalProperties: false,
          required: ['beta1', 'beta2', 'epsilon'],
          properties: {
            beta1: { type: 'number', minimum: 0, exclusiveMaximum: 1 },
            beta2: { type: 'number', minimum: 0, exclusiveMaximum: 1 },
            epsilon: { type: 'number', exclusiveMinimum: 0 },
          },
        },
        tensorboard: { type: 'boolean' },
        weight_decay: { type: 'number', minimum: 0, maximum: 1 },
        schedule: {
          type: 'object',
          additionalProperties: false,
          required: ['kind', 'every', 'factor', 'min_lr', 'warmup_steps'],
          properties: {
            kind: { enum: ['constant', 'step', 'exponential', 'cosine'] },
            every: { type: 'integer', minimum: 1, maximum: 1000000000 },
            factor: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
            min_lr: { type: 'number', minimum: 0 },
            warmup_steps: { type: 'integer', minimum: 0, maximum: 1000000000 },
          },
        },
      },
    },
    instruments: {
      type: 'object',
      additionalProperties: false,
      required: ['activation_percentiles', 'ics', 'smoothness', 'eval_gap'],
      properties: {
        activation_percentiles: instrument({
          probe_size: { type: 'integer', minimum: 2, maximum: 100000 },
          percentiles: {
            type: 'array',
            items: { type: 'number', minimum: 0, maximum: 100 },
            minItems: 1,
            maxItems: 20,
          },
        }),
        ics: instrument({}),
        smoothness: instrument({
          step_sizes: { type: 'array', items: { type: 'number', exclusiveMinimum: 0 }, minItems: 1, maxItems: 50 },
        }),
        eval_gap: instrument({}),
      },
    },
  },
};

/** One instrument's settings: on/off, how often (in steps), and its own options. */
function instrument(options: Json): Json {
  return {
    type: 'object',
    additionalProperties: false,
    required: ['enabled', 'every', ...Object.keys(options)],
    properties: { enabled: { type: 'boolean' }, every: posInt, ...options },
  };
}

/** The same schema with nothing required: what a spec file's base configuration may hold. */
export function partialSchema(schema: Json): Json {
  const out: Json = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k === 'required') continue;
    if (k === 'properties') {
      out.properties = Object.fromEntries(Object.entries(v as Json).map(([p, s]) => [p, partialSchema(s as Json)]));
    } else {
      out[k] = v;
    }
  }
  return out;
}

/** Top-level keys of a spec file that are not part of a run's configuration. */
export const SPEC_ONLY_KEYS = ['description', 'grid', 'seeds'] as const;

/** The schema of a spec file: a partial run configuration plus description, grid and seeds. */
export const SPEC_SCHEMA: Json = (() => {
  const base = partialSchema(RUN_CONFIG_SCHEMA);
  return {
    ...base,
    required: ['name'],
    properties: {
      ...(base.properties as Json),
      description: { type: 'string' },
      // Grid keys are checked against the configuration's key paths in code (with did-you-mean).
      grid: { type: 'object', additionalProperties: { type: 'array', minItems: 1 } },
      seeds: { type: 'array', minItems: 1, items: { type: 'integer', minimum: 0, maximum: 2147483647 } },
    },
  };
})();

/** Every leaf key path of a run configuration (`train.lr`, `model.hidden`, ...), in schema order. */
export function configKeyPaths(schema: Json = RUN_CONFIG_SCHEMA, prefix = ''): string[] {
  const props = schema.properties as Json | undefined;
  if (!props || schema.type !== 'object') return [prefix];
  return Object.entries(props).flatMap(([k, s]) => configKeyPaths(s as Json, prefix ? `${prefix}.${k}` : k));
}

/** The sub-schema at a dotted key path, or undefined when the path is not a configuration key. */
export function schemaAt(path: string): Json | undefined {
  let s: Json | undefined = RUN_CONFIG_SCHEMA;
  for (const part of path.split('.')) {
    const props = s?.properties as Json | undefined;
    s = props && Object.hasOwn(props, part) ? (props[part] as Json) : undefined;
  }
  return s;
}
