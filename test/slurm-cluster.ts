/**
 * A real one-node Slurm cluster for tests, run by scripts/slurm-cluster.sh.
 *
 *   const c = await startSlurmCluster();
 *   if ('skip' in c) return t.skip(c.skip);
 *   try { ...sbatch with { env: c.env }... } finally { await c.stop(); }
 *
 * Needs root, and apt-get the first time (it installs Debian's slurm-wlm and munge: ~20 s);
 * otherwise it answers { skip } with the reason. Any other failure (the daemons did not come up)
 * throws, with the script's stderr (which holds the tails of the daemons' logs).
 * There is no slurmdbd, so no sacct: jobs are followed with squeue / scontrol show job, and
 * finished ones read from the job-completion log (readJobComp).
 * Each cluster has its own ports: slurmctld on `port` (default: BNX_SLURM_PORT, else 6917), slurmd
 * on the next one. Test files that run clusters at the same time give them different ports
 * (slurmPort(offset)); the script never stops a cluster whose owner (this process) is running.
 */
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { ROOT, tmpDir } from './helpers.js';

const run = promisify(execFile);

export const SLURM_SCRIPT = path.join(ROOT, 'scripts', 'slurm-cluster.sh');

export interface SlurmCluster {
  /** process.env with SLURM_CONF set: pass it to every sbatch/squeue/scontrol/scancel. */
  env: NodeJS.ProcessEnv;
  /** The cluster's directory: slurm.conf, logs, state. */
  dir: string;
  /** DIR/slurm.conf. */
  conf: string;
  /** slurmctld's port (slurmd's is the next). */
  port: number;
  /** DIR/jobcomp.log: one line per finished job, array task or requeued run. */
  jobCompLog: string;
  /** Stops the daemons (cancelling jobs first); safe to call more than once. */
  stop(): Promise<void>;
}

/**
 * A test file's slurmctld port: BNX_SLURM_PORT (default 6917) plus `offset`, an even number that
 * each test file running a cluster picks for itself (slurmd takes the port after).
 */
export function slurmPort(offset = 0): number {
  const base = Number(process.env.BNX_SLURM_PORT ?? 6917);
  return (Number.isInteger(base) ? base : 6917) + offset;
}

/** Starts a cluster in a fresh temp dir (or `dir`); { skip } when this machine cannot run one. */
export async function startSlurmCluster(
  opts: { dir?: string; port?: number } = {},
): Promise<SlurmCluster | { skip: string }> {
  if (process.env.BNX_SKIP_SLURM) return { skip: 'BNX_SKIP_SLURM is set' };
  if (process.platform !== 'linux') return { skip: 'Slurm tests run on Linux only' };
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    return { skip: 'the Slurm cluster needs root (SlurmUser=root, munged and slurmd run as root)' };
  }
  const dir = opts.dir ?? tmpDir('bnx-slurm-');
  const port = opts.port ?? slurmPort();
  // This process owns the cluster: while it runs, no other `up` stops it.
  const env = { ...process.env, BNX_SLURM_PORT: String(port), BNX_SLURM_OWNER_PID: String(process.pid) };
  let stdout: string;
  try {
    // The first run installs Slurm with apt-get: allow for a slow mirror.
    ({ stdout } = await run('bash', [SLURM_SCRIPT, 'up', dir], { encoding: 'utf8', env, timeout: 15 * 60_000 }));
  } catch (err) {
    const e = err as { code?: number | string; stderr?: string };
    const stderr = (e.stderr ?? '').trim();
    // Exit 2: cannot run here at all (not root, no apt-get).
    if (e.code === 2) return { skip: stderr.split('\n').at(-1) ?? 'scripts/slurm-cluster.sh cannot run here' };
    throw new Error(`scripts/slurm-cluster.sh up ${dir} failed (exit ${e.code}):\n${stderr}`);
  }
  const m = /^SLURM_CONF=(.+)$/m.exec(stdout);
  if (!m) throw new Error(`scripts/slurm-cluster.sh up printed no SLURM_CONF line: ${JSON.stringify(stdout)}`);
  const conf = m[1];
  // A test process that dies without calling stop() still takes its daemons down with it.
  const onExit = () => {
    spawnSync('bash', [SLURM_SCRIPT, 'down', dir], { stdio: 'ignore', env, timeout: 60_000 });
  };
  process.once('exit', onExit);
  let stopped: Promise<void> | undefined;
  return {
    env: { ...process.env, SLURM_CONF: conf },
    dir,
    conf,
    port,
    jobCompLog: path.join(dir, 'jobcomp.log'),
    stop() {
      stopped ??= (async () => {
        process.removeListener('exit', onExit);
        await run('bash', [SLURM_SCRIPT, 'down', dir], { encoding: 'utf8', env, timeout: 120_000 });
      })();
      return stopped;
    },
  };
}

