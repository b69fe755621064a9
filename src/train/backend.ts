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
  /** TensorFlow's thread pools (TF reads them from the environment when it loads). */
  threads: {
    /** Always INTRA_OP_THREADS: see `initBackend`. */
    intraOp: number;
    interOp: number;
    cores: number;
    /** A TF_NUM_INTRAOP_THREADS from the environment that bnx replaced, for the backend line. */
    ignoredIntraOp: string | null;
  };
  /** The CPU model the kernels ran on (os.cpus()): its instruction set picks oneDNN's code paths. */
  cpu: string;
}

/** The native backend could not be loaded: the message says how to fix it. */
export class BackendUnavailableError extends Error {
  override name = 'BackendUnavailableError';
}

let loaded: BackendInfo | null = null;

/**
 * Every op runs on one thread: the same op on the same values then gives the same bits in any
 * process. An op split across an intra-op pool sums its pieces in an order that depends on the
 * pool's size (a convolution's filter gradient, a reduction), so a run's numbers would depend on
 * how many threads the process that trained it had: alone or in `--workers`, on a laptop or in a
 * Slurm task. Parallelism comes from elsewhere: the inter-op pool runs independent ops side by side
 * (a layer's weight and input gradients; the members of a training group), and `--workers` runs
 * processes side by side. Measured on the paper's MNIST net, a fully connected net gains nothing
 * from split ops (789 steps/s with one intra-op thread against 621 with one per core); the
 * Fashion-MNIST cnn alone trains at about half the speed it has with one intra-op thread per core
 * (see `npm run bench` and docs), which a sweep of several runs gets back from its members and workers.
 */
export const INTRA_OP_THREADS = 1;

/** Inter-op threads for a process that has the machine to itself: one per core. */
export function defaultInterOpThreads(): number {
  return os.availableParallelism();
}

/**
 * Loads the backend once per process. TensorFlow's intra-op pool is always INTRA_OP_THREADS (a
 * different TF_NUM_INTRAOP_THREADS in the environment is replaced, and the backend line says so);
 * its inter-op pool is TF_NUM_INTEROP_THREADS when the environment sets it (`--workers` does),
 * else one thread per core: it does not change the numbers, only how many ops run at once.
 */
export async function initBackend(name: BackendName = 'tensorflow'): Promise<BackendInfo> {
  if (loaded) {
    if (loaded.backend !== name)
      throw new Error(`backend ${loaded.backend} is already loaded in this process; cannot switch to ${name}`);
    return loaded;
  }
  // Read by libtensorflow when it loads; the environment, when it sets them, wins.
  // TensorFlow logs CPU-feature notices at load; keep the terminal for bnx's own output.
  process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';
  // The best-fit allocator reuses freed blocks: the default CPU allocator goes to malloc for every
  // step's tensors (for large ones, fresh pages, zeroed by the kernel, every step). Measured on the
  // paper's MNIST net, graph engine, one thread: 954 steps/s against 789.
  process.env.TF_CPU_ALLOCATOR_USE_BFC ??= 'true';
  const askedIntraOp = process.env.TF_NUM_INTRAOP_THREADS;
  process.env.TF_NUM_INTRAOP_THREADS = String(INTRA_OP_THREADS);
  const interOp = Number(process.env.TF_NUM_INTEROP_THREADS);
  if (!Number.isInteger(interOp) || interOp < 1) process.env.TF_NUM_INTEROP_THREADS = String(defaultInterOpThreads());
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
    if (tf.getBackend() !== 'tensorflow')
      throw new BackendUnavailableError(`tfjs-node loaded but the active backend is ${tf.getBackend()}`);
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
      intraOp: INTRA_OP_THREADS,
      interOp: Number(process.env.TF_NUM_INTEROP_THREADS),
      cores: os.availableParallelism(),
      ignoredIntraOp: askedIntraOp !== undefined && askedIntraOp !== String(INTRA_OP_THREADS) ? askedIntraOp : null,
    },
    cpu: os.cpus()[0]?.model.trim() ?? 'unknown',
  };
  return loaded;
}

/**
 * A one-line label for logs and run records: `tensorflow (native TensorFlow 2.21.0 CPU kernels via
 * tfjs-node 4.22.0; threads intra-op 1, inter-op 2)`.
 */
export function describeBackend(info: BackendInfo): string {
  if (info.backend !== 'tensorflow') return 'cpu (PURE-JS backend: slow, not TensorFlow; chosen with --backend cpu)';
  const { intraOp, interOp, ignoredIntraOp } = info.threads;
  const ignored =
    ignoredIntraOp === null
      ? ''
      : ` (TF_NUM_INTRAOP_THREADS=${ignoredIntraOp} ignored: a run's numbers must not depend on the process)`;
  return `tensorflow (native TensorFlow ${info.tensorflow ?? '?'} CPU kernels via tfjs-node ${info.tfjsNode}; threads intra-op ${intraOp}${ignored}, inter-op ${interOp})`;
}

/**
 * What a run's numbers depend on besides its configuration (run.json's `numerics`): two runs with
 * the same id and equal numerics have the same bytes; `bnx diff` says so when they differ.
 */
export interface Numerics {
  engine: 'graph' | 'eager' | null;
  backend: BackendName;
  tensorflow: string | null;
  tfjs_node: string | null;
  bnx: string;
  intra_op_threads: number;
  cpu: string;
}

export function numericsOf(info: BackendInfo, engine: Numerics['engine'], bnx: string): Numerics {
  return {
    engine,
    backend: info.backend,
    tensorflow: info.tensorflow,
    tfjs_node: info.tfjsNode,
    bnx,
    intra_op_threads: info.threads.intraOp,
    cpu: info.cpu,
  };
}
