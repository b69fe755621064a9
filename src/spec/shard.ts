import { InputError } from '../util/errors.js';

/** A parsed `--shard I/N`: this process runs slice I (0-based) of N. */
export interface Shard {
  index: number;
  count: number;
}

/**
 * Parses `I/N` with 0 <= I < N. Slurm job arrays and Kubernetes Indexed Jobs number their tasks from
 * 0 (`--array=0-7`, `JOB_COMPLETION_INDEX`), so I is 0-based.
 */
export function parseShard(text: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || index >= count) {
    throw new InputError(
      `--shard ${text}`,
      'expected I/N with 0 <= I < N (for example --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)',
    );
  }
  return { index, count };
}

/**
 * The runs of one shard: every N-th run of the expanded grid, starting at I. Round-robin rather than
 * contiguous blocks, so each shard gets a mix of the first axis (BN and no-BN runs differ in cost).
 * Deterministic: the same spec and overrides give the same slices on every machine.
 */
export function selectShard<T>(runs: T[], shard: Shard): T[] {
  return runs.filter((_, i) => i % shard.count === shard.index);
}
