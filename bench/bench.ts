/**
 * `npm run bench [-- flags]`: training speed of the paper's MNIST network (experiments/paper-mnist.yaml:
 * 784-100-100-100-10, sigmoid, batch 60, SGD), without and with batch norm, as a single run and as an
 * 8-point learning-rate sweep (one model after another; on bnx's graph engine also as one group
 * stepped by one engine, in one process and in worker processes, and as the plain `bnx run` command
 * a user types), on bnx's graph and eager engines, on tfjs-layers (tf.sequential + trainOnBatch, same
 * backend) and on PyTorch CPU (bench/torch_bench.py, when `python3 -c 'import torch'` works), all
 * measured in this one invocation: shared machines are noisy, compare the ratios. Then what replicates
 * cost: `bnx run` with 10 seeds against 1 seed (`--seeds N`, the seeds trained as one group). Then a
 * leak check of the graph engine (live tensors at every step, RSS over the run), the start-up time of
 * `bnx --help` and `bnx plan`, and the issue's targets.
 *
 *   --quick            a smoke test: few steps everywhere (numbers meaningless)
 *   --steps N          steps of each single run (default 3000)
 *   --sweep-steps N    steps of each sweep point (default 3000)
 *   --leak-steps N     steps of the graph engine's leak check (default 20000)
 *   --rounds N         single runs: best of N interleaved rounds (default 2)
 *   --torch-threads N  torch.set_num_threads (default 2)
 *   --replicates       only the replicates table (10 seeds against 1, side by side), then stop
 *   --paper            also the whole paper experiment: `bnx run experiments/paper-mnist.yaml --seeds 1` (both
 *                      runs, 50,000 steps each, evaluations included) against bench/torch_bench.py
 *                      --paper doing the same work, wall time of each whole command (about 5 minutes)
 *   --before DIR       also the plain `bnx run` sweep row on another built checkout of bnx (e.g. a
 *                      `git worktree` of an older commit, after `npm run build` there), with its own
 *                      experiments/paper-mnist.yaml: the speed before and after a change, side by side
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import readline from 'node:readline';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { EpochBatcher, gather, loadDataset } from '../src/data/index.js';
import type { RunConfig } from '../src/spec/types.js';
import { describeBackend, initBackend } from '../src/train/backend.js';
import { workerThreadEnv } from '../src/launch/workers.js';
import { trainingGroups } from '../src/train/groups.js';
import { train, trainGroup, type TrainHooks } from '../src/train/loop.js';
import { PAPER_SPEC, paperConfigs, ROOT, sweepConfig } from './paper.js';

/** The sweep's learning rates (log-spaced around the paper spec's 0.5). */
const SWEEP_LRS = [0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5];
const TARGETS = { singleBn: 1.3, sweepBn: 3, rssGrowthMb: 50, startupSeconds: 0.5 };

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    steps: { type: 'string' },
    'sweep-steps': { type: 'string' },
    'leak-steps': { type: 'string' },
    rounds: { type: 'string' },
    'torch-threads': { type: 'string', default: '2' },
    paper: { type: 'boolean', default: false },
    replicates: { type: 'boolean', default: false },
    before: { type: 'string' },
  },
});
const count = (name: string, value: string | undefined, quick: number, full: number): number => {
  const n = value === undefined ? (flags.quick ? quick : full) : Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} is ${value}, expected an integer >= 1`);
  return n;
};
const steps = count('steps', flags.steps, 200, 3000);
const sweepSteps = count('sweep-steps', flags['sweep-steps'], 30, 3000);
const leakSteps = count('leak-steps', flags['leak-steps'], 500, 20_000);
const rounds = count('rounds', flags.rounds, 1, 2);
const torchThreads = count('torch-threads', flags['torch-threads'], 2, 2);

type Norm = 'none' | 'batch';
const NORMS: Norm[] = ['none', 'batch'];
type Engine = 'graph' | 'eager';

// The thread pools `bnx run` gives a process.
const backend = await initBackend('tensorflow');
const paper = paperConfigs();
const data = loadDataset(paper.batch.data);

/** One measurement: seconds taken for `steps` steps, and live tensors / RSS around it. */
interface Measured {
  seconds: number;
  tensors: [number, number];
  rssMb: [number, number];
}
const rssMb = () => process.memoryUsage().rss / 2 ** 20;

/** The paper spec's run for `norm` on `engine`, `steps` long, one evaluation at the end. */
const runConfig = (norm: Norm, engine: Engine, lr: number, n: number): RunConfig =>
  sweepConfig(paper[norm], engine, lr, n);

/** A whole bnx run through `train` (graph: compile and load included; the final evaluations included). */
async function bnxRun(norm: Norm, engine: Engine, lr: number, n: number, hooks: TrainHooks = {}): Promise<Measured> {
  const [tensors0, rss0] = [tf.memory().numTensors, rssMb()];
  const t0 = performance.now();
  await train(runConfig(norm, engine, lr, n), data, hooks);
  return {
    seconds: (performance.now() - t0) / 1000,
    tensors: [tensors0, tf.memory().numTensors],
    rssMb: [rss0, rssMb()],
  };
}

/** The same network in tfjs-layers: dense (+ batchNormalization) + sigmoid layers, model.trainOnBatch on bnx's batches. */
async function layersRun(norm: Norm, _engine: 'layers', lr: number, n: number): Promise<Measured> {
  const [tensors0, rss0] = [tf.memory().numTensors, rssMb()];
  const t0 = performance.now();
  const c = paper[norm];
  const model = tf.sequential();
  c.model.hidden.forEach((units, i) => {
    const kernelInitializer = tf.initializers.randomNormal({ mean: 0, stddev: c.model.init_std, seed: c.seed + i });
    model.add(
      tf.layers.dense({
        units,
        useBias: norm !== 'batch',
        kernelInitializer,
        ...(i === 0 ? { inputShape: [data.features] } : {}),
      }),
    );
    if (norm === 'batch')
      model.add(
        tf.layers.batchNormalization({ momentum: c.model.batch_norm.momentum, epsilon: c.model.batch_norm.eps }),
      );
    model.add(tf.layers.activation({ activation: 'sigmoid' }));
  });
  model.add(tf.layers.dense({ units: data.classes, activation: 'softmax' }));
  const optimizer = tf.train.sgd(lr);
  model.compile({ optimizer, loss: 'sparseCategoricalCrossentropy', metrics: ['accuracy'] });
  const batchSize = c.train.batch_size;
  const batcher = new EpochBatcher(data.train.n, batchSize, c.seed);
  for (let step = 0; step < n; step++) {
    const { indices, start } = batcher.next();
    const batch = gather(data.train, data.features, indices, start, batchSize);
    const x = tf.tensor2d(batch.x, [batchSize, data.features]);
    const y = tf.tensor2d(Float32Array.from(batch.y), [batchSize, 1]);
    await model.trainOnBatch(x, y); // loss and accuracy read back, as bnx reads each step's
    tf.dispose([x, y]);
  }
  model.dispose();
  optimizer.dispose();
  return {
    seconds: (performance.now() - t0) / 1000,
    tensors: [tensors0, tf.memory().numTensors],
    rssMb: [rss0, rssMb()],
  };
}

/** bnx's grouped sweep: the learning rates as one group, one engine stepping them all (as `bnx run` groups them); returns seconds. */
async function groupSweep(norm: Norm, lrs: number[], n: number): Promise<number> {
  const configs = lrs.map((lr) => runConfig(norm, 'graph', lr, n));
  const groups = trainingGroups(configs);
  if (groups.length !== 1) throw new Error(`the ${norm} sweep does not form one group (${groups.length} groups)`);
  const t0 = performance.now();
  await trainGroup(configs, data, { members: configs.map(() => ({})) });
  return (performance.now() - t0) / 1000;
}

/** Worker processes of the multi-process sweep row: one per core, as `bnx run --workers` would be given here. */
const WORKERS = Math.max(2, os.availableParallelism());

/**
 * The sweep as `bnx run --workers WORKERS` trains it: WORKERS processes (bench/sweep-worker.ts), each
 * its round-robin shard of the learning rates as one group, with the thread pools `--workers` gives them.
 * Timed from the moment every worker has loaded TensorFlow and the dataset (as the in-process rows
 * and PyTorch's leave out process start-up) until the last one is done; returns seconds.
 */
async function workerSweep(norm: Norm, lrs: number[], n: number): Promise<number> {
  const script = path.join(ROOT, 'dist', 'bench', 'sweep-worker.js');
  const children = Array.from({ length: WORKERS }, (_, i) =>
    spawn(process.execPath, [script, norm, String(n), `${i}/${WORKERS}`, lrs.join(',')], {
      env: { ...process.env, ...workerThreadEnv(WORKERS) },
      stdio: ['pipe', 'pipe', 'inherit'],
    }),
  );
  const said = (child: ChildProcess, word: string) =>
    new Promise<void>((resolve, reject) => {
      const lines = readline.createInterface({ input: child.stdout as NodeJS.ReadableStream });
      lines.on('line', (l) => l === word && (lines.close(), resolve()));
      child.once('close', (code) =>
        reject(new Error(`bench/sweep-worker.ts exited with ${code} before saying ${word}`)),
      );
    });
  await Promise.all(children.map((c) => said(c, 'ready')));
  const done = children.map((c) => said(c, 'done'));
  const t0 = performance.now();
  for (const c of children) c.stdin?.end('go\n');
  await Promise.all(done);
  return (performance.now() - t0) / 1000;
}

/**
 * The sweep as a user runs it: `bnx run experiments/paper-mnist.yaml --set train.lr=...` with every
 * default (`--workers auto`, groups), each run evaluated once at its end as in the other rows. Wall
 * time of the whole command: process start, TensorFlow, the dataset and every worker included.
 * `root` is the bnx checkout that runs it (this one, or `--before DIR`).
 */
async function commandSweep(norm: Norm, lrs: number[], n: number, root = ROOT): Promise<number> {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'bnx-bench-sweep-'));
  const sets = [
    `model.norm=${norm}`,
    'seed=1',
    `train.steps=${n}`,
    `train.eval_every=${n}`,
    `train.log_every=${n}`,
    'train.eval_limit=1000',
    `train.lr=${lrs.join(',')}`,
  ];
  try {
    const t0 = performance.now();
    const res = spawnSync(
      process.execPath,
      [
        path.join(root, 'bin', 'bnx.js'),
        'run',
        path.join(root, 'experiments', 'paper-mnist.yaml'),
        ...sets.flatMap((x) => ['--set', x]),
        '--out',
        out,
      ],
      { cwd: root, encoding: 'utf8', maxBuffer: 16 << 20 },
    );
    if (res.status !== 0)
      throw new Error(`bnx run (bench sweep) failed (exit ${res.status}): ${res.stderr.trim().split('\n').at(-1)}`);
    return (performance.now() - t0) / 1000;
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}

/** Replicates measured: one seed against REPLICATES seeds of the same run. */
const REPLICATES = 10;

/**
 * Seeds as replicates, as a user runs them: `bnx run experiments/paper-mnist.yaml --set model.norm=<norm>
 * --seeds N` (every default: the seeds train as one group, in --workers auto processes), each run
 * `n` steps and evaluated once at its end. Wall time of the whole command, start-up included.
 */
function commandSeeds(norm: Norm, seeds: number, n: number): number {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'bnx-bench-seeds-'));
  const sets = [
    `model.norm=${norm}`,
    `train.steps=${n}`,
    `train.eval_every=${n}`,
    `train.log_every=${n}`,
    'train.eval_limit=1000',
  ];
  try {
    const t0 = performance.now();
    const res = spawnSync(
      process.execPath,
      [
        path.join(ROOT, 'bin', 'bnx.js'),
        'run',
        PAPER_SPEC,
        ...sets.flatMap((x) => ['--set', x]),
        '--seeds',
        String(seeds),
        '--out',
        out,
      ],
      { cwd: ROOT, encoding: 'utf8', maxBuffer: 16 << 20 },
    );
    if (res.status !== 0)
      throw new Error(`bnx run (bench seeds) failed (exit ${res.status}): ${res.stderr.trim().split('\n').at(-1)}`);
    return (performance.now() - t0) / 1000;
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}

interface SeedsRow {
  norm: Norm;
  /** Seconds of the whole command with one seed, and with REPLICATES seeds. */
  one: number;
  many: number;
}

/** One seed, then REPLICATES seeds, for each norm: side by side, so both see the same machine load. */
function measureReplicates(): SeedsRow[] {
  return NORMS.map((norm) => ({
    norm,
    one: commandSeeds(norm, 1, sweepSteps),
    many: commandSeeds(norm, REPLICATES, sweepSteps),
  }));
}

function printReplicates(rows: SeedsRow[]): void {
  const f = (x: number, digits: number) =>
    x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
  console.log(
    `\n## Replicates: ${REPLICATES} seeds against 1 (\`bnx run experiments/paper-mnist.yaml --set model.norm=... --seeds N\`, ${f(sweepSteps, 0)} steps per run, whole command)\n`,
  );
  console.log(`| norm | 1 seed | ${REPLICATES} seeds | ${REPLICATES} seeds / 1 seed | per seed |`);
  console.log('|---|---|---|---|---|');
  for (const r of rows)
    console.log(
      `| ${r.norm} | ${f(r.one, 1)} s | ${f(r.many, 1)} s | ${f(r.many / r.one, 2)}x | ${f(r.many / REPLICATES, 1)} s |`,
    );
  console.log(
    `(${REPLICATES} runs one after another would take about ${REPLICATES}x one; the seeds train as one group, in --workers auto processes)`,
  );
}