/** One line of the jobcomp/filetxt log (Slurm 22.05). */
export interface JobCompRecord {
  /** JobId: an array task's own job id (the last task to run carries the array's id). */
  jobId: number;
  /** ArrayJobId, for array tasks only. */
  arrayJobId?: number;
  /** ArrayTaskId, for array tasks only. */
  arrayTaskId?: number;
  /**
   * JobState: COMPLETED, FAILED, CANCELLED, TIMEOUT, NODE_FAIL, OUT_OF_MEMORY... and PENDING for
   * a run that was requeued (its rerun writes another line for the same task later).
   */
  state: string;
  /** ExitCode as "code:signal", e.g. "0:0", "143:0", "0:15". */
  exitCode: string;
  /** Every Key=Value of the line. */
  fields: Record<string, string>;
}

/**
 * Parses one jobcomp line: `JobId=2 UserId=root(0) ... JobState=COMPLETED ... ArrayJobId=1
 * ArrayTaskId=0 DerivedExitCode=0:0 ExitCode=0:0 `. Values are not quoted; a value runs to the
 * next ` Key=` (so a job name containing " Word=" would be split wrongly).
 */
export function parseJobCompLine(line: string): JobCompRecord {
  const fields: Record<string, string> = {};
  const re = /(?:^|\s)([A-Za-z][\w/:]*)=/g;
  const keys: { key: string; start: number; valueStart: number }[] = [];
  for (let m; (m = re.exec(line));) keys.push({ key: m[1], start: m.index, valueStart: m.index + m[0].length });
  keys.forEach((k, i) => {
    fields[k.key] = line.slice(k.valueStart, i + 1 < keys.length ? keys[i + 1].start : undefined).trim();
  });
  const int = (v: string | undefined) => (v === undefined || v === '' ? undefined : Number.parseInt(v, 10));
  const jobId = int(fields.JobId);
  if (jobId === undefined || !fields.JobState) throw new Error(`not a jobcomp line: ${line}`);
  return {
    jobId,
    arrayJobId: int(fields.ArrayJobId),
    arrayTaskId: int(fields.ArrayTaskId),
    state: fields.JobState,
    exitCode: fields.ExitCode ?? '',
    fields,
  };
}

/** All records of a jobcomp log, in the order written ([] when the file does not exist yet). */
export function readJobComp(file: string): JobCompRecord[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map(parseJobCompLine);
}

/** The last record of each job or array task (a requeued task's PENDING line gives way to its rerun's). */
export function lastJobCompRecords(records: JobCompRecord[]): JobCompRecord[] {
  const last = new Map<string, JobCompRecord>();
  for (const r of records) last.set(r.arrayJobId !== undefined ? `${r.arrayJobId}_${r.arrayTaskId}` : `${r.jobId}`, r);
  return [...last.values()];
}

/** Runs a Slurm client command with the cluster's env; resolves to its stdout, rejects on failure. */
export async function slurm(cluster: { env: NodeJS.ProcessEnv }, cmd: string, args: string[]): Promise<string> {
  const { stdout } = await run(cmd, args, { env: cluster.env, encoding: 'utf8', timeout: 60_000 });
  return stdout;
}

/** sbatch --parsable ARGS: the job id. */
export async function sbatch(cluster: { env: NodeJS.ProcessEnv }, args: string[]): Promise<number> {
  const out = await slurm(cluster, 'sbatch', ['--parsable', ...args]);
  return Number.parseInt(out.trim().split(';')[0], 10);
}

/** `scontrol show job -o` of a job or array (one record per task), as Key=Value maps. */
export async function showJob(
  cluster: { env: NodeJS.ProcessEnv },
  jobId: number | string,
): Promise<Record<string, string>[]> {
  let out: string;
  try {
    out = await slurm(cluster, 'scontrol', ['show', 'job', '-o', String(jobId)]);
  } catch {
    return []; // "Invalid job id specified": gone (MinJobAge, 300 s, after it ended)
  }
  return out
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => parseJobCompLine(l).fields);
}

/** State of each task of a job: [{ task, jobId, state, reason, exitCode, restarts }]. */
export async function taskStates(cluster: { env: NodeJS.ProcessEnv }, jobId: number | string) {
  return (await showJob(cluster, jobId)).map((f) => ({
    task: f.ArrayTaskId !== undefined ? Number.parseInt(f.ArrayTaskId, 10) : undefined,
    jobId: Number.parseInt(f.JobId, 10),
    state: f.JobState,
    reason: f.Reason,
    exitCode: f.ExitCode,
    restarts: Number.parseInt(f.Restarts ?? '0', 10),
    // For a pending task: when it may start (a requeued task: about 120 s after the requeue).
    eligibleTime: f.EligibleTime,
    submitTime: f.SubmitTime,
  }));
}

/** Polls until `check` returns a value other than undefined; rejects after timeoutMs. */
export async function pollUntil<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 30_000,
  everyMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Waits until no task of the job is pending, running or completing (squeue shows none of it). */
export async function waitForJob(
  cluster: { env: NodeJS.ProcessEnv },
  jobId: number | string,
  timeoutMs = 60_000,
): Promise<void> {
  await pollUntil(
    `job ${jobId} to finish`,
    async () => {
      let out: string;
      try {
        out = await slurm(cluster, 'squeue', ['-h', '-r', '-j', String(jobId), '-o', '%i %T']);
      } catch {
        return true; // squeue: "Invalid job id specified": long gone
      }
      return out.trim() === '' ? true : undefined;
    },
    timeoutMs,
  );
}
