import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command, Option } from 'commander';
import { InputError } from '../util/errors.js';
import { parseShard, selectShard } from '../spec/shard.js';
import { seedRange } from '../spec/load.js';
import type { RunStatus } from '../store/runs.js';
import { specDir } from '../store/runs.js';
import { parseSlurmTime } from '../launch/jobs.js';
import { checkSweepFolder } from '../store/sweep-index.js';
import { setResultsRoot } from '../util/crash.js';
import type { BackendName } from '../train/backend.js';
import { BNX_VERSION } from '../util/version.js';
import type { PlannedRun } from '../spec/expand.js';
import type { Invocation } from '../store/sweep-folder.js';
import { collect, planFrom, SEEDS_HELP } from './plan.js';
import { makeReporter } from './progress.js';

const STATES: readonly RunStatus[] = ['pending', 'running', 'completed', 'failed', 'diverged', 'interrupted'];

interface RunOptions {
  set: string[];
  seeds?: string;
  out: string;
  backend: BackendName;
  force: boolean;
  rerun?: string;
  new: boolean;
  shard?: string;
  tensorboard?: string;
  fuse: boolean;
  workers: string;
  sweepDir?: string;
  launcher: 'local' | 'slurm';
  shards?: string;
  partition?: string;
  time?: string;
  cpusPerTask?: string;
  mem?: string;
  sbatchArg: string[];
  wait: boolean;
}

/** Options that only `--launcher slurm` takes, by flag. */
const SLURM_ONLY: [keyof RunOptions, string][] = [
  ['shards', '--shards'],
  ['partition', '--partition'],
  ['time', '--time'],
  ['cpusPerTask', '--cpus-per-task'],
  ['mem', '--mem'],
];

/** Checks that the Slurm options come with --launcher slurm, and the local-only ones without it. */
function checkLauncherOptions(opts: RunOptions): void {
  if (opts.launcher !== 'slurm') {
    for (const [key, flag] of SLURM_ONLY)
      if (opts[key] !== undefined) throw new InputError(flag, 'is an option of --launcher slurm');
    if (opts.sbatchArg.length > 0) throw new InputError('--sbatch-arg', 'is an option of --launcher slurm');
    if (!opts.wait) throw new InputError('--no-wait', 'is an option of --launcher slurm');
    return;
  }
  const local: [boolean, string, string][] = [
    [
      opts.shard !== undefined,
      '--shard',
      'the launcher gives each array task its shard; choose how many with --shards N',
    ],
    [
      opts.workers !== 'auto',
      '--workers',
      'each array task trains its shard in one process; choose how many tasks with --shards N',
    ],
    [
      opts.force || opts.rerun !== undefined,
      opts.force ? '--force' : '--rerun',
      'a requeued task must resume its shard, not retrain it: train again into a fresh folder with --new',
    ],
    [opts.sweepDir !== undefined, '--sweep-dir', 'is set by the launcher itself'],
  ];
  for (const [given, flag, why] of local) if (given) throw new InputError(`${flag} with --launcher slurm`, why);
}

function parseRerun(text: string): Set<RunStatus> {
  const states = text.split(',').map((s) => s.trim());
  for (const s of states) {
    if (!(STATES as readonly string[]).includes(s))
      throw new InputError(`--rerun ${text}`, `unknown state "${s}"; allowed: ${STATES.join(', ')}`);
  }
  return new Set(states as RunStatus[]);
}

/** `<out>/<name>-2`, `-3`, ...: the first folder name not taken. */
function freshDir(out: string, name: string): string {
  for (let n = 2; ; n++) {
    const dir = specDir(out, `${name}-${n}`);
    if (!fs.existsSync(dir)) return dir;
  }
}

/**
 * Below this many training steps in all, `--workers auto` trains in one process: starting a worker
 * (Node, TensorFlow, the dataset) costs about a second, more than a sweep this small gains from a
 * second core (measured: quick.yaml, 2 runs of 300 steps, 2.7 s in one process, 3.2 s in two).
 */
const AUTO_WORKERS_MIN_STEPS = 5000;

/**
 * `--workers N|auto`: 1 trains in this process; more split the grid into that many shards (at most
 * one per run). `auto` (the default): one per core, at most one per run; one process for a sweep of
 * fewer than AUTO_WORKERS_MIN_STEPS steps in all, or with `--shard` (a shard is one worker's slice
 * already). The numbers are the same however many workers train them.
 */
function parseWorkers(opts: RunOptions, runs: PlannedRun[]): number {
  if (opts.workers === 'auto') {
    // Runs counted in epochs are taken as long: their step count needs the dataset's size.
    const steps = runs.reduce((sum, r) => sum + (r.config.train.steps ?? Infinity), 0);
    return opts.shard !== undefined || steps < AUTO_WORKERS_MIN_STEPS
      ? 1
      : Math.min(os.availableParallelism(), runs.length);
  }
  const n = Number(opts.workers);
  if (!Number.isInteger(n) || n < 1 || n > 64)
    throw new InputError(`--workers ${opts.workers}`, 'must be auto or an integer from 1 to 64');
  if (n > 1 && opts.shard !== undefined)
    throw new InputError(
      `--workers ${opts.workers}`,
      'the workers are shards of the grid already; give --shard or --workers, not both',
    );
  return Math.min(n, Math.max(runs.length, 1));
}

