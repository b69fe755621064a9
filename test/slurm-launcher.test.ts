import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { inspectLock } from '../src/store/lock.js';
import { BNX, ROOT, tmpDir, writeSpec } from './helpers.js';
import {
  lastJobCompRecords,
  pollUntil,
  readJobComp,
  slurm,
  slurmPort,
  startSlurmCluster,
  taskStates,
  type SlurmCluster,
} from './slurm-cluster.js';

/**
 * `bnx run --launcher slurm` against a live one-node Slurm (scripts/slurm-cluster.sh, its own
 * ports: BNX_SLURM_PORT + 2): the sweep's results equal a plain local run's, byte for byte,
 * also when Slurm stops tasks mid-run (requeue; SIGTERM to the batch script).
 */

// 3 learning rates x none/BN, 300 steps: each array task trains its two runs together in a second or two.
const SPEC = `name: lrbn
seed: 3
data:
  dataset: synthetic
  synthetic: { features: 8, classes: 3, train_size: 300, test_size: 90, noise: 0.5 }
  val_size: 60
model:
  hidden: [16]
train:
  batch_size: 20
  steps: 300
  eval_every: 100
  log_every: 10
grid:
  train.lr: [0.05, 0.2, 0.5]
  model.norm: [none, batch]
`;

interface Cli {
  child: ChildProcess;
  done: Promise<{ code: number | null; stdout: string; stderr: string }>;
  stdout(): string;
}

/** Starts the real bnx with the cluster's SLURM_CONF. */
function start(cluster: SlurmCluster, args: string[]): Cli {
  const child = spawn(process.execPath, [BNX, ...args], { cwd: ROOT, env: cluster.env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return {
    child,
    done: new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr }))),
    stdout: () => stdout,
  };
}

const runDirs = (sweep: string) =>
  fs
    .readdirSync(sweep)
    .filter((f) => fs.existsSync(path.join(sweep, f, 'run.json')))
    .sort();

/** Every run's metrics.csv equals the reference run's, byte for byte. */
function assertSameBytes(sweep: string, reference: string): void {
  const ids = runDirs(reference);
  assert.equal(ids.length, 6);
  assert.deepEqual(runDirs(sweep), ids);
  for (const id of ids) {
    const run = JSON.parse(fs.readFileSync(path.join(sweep, id, 'run.json'), 'utf8'));
    assert.equal(run.status, 'completed', id);
    assert.ok(
      fs
        .readFileSync(path.join(sweep, id, 'metrics.csv'))
        .equals(fs.readFileSync(path.join(reference, id, 'metrics.csv'))),
      `${id}: metrics.csv differs from the local run's`,
    );
  }
}

/** Data rows of a run's metrics.csv. */
function rows(runDir: string): number {
  try {
    return fs.readFileSync(path.join(runDir, 'metrics.csv'), 'utf8').split('\n').length - 2;
  } catch {
    return 0;
  }
}

/**
 * A task training mid-run, frozen (SIGSTOP to its bnx process, named by the run's lock) so that
 * Slurm's signal reaches it before it ends, whatever the machine's speed: its task id and pid.
 */
async function freezeTaskMidRun(
  sweep: string,
  ids: string[],
  except: number[],
): Promise<{ task: number; pid: number }> {
  return pollUntil(
    'an array task mid-run',
    async () => {
      for (const [i, id] of ids.entries()) {
        const task = i % 3; // --shard i/3 takes every third run of the grid
        if (except.includes(task)) continue;
        const lock = inspectLock(path.join(sweep, id, '.lock'));
        if (lock.state !== 'held' || rows(path.join(sweep, id)) < 2) continue;
        process.kill(lock.owner.pid, 'SIGSTOP');
        const record = JSON.parse(fs.readFileSync(path.join(sweep, id, 'run.json'), 'utf8'));
        if (record.status === 'running' && rows(path.join(sweep, id)) < 31) return { task, pid: lock.owner.pid };
        process.kill(lock.owner.pid, 'SIGCONT'); // it had just ended: try another
      }
      return undefined;
    },
    60_000,
    10,
  );
}

