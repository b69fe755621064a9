import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { PlannedRun } from '../spec/expand.js';
import { selectShard } from '../spec/shard.js';
import { readSweepProgress, type SweepProgress } from '../store/status.js';
import { slurmLogDir, slurmScript, type JobOptions } from './jobs.js';
export { BNX_ROOT } from './jobs.js';

/**
 * `bnx run --launcher slurm`: submits a sweep as a Slurm job array (the `export-job --slurm`
 * script), and follows it from the job's task states (`scontrol show job`; `sacct` once the
 * controller has forgotten the job, where the site keeps accounting) and from the shared results
 * folder (src/store/status.ts). Also what `bnx status` asks Slurm.
 */

const run = promisify(execFile);

/** A Slurm command is missing or failed: one line saying which and why. */
export class SlurmError extends Error {
  override name = 'SlurmError';
}

/** Runs a Slurm client command (SLURM_CONF and the rest of the environment are inherited). */
async function slurm(cmd: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await run(cmd, args, { encoding: 'utf8', timeout: 60_000 });
    return stdout;
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT')
      throw new SlurmError(
        `${cmd} not found: Slurm's client commands (sbatch, scontrol, scancel) must be on PATH, on a host that can submit jobs`,
      );
    const why = (err.stderr ?? '').trim().split('\n').filter(Boolean).at(-1) ?? String(err.message).split('\n')[0];
    throw new SlurmError(`${cmd} ${args.join(' ')}: ${why}`);
  }
}

/** One array task as Slurm reports it. */
export interface SlurmTask {
  /** SLURM_ARRAY_TASK_ID: the shard it runs. */
  task: number;
  /** JobState: PENDING, RUNNING, COMPLETING, COMPLETED, FAILED, CANCELLED, TIMEOUT... */
  state: string;
  /** Why it is pending, or how it ended (None, Resources, BeginTime, NonZeroExitCode...). */
  reason: string;
  /** code:signal, e.g. 0:0, 143:0 (bnx stopped by SIGTERM), 0:15 (killed by SIGTERM). */
  exitCode: string;
  /** Times Slurm requeued it. */
  restarts: number;
  node: string;
  /** How long it has run (Slurm's [D-]HH:MM:SS). */
  runTime: string;
}

/** States after which a task does nothing more (unless requeued). */
export const ENDED_STATES: ReadonlySet<string> = new Set([
  'COMPLETED',
  'FAILED',
  'CANCELLED',
  'TIMEOUT',
  'OUT_OF_MEMORY',
  'NODE_FAIL',
  'BOOT_FAIL',
  'DEADLINE',
  'PREEMPTED',
]);

/** `Key=Value Key=Value ...` (scontrol -o): values are unquoted and run to the next ` Key=`. */
export function parseKeyValues(line: string): Record<string, string> {
  const fields: Record<string, string> = {};
  const re = /(?:^|\s)([A-Za-z][\w/:]*)=/g;
  const keys: { key: string; start: number; valueStart: number }[] = [];
  for (let m; (m = re.exec(line));) keys.push({ key: m[1], start: m.index, valueStart: m.index + m[0].length });
  keys.forEach((k, i) => {
    fields[k.key] = line.slice(k.valueStart, i + 1 < keys.length ? keys[i + 1].start : undefined).trim();
  });
  return fields;
}

/** Task ids of an array expression as Slurm prints it: `3`, `0-2`, `1,3-5`, `0-9:2`, `[0-5%2]`. */
export function expandTaskIds(text: string): number[] {
  const ids: number[] = [];
  for (const part of text.replace(/[[\]]/g, '').replace(/%\d+$/, '').split(',')) {
    const m = /^(\d+)(?:-(\d+)(?::(\d+))?)?$/.exec(part.trim());
    if (!m) continue;
    const [from, to, step] = [Number(m[1]), Number(m[2] ?? m[1]), Number(m[3] ?? 1)];
    for (let i = from; i <= to; i += step) ids.push(i);
  }
  return ids;
}

