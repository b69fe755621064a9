import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tmpDir } from './helpers.js';
import {
  lastJobCompRecords,
  parseJobCompLine,
  pollUntil,
  readJobComp,
  sbatch,
  slurm,
  SLURM_SCRIPT,
  startSlurmCluster,
  taskStates,
  waitForJob,
  type SlurmCluster,
} from './slurm-cluster.js';

describe('jobcomp/filetxt lines', () => {
  it('parse into job id, array task, state and exit code', () => {
    const line =
      'JobId=3 UserId=root(0) GroupId=root(0) Name=wrap JobState=COMPLETED Partition=debug TimeLimit=UNLIMITED ' +
      'StartTime=2026-11-30T02:35:57 EndTime=2026-11-30T02:35:57 NodeList=vm NodeCnt=1 ProcCnt=1 WorkDir=/tmp/a b ' +
      'ReservationName= Tres=cpu=1,mem=7500M,node=1,billing=1 Account= QOS= WcKey= Cluster=unknown ' +
      'SubmitTime=2026-11-30T02:35:54 EligibleTime=2026-11-30T02:35:57 ArrayJobId=1 ArrayTaskId=1 DerivedExitCode=0:0 ExitCode=0:0 ';
    const r = parseJobCompLine(line);
    assert.deepEqual([r.jobId, r.arrayJobId, r.arrayTaskId, r.state, r.exitCode], [3, 1, 1, 'COMPLETED', '0:0']);
    assert.equal(r.fields.WorkDir, '/tmp/a b');
    assert.equal(r.fields.Tres, 'cpu=1,mem=7500M,node=1,billing=1');
    assert.equal(r.fields.Account, '');
    const plain = parseJobCompLine(
      line.replace(' ArrayJobId=1 ArrayTaskId=1', '').replace('JobState=COMPLETED', 'JobState=FAILED'),
    );
    assert.deepEqual([plain.arrayJobId, plain.arrayTaskId, plain.state], [undefined, undefined, 'FAILED']);
  });
});