/** What sweep.json records of this command. */
/** The --set overrides, with --seeds N as the override it stands for (seed=1,...,N). */
function overridesOf(opts: RunOptions): string[] {
  return opts.seeds === undefined ? opts.set : [...opts.set, `seed=${seedRange(Number(opts.seeds)).join(',')}`];
}

function invocationOf(specFile: string, opts: RunOptions): Invocation {
  return {
    spec: path.resolve(specFile),
    // loadSpec read it a moment ago and checked its size; sweep.json keeps each distinct text once.
    specText: fs.readFileSync(specFile, 'utf8'),
    overrides: overridesOf(opts),
    shard: opts.shard ?? null,
  };
}

export function registerRunCommand(program: Command): void {
  program
    .command('run')
    .description(
      'train every run of a spec (grid x --set sweeps) into <out>/<name>/; safe to rerun: completed runs are skipped',
    )
    .argument('<spec>', 'experiment spec (YAML)')
    .option(
      '--set <key=value>',
      'override a config key; a comma list sweeps it (train.lr=0.1,0.5,2); repeatable',
      collect,
      [],
    )
    .option('--seeds <n>', SEEDS_HELP)
    .option('--out <dir>', 'results root: runs go to <dir>/<spec name>/<run id>/', 'results')
    .addOption(
      new Option('--backend <name>', 'training backend; cpu is the slow pure-JS backend, never chosen silently')
        .choices(['tensorflow', 'cpu'])
        .default('tensorflow'),
    )
    .option('--force', 'rerun every run, whatever its state', false)
    .option(
      '--rerun <states>',
      `rerun only runs in these states (comma list of ${STATES.join(', ')}); default: pending, interrupted, failed`,
    )
    .option('--new', 'write to a fresh folder <out>/<name>-N instead of adding to <out>/<name>', false)
    .option(
      '--shard <I/N>',
      'run only slice I of N of the grid (0-based; for Slurm arrays and Kubernetes Indexed Jobs)',
    )
    .option(
      '--no-fuse',
      'train every run alone (by default, graph-engine runs with the same data and schedule are stepped together by one engine; the numbers are the same either way)',
    )
    .option(
      '--tensorboard <dir>',
      'also write TensorBoard event files, into <dir>/<spec name>/<run id>/ (run ids unchanged)',
    )
    .option(
      '--workers <n>',
      'train in N processes, each a --shard of the grid (auto: one per core and at most one per run, one process for sweeps under 5,000 steps; the numbers are the same either way)',
      'auto',
    )
    .addOption(
      new Option(
        '--sweep-dir <dir>',
        'the sweep folder itself (set by --new for its workers, and by --launcher slurm)',
      ).hideHelp(),
    )
    .addOption(
      new Option(
        '--launcher <name>',
        'where to train: local (this machine) or slurm (submit a job array with sbatch and follow it to the end)',
      )
        .choices(['local', 'slurm'])
        .default('local'),
    )
    .option('--shards <n>', 'slurm: array tasks, each a --shard of the grid (default: one per run)')
    .option('--partition <name>', "slurm: the partition (default: the cluster's)")
    .option('--time <limit>', "slurm: time limit per task (default: the partition's)", parseSlurmTime)
    .option(
      '--cpus-per-task <n>',
      "slurm: cores per task, for TensorFlow's inter-op pool (default: the cluster's, usually 1)",
    )
    .option('--mem <size>', "slurm: memory per task, e.g. 4G (default: the cluster's)")
    .option(
      '--sbatch-arg <arg>',
      'slurm: one more sbatch argument, as is (--sbatch-arg=--account=lab); repeatable',
      collect,
      [],
    )
    .option('--no-wait', 'slurm: submit, print the job id and how to follow it, and return')
    .action(async (specFile: string, opts: RunOptions) => {
      checkLauncherOptions(opts);
      const { runs, spec } = planFrom(specFile, opts.set, opts.seeds);
      const rerun = opts.force ? new Set(STATES) : opts.rerun !== undefined ? parseRerun(opts.rerun) : undefined;
      const shard = opts.shard !== undefined ? parseShard(opts.shard) : null;
      if (fs.existsSync(opts.out) && !fs.statSync(opts.out).isDirectory()) {
        throw new InputError(`--out ${opts.out}`, 'exists and is not a directory; give a directory for results');
      }
      if (
        opts.tensorboard !== undefined &&
        fs.existsSync(opts.tensorboard) &&
        !fs.statSync(opts.tensorboard).isDirectory()
      ) {
        throw new InputError(
          `--tensorboard ${opts.tensorboard}`,
          'exists and is not a directory; give a directory for event files',
        );
      }
      const mine = shard ? selectShard(runs, shard) : runs;
      const tensorboard = opts.tensorboard !== undefined || mine.some((r) => r.config.train.tensorboard);
      if (tensorboard && opts.backend === 'cpu') {
        const where =
          opts.tensorboard !== undefined ? `--tensorboard ${opts.tensorboard}` : `${specFile}: train.tensorboard`;
        throw new InputError(
          where,
          'TensorBoard event files are written by the native tensorflow backend; drop --backend cpu',
        );
      }
      const dir = opts.sweepDir ?? (opts.new ? freshDir(opts.out, spec.name) : specDir(opts.out, spec.name));
      // Refusals (a folder that is a file, a damaged sweep.json or run.json, a changed grid point)
      // come before TensorFlow loads, before a job is submitted and before anything is written:
      // one line, nothing else.
      if (mine.length > 0) checkSweepFolder(dir, mine);
      setResultsRoot(opts.out);
      if (opts.launcher === 'slurm') {
        const { runOnSlurm } = await import('./slurm.js');
        // The array tasks plan the grid again from --set: --seeds goes to them as its override.
        process.exitCode = await runOnSlurm(specFile, spec, runs, dir, invocationOf(specFile, opts), {
          ...opts,
          set: overridesOf(opts),
        });
        return;
      }
      const workers = parseWorkers(opts, mine);
      if (workers > 1) {
        console.log(
          `bnx ${BNX_VERSION}: ${mine.length} run(s) of ${spec.name} in ${workers} worker processes (--shard i/${workers} each)`,
        );
        const { runWorkers, workerArgs } = await import('../launch/workers.js');
        const { registerSweep, writeSweepSummary } = await import('../store/sweep-folder.js');
        // The grid is registered here, once (the workers, shards of it, then only read sweep.json);
        // with --new, this also takes the fresh folder for every worker.
        registerSweep(dir, mine, invocationOf(specFile, opts), { always: true });
        process.exitCode = await runWorkers(workerArgs(process.argv.slice(2), opts.new ? dir : null), workers);
        console.log(`results: ${dir}${path.sep}  summary: ${writeSweepSummary(dir)}`);
        return;
      }
      const { describeBackend, initBackend } = await import('../train/backend.js');
      const { runSweep } = await import('../store/sweep.js');
      const backend = await initBackend(opts.backend);
      if (backend.backend === 'cpu') {
        console.error(
          'WARNING: training on the pure-JS cpu backend (--backend cpu), not TensorFlow: expect it to be 10-100x slower.',
        );
      }
      const shardText = shard ? ` (shard ${shard.index}/${shard.count}: ${mine.length} of ${runs.length})` : '';
      console.log(
        `bnx ${BNX_VERSION}: ${mine.length} run(s) of ${spec.name}${shardText} on ${describeBackend(backend)}`,
      );
      if (mine.length === 0) return;

      // Ctrl-C (or a scheduler's SIGTERM) stops after the current step: the run is marked
      // interrupted and a rerun starts it again. A second Ctrl-C exits at once.
      let stopSignal: NodeJS.Signals | null = null;
      const onSignal = (signal: NodeJS.Signals) => {
        if (stopSignal) process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
        stopSignal = signal;
        // Progress, on stdout with the bar: stderr keeps the one line that says how the sweep ended.
        process.stdout.write(`\n${signal}: stopping after this step (again to exit at once)\n`);
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      const result = await runSweep(mine, {
        out: opts.out,
        dir,
        backend,
        rerun,
        reporter: makeReporter(),
        shouldStop: () => stopSignal !== null,
        fuse: opts.fuse,
        tensorboard: opts.tensorboard,
        invocation: invocationOf(specFile, opts),
      });
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      const summaryText = result.summaryWritten
        ? `summary: ${result.summary}`
        : result.summaryFault
          ? 'summary.csv: not written (below)'
          : "summary.csv: written when the folder's last run ends";
      console.log(`results: ${result.dir}${path.sep}  ${summaryText}`);
      if (tensorboard) console.log(`tensorboard --logdir ${opts.tensorboard ?? result.dir}`);
      // How the sweep ended, in one line on stderr (each run's outcome is on stdout above).
      const summaryNote = result.summaryFault
        ? `summary.csv not written: ${result.summaryFault} (each run's own files are as reported above; the next bnx run in this folder rewrites the summary)`
        : null;
      let ending: string | null = null;
      if (result.interrupted) {
        ending = 'interrupted: rerun the same command to finish the sweep';
        process.exitCode = stopSignal === 'SIGTERM' ? 143 : 130;
      } else if (result.failed > 0) {
        ending = `${result.failed} run(s) failed, each named above with its cause; the same command reruns them`;
        process.exitCode = 1;
      } else if (summaryNote) {
        process.exitCode = 1;
      }
      const line = [ending, summaryNote].filter(Boolean).join('; ');
      if (line) console.error(`bnx: ${line}`);
    });
}