if (flags.replicates) {
  printReplicates(measureReplicates());
  process.exit(0);
}

/** `--before DIR`: the checkout's commit, for the row's name. */
function commitOf(root: string): string {
  const r = spawnSync('git', ['-C', root, 'log', '-1', '--format=%h'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : path.basename(root);
}

type Runner = (norm: Norm, engine: never, lr: number, n: number) => Promise<Measured>;
interface Row {
  name: string;
  /** A single run; a row without one is a sweep-only row. */
  run?: Runner;
  engine: Engine | 'layers';
  /** The whole sweep at once (seconds); without it, the sweep is `run` once per learning rate, one after another. */
  sweep?: (norm: Norm, lrs: number[], n: number) => Promise<number>;
  /** Live tensors and RSS are reported for these rows (bnx's own engines). */
  memory: boolean;
}
const ROWS: Row[] = [
  { name: 'bnx graph engine', run: bnxRun as Runner, engine: 'graph', memory: true },
  { name: 'bnx graph engine, one group', engine: 'graph', sweep: groupSweep, memory: false },
  {
    name: `bnx graph engine, one group per worker, ${WORKERS} worker processes`,
    engine: 'graph',
    sweep: workerSweep,
    memory: false,
  },
  { name: 'bnx run (the default command, start-up included)', engine: 'graph', sweep: commandSweep, memory: false },
  ...(flags.before
    ? [
        {
          name: `bnx run at ${commitOf(flags.before)} (--before, the same command)`,
          engine: 'graph' as const,
          sweep: (norm: Norm, lrs: number[], n: number) =>
            commandSweep(norm, lrs, n, path.resolve(flags.before as string)),
          memory: false,
        },
      ]
    : []),
  { name: 'bnx eager engine', run: bnxRun as Runner, engine: 'eager', memory: true },
  { name: 'tfjs-layers (trainOnBatch)', run: layersRun as Runner, engine: 'layers', memory: false },
];
const SINGLE_ROWS = ROWS.filter((r) => r.run);
const call = (row: Row, norm: Norm, lr: number, n: number) => (row.run as Runner)(norm, row.engine as never, lr, n);
async function sweepSeconds(row: Row, norm: Norm, lrs: number[], n: number): Promise<number> {
  if (row.sweep) return row.sweep(norm, lrs, n);
  let seconds = 0;
  for (const lr of lrs) seconds += (await call(row, norm, lr, n)).seconds;
  return seconds;
}

// ---- PyTorch: first, while this process is idle ----
interface TorchResult {
  torch: string;
  threads: number;
  single: Record<Norm, number>;
  sweep: Record<Norm, number>;
}
let torch: TorchResult | null = null;
const hasTorch = spawnSync('python3', ['-c', 'import torch'], { encoding: 'utf8' });
if (hasTorch.status !== 0) {
  console.log(
    `PyTorch rows skipped: \`python3 -c 'import torch'\` failed (${hasTorch.error?.message ?? 'no module torch'}; \`pip install torch\` adds them)`,
  );
} else {
  const args = [
    path.join(ROOT, 'bench', 'torch_bench.py'),
    '--steps',
    String(steps),
    '--sweep-steps',
    String(sweepSteps),
    '--lrs',
    SWEEP_LRS.join(','),
    '--rounds',
    String(rounds),
    '--lr',
    String(paper.batch.train.lr),
    '--threads',
    String(torchThreads),
  ];
  const res = spawnSync('python3', args, { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (res.status !== 0)
    throw new Error(`bench/torch_bench.py failed (exit ${res.status}): ${res.stderr.trim().split('\n').at(-1)}`);
  torch = JSON.parse(res.stdout.trim().split('\n').at(-1) as string) as TorchResult;
}

// ---- bnx and tfjs-layers ----
const lr = paper.batch.train.lr;
// Warm-up: kernels, JIT.
for (const row of ROWS)
  for (const norm of NORMS)
    await (row.run
      ? call(row, norm, lr, Math.min(200, steps))
      : sweepSeconds(row, norm, SWEEP_LRS, Math.min(50, sweepSteps)));
const single = new Map<string, Measured[]>();
for (let round = 0; round < rounds; round++) {
  // Interleaved: every row sees the same machine load, side by side.
  for (const row of SINGLE_ROWS)
    for (const norm of NORMS)
      single.set(`${row.name}/${norm}`, [
        ...(single.get(`${row.name}/${norm}`) ?? []),
        await call(row, norm, lr, steps),
      ]);
}
const sweep = new Map<string, number>();
for (const row of ROWS) {
  for (const norm of NORMS)
    sweep.set(
      `${row.name}/${norm}`,
      (SWEEP_LRS.length * sweepSteps) / (await sweepSeconds(row, norm, SWEEP_LRS, sweepSteps)),
    );
}

// ---- replicates: 1 seed against REPLICATES seeds, the plain command ----
const seedsRows = measureReplicates();

// ---- leak check: the graph engine, BN, live tensors at every step and RSS from the first step to the last ----
const leak = { tensorsMin: Infinity, tensorsMax: -Infinity, rssFirst: 0, rssLast: 0, seconds: 0 };
leak.seconds = (
  await bnxRun('batch', 'graph', lr, leakSteps, {
    onStep: (step, total) => {
      const live = tf.memory().numTensors;
      leak.tensorsMin = Math.min(leak.tensorsMin, live);
      leak.tensorsMax = Math.max(leak.tensorsMax, live);
      if (step === 1) leak.rssFirst = rssMb();
      if (step === total) leak.rssLast = rssMb();
    },
  })
).seconds;

// ---- start-up: bnx --help and bnx plan, median of 5 ----
function medianSeconds(args: string[]): number {
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const res = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'bnx.js'), ...args], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    times.push((performance.now() - t0) / 1000);
    if (res.status !== 0) throw new Error(`bnx ${args.join(' ')} failed (exit ${res.status}): ${res.stderr.trim()}`);
  }
  return times.sort((a, b) => a - b)[2];
}
const startup = { help: medianSeconds(['--help']), plan: medianSeconds(['plan', 'experiments/paper-mnist.yaml']) };

// ---- report ----
const fmt = (x: number, digits = 0) =>
  x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const ratio = (x: number, ref: number | undefined) => (ref === undefined ? 'n/a' : `${fmt(x / ref, 2)}x`);
const best = (ms: Measured[], n: number) => Math.max(...ms.map((m) => n / m.seconds));
const last = <T>(xs: T[]) => xs[xs.length - 1];

console.log(
  `\n## bnx bench: paper MNIST network (784-100-100-100-10 sigmoid, batch 60, SGD, lr ${lr} for single runs)\n`,
);
console.log(
  `backend: ${describeBackend(backend)}; PyTorch: ${torch ? `${torch.torch}, ${torch.threads} thread(s)` : 'not installed'}`,
);
console.log(
  `single runs: ${fmt(steps)} steps, best of ${rounds} interleaved round(s); sweep: ${SWEEP_LRS.length} learning rates (${SWEEP_LRS.join(', ')}) x ${fmt(sweepSteps)} steps, one model after another; bnx rows include graph compilation and the final evaluations${flags.quick ? '\n--quick: a smoke test, the numbers mean nothing' : ''}\n`,
);
console.log(
  '| row | norm | single run, steps/s | vs PyTorch | 8-point LR sweep, model-steps/s | vs PyTorch | live tensors before -> after | RSS before -> after (MB) |',
);
console.log('|---|---|---|---|---|---|---|---|');
for (const norm of NORMS) {
  if (torch)
    console.log(
      `| PyTorch CPU (${torch.threads} thread(s)) | ${norm} | ${fmt(torch.single[norm])} | 1.00x | ${fmt(torch.sweep[norm])} | 1.00x | | |`,
    );
  for (const row of ROWS) {
    const ms = single.get(`${row.name}/${norm}`);
    const s = ms ? best(ms, steps) : null;
    const sw = sweep.get(`${row.name}/${norm}`) as number;
    const m = ms ? last(ms) : null;
    const memory =
      row.memory && m ? `${m.tensors[0]} -> ${m.tensors[1]} | ${fmt(m.rssMb[0])} -> ${fmt(m.rssMb[1])}` : ' | ';
    const singleCells = s === null ? ' | ' : `${fmt(s)} | ${ratio(s, torch?.single[norm])}`;
    console.log(
      `| ${row.name} | ${norm} | ${singleCells} | ${fmt(sw)} | ${ratio(sw, torch?.sweep[norm])} | ${memory} |`,
    );
  }
}
printReplicates(seedsRows);
console.log(
  `\ngraph engine leak check (BN, ${fmt(leakSteps)} steps, ${fmt(leakSteps / leak.seconds)} steps/s): live tensors ${leak.tensorsMin}..${leak.tensorsMax} across the steps; RSS ${fmt(leak.rssFirst, 1)} MB after step 1, ${fmt(leak.rssLast, 1)} MB after step ${fmt(leakSteps)}`,
);
console.log(
  `start-up, median of 5: bnx --help ${fmt(startup.help, 3)} s, bnx plan experiments/paper-mnist.yaml ${fmt(startup.plan, 3)} s`,
);

/** A target's line: measured value, met or not, and by how much. */
function target(what: string, measured: string, met: boolean | null, margin: string): string {
  return `| ${what} | ${measured} | ${met === null ? 'not measured' : met ? 'met' : 'NOT met'} | ${margin} |`;
}
const graphBnSingle = best(single.get('bnx graph engine/batch') as Measured[], steps);
// The sweep target: the plain `bnx run` command, every default, start-up included.
const graphBnSweep = sweep.get('bnx run (the default command, start-up included)/batch') as number;
const pct = (x: number) => `${x >= 0 ? '+' : ''}${fmt(100 * x)}%`;
const rssGrowth = leak.rssLast - leak.rssFirst;
console.log(`\n## Targets${flags.quick ? ' (--quick: not meaningful)' : ''}\n`);
console.log('| target | measured | status | margin |');
console.log('|---|---|---|---|');
for (const [what, value, ref, goal] of [
  [`single run with BN >= ${TARGETS.singleBn}x PyTorch steps/s`, graphBnSingle, torch?.single.batch, TARGETS.singleBn],
  [
    `${SWEEP_LRS.length}-point LR sweep with BN, plain \`bnx run\`, >= ${TARGETS.sweepBn}x PyTorch's sequential model-steps/s`,
    graphBnSweep,
    torch?.sweep.batch,
    TARGETS.sweepBn,
  ],
] as const) {
  if (ref === undefined) console.log(target(what, `bnx ${fmt(value)}; PyTorch not installed`, null, ''));
  else
    console.log(
      target(
        what,
        `${fmt(value / ref, 2)}x (bnx ${fmt(value)} vs PyTorch ${fmt(ref)})`,
        value / ref >= goal,
        `${pct(value / ref / goal - 1)} of the target ratio`,
      ),
    );
}
const constant = leak.tensorsMin === leak.tensorsMax;
console.log(
  target(
    `live tensors constant across ${fmt(leakSteps)} graph-engine steps`,
    `${leak.tensorsMin}..${leak.tensorsMax}`,
    constant,
    constant ? 'constant' : `${leak.tensorsMax - leak.tensorsMin} tensors of drift`,
  ),
);
console.log(
  target(
    `RSS grows < ${TARGETS.rssGrowthMb} MB over ${fmt(leakSteps)} steps`,
    `${fmt(rssGrowth, 1)} MB`,
    rssGrowth < TARGETS.rssGrowthMb,
    `${fmt(TARGETS.rssGrowthMb - rssGrowth, 1)} MB ${rssGrowth < TARGETS.rssGrowthMb ? 'to spare' : 'over'}`,
  ),
);
for (const [what, s] of [
  ['`bnx --help`', startup.help],
  ['`bnx plan experiments/paper-mnist.yaml`', startup.plan],
] as const) {
  const met = s < TARGETS.startupSeconds;
  console.log(
    target(
      `${what} < ${TARGETS.startupSeconds} s`,
      `${fmt(s, 3)} s`,
      met,
      `${fmt(Math.abs(TARGETS.startupSeconds - s), 3)} s ${met ? 'to spare' : 'over'}`,
    ),
  );
}

// ---- the paper experiment in full: bnx's command against PyTorch doing the same work ----
if (flags.paper) {
  /** Seconds a whole command takes. */
  const wall = (cmd: string, args: string[]): number => {
    const t0 = performance.now();
    const res = spawnSync(cmd, args, { cwd: ROOT, encoding: 'utf8', maxBuffer: 16 << 20 });
    if (res.status !== 0)
      throw new Error(`${cmd} ${args.join(' ')} failed (exit ${res.status}): ${res.stderr.trim().split('\n').at(-1)}`);
    return (performance.now() - t0) / 1000;
  };
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'bnx-bench-paper-'));
  try {
    // One seed (the spec's seeds: 3 are replicates): the same two runs PyTorch does.
    const bnxSeconds = wall(process.execPath, [
      path.join(ROOT, 'bin', 'bnx.js'),
      'run',
      PAPER_SPEC,
      '--seeds',
      '1',
      '--out',
      out,
    ]);
    const records = fs
      .readdirSync(path.join(out, paper.batch.name), { recursive: true, encoding: 'utf8' })
      .filter((f) => path.basename(f) === 'run.json');
    const engines = records.map(
      (f) => (JSON.parse(fs.readFileSync(path.join(out, paper.batch.name, f), 'utf8')) as { engine: string }).engine,
    );
    console.log(
      `\n## The paper experiment in full (experiments/paper-mnist.yaml: 2 runs x ${fmt(paper.batch.train.steps as number)} steps, test set evaluated every ${paper.batch.train.eval_every} steps)\n`,
    );
    if (!torch) console.log(`bnx run: ${fmt(bnxSeconds, 1)} s wall; PyTorch not installed, no comparison`);
    else {
      const torchSeconds = wall('python3', [
        path.join(ROOT, 'bench', 'torch_bench.py'),
        '--paper',
        '--steps',
        String(paper.batch.train.steps),
        '--lr',
        String(paper.batch.train.lr),
        '--threads',
        String(torchThreads),
      ]);
      const met = bnxSeconds < torchSeconds;
      console.log('| command | wall time | speed vs PyTorch |');
      console.log('|---|---|---|');
      console.log(
        `| \`python3 bench/torch_bench.py --paper\` (PyTorch CPU, ${torchThreads} threads) | ${fmt(torchSeconds, 1)} s | 1.00x |`,
      );
      console.log(
        `| \`bnx run experiments/paper-mnist.yaml --seeds 1\` (engines: ${engines.join(', ')}) | ${fmt(bnxSeconds, 1)} s | ${fmt(torchSeconds / bnxSeconds, 2)}x |`,
      );
      console.log(
        `\ntarget: bnx's full paper run takes less wall time than PyTorch's: ${met ? 'met' : 'NOT met'} (${fmt(bnxSeconds, 1)} s vs ${fmt(torchSeconds, 1)} s)`,
      );
    }
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}
