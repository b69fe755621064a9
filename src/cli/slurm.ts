import path from 'node:path';
import type { PlannedRun } from '../spec/expand.js';
import { selectShard } from '../spec/shard.js';
import type { Spec } from '../spec/load.js';
import { InputError } from '../util/errors.js';
import { BNX_VERSION } from '../util/version.js';
import { readSweepProgress, type LiveState } from '../store/status.js';
import { registerSweep, writeSweepSummary, type Invocation } from '../store/sweep-folder.js';
import { slurmLogDir, type JobOptions } from '../launch/jobs.js';
import { BNX_ROOT, cancelJob, followArray, submitArray, type FollowState } from '../launch/slurm.js';
import { finishLine } from './progress.js';
import { jobBlock, LiveLine, progressLine, runsLine, shortPath, taskCounts } from './sweep-view.js';

/** `bnx run --launcher slurm`'s own options. */
export interface SlurmRunOptions {
  shards?: string;
  partition?: string;
  time?: string;
  cpusPerTask?: string;
  mem?: string;
  sbatchArg: string[];
  wait: boolean;
}

/** The `bnx run` options that each array task passes on to its own `bnx run`. */
export interface PassedOn {
  backend: string;
  fuse: boolean;
  tensorboard?: string;
}

const ENDED: ReadonlySet<LiveState> = new Set(['completed', 'diverged']);

