import type { TrainConfig } from '../spec/types.js';

/**
 * The learning rate of training step `step` (1, 2, ..., `steps`) under `train.schedule`, from the
 * base rate `train.lr`. With `warmup_steps` w > 0, steps 1..w rise linearly to the base rate
 * (lr * step / w); then, counting u = step - w - 1 (0 at the first step after warm-up):
 *   constant     lr
 *   step         lr * factor^floor(u / every)          (e.g. halves every 100 steps: factor 0.5, every 100)
 *   exponential  lr * factor^(u / every)               (the same decay, smoothly)
 *   cosine       min_lr + (lr - min_lr) (1 + cos(pi u / (steps - w))) / 2
 * In double precision; the engines use it as float32, as they use `train.lr`. metrics.csv's `lr`
 * column is this value at the row's step.
 */
export function learningRate(train: TrainConfig, step: number, steps: number): number {
  const { kind, every, factor, min_lr: minLr, warmup_steps: warmup } = train.schedule;
  if (warmup > 0 && step <= warmup) return (train.lr * step) / warmup;
  const u = step - warmup - 1;
  switch (kind) {
    case 'constant':
      return train.lr;
    case 'step':
      return train.lr * Math.pow(factor, Math.floor(u / every));
    case 'exponential':
      return train.lr * Math.pow(factor, u / every);
    case 'cosine':
      return minLr + ((train.lr - minLr) * (1 + Math.cos((Math.PI * u) / Math.max(1, steps - warmup)))) / 2;
  }
}
