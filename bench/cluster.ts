/**
 * `node dist/bench/cluster.js [--runs N] [--dir DIR] [--loop SPEC --set k=v ...]`: the numbers
 * behind docs/clusters-slurm.md.
 *
 * 1. Shared-folder costs for a sweep of N runs (default 1,000) in DIR (default a temp folder; give
 *    a folder on the cluster's NFS or Lustre to measure there): registering the grid in sweep.json
 *    (the launcher, once, under the folder lock), a task's start when the grid is known (no lock;
 *    it checks the folder's run.json files),
 *    a task's end-of-shard check that every run ended (no lock), rebuilding summary.csv from N run
 *    folders (under the folder lock), and taking plus releasing a free lock.
 * 2. With --loop SPEC: the longest time training SPEC blocks the event loop (a 20 ms timer's
 *    longest gap), which the lock lease (src/store/lock.ts) must outlast many times over.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { planFrom } from '../src/cli/plan.js';
import { withLock, tryLock } from '../src/store/lock.js';
import { writeSummary, type RunRecord } from '../src/store/runs.js';
import { allRunsEnded, registerSweep } from '../src/store/sweep-folder.js';
import { checkSweepFolder, SWEEP_LOCK } from '../src/store/sweep-index.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '1000' },
    dir: { type: 'string' },
    loop: { type: 'string' },
    set: { type: 'string', multiple: true, default: [] },
  },
});

const ms = (f: () => unknown) => {
  const t = performance.now();
  f();
  return performance.now() - t;
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function folderCosts(n: number, root: string): Promise<void> {
  fs.mkdirSync(root, { recursive: true });
  const spec = path.join(root, 'spec.yaml');
  fs.writeFileSync(
    spec,
    `name: many
data: { dataset: synthetic, val_size: 100 }
model: { hidden: [16] }
train: { steps: 300 }
grid:
  seed: [${Array.from({ length: n }, (_, i) => i).join(', ')}]
`,
  );
  const { runs } = planFrom(spec, []);
  const dir = path.join(root, 'many');
  fs.rmSync(dir, { recursive: true, force: true });
  const invocation = { spec, specText: fs.readFileSync(spec, 'utf8'), overrides: [], shard: null };
  const register = ms(() => registerSweep(dir, runs, invocation, { always: true }));
  const size = fs.statSync(path.join(dir, 'sweep.json')).size;
  // Completed run.json files, as large as real ones (they hold the run's config).
  for (const r of runs) {
    const record = {
      id: r.id,
      spec: 'many',
      hash: r.hash,
      status: 'completed',
      params: r.params,
      seed: r.config.seed,
      started_at: new Date().toISOString(),
      ended_at: new Date().toISOString(),
      wall_time_s: 1.5,
      steps_total: 300,
      steps_done: 300,
      final: { train_loss: 0.1, val_loss: 0.2, val_acc: 0.9 },
      best: { val_loss: 0.2, val_loss_step: 300, val_acc: 0.9, val_acc_step: 300 },
      test: { loss: 0.2, acc: 0.9 },
      config: r.config,
    } as unknown as RunRecord;
    fs.mkdirSync(path.join(dir, r.id), { recursive: true });
    fs.writeFileSync(path.join(dir, r.id, 'run.json'), `${JSON.stringify(record, null, 2)}\n`);
  }
  // A task's start (no lock once the grid is registered): `bnx run` checks the folder before
  // TensorFlow loads, runSweep again (each reads every run.json), then registration finds its runs known.
  const taskStart = median(
    Array.from({ length: 5 }, (_, i) =>
      ms(() => {
        checkSweepFolder(dir, [runs[i]]);
        checkSweepFolder(dir, [runs[i]]);
        registerSweep(dir, [runs[i]], { ...invocation, shard: `${i}/${n}` }, { always: false });
      }),
    ),
  );
  const ended = median(Array.from({ length: 3 }, () => ms(() => allRunsEnded(dir))));
  const summaries = Array.from({ length: 5 }, () => {
    let held = 0;
    withLock(path.join(dir, SWEEP_LOCK), () => (held = ms(() => writeSummary(dir))));
    return held;
  });
  const bare =
    ms(() => {
      for (let i = 0; i < 200; i++) {
        const lock = tryLock(path.join(dir, SWEEP_LOCK));
        if (lock.ok) lock.release();
      }
    }) / 200;
  console.log(`${n} runs in ${dir} (${os.cpus().length} cores, load ${os.loadavg()[0].toFixed(1)})`);
  console.log(`  register the grid in sweep.json (launcher, folder lock): ${register.toFixed(1)} ms, ${size} bytes`);
  console.log(`  a task's start, grid already registered (no lock):      ${taskStart.toFixed(1)} ms`);
  console.log(`  a task's end: have all runs ended? (no lock):            ${ended.toFixed(1)} ms`);
  console.log(`  rebuild summary.csv (folder lock held), median of 5:     ${median(summaries).toFixed(1)} ms`);
  console.log(`  take + release a free lock (link, utimes, unlink):       ${bare.toFixed(2)} ms`);
}

async function loopBlock(specFile: string, sets: string[]): Promise<void> {
  const { initBackend } = await import('../src/train/backend.js');
  const { runSweep } = await import('../src/store/sweep.js');
  const backend = await initBackend('tensorflow');
  const { runs } = planFrom(specFile, sets);
  let last = performance.now();
  let longest = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, 20);
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'bnx-loop-'));
  const started = performance.now();
  await runSweep(runs, { out, backend });
  clearInterval(timer);
  console.log(
    `${specFile} ${sets.join(' ')}: ${runs.length} run(s) in ${((performance.now() - started) / 1000).toFixed(1)} s; ` +
      `longest event-loop block ${longest.toFixed(0)} ms`,
  );
  fs.rmSync(out, { recursive: true, force: true });
}

if (values.loop) await loopBlock(values.loop, values.set);
else await folderCosts(Number(values.runs), values.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'bnx-folder-')));
