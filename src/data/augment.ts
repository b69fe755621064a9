/**
 * Training-time data augmentation of image batches (`data.augment`), the standard CIFAR recipe:
 *   crop_padding p > 0: pad the image with p zeros on every side and take a random H x W crop,
 *     i.e. shift it by (dy, dx), each uniform in -p..p, filling what comes in from outside with 0
 *     (after preprocessing: the training mean when standardized);
 *   flip: mirror it left-right with probability 1/2.
 * Draws come from the batch's own generator, seeded from the run seed apart from the batch order,
 * so a run with augmentation sees the same batches (in the same order) as one without, and two runs
 * with the same seed see the same augmented images. Validation and test data are never augmented.
 */
import type { AugmentConfig } from '../spec/types.js';
import { Rng } from '../util/rng.js';

/** Seed of the augmentation draws, derived from the run's seed. */
export function augmentSeed(seed: number): number {
  return (seed + 0xa06) % 2147483647;
}

/** True when the config changes anything. */
export function augments(cfg: AugmentConfig): boolean {
  return cfg.crop_padding > 0 || cfg.flip;
}

export class Augmenter {
  private readonly rng: Rng;
  private readonly scratch: Float32Array;

  /** `shape`: one example's [H, W, C] (channels-last). */
  constructor(
    readonly shape: readonly number[],
    readonly config: AugmentConfig,
    seed: number,
  ) {
    if (shape.length !== 3) throw new Error(`Augmenter: example shape [${shape.join(', ')}] (expected [H, W, C])`);
    this.rng = new Rng(augmentSeed(seed));
    this.scratch = new Float32Array(shape[0] * shape[1] * shape[2]);
  }

  /** Augments the `n` images of a row-major batch in place. */
  apply(x: Float32Array, n: number): void {
    const [h, w, ch] = this.shape;
    const size = h * w * ch;
    const p = this.config.crop_padding;
    const src = this.scratch;
    for (let i = 0; i < n; i++) {
      const dy = p > 0 ? this.rng.int(2 * p + 1) - p : 0;
      const dx = p > 0 ? this.rng.int(2 * p + 1) - p : 0;
      const flip = this.config.flip && this.rng.next() < 0.5;
      if (dy === 0 && dx === 0 && !flip) continue;
      const img = x.subarray(i * size, (i + 1) * size);
      src.set(img);
      for (let r = 0; r < h; r++) {
        const sr = r + dy;
        for (let c = 0; c < w; c++) {
          const sc = (flip ? w - 1 - c : c) + dx;
          const out = (r * w + c) * ch;
          if (sr < 0 || sr >= h || sc < 0 || sc >= w) {
            for (let k = 0; k < ch; k++) img[out + k] = 0;
          } else {
            const from = (sr * w + sc) * ch;
            for (let k = 0; k < ch; k++) img[out + k] = src[from + k];
          }
        }
      }
    }
  }
}
