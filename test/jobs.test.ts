import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { compactTaskIds, expandTaskIds, parseKeyValues } from '../src/launch/slurm.js';
import { bnx, oneLine, ROOT, tmpDir, TINY_SPEC, writeSpec } from './helpers.js';

const GRID = `${TINY_SPEC}grid:\n  model.norm: [none, batch]\n  train.lr: [0.1, 0.2, 0.3]\n`;

describe('export-job', () => {
  it('--slurm: an array script of one task per shard, logs in the sweep folder, the thread policy, exec; the folder is ready', () => {
    const dir = tmpDir('bnx-jobs-');
    const spec = writeSpec(dir, GRID);
    const out = path.join(dir, 'results');
    const res = bnx(['export-job', spec, '--slurm', '--shards', '3', '--set', 'train.steps=20', '--out', out]);
    assert.equal(res.code, 0, res.stderr);
    const script = res.stdout;
    const sweep = path.join(out, 'tiny');
    for (const line of [
      '#SBATCH --array=0-2',
      '#SBATCH --cpus-per-task=2',
      `#SBATCH --output=${sweep}/logs/slurm-%A_%a.out`,
      '#SBATCH --open-mode=append',
      '#SBATCH --requeue',
      `cd ${ROOT}`,
      // One intra-op thread is bnx's own policy; the inter-op pool gets the task's cores.
      'export TF_NUM_INTEROP_THREADS="${SLURM_CPUS_PER_TASK:-2}"',
    ])
      assert.ok(script.split('\n').includes(line), `${line} in\n${script}`);
    assert.doesNotMatch(script, /^export TF_NUM_INTRAOP_THREADS/m);
    assert.match(
      script,
      /^exec node \.\/bin\/bnx\.js run \S+spec\.yaml --set train\.steps=20 --out \S+ --shard "\$SLURM_ARRAY_TASK_ID\/3"$/m,
    );
    // Slurm opens the task logs before a task starts; the grid is registered for the tasks.
    assert.ok(fs.statSync(path.join(sweep, 'logs')).isDirectory());
    const index = JSON.parse(fs.readFileSync(path.join(sweep, 'sweep.json'), 'utf8'));
    assert.equal(Object.keys(index.points).length, 6);
    assert.match(res.stderr, /results folder ready for the array/);
  });

  it('--k8s: a ConfigMap and an Indexed Job of batch/v1, completions = shards, the results volume, the bnx command', () => {
    const spec = writeSpec(tmpDir('bnx-jobs-'), GRID);
    const res = bnx([
      'export-job',
      spec,
      '--k8s',
      '--shards',
      '3',
      '--parallelism',
      '2',
      '--cpus',
      '4',
      '--image',
      'example/bnx:1',
      '--pvc',
      'shared',
    ]);
    assert.equal(res.code, 0, res.stderr);
    const [configMap, job, ...rest] = parseAllDocuments(res.stdout).map((d) => d.toJS());
    assert.equal(rest.length, 0);
    assert.deepEqual([configMap.apiVersion, configMap.kind], ['v1', 'ConfigMap']);
    assert.match(configMap.data['spec.yaml'], /name: tiny/);
    assert.deepEqual([job.apiVersion, job.kind], ['batch/v1', 'Job']);
    assert.equal(job.spec.completionMode, 'Indexed');
    assert.equal(job.spec.completions, 3);
    assert.equal(job.spec.parallelism, 2);
    const pod = job.spec.template.spec;
    assert.equal(pod.restartPolicy, 'OnFailure');
    const [container] = pod.containers;
    assert.equal(container.image, 'example/bnx:1');
    assert.deepEqual(container.command, ['node', 'bin/bnx.js']);
    assert.deepEqual(container.args, [
      'run',
      '/spec/spec.yaml',
      '--out',
      '/results',
      '--shard',
      '$(JOB_COMPLETION_INDEX)/3',
    ]);
    assert.deepEqual(container.env, [{ name: 'TF_NUM_INTEROP_THREADS', value: '4' }]);
    assert.equal(container.resources.requests.cpu, '4');
    const mounts = Object.fromEntries(
      container.volumeMounts.map((m: { name: string; mountPath: string }) => [m.name, m.mountPath]),
    );
    assert.deepEqual(mounts, { results: '/results', spec: '/spec' });
    const volumes = Object.fromEntries(pod.volumes.map((v: { name: string }) => [v.name, v]));
    assert.deepEqual(volumes.results.persistentVolumeClaim, { claimName: 'shared' });
    assert.equal(volumes.spec.configMap.name, configMap.metadata.name);
  });
});

describe('Slurm output parsing', () => {
  it('array task expressions, both ways', () => {
    assert.deepEqual(expandTaskIds('3'), [3]);
    assert.deepEqual(expandTaskIds('0-2%1'), [0, 1, 2]);
    assert.deepEqual(expandTaskIds('[1,3-5]'), [1, 3, 4, 5]);
    assert.deepEqual(expandTaskIds('0-6:3'), [0, 3, 6]);
    assert.equal(compactTaskIds([0, 1, 2, 4, 6, 7]), '0-2,4,6-7');
  });

  it('scontrol -o records', () => {
    const f = parseKeyValues(
      'JobId=5 ArrayJobId=4 ArrayTaskId=1 JobName=bnx-x JobState=PENDING Reason=BeginTime Dependency=(null) Restarts=1 ExitCode=143:0 WorkDir=/a b',
    );
    assert.deepEqual(
      [f.JobId, f.ArrayTaskId, f.JobState, f.Reason, f.Restarts, f.ExitCode, f.WorkDir],
      ['5', '1', 'PENDING', 'BeginTime', '1', '143:0', '/a b'],
    );
  });
});

describe('bnx run --launcher slurm: options refused before anything is submitted or written', () => {
  it('a bad --time, a Slurm option without the launcher, --force with it: one line each, exit 2, no folder', () => {
    const dir = tmpDir('bnx-launcher-');
    const spec = writeSpec(dir, GRID);
    const out = path.join(dir, 'results');
    const cases: [string[], RegExp][] = [
      [
        ['--launcher', 'slurm', '--time', '5h'],
        /^bnx: --time 5h: not a Slurm time limit; use minutes, MM:SS, HH:MM:SS/,
      ],
      [['--time', '1:00:00'], /^bnx: --time: is an option of --launcher slurm$/],
      [
        ['--launcher', 'slurm', '--force'],
        /^bnx: --force with --launcher slurm: a requeued task must resume its shard/,
      ],
    ];
    for (const [args, line] of cases) {
      const res = bnx(['run', spec, '--out', out, ...args]);
      assert.equal(res.code, 2, `${args.join(' ')}: ${res.stderr}`);
      assert.match(oneLine(res), line);
      assert.equal(fs.existsSync(out), false, `${args.join(' ')} wrote nothing`);
    }
  });
});