/** `0-2,5`: a compact array expression for sbatch --array. */
export function compactTaskIds(ids: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < ids.length;) {
    let j = i;
    while (j + 1 < ids.length && ids[j + 1] === ids[j] + 1) j++;
    parts.push(i === j ? `${ids[i]}` : `${ids[i]}-${ids[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

/**
 * The tasks of an array job, by task id, from `scontrol show job` (one record per started task,
 * one for the tasks still pending together). When the controller no longer knows the job
 * (MinJobAge after it ended), from `sacct` where the site has accounting; null when neither does.
 */
export async function jobTasks(jobId: number): Promise<SlurmTask[] | null> {
  let out: string;
  try {
    out = await slurm('scontrol', ['show', 'job', '-o', String(jobId)]);
  } catch (e) {
    if (e instanceof SlurmError && /invalid job id/i.test(e.message)) return sacctTasks(jobId);
    throw e;
  }
  const tasks: SlurmTask[] = [];
  for (const line of out.split('\n')) {
    if (!line.trim()) continue;
    const f = parseKeyValues(line);
    for (const task of f.ArrayTaskId !== undefined ? expandTaskIds(f.ArrayTaskId) : [0]) {
      tasks.push({
        task,
        state: f.JobState ?? '?',
        reason: f.Reason ?? '',
        exitCode: f.ExitCode ?? '',
        restarts: Number.parseInt(f.Restarts ?? '0', 10),
        node: f.NodeList && f.NodeList !== '(null)' ? f.NodeList : '',
        runTime: f.RunTime ?? '',
      });
    }
  }
  return tasks.sort((a, b) => a.task - b.task);
}

async function sacctTasks(jobId: number): Promise<SlurmTask[] | null> {
  let out: string;
  try {
    out = await slurm('sacct', ['-j', String(jobId), '-X', '-n', '-P', '-o', 'JobID,State,ExitCode,NodeList,Elapsed']);
  } catch {
    return null; // no accounting here ("accounting storage is disabled")
  }
  const tasks: SlurmTask[] = [];
  for (const line of out.split('\n')) {
    const [id, state, exitCode, node, elapsed] = line.split('|');
    const m = /^\d+_(.+)$/.exec(id ?? '');
    if (!m) continue;
    for (const task of expandTaskIds(m[1]))
      tasks.push({
        task,
        state: (state ?? '').split(' ')[0], // "CANCELLED by 0"
        reason: '',
        exitCode: exitCode ?? '',
        restarts: 0,
        node: node ?? '',
        runTime: elapsed ?? '',
      });
  }
  return tasks.length > 0 ? tasks.sort((a, b) => a.task - b.task) : null;
}

/** `scancel JOB`: Slurm sends every task SIGTERM (bnx marks its run interrupted) and cancels the pending ones. */
export async function cancelJob(jobId: number): Promise<void> {
  await slurm('scancel', [String(jobId)]);
}

/** The Slurm jobs whose tasks wrote into a sweep folder (their scripts and logs in `<dir>/logs`), oldest first. */
export function jobsOfFolder(dir: string): number[] {
  const logs = path.join(dir, 'logs');
  if (!fs.existsSync(logs)) return [];
  const ids = new Set<number>();
  for (const f of fs.readdirSync(logs)) {
    const m = /^slurm-(\d+)(?:_\d+\.out|\.sh)$/.exec(f);
    if (m) ids.add(Number(m[1]));
  }
  return [...ids].sort((a, b) => a - b);
}

/** `<dir>/logs/slurm-<job>_<task>.out`. */
export function taskLog(dir: string, jobId: number, task: number): string {
  return path.join(dir, 'logs', `slurm-${jobId}_${task}.out`);
}

/** The last non-empty line of a log file, read from its tail (null: no file or nothing in it). */
export function lastLogLine(file: string): string | null {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return null;
  }
  try {
    const size = fs.fstatSync(fd).size;
    const length = Math.min(size, 4096);
    const buf = Buffer.alloc(length);
    fs.readSync(fd, buf, 0, length, size - length);
    return (
      buf
        .toString('utf8')
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean)
        .at(-1) ?? null
    );
  } finally {
    fs.closeSync(fd);
  }
}

export interface Submission {
  jobId: number;
  /** The submitted script, kept as `<dir>/logs/slurm-<job>.sh`. */
  script: string;
  /** The array task ids submitted (the shards with runs left to train). */
  tasks: number[];
}

/**
 * Writes the array script into `<sweep>/logs/`, submits the given shards with sbatch (`extraArgs`
 * go to sbatch as they are: they override the script's #SBATCH lines), and keeps the script as
 * `logs/slurm-<job>.sh`, where `bnx status` finds the job.
 */
export async function submitArray(o: JobOptions, tasks: number[], extraArgs: string[]): Promise<Submission> {
  const logs = slurmLogDir(o);
  fs.mkdirSync(logs, { recursive: true });
  const draft = path.join(logs, `.slurm-submit-${process.pid}.sh`);
  const array = tasks.length === o.shards ? [] : [`--array=${compactTaskIds(tasks)}`];
  fs.writeFileSync(draft, slurmScript(o), { mode: 0o755 });
  let out: string;
  try {
    out = await slurm('sbatch', ['--parsable', ...array, ...extraArgs, draft]);
  } catch (e) {
    fs.rmSync(draft, { force: true });
    throw e;
  }
  // --parsable: "<job id>" or "<job id>;<cluster>".
  const jobId = Number.parseInt(out.trim().split(';')[0], 10);
  if (!Number.isInteger(jobId)) throw new SlurmError(`sbatch printed no job id: ${JSON.stringify(out.trim())}`);
  const script = path.join(logs, `slurm-${jobId}.sh`);
  fs.renameSync(draft, script);
  return { jobId, script, tasks };
}

/** What the follower knows after each look at the job and the folder. */
export interface FollowState {
  /** null: Slurm no longer knows the job (and there is no accounting to ask). */
  tasks: SlurmTask[] | null;
  progress: SweepProgress;
  /** No task pending or running, and none about to be requeued: the job is over. */
  ended: boolean;
}

export interface FollowOptions {
  jobId: number;
  dir: string;
  /** The grid; task i trains shard i of `shards`. */
  runs: PlannedRun[];
  shards: number;
  /** Called after every look. */
  onUpdate(state: FollowState): void;
  /** One line about what the follower did (a task requeued). */
  onNote(line: string): void;
  /** True once the job is being cancelled: nothing is requeued any more. */
  cancelled(): boolean;
  /** Between looks (default 1 s). */
  pollMs?: number;
  /** Requeues of one task by the follower, at most (default 3). */
  maxRequeues?: number;
}

/**
 * Follows an array job until its tasks have ended. A task that bnx ended on SIGTERM (exit 143:
 * its run marked interrupted) without being cancelled, e.g. `scancel --signal=TERM --batch` or a
 * time-limit warning signal, with runs of its shard left to train, is requeued (`scontrol
 * requeue`) and released at once (`scontrol update StartTime=now`; a requeued task would
 * otherwise wait about two minutes), up to `maxRequeues` times. Tasks that Slurm requeues itself
 * (preemption, `scontrol requeue`) are left to Slurm. Resolves with the last state.
 */
export async function followArray(o: FollowOptions): Promise<FollowState> {
  const ids = o.runs.map((r) => r.id);
  const planned = new Map(o.runs.map((r) => [r.id, r.config.train.steps ?? null]));
  const shardOf = (task: number) => selectShard(o.runs, { index: task, count: o.shards }).map((r) => r.id);
  const maxRequeues = o.maxRequeues ?? 3;
  const requeues = new Map<number, number>();
  /** Tasks requeued by this follower and not yet released. */
  const release = new Set<number>();
  /** Looks at the job that failed in a row: slurmctld can be busy for a while on a real cluster. */
  let failures = 0;
  let tasks: SlurmTask[] | null = null;
  for (;;) {
    try {
      tasks = await jobTasks(o.jobId);
      failures = 0;
    } catch (e) {
      if (!(e instanceof SlurmError) || ++failures >= 30) throw e;
      if (failures === 1) o.onNote(`cannot ask Slurm about job ${o.jobId} (${e.message}); trying again`);
      await new Promise((r) => setTimeout(r, o.pollMs ?? 1000));
      continue;
    }
    const progress = readSweepProgress(o.dir, ids, planned);
    if (tasks && !o.cancelled()) {
      const finished = new Set(
        progress.runs.filter((r) => r.state === 'completed' || r.state === 'diverged').map((r) => r.id),
      );
      for (const t of tasks) {
        if (release.has(t.task) && t.state !== 'FAILED') {
          if (t.state === 'PENDING')
            await slurm('scontrol', ['update', `JobId=${o.jobId}_${t.task}`, 'StartTime=now']).catch((e: Error) =>
              o.onNote(`could not release requeued task ${t.task}: ${e.message}`),
            );
          release.delete(t.task);
        }
        const n = requeues.get(t.task) ?? 0;
        if (t.state !== 'FAILED' || t.exitCode !== '143:0' || release.has(t.task)) continue;
        if (n >= maxRequeues || shardOf(t.task).every((id) => finished.has(id))) continue;
        requeues.set(t.task, n + 1);
        try {
          await slurm('scontrol', ['requeue', `${o.jobId}_${t.task}`]);
          release.add(t.task);
          o.onNote(
            `task ${t.task} was stopped by SIGTERM (exit 143) with runs left: requeued (${n + 1} of at most ${maxRequeues}); it resumes them`,
          );
        } catch (e) {
          o.onNote(`task ${t.task} was stopped by SIGTERM (exit 143); requeueing it failed: ${(e as Error).message}`);
        }
      }
    }
    const active = tasks?.some((t) => !ENDED_STATES.has(t.state)) ?? false;
    const state: FollowState = { tasks, progress, ended: !active && release.size === 0 };
    o.onUpdate(state);
    if (state.ended) return state;
    await new Promise((r) => setTimeout(r, o.pollMs ?? 1000));
  }
}