describe('bnx run --launcher slurm on a live Slurm cluster', { timeout: 10 * 60_000 }, () => {
  let cluster: SlurmCluster | undefined;
  let skip = '';
  const dir = tmpDir('bnx-launch-');
  const spec = writeSpec(dir, SPEC);
  let reference = '';
  let ids: string[] = [];

  before(async () => {
    const c = await startSlurmCluster({ port: slurmPort(2) });
    if ('skip' in c) {
      skip = c.skip;
      return;
    }
    cluster = c;
    // The same sweep, trained by a plain local bnx run.
    const local = await start(c, ['run', spec, '--out', path.join(dir, 'local')]).done;
    assert.equal(local.code, 0, local.stderr);
    reference = path.join(dir, 'local', 'lrbn');
    const plan = await start(c, ['plan', spec, '--json']).done;
    ids = (JSON.parse(plan.stdout) as { id: string }[]).map((r) => r.id);
  });
  after(async () => {
    await cluster?.stop();
  });

  it('--shards 3: exits 0, three tasks COMPLETED, every run byte-identical to the local run; bnx status shows the job', async (t) => {
    if (!cluster) return t.skip(skip);
    const out = path.join(dir, 'slurm');
    const res = await start(cluster, ['run', spec, '--launcher', 'slurm', '--shards', '3', '--out', out]).done;
    assert.equal(res.code, 0, res.stdout + res.stderr);
    const job = Number(/as Slurm job (\d+): 3 array task\(s\)/.exec(res.stdout)?.[1]);
    assert.ok(job > 0, res.stdout);
    // The progress line (off a terminal: printed when the counts change), each run's result, the summary.
    assert.match(res.stdout, new RegExp(`^job ${job} \\| runs 0/6 done`, 'm'));
    assert.match(
      res.stdout,
      new RegExp(`^job ${job} \\| runs 6/6 done \\| steps 1,800/1,800 \\| tasks 3 completed$`, 'm'),
    );
    assert.equal((res.stdout.match(/^ {2}done /gm) ?? []).length, 6);
    assert.match(res.stdout, /^results: \S+lrbn\/ {2}summary: \S+summary\.csv$/m);
    const sweep = path.join(out, 'lrbn');
    assertSameBytes(sweep, reference);
    assert.equal(fs.readFileSync(path.join(sweep, 'summary.csv'), 'utf8').split('\n').length, 8);

    const records = await pollUntil('three jobcomp lines', async () => {
      const rs = lastJobCompRecords(readJobComp(cluster!.jobCompLog)).filter((r) => r.arrayJobId === job);
      return rs.length === 3 ? rs : undefined;
    });
    assert.deepEqual(records.map((r) => [r.arrayTaskId, r.state]).sort(), [
      [0, 'COMPLETED'],
      [1, 'COMPLETED'],
      [2, 'COMPLETED'],
    ]);
    // Each task's log, where bnx status points.
    const log = fs.readFileSync(path.join(sweep, 'logs', `slurm-${job}_1.out`), 'utf8');
    assert.match(log, /shard 1\/3: 2 of 6\) on tensorflow .*threads intra-op 1, inter-op 1\)/);

    const status = await start(cluster, ['status', sweep]).done;
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /lrbn: runs 6\/6 done \| steps 1,800\/1,800\n/);
    assert.match(status.stdout, new RegExp(`^Slurm job ${job}: 3 task\\(s\\): 3 completed$`, 'm'));
    assert.match(status.stdout, new RegExp(`^ {2}task 2: completed; log \\S+slurm-${job}_2\\.out$`, 'm'));
  });

  it('--seeds 2 reaches the array tasks: the same replicates, byte for byte, as a local --seeds 2', async (t) => {
    if (!cluster) return t.skip(skip);
    const args = (out: string) => ['run', spec, '--set', 'train.lr=0.2', '--seeds', '2', '--out', path.join(dir, out)];
    const local = await start(cluster, args('seeds-local')).done;
    assert.equal(local.code, 0, local.stderr);
    const res = await start(cluster, [...args('seeds-slurm'), '--launcher', 'slurm', '--shards', '2']).done;
    assert.equal(res.code, 0, res.stdout + res.stderr);
    const [a, b] = ['seeds-local', 'seeds-slurm'].map((o) => path.join(dir, o, 'lrbn'));
    const seeds = runDirs(a).map((id) => JSON.parse(fs.readFileSync(path.join(a, id, 'run.json'), 'utf8')).config.seed);
    assert.deepEqual(seeds.sort(), [1, 1, 2, 2]);
    assert.deepEqual(runDirs(b), runDirs(a));
    for (const id of runDirs(a))
      assert.ok(
        fs.readFileSync(path.join(b, id, 'metrics.csv')).equals(fs.readFileSync(path.join(a, id, 'metrics.csv'))),
        `${id}: metrics.csv differs from the local run's`,
      );
  });

  it('tasks stopped mid-run (scontrol requeue; scancel --signal=TERM --batch) resume; the results are identical all the same', async (t) => {
    if (!cluster) return t.skip(skip);
    const c = cluster;
    const out = path.join(dir, 'preempted');
    const sweep = path.join(out, 'lrbn');
    const launcher = start(c, ['run', spec, '--launcher', 'slurm', '--shards', '3', '--out', out]);
    const job = await pollUntil(
      'the job id',
      async () => /as Slurm job (\d+)/.exec(launcher.stdout())?.[1],
      60_000,
      20,
    );

    // Two tasks frozen mid-run before anything else happens (the cluster runs one task per CPU: two
    // here): a task left running would finish its runs during the requeue below, however long that
    // takes on a loaded machine, and leave none mid-run for the SIGTERM case.
    const first = await freezeTaskMidRun(sweep, ids, []);
    const second = await freezeTaskMidRun(sweep, ids, [first.task]);
    // While they are frozen mid-run, bnx status shows their runs running, with their step, and the tasks running.
    const status = await start(c, ['status', sweep]).done;
    assert.match(status.stdout, /^ {2}running {6}\S+ {2}step \d+\/300, (eta \d+ s, )?pid \d+ on \S+$/m);
    assert.match(status.stdout, new RegExp(`^Slurm job ${job}: 3 task\\(s\\): .*running`, 'm'));
    assert.match(
      status.stdout,
      new RegExp(`^ {2}task ${first.task}: running on \\S+ for \\S+; log \\S+slurm-${job}_${first.task}\\.out$`, 'm'),
    );
    // Preemption: Slurm requeues a running task (SIGCONT, SIGTERM to its processes; bnx marks its runs
    // interrupted and exits 143); the rerun waits for its BeginTime, about 2 minutes, unless released.
    await slurm(c, 'scontrol', ['requeue', `${job}_${first.task}`]);
    const pending = await pollUntil('the requeued task to be pending', async () => {
      const [s] = await taskStates(c, `${job}_${first.task}`);
      return s.state === 'PENDING' ? s : undefined;
    });
    assert.deepEqual([pending.reason, pending.restarts], ['BeginTime', 1]);

    // A signal to the batch script alone: bnx is the batch process (exec), marks its runs interrupted
    // and exits 143; the task is FAILED, and the launcher requeues it.
    await slurm(c, 'scancel', ['--signal=TERM', '--batch', `${job}_${second.task}`]);
    process.kill(second.pid, 'SIGCONT');

    // Release the requeued task a couple of seconds after it turned pending: released within the
    // second it was killed, slurmd refuses to launch it (docs/slurm-cluster.md).
    await new Promise((r) => setTimeout(r, 2000));
    await slurm(c, 'scontrol', ['update', `JobId=${job}_${first.task}`, 'StartTime=now']);

    const res = await launcher.done;
    t.diagnostic(res.stdout);
    assert.equal(res.code, 0, res.stdout + res.stderr);
    assert.match(res.stdout, /^ {2}interrupted \S+ after step \d+ /m);
    assert.match(
      res.stdout,
      new RegExp(
        `^ {2}task ${second.task} was stopped by SIGTERM \\(exit 143\\) with runs left: requeued \\(1 of at most 3\\)`,
        'm',
      ),
    );
    assertSameBytes(sweep, reference);

    // Both stopped tasks ran twice. The jobcomp log has a line per end and per requeue: the task
    // requeued by Slurm PENDING, COMPLETED; the one requeued by the launcher FAILED (exit 143),
    // PENDING (the requeue), COMPLETED.
    const records = await pollUntil('six jobcomp lines', async () => {
      const rs = readJobComp(c.jobCompLog).filter((r) => r.arrayJobId === Number(job));
      return rs.length >= 6 ? rs : undefined;
    });
    const of = (task: number) => records.filter((r) => r.arrayTaskId === task).map((r) => r.state);
    assert.deepEqual(of(first.task), ['PENDING', 'COMPLETED']);
    assert.deepEqual(of(second.task), ['FAILED', 'PENDING', 'COMPLETED']);
    assert.deepEqual(of(3 - first.task - second.task), ['COMPLETED']);
    assert.equal(records.find((r) => r.arrayTaskId === second.task)?.exitCode, '143:0');
    // The task log keeps both attempts (--open-mode=append).
    const log = fs.readFileSync(path.join(sweep, 'logs', `slurm-${job}_${second.task}.out`), 'utf8');
    assert.match(log, /SIGTERM: stopping after this step[\s\S]*interrupted [\s\S]*bnx \S+: 2 run\(s\) of lrbn \(shard/);
  });
  it('Ctrl-C cancels the job (scancel) and says so; --no-wait submits what is left; bnx status --watch follows it to the end', async (t) => {
    if (!cluster) return t.skip(skip);
    const c = cluster;
    const out = path.join(dir, 'cancelled');
    const sweep = path.join(out, 'lrbn');
    const args = ['run', spec, '--launcher', 'slurm', '--shards', '3', '--out', out];
    const launcher = start(c, args);
    await pollUntil(
      'a run mid-way',
      async () =>
        fs.existsSync(sweep) && runDirs(sweep).some((id) => rows(path.join(sweep, id)) >= 2) ? true : undefined,
      60_000,
      10,
    );
    launcher.child.kill('SIGINT');
    const res = await launcher.done;
    const job = /as Slurm job (\d+)/.exec(res.stdout)?.[1];
    assert.equal(res.code, 130, res.stdout + res.stderr);
    assert.match(res.stdout, new RegExp(`^SIGINT: asking Slurm to cancel job ${job} \\(scancel ${job}\\)`, 'm'));
    assert.match(
      res.stderr,
      new RegExp(`^cancelled: job ${job}; the same command resumes the [1-6] unfinished run\\(s\\)$`, 'm'),
    );
    const states = (await taskStates(c, job!)).map((s) => s.state);
    assert.ok(states.includes('CANCELLED'), states.join(' '));

    // --no-wait: the shards with runs left are submitted; the command says how to follow them.
    const again = await start(c, [...args, '--no-wait']).done;
    assert.equal(again.code, 0, again.stderr);
    const next = /as Slurm job (\d+)/.exec(again.stdout)?.[1];
    assert.match(
      again.stdout,
      new RegExp(`^follow it: bnx status \\S+lrbn --watch {4}cancel it: scancel ${next}$`, 'm'),
    );
    const watch = await start(c, ['status', sweep, '--watch', '--interval', '0.5']).done;
    assert.equal(watch.code, 0, watch.stderr);
    const blocks = watch.stdout.trim().split('\n\n');
    assert.match(blocks.at(-1)!, /lrbn: runs 6\/6 done \| steps 1,800\/1,800\n/);
    assert.match(blocks.at(-1)!, new RegExp(`^Slurm job ${next}: \\d task\\(s\\): \\d completed$`, 'm'));
    assertSameBytes(sweep, reference);
    assert.ok(fs.existsSync(path.join(sweep, 'summary.csv')), 'the last task wrote summary.csv');
  });
});
