import type { Activation } from '../layers/activations.js';
import type { BatchNormGradient } from '../layers/batch-norm.js';
import type { InitType } from '../layers/init.js';
import type { InferenceStats } from '../layers/norm.js';

export type { Activation, InitType };
/**
 * The resolved configuration of one run: every key has a value (defaults filled in). Key paths
 * (`train.lr`, `model.norm`, ...) are public: `--set`, `grid:` and users' scripts name them.
 */
export interface RunConfig {
  /** Spec name; results go to `<out>/<name>/<run id>/`. */
  name: string;
  seed: number;
  data: DataConfig;
  model: ModelConfig;
  train: TrainConfig;
  /** Measurements taken while training, each into its own CSV (off by default; see src/train/instruments/). */
  instruments: InstrumentsConfig;
}

export type DatasetName = 'mnist' | 'fashion_mnist' | 'cifar10' | 'synthetic';
export type Preprocess = 'standardize' | 'scale' | 'none';

export interface DataConfig {
  dataset: DatasetName;
  /**
   * Directory holding the dataset's files (IDX or CIFAR-10 binary batches, plain or .gz); null
   * searches the well-known install locations and the cache (see src/data/sources.ts).
   */
  path: string | null;
  /** `holdout`: the last `val_size` examples of a fixed shuffle of train; `test`: the test set. */
  validation: 'holdout' | 'test';
  val_size: number;
  /** Use only the first N training examples (after the hold-out); null means all. */
  train_limit: number | null;
  /**
   * `standardize`: subtract the training set's mean and divide by its std (one value per input
   * channel; MNIST has one); `scale`: pixels / 255 into [0, 1]; `none`: raw values.
   */
  preprocess: Preprocess;
  /** Seed of the hold-out split: fixed apart from the run seed so every run validates on the same set. */
  split_seed: number;
  synthetic: SyntheticConfig;
  /** Training-time augmentation of image batches (off by default). */
  augment: AugmentConfig;
}

/** `data.augment`: random crop with zero padding and horizontal flips, seeded from the run seed. */
export interface AugmentConfig {
  /** Pad every side by this many pixels, then crop back to the image size at a random offset; 0 = off. */
  crop_padding: number;
  /** Mirror left-right with probability 1/2. */
  flip: boolean;
}

/** Gaussian class clusters passed through a fixed random nonlinearity: learnable, not linear. */
export interface SyntheticConfig {
  features: number;
  classes: number;
  train_size: number;
  test_size: number;
  noise: number;
}

/** `model.norm`: the normalization of every hidden layer (see docs/normalization.md). */
export type NormType = 'none' | 'batch' | 'layer' | 'group' | 'instance' | 'weight';
/** `model.norm_placement`: a normalization layer's place relative to the activation. */
export type NormPlacement = 'before' | 'after';

export type Arch = 'mlp' | 'cnn';

export interface ModelConfig {
  /** `mlp`: fully connected (`hidden`); `cnn`: convolutional blocks and a dense head (`cnn`). */
  arch: Arch;
  /** Hidden layer widths of the mlp. */
  hidden: number[];
  cnn: CnnConfig;
  activation: Activation;
  init: InitType;
  /** Std of the `gaussian` init (the paper: "small random Gaussian values"). */
  init_std: number;
  norm: NormType;
  /**
   * batch, layer, group, instance: `before` the activation, z = act(norm(x W)) (the paper), or
   * `after` it, z = norm(act(x W + b)). Ignored for none and weight.
   */
  norm_placement: NormPlacement;
  batch_norm: BatchNormConfig;
  layer_norm: { eps: number };
  /** Also used by `instance` (group norm with one channel per group): eps only. */
  group_norm: { groups: number; eps: number };
  weight_norm: WeightNormConfig;
  /**
   * Dropout probability p after each normalized layer's output (the mlp's hidden layers) and each of
   * the cnn's dense layers, in the training step only; alpha dropout with `activation: selu`. 0 is off.
   */
  dropout: number;
}

/**
 * `model.cnn`: conv-norm-activation blocks on channels-last images, then a dense head.
 * Block i: conv (kernel x kernel, stride 1, `same` padding, `channels[i]` filters), the
 * normalization (`model.norm`, per channel), the activation, then max pooling (pool x pool,
 * stride pool) unless pool is 1. The head: flatten, dense layers of `dense` widths with the
 * activation (not normalized), then the linear layer of class logits.
 */
