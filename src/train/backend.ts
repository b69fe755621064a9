import * as tf from '@tensorflow/tfjs';
import { createRequire } from 'node:module';
import os from 'node:os';

export type BackendName = 'tensorflow' | 'cpu';

export interface BackendInfo {
  /** The TensorFlow.js backend training runs on. */
  backend: BackendName;
  /** Version of the native TensorFlow library actually loaded (TF_Version()), or null for `cpu`. */
  tensorflow: string | null;
  tfjs: string;
  tfjsNode: string | null;
  /** TensorFlow's thread pools, as configured by the environment (TF reads these at load). */
  threads: { intraOp: string; interOp: string; cores: number };
}

/** The native backend could not be loaded: the message says how to fix it. */
export class BackendUnavailableError extends Error {
  override name = 'BackendUnavailableError';
}

let loaded: BackendInfo | null = null;

/**
 * TensorFlow's thread pools for this process, when the environment does not set them
 * (TF_NUM_INTRAOP_THREADS / TF_NUM_INTEROP_THREADS, read once by libtensorflow when it loads):
 * `unsplit`: one intra-op thread (no op is split across threads) and one inter-op thread per core
 * (independent ops, such as a layer's weight and input gradients, run side by side);
 * `per-core`: TensorFlow's default, one of each per core.
 */
export type ThreadPools = 'unsplit' | 'per-core';

/**
 * The pools for a process that trains `archs`: a fully connected net's ops are too small to gain
 * from splitting them across threads, and handing their pieces between threads costs more than it
 * saves (measured on the paper's MNIST net with BN, 2 cores, graph engine: 789 steps/s with one
 * intra-op and one inter-op thread against 621 with the default; a second inter-op thread added
 * about 7% more, 732 against 686 on average over 4 interleaved pairs); convolutions are large
 * enough to split (experiments/fashion-cnn.yaml with BN: 38 steps/s with the default, 21 with one
 * thread).
 */
export function threadPoolsFor(archs: Iterable<string>): ThreadPools {
  for (const arch of archs) if (arch !== 'mlp') return 'per-core';
  return 'unsplit';
}

export async function initBackend(name: BackendName = 'tensorflow', pools: ThreadPools = 'per-core'): Promise<BackendInfo> {
  if (loaded) {
    if (loaded.backend !== name) throw new Error(`backend ${loaded.backend} is already loaded in this process; cannot switch to ${name}`);
    return loaded;
  }
  // Read by libtensorflow when it loads; the environment, when it sets them, wins.
  // TensorFlow logs CPU-feature notices at load; keep the terminal for bnx's own output.
  process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';
  // The best-fit allocator reuses freed blocks: the default CPU allocator goes to malloc for every
  // step's tensors (for large ones, fresh pages, zeroed by the kernel, every step). Measured on the
  // paper's MNIST net, graph engine, one thread: 954 steps/s against 789.
  process.env.TF_CPU_ALLOCATOR_USE_BFC ??= 'true';
  if (pools === 'unsplit') {
    process.env.TF_NUM_INTRAOP_THREADS ??= '1';
    process.env.TF_NUM_INTEROP_THREADS ??= String(os.availableParallelism());
  }
  let tensorflow: string | null = null;
  let tfjsNode: string | null = null;
  if (name === 'tensorflow') {
    try {
      const require = createRequire(import.meta.url);
      require('@tensorflow/tfjs-node');
      tfjsNode = (require('@tensorflow/tfjs-node/package.json') as { version: string }).version;
    } catch (e) {
      const why = String((e as Error).message ?? e).split('\n')[0];
      throw new BackendUnavailableError(
        `the native TensorFlow backend (@tensorflow/tfjs-node) did not load: ${why}. ` +
          'Run `npm run setup` to provision libtensorflow and build the addon, or pass --backend cpu to train on the (much slower) pure-JS backend.',
      );
    }
    await tf.setBackend('tensorflow');
    if (tf.getBackend() !== 'tensorflow') throw new BackendUnavailableError(`tfjs-node loaded but the active backend is ${tf.getBackend()}`);
    const binding = (tf.backend() as unknown as { binding?: { TF_Version?: string } }).binding;
    tensorflow = binding?.TF_Version ?? null;
  } else {
    await tf.setBackend('cpu');
  }
  loaded = {
    backend: name,
    tensorflow,
    tfjs: tf.version.tfjs,
    tfjsNode,
    threads: {
      intraOp: process.env.TF_NUM_INTRAOP_THREADS ?? 'TensorFlow default (one per core)',
      interOp: process.env.TF_NUM_INTEROP_THREADS ?? 'TensorFlow default (one per core)',
      cores: os.availableParallelism(),
    },
  };
  return loaded;
}

/**
 * A one-line label for logs and run records: `tensorflow (native TensorFlow 2.21.0 CPU kernels via
 * tfjs-node 4.22.0; threads intra-op 1, inter-op 1)`; the threads part only when they are set.
 */
export function describeBackend(info: BackendInfo): string {
  if (info.backend !== 'tensorflow') return 'cpu (PURE-JS backend: slow, not TensorFlow; chosen with --backend cpu)';
  const { intraOp, interOp } = info.threads;
  const threads = /^\d+$/.test(intraOp) || /^\d+$/.test(interOp) ? `; threads intra-op ${intraOp}, inter-op ${interOp}` : '';
  return `tensorflow (native TensorFlow ${info.tensorflow ?? '?'} CPU kernels via tfjs-node ${info.tfjsNode}${threads})`;
}