/** A value that goes into an #SBATCH line: one word. */
function word(flag: string, v: string | undefined): string | undefined {
  if (v !== undefined && !/^[^\s'"\\]+$/.test(v))
    throw new InputError(`${flag} ${v}`, 'expected one word without spaces or quotes (as sbatch takes it)');
  return v;
}

/**
 * Submits the sweep as a Slurm job array and follows it to the end: one progress line over the
 * whole sweep, each run's result as it lands, then the summary as a local `bnx run` prints it.
 * Returns the exit code: 0 only if every run completed or diverged; 130 after Ctrl-C (which
 * cancels the job).
 */
export async function runOnSlurm(
  specFile: string,
  spec: Spec,
  runs: PlannedRun[],
  dir: string,
  invocation: Invocation,
  o: SlurmRunOptions & PassedOn & { out: string; set: string[] },
): Promise<number> {
  let shards = runs.length;
  if (o.shards !== undefined) {
    const n = Number(o.shards);
    if (!Number.isInteger(n) || n < 1)
      throw new InputError(`--shards ${o.shards}`, `expected an integer from 1 to the number of runs (${runs.length})`);
    shards = Math.min(n, runs.length);
  }
  let cpus: number | undefined;
  if (o.cpusPerTask !== undefined) {
    cpus = Number(o.cpusPerTask);
    if (!Number.isInteger(cpus) || cpus < 1)
      throw new InputError(`--cpus-per-task ${o.cpusPerTask}`, 'expected a positive integer');
  }
  const job: JobOptions = {
    spec: path.resolve(specFile),
    specText: invocation.specText,
    name: spec.name,
    sets: o.set,
    shards,
    parallelism: shards,
    out: path.resolve(o.out),
    cpus,
    memory: word('--mem', o.mem),
    time: word('--time', o.time),
    partition: word('--partition', o.partition),
    image: '',
    pvc: '',
    workdir: BNX_ROOT,
    sweepDir: path.resolve(dir),
    node: process.execPath,
    runArgs: [
      '--sweep-dir',
      path.resolve(dir),
      ...(o.backend !== 'tensorflow' ? ['--backend', o.backend] : []),
      ...(o.fuse ? [] : ['--no-fuse']),
      ...(o.tensorboard !== undefined ? ['--tensorboard', path.resolve(o.tensorboard)] : []),
    ],
  };

  // The grid is registered once, here: the array tasks then only read sweep.json.
  registerSweep(dir, runs, invocation, { always: true });
  const planned = new Map(runs.map((r) => [r.id, r.config.train.steps ?? null]));
  const before = readSweepProgress(
    dir,
    runs.map((r) => r.id),
    planned,
  );
  before.runs.forEach((r, i) => {
    if (ENDED.has(r.state))
      console.log(`[${i + 1}/${runs.length}] ${r.id}: ${r.state}, skipped (--new trains into a fresh folder)`);
  });
  const done = new Set(before.runs.filter((r) => ENDED.has(r.state)).map((r) => r.id));
  const tasks = Array.from({ length: shards }, (_, t) => t).filter((t) =>
    selectShard(runs, { index: t, count: shards }).some((r) => !done.has(r.id)),
  );
  const rel = shortPath;
  if (tasks.length === 0) {
    console.log(`results: ${dir}${path.sep}  summary: ${writeSweepSummary(dir)}`);
    return 0;
  }

  const sub = await submitArray(job, tasks, o.sbatchArg);
  console.log(
    `bnx ${BNX_VERSION}: ${runs.length - done.size} run(s) of ${spec.name} as Slurm job ${sub.jobId}: ` +
      `${tasks.length} array task(s), each a --shard i/${shards} of the grid, into ${rel(dir)}${path.sep}`,
  );
  console.log(`task logs: ${rel(slurmLogDir(job))}${path.sep}slurm-${sub.jobId}_<task>.out`);
  if (!o.wait) {
    console.log(`follow it: bnx status ${rel(dir)} --watch    cancel it: scancel ${sub.jobId}`);
    return 0;
  }

  const live = new LiveLine();
  let cancelling = false;
  const onSigint = () => {
    if (cancelling) process.exit(130);
    cancelling = true;
    live.log(
      `SIGINT: asking Slurm to cancel job ${sub.jobId} (scancel ${sub.jobId}); waiting for its tasks to stop (Ctrl-C again to exit at once)`,
    );
    cancelJob(sub.jobId).catch((e: Error) => live.log(`scancel failed: ${e.message}`));
  };
  process.on('SIGINT', onSigint);
  const shown = new Map<string, string>();
  const started = runs.length - done.size;
  let last: FollowState;
  try {
    last = await followArray({
      jobId: sub.jobId,
      dir,
      runs,
      shards,
      cancelled: () => cancelling,
      onNote: (line) => live.log(`  ${line}`),
      onUpdate: (s) => {
        for (const r of s.progress.runs) {
          if (done.has(r.id) || !r.record) continue;
          // A run's result, once, when it lands (again if a requeued task trains it anew).
          const key = `${r.state}:${r.record.ended_at}`;
          if (['completed', 'diverged', 'failed', 'interrupted'].includes(r.state) && shown.get(r.id) !== key) {
            shown.set(r.id, key);
            live.log(
              r.orphaned ? `  interrupted ${r.id} after step ${r.step} (its task is gone)` : finishLine(r.record),
            );
          }
        }
        const key = `${runsLine({ ...s.progress, stepsDone: 0, stepsTotal: 0, unknownLength: 0, etaS: null })} ${s.tasks ? taskCounts(s.tasks) : ''}`;
        live.set(progressLine(sub.jobId, s.progress, s.tasks), key);
      },
    });
  } finally {
    process.off('SIGINT', onSigint);
    live.done();
  }

  for (const line of jobBlock(dir, sub.jobId, last.tasks).slice(1)) if (!/: completed;/.test(line)) console.log(line);
  const summary = writeSweepSummary(dir);
  console.log(`results: ${dir}${path.sep}  summary: ${summary}`);
  if (o.tensorboard !== undefined) console.log(`tensorboard --logdir ${o.tensorboard}`);
  const left = last.progress.runs.filter((r) => !ENDED.has(r.state));
  if (cancelling) {
    console.error(`cancelled: job ${sub.jobId}; the same command resumes the ${left.length} unfinished run(s)`);
    return 130;
  }
  if (left.length > 0) {
    const failed = left.filter((r) => r.state === 'failed').length;
    console.error(
      `${left.length} of ${started} run(s) did not finish (${failed} failed); see \`bnx status ${rel(dir)}\` and the task logs; the same command reruns them`,
    );
    return 1;
  }
  return 0;
}