describe('one-node Slurm cluster (scripts/slurm-cluster.sh)', { timeout: 20 * 60_000 }, () => {
  let cluster: SlurmCluster | undefined;
  let skip = '';
  let upSeconds = 0;
  before(async () => {
    const started = Date.now();
    const c = await startSlurmCluster();
    if ('skip' in c) skip = c.skip;
    else cluster = c;
    upSeconds = (Date.now() - started) / 1000;
  });
  after(async () => {
    await cluster?.stop();
  });

  /** The jobcomp records of an array job, once there are n of them. */
  const jobCompOf = (c: SlurmCluster, job: number, n: number) =>
    pollUntil(
      `${n} jobcomp lines for job ${job}`,
      async () => {
        const rs = readJobComp(c.jobCompLog).filter((r) => r.arrayJobId === job);
        return rs.length >= n ? rs : undefined;
      },
      10_000,
    );

  /** Writes an executable batch script into dir. */
  const script = (dir: string, name: string, body: string) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, `#!/bin/bash\n${body}`, { mode: 0o755 });
    return file;
  };

  it('runs a 3-task array job; the jobcomp log has three COMPLETED tasks', async (t) => {
    if (!cluster) return t.skip(skip);
    t.diagnostic(`cluster up in ${upSeconds.toFixed(1)} s`);
    const out = tmpDir('bnx-slurm-out-');
    const started = Date.now();
    const job = await sbatch(cluster, [
      '--array=0-2',
      `--output=${out}/%A_%a.log`,
      '--wrap',
      `echo $SLURM_ARRAY_TASK_ID > ${out}/$SLURM_ARRAY_TASK_ID`,
    ]);
    await waitForJob(cluster, job);
    t.diagnostic(`3-task array finished in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    for (const i of [0, 1, 2]) {
      assert.equal(fs.readFileSync(path.join(out, String(i)), 'utf8'), `${i}\n`);
      assert.ok(fs.existsSync(path.join(out, `${job}_${i}.log`)));
    }
    const states = await taskStates(cluster, job);
    assert.deepEqual(states.map((s) => [s.task, s.state]).sort(), [
      [0, 'COMPLETED'],
      [1, 'COMPLETED'],
      [2, 'COMPLETED'],
    ]);
    const records = await jobCompOf(cluster, job, 3);
    assert.deepEqual(records.map((r) => [r.arrayTaskId, r.state, r.exitCode]).sort(), [
      [0, 'COMPLETED', '0:0'],
      [1, 'COMPLETED', '0:0'],
      [2, 'COMPLETED', '0:0'],
    ]);
    // The last task to run carries the array's own job id.
    assert.ok(records.some((r) => r.jobId === job));
  });

  it('scancel --signal=TERM reaches the batch script only with --batch; plain scancel cancels', async (t) => {
    if (!cluster) return t.skip(skip);
    const out = tmpDir('bnx-slurm-sig-');
    const file = script(
      out,
      'trap.sh',
      `trap 'echo TERM > ${out}/term.$SLURM_ARRAY_TASK_ID; exit 143' TERM
echo up > ${out}/up.$SLURM_ARRAY_TASK_ID
sleep 120 & wait
`,
    );
    const job = await sbatch(cluster, ['--array=0-1', `--output=${out}/%a.log`, file]);
    await pollUntil('both tasks to run their trap', async () =>
      fs.existsSync(path.join(out, 'up.0')) && fs.existsSync(path.join(out, 'up.1')) ? true : undefined,
    );

    // Without --batch/--full, scancel --signal signals job steps (srun) only: a task without steps gets nothing.
    await slurm(cluster, 'scancel', ['--signal=TERM', `${job}_0`]);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(fs.existsSync(path.join(out, 'term.0')), false);
    assert.equal((await taskStates(cluster, `${job}_0`))[0].state, 'RUNNING');

    // --batch: the batch script gets SIGTERM; it exits 143, so the task is FAILED (not CANCELLED).
    await slurm(cluster, 'scancel', ['--signal=TERM', '--batch', `${job}_0`]);
    const failed = await pollUntil('task 0 to end', async () => {
      const [s] = await taskStates(cluster!, `${job}_0`);
      return s.state === 'RUNNING' || s.state === 'COMPLETING' ? undefined : s;
    });
    assert.deepEqual([failed.state, failed.reason, failed.exitCode], ['FAILED', 'NonZeroExitCode', '143:0']);
    assert.equal(fs.readFileSync(path.join(out, 'term.0'), 'utf8'), 'TERM\n');

    // Plain scancel: SIGCONT, SIGTERM (SIGKILL after KillWait, 30 s): CANCELLED.
    await slurm(cluster, 'scancel', [`${job}_1`]);
    await waitForJob(cluster, job);
    const [cancelled] = await taskStates(cluster, `${job}_1`);
    assert.equal(cancelled.state, 'CANCELLED');
    assert.equal(fs.readFileSync(path.join(out, 'term.1'), 'utf8'), 'TERM\n');
    assert.match(
      fs.readFileSync(path.join(out, '1.log'), 'utf8'),
      new RegExp(`\\*\\*\\* JOB \\d+ ON \\S+ CANCELLED AT `),
    );

    const records = await jobCompOf(cluster, job, 2);
    // Surprise: scontrol says ExitCode=143:0 for the cancelled task, its jobcomp line says 0:0.
    assert.deepEqual(records.map((r) => [r.arrayTaskId, r.state, r.exitCode]).sort(), [
      [0, 'FAILED', '143:0'],
      [1, 'CANCELLED', '0:0'],
    ]);
  });

  it('scontrol requeue: a running array task gets SIGTERM, waits ~2 min (BeginTime), reruns with SLURM_RESTART_COUNT=1', async (t) => {
    if (!cluster) return t.skip(skip);
    const out = tmpDir('bnx-slurm-requeue-');
    const file = script(
      out,
      'task.sh',
      `run=\${SLURM_RESTART_COUNT:-first}
env | grep '^SLURM_' | sort > ${out}/env.$SLURM_ARRAY_TASK_ID.$run
trap 'echo "TERM in run $run" >> ${out}/term.$SLURM_ARRAY_TASK_ID; exit 143' TERM
[ "$SLURM_ARRAY_TASK_ID" = 0 ] && exit 0
[ "$run" != first ] && exit 0
echo up > ${out}/up
sleep 120 & wait
`,
    );
    // --open-mode=append: without it the rerun truncates the output file and the first run's lines are lost.
    const job = await sbatch(cluster, ['--array=0-1', '--open-mode=append', `--output=${out}/%a.log`, file]);
    await pollUntil('task 1 to run', async () => (fs.existsSync(path.join(out, 'up')) ? true : undefined));
    const [before1] = await taskStates(cluster, `${job}_1`);

    const requeuedAt = Date.now();
    await slurm(cluster, 'scontrol', ['requeue', `${job}_1`]);
    const pending = await pollUntil('task 1 to be pending again', async () => {
      const [s] = await taskStates(cluster!, `${job}_1`);
      return s.state === 'PENDING' ? s : undefined;
    });
    assert.equal(pending.reason, 'BeginTime');
    assert.equal(pending.restarts, 1);
    assert.equal(pending.jobId, before1.jobId); // same job id
    // Held back by a BeginTime about 120 s after the requeue (it would then wait for a scheduler pass).
    const delay = (Date.parse(pending.eligibleTime) - requeuedAt) / 1000;
    t.diagnostic(`requeued task is eligible ${delay.toFixed(0)} s after the requeue`);
    assert.ok(delay > 60 && delay < 180, `EligibleTime ${pending.eligibleTime}`);
    assert.equal(fs.readFileSync(path.join(out, 'term.1'), 'utf8'), 'TERM in run first\n');
    assert.match(fs.readFileSync(path.join(out, '1.log'), 'utf8'), /CANCELLED AT \S+ DUE TO JOB REQUEUE/);

    // Let it start now instead; but not at once: a rerun launched within the second its first run
    // was killed is refused by slurmd ("Job N already killed, do not launch batch job") and the
    // task ends FAILED with ExitCode=1:0, for good.
    await new Promise((r) => setTimeout(r, 2000));
    await slurm(cluster, 'scontrol', ['update', `JobId=${job}_1`, 'StartTime=now']);
    await waitForJob(cluster, job);
    t.diagnostic(`requeue to rerun finished: ${((Date.now() - requeuedAt) / 1000).toFixed(1)} s`);
    const [done] = await taskStates(cluster, `${job}_1`);
    assert.deepEqual([done.state, done.restarts, done.exitCode], ['COMPLETED', 1, '0:0']);

    const envOf = (f: string) =>
      Object.fromEntries(
        fs
          .readFileSync(path.join(out, f), 'utf8')
          .trim()
          .split('\n')
          .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
      );
    const first = envOf('env.1.first');
    const rerun = envOf('env.1.1');
    assert.equal(first.SLURM_RESTART_COUNT, undefined); // unset on the first run, not 0
    assert.equal(rerun.SLURM_RESTART_COUNT, '1');
    for (const k of ['SLURM_JOB_ID', 'SLURM_ARRAY_JOB_ID', 'SLURM_ARRAY_TASK_ID']) assert.equal(rerun[k], first[k], k);

    // The jobcomp log: the requeued run is a PENDING line, its rerun a COMPLETED line, same JobId.
    const task1 = (await jobCompOf(cluster, job, 3)).filter((r) => r.arrayTaskId === 1);
    assert.deepEqual(
      task1.map((r) => [r.jobId, r.state]),
      [
        [before1.jobId, 'PENDING'],
        [before1.jobId, 'COMPLETED'],
      ],
    );
    const last = lastJobCompRecords(readJobComp(cluster.jobCompLog)).filter((r) => r.arrayJobId === job);
    assert.deepEqual(last.map((r) => [r.arrayTaskId, r.state]).sort(), [
      [0, 'COMPLETED'],
      [1, 'COMPLETED'],
    ]);
  });

  it('up never stops a running cluster of another directory on its ports; it stops an abandoned one', async (t) => {
    if (!cluster) return t.skip(skip);
    const up = (dir: string, port: number, owner: number) =>
      spawnSync('bash', [SLURM_SCRIPT, 'up', dir], {
        encoding: 'utf8',
        env: { ...process.env, BNX_SLURM_PORT: String(port), BNX_SLURM_OWNER_PID: String(owner) },
        timeout: 120_000,
      });
    // This process owns `cluster` and runs: another directory cannot take its ports.
    const refused = up(tmpDir('bnx-slurm-other-'), cluster.port, process.pid);
    assert.equal(refused.status, 1, refused.stderr);
    assert.match(refused.stderr, new RegExp(`the bnx Slurm cluster in ${cluster.dir} uses them`));
    assert.equal(spawnSync('bash', [SLURM_SCRIPT, 'status', cluster.dir]).status, 0, 'still up');

    // A cluster whose owner has exited is abandoned: the next `up` on its ports stops it.
    const gone = spawn('true');
    await new Promise((r) => gone.on('close', r));
    const port = cluster.port + 4;
    const [abandoned, next] = [tmpDir('bnx-slurm-abandoned-'), tmpDir('bnx-slurm-next-')];
    try {
      const first = up(abandoned, port, gone.pid!);
      assert.equal(first.status, 0, first.stderr);
      const second = up(next, port, process.pid);
      assert.equal(second.status, 0, second.stderr);
      assert.match(second.stderr, /stopping an abandoned bnx Slurm cluster/);
      assert.equal(spawnSync('bash', [SLURM_SCRIPT, 'status', abandoned]).status, 3);
      assert.equal(
        spawnSync('bash', [SLURM_SCRIPT, 'status', cluster.dir]).status,
        0,
        'the first cluster is untouched',
      );
    } finally {
      for (const dir of [next, abandoned]) spawnSync('bash', [SLURM_SCRIPT, 'down', dir], { timeout: 60_000 });
    }
  });

  it('clusters side by side keep their jobs apart: a job ending in one never kills a job of the other', async (t) => {
    if (!cluster) return t.skip(skip);
    // Slurm names a job's freezer cgroup by node and job id only; every cluster here is the same
    // node, so only distinct job ids (FIRST_JOB_ID in the script) keep the clusters' jobs apart.
    const other = await startSlurmCluster({ port: cluster.port + 6 });
    assert.ok(!('skip' in other), 'the second cluster starts where the first did');
    try {
      t.diagnostic(fs.readFileSync(cluster.conf, 'utf8').match(/^ProctrackType=.*$/m)?.[0] ?? '');
      const out = tmpDir('bnx-slurm-apart-');
      // The first job runs until the second has ended: it waits for a file this test writes then.
      const go = path.join(out, 'go');
      const long = await sbatch(cluster, [
        `--output=${out}/long.log`,
        '--wrap',
        `while [ ! -e ${go} ]; do sleep 0.2; done; echo done`,
      ]);
      await pollUntil(`job ${long} running`, async () =>
        (await taskStates(cluster!, long))[0]?.state === 'RUNNING' ? true : undefined,
      );
      const short = await sbatch(other, [`--output=${out}/short.log`, '--wrap', 'true']);
      assert.notEqual(short, long, 'each cluster numbers its jobs from its own port');
      await waitForJob(other, short);
      fs.writeFileSync(go, '');
      await waitForJob(cluster, long);
      const record = await pollUntil(`the jobcomp line of job ${long}`, async () =>
        readJobComp(cluster!.jobCompLog).find((r) => r.jobId === long),
      );
      assert.deepEqual([record?.state, record?.exitCode], ['COMPLETED', '0:0']);
      assert.equal(fs.readFileSync(path.join(out, 'long.log'), 'utf8'), 'done\n');
    } finally {
      await other.stop();
    }
  });

  it('stop() takes the daemons down and can be called twice', async (t) => {
    if (!cluster) return t.skip(skip);
    const dir = cluster.dir;
    await cluster.stop();
    await cluster.stop();
    for (const f of ['slurmctld.pid', 'slurmd.pid']) assert.equal(fs.existsSync(path.join(dir, f)), false, f);
    const status = spawnSync('bash', [SLURM_SCRIPT, 'status', dir], { encoding: 'utf8' });
    assert.equal(status.status, 3, status.stdout + status.stderr);
    assert.match(status.stdout, /^slurmctld: down\nslurmd: down\n/);
  });
});
