import { Rng } from '../util/rng.js';

/**
 * Mini-batches from an epoch-wise shuffle. Each epoch draws a fresh permutation from the batcher's
 * own Rng and hands out consecutive slices of it; the incomplete last slice is dropped so that
 * every batch holds exactly `batchSize` examples (batch statistics of a tiny batch would be noise).
 */
export class EpochBatcher {
  private readonly rng: Rng;
  private perm: Int32Array = new Int32Array(0);
  private pos = 0;
  private epoch = -1;

  constructor(
    readonly n: number,
    readonly batchSize: number,
    seed: number,
  ) {
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new Error(`EpochBatcher: batch size ${batchSize} (expected a positive integer)`);
    }
    if (batchSize > n) throw new Error(`EpochBatcher: batch size ${batchSize} exceeds the ${n} examples`);
    this.rng = new Rng(seed);
  }

  get batchesPerEpoch(): number {
    return Math.floor(this.n / this.batchSize);
  }

  /**
   * The next batch: rows `indices[start .. start + batchSize)`. `indices` is the epoch's
   * permutation; it is never modified (a new epoch gets a new array), so callers may keep it.
   */
  next(): { indices: Int32Array; start: number; epoch: number } {
    if (this.epoch < 0 || this.pos + this.batchSize > this.n) {
      this.perm = this.rng.permutation(this.n);
      this.pos = 0;
      this.epoch++;
    }
    const start = this.pos;
    this.pos += this.batchSize;
    return { indices: this.perm, start, epoch: this.epoch };
  }
}