export interface CnnConfig {
  channels: number[];
  kernel: number;
  pool: number;
  dense: number[];
}

export interface BatchNormConfig {
  /** Added to the variance before the square root. */
  eps: number;
  /** Moving-average decay, Keras convention: running = momentum * running + (1 - momentum) * batch. */
  momentum: number;
  /** Inference statistics: moving averages (`ema`) or Algorithm 2's population estimate (`population`). */
  inference: InferenceStats;
  /** Training mini-batches per population estimate (before every evaluation). */
  population_batches: number;
  /** Training-mode backward pass: the closed-form formulas (`closed_form`) or TensorFlow.js autodiff. */
  gradient: BatchNormGradient;
  /**
   * "Noisy BN" (Santurkar et al. 2018): in training, each BN output unit is scaled and shifted by
   * random amounts drawn afresh every step, with this strength; 0 is off.
   */
  noise: number;
}

export interface WeightNormConfig {
  /** Follow each weight-normalized layer with mean-only batch norm (Salimans & Kingma's pairing). */
  mean_only_bn: boolean;
}

/**
 * `train.schedule`: the learning rate at each step (see src/train/schedule.ts): `constant`; `step`
 * (times `factor` every `every` steps); `exponential` (times `factor` per `every` steps, smoothly);
 * `cosine` (from `lr` down to `min_lr` over the run); any kind after `warmup_steps` of linear warm-up.
 */
export interface ScheduleConfig {
  kind: 'constant' | 'step' | 'exponential' | 'cosine';
  every: number;
  factor: number;
  min_lr: number;
  warmup_steps: number;
}

export interface TrainConfig {
  /** `sgd` (with `momentum`) or `adam` (with `adam`'s betas; `momentum` must be 0). */
  optimizer: 'sgd' | 'adam';
  lr: number;
  /** Classical momentum; 0 is plain SGD. */
  momentum: number;
  batch_size: number;
  /** Number of optimizer steps; exactly one of steps / epochs is set after resolution. */
  steps: number | null;
  epochs: number | null;
  /** Evaluate on the validation set every N steps (and at the last step). */
  eval_every: number;
  /** Write a metrics row with the running training loss every N steps. */
  log_every: number;
  /** Cap on validation examples per evaluation; null evaluates the whole set. */
  eval_limit: number | null;
  /** A training loss above this marks the run diverged (NaN and Inf always do); null: only NaN/Inf. */
  max_loss: number | null;
  /**
   * `auto`: the graph engine where its compiler covers the run, else eager (said in one line);
   * `graph`: the graph engine (a run it does not cover fails); `eager`: op-by-op TensorFlow.js.
   */
  engine: 'auto' | 'graph' | 'eager';
  /** Adam's decay rates and epsilon (Kingma & Ba's defaults, epsilon as in TensorFlow.js). */
  adam: { beta1: number; beta2: number; epsilon: number };
  /** Also write TensorBoard event files (into `<run dir>/tensorboard/`, or the `--tensorboard DIR`). */
  tensorboard: boolean;
  /**
   * L2 regularization of the weights (kernels, and V under weight norm; not gamma, beta, biases or
   * weight norm's g), added to their gradients as weight_decay * w before the optimizer (the coupled
   * form; Adam then scales it like the gradient, unlike AdamW's decoupled decay). 0 is off.
   */
  weight_decay: number;
  schedule: ScheduleConfig;
}

/** The instruments, by name; a spec may also list names (`instruments: [ics, eval_gap]`) to enable them with defaults. */
export const INSTRUMENT_NAMES = ['activation_percentiles', 'ics', 'smoothness', 'eval_gap'] as const;
export type InstrumentName = (typeof INSTRUMENT_NAMES)[number];

export interface InstrumentsConfig {
  /** Percentiles of each hidden layer's input to the nonlinearity over a fixed probe batch (the paper's Figure 1b,c). */
  activation_percentiles: { enabled: boolean; every: number; probe_size: number; percentiles: number[] };
  /** Santurkar et al.'s internal covariate shift: each layer's gradient before vs after the preceding layers' update. */
  ics: { enabled: boolean; every: number };
  /** Loss and gradient change along the gradient direction, at step sizes given as multiples of train.lr. */
  smoothness: { enabled: boolean; every: number; step_sizes: number[] };
  /** Validation loss with batch statistics (training mode) vs inference mode. */
  eval_gap: { enabled: boolean; every: number };
}
