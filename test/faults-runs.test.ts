import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { stagingPaths, swapIn } from '../src/store/staging.js';
import {
  copySweep,
  dataRows,
  FIXTURE_SPEC,
  IMMUTABLE_UNAVAILABLE,
  immutable,
  runHashes,
  smallDisk,
  statusOf,
  tempFiles,
  trainSweep,
  until,
  type Sweep,
} from './fault-helpers.js';
import { hashTree, oneLine, startBnx, tmpDir, TINY_SPEC, writeSpec } from './helpers.js';

/**
 * Fault injection, part 2: faults while runs train (issue 16). Signals at chosen moments (by
 * progress: rows written, folders staged; never by sleeping), during `--force` and inside a group
 * trained together; full disks; immutable files. Each case asserts the exit code, one line on
 * stderr without a stack frame, that completed runs' files did not change, and that a plain rerun
 * afterwards completes the sweep.
 */

/** Long enough for a signal to land mid-run on any machine: 80 metrics rows per run (waits are on rows). */
const LONG_SPEC = FIXTURE_SPEC.replace('steps: 40', 'steps: 800').replace('eval_every: 20', 'eval_every: 100');

let long: Sweep;
let tiny: Sweep;
before(() => {
  long = trainSweep(LONG_SPEC);
  tiny = trainSweep(FIXTURE_SPEC);
});

/** The staged copy of a run being retrained (`.staging/<id>.new`), or null. */
const staged = (s: Sweep, run: string) => stagingPaths(s.dir, path.basename(run)).fresh;

/**
 * bnx, without blocking this process: cases of one block overlap, and a case waiting for a moment
 * of its own bnx process must keep polling while another case's bnx runs.
 */
const bnxAsync = (args: string[]) => startBnx(args).done;

/** A plain rerun: every run already has its result, nothing trains, nothing changes. */
async function plainRerunSkipsAll(s: Sweep): Promise<void> {
  const before = runHashes(s);
  const res = await bnxAsync(['run', s.spec, '--out', s.out]);
  assert.equal(res.code, 0, res.stderr);
  assert.equal(res.stderr, '');
  assert.equal((res.stdout.match(/: completed, skipped/g) ?? []).length, 2, res.stdout);
  assert.deepEqual(runHashes(s), before);
  assert.equal(fs.existsSync(path.join(s.dir, '.staging')), false, 'no staged folder left');
  assert.deepEqual(tempFiles(s.out), []);
}

describe('defect 1: --force keeps the previous result until the new one is complete', { concurrency: 2 }, () => {
  it('defect 1: SIGTERM during --force of a group trained together: exit 143, the previous results whole and readable throughout', async () => {
    const s = copySweep(long);
    const before = runHashes(s);
    const rows = s.runs.map((r) => dataRows(path.join(r, 'metrics.csv')));
    const { child, done } = startBnx(['run', s.spec, '--out', s.out, '--force']);
    let ended = false;
    void done.then(() => (ended = true));
    // A reader all along: each run folder is the previous result, whole (never `running`, never partial).
    let snapshots = 0;
    const consistent = () => {
      s.runs.forEach((r, k) => {
        assert.equal(statusOf(r), 'completed');
        const text = fs.readFileSync(path.join(r, 'metrics.csv'), 'utf8');
        assert.ok(text.endsWith('\n'));
        assert.equal(text.split('\n').length - 2, rows[k]);
      });
      snapshots++;
    };
    await until(
      () => {
        consistent();
        return s.runs.every((r) => dataRows(path.join(staged(s, r), 'metrics.csv')) >= 3);
      },
      () => ended,
    );
    assert.equal(ended, false, 'the retraining ended before the signal');
    child.kill('SIGTERM');
    const res = await done;
    consistent();
    assert.equal(res.code, 143, res.stderr);
    assert.match(oneLine(res), /^bnx: interrupted: rerun the same command to finish the sweep$/);
    assert.equal(
      (res.stdout.match(/interrupted norm=\w+_\w+ after step \d+; its previous result is kept/g) ?? []).length,
      2,
      res.stdout,
    );
    assert.ok(snapshots > 1);
    assert.deepEqual(runHashes(s), before, 'the previous results, byte for byte');
    await plainRerunSkipsAll(s);
  });

  it('defect 1: kill -9 at three moments of --force leaves the previous results; a completed --force swaps the new ones in whole', async () => {
    const s = copySweep(long);
    // A file of the user's in a run folder (bnx export's output, notes) moves with the run.
    fs.mkdirSync(path.join(s.runs[0], 'export'));
    fs.writeFileSync(path.join(s.runs[0], 'export', 'note.txt'), 'mine');
    const before = runHashes(s);
    const moments: [string, () => boolean][] = [
      ['staged folder created', () => fs.existsSync(staged(s, s.runs[0]))],
      ['5 rows staged', () => dataRows(path.join(staged(s, s.runs[1]), 'metrics.csv')) >= 5],
      ['50 rows staged', () => dataRows(path.join(staged(s, s.runs[0]), 'metrics.csv')) >= 50],
    ];
    for (const [moment, ready] of moments) {
      const { child, done } = startBnx(['run', s.spec, '--out', s.out, '--force']);
      let ended = false;
      void done.then(() => (ended = true));
      await until(ready, () => ended);
      if (ended) assert.fail(`ended before: ${moment}\n${JSON.stringify(await done, null, 2)}`);
      child.kill('SIGKILL');
      await done;
      assert.deepEqual(runHashes(s), before, `after kill -9 at: ${moment}`);
    }
    await plainRerunSkipsAll(s);
    const board = path.join(s.out, '..', 'board');
    const res = await bnxAsync(['run', s.spec, '--out', s.out, '--force', '--tensorboard', board]);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stderr, '');
    // The events of a staged retraining land where --tensorboard says once it is swapped in.
    for (const r of s.runs) {
      assert.ok(fs.readdirSync(path.join(board, 'tiny', path.basename(r))).some((f) => f.includes('tfevents')));
      assert.equal(fs.existsSync(path.join(r, 'tensorboard')), false);
    }
    const after = runHashes(s);
    for (const r of s.runs) {
      const id = path.basename(r);
      // Same configuration, same numbers: the same bytes; the record is new.
      for (const f of ['metrics.csv', 'weights.bin', 'eval_gap.csv'])
        assert.equal(after[id][f], before[id][f], `${id}/${f}`);
      assert.notEqual(after[id]['run.json'], before[id]['run.json']);
    }
    assert.equal(fs.readFileSync(path.join(s.runs[0], 'export', 'note.txt'), 'utf8'), 'mine');
    assert.equal(fs.existsSync(path.join(s.dir, '.staging')), false);
  });

  it('defect 1: a crash in the middle of the swap is repaired by the next run (the new result if it was complete, else the old)', async () => {
    const s = copySweep(tiny);
    const before = runHashes(s);
    const [a, b] = s.runs.map((r) => ({ run: r, ...stagingPaths(s.dir, path.basename(r)) }));
    fs.mkdirSync(path.dirname(a.fresh), { recursive: true });
    // Run a: killed between the two renames of a completed retraining. The new result is complete.
    fs.cpSync(a.run, a.fresh, { recursive: true });
    const record = JSON.parse(fs.readFileSync(path.join(a.fresh, 'run.json'), 'utf8'));
    fs.writeFileSync(
      path.join(a.fresh, 'run.json'),
      JSON.stringify({ ...record, started_at: '2099-01-01T00:00:00.000Z' }),
    );
    fs.renameSync(a.run, a.old);
    // Run b: the same moment, as seen after a crash that left the new folder incomplete.
    fs.cpSync(b.run, b.fresh, { recursive: true });
    const partial = JSON.parse(fs.readFileSync(path.join(b.fresh, 'run.json'), 'utf8'));
    fs.writeFileSync(path.join(b.fresh, 'run.json'), JSON.stringify({ ...partial, status: 'running' }));
    fs.renameSync(b.run, b.old);
    const res = await bnxAsync(['run', s.spec, '--out', s.out]);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stderr, '');
    assert.match(fs.readFileSync(path.join(a.run, 'run.json'), 'utf8'), /2099-01-01/);
    assert.deepEqual(hashTree(b.run), before[path.basename(b.run)]);
    assert.equal(fs.existsSync(path.join(s.dir, '.staging')), false);
  });

  it(
    'defect 1: a swap that fails midway puts the previous result back',
    { skip: IMMUTABLE_UNAVAILABLE ?? false },
    () => {
      const s = copySweep(tiny);
      const run = s.runs[0];
      const before = hashTree(run);
      const { fresh, old } = stagingPaths(s.dir, path.basename(run));
      fs.mkdirSync(path.dirname(fresh), { recursive: true });
      fs.cpSync(s.runs[1], fresh, { recursive: true });
      // The staged folder cannot be moved: the rename that puts it in place fails after the first one.
      const lock = immutable(fresh)!;
      try {
        assert.throws(() => swapIn(s.dir, path.basename(run)), /EPERM|operation not permitted/);
      } finally {
        lock.undo();
      }
      assert.deepEqual(hashTree(run), before);
      assert.equal(fs.existsSync(old), false);
    },
  );
});

describe("defect 5: faults outside a run's own files", { concurrency: 2 }, () => {
  const fresh = (args: string[] = []) => {
    const dir = tmpDir('bnx-fault-');
    return { spec: writeSpec(dir, FIXTURE_SPEC), out: path.join(dir, 'results'), args };
  };

  it(
    'defect 5: summary.csv unwritable (immutable): every run still trains, one line names the file, a rerun rewrites it',
    { skip: IMMUTABLE_UNAVAILABLE ?? false },
    async () => {
      const { spec, out } = fresh();
      const summary = path.join(out, 'tiny', 'summary.csv');
      fs.mkdirSync(path.dirname(summary), { recursive: true });
      fs.writeFileSync(summary, '');
      const lock = immutable(summary)!;
      let res;
      try {
        res = await bnxAsync(['run', spec, '--out', out, '--no-fuse']);
      } finally {
        lock.undo();
      }
      assert.equal(res.code, 1);
      assert.match(oneLine(res), /^bnx: summary\.csv not written: permission denied \(\S+tiny\/summary\.csv\)/);
      assert.equal((res.stdout.match(/^ {2}done /gm) ?? []).length, 2, res.stdout);
      assert.deepEqual(tempFiles(out), []);
      const again = await bnxAsync(['run', spec, '--out', out, '--no-fuse']);
      assert.equal(again.code, 0, again.stderr);
      assert.equal(fs.readFileSync(summary, 'utf8').trim().split('\n').length, 3);
    },
  );

  it(
    'defect 5: sweep.json unwritable (immutable): one line naming it, nothing trained, nothing changed; a rerun then completes',
    { skip: IMMUTABLE_UNAVAILABLE ?? false },
    async () => {
      const s = copySweep(tiny);
      fs.writeFileSync(
        path.join(s.runs[0], 'run.json'),
        fs.readFileSync(path.join(s.runs[0], 'run.json'), 'utf8').replace('"completed"', '"interrupted"'),
      );
      const before = hashTree(s.out);
      const lock = immutable(path.join(s.dir, 'sweep.json'))!;
      let res;
      try {
        res = await bnxAsync(['run', s.spec, '--out', s.out]);
      } finally {
        lock.undo();
      }
      assert.equal(res.code, 1);
      assert.match(oneLine(res), /^bnx: permission denied \(\S+tiny\/sweep\.json\)$/);
      assert.deepEqual(hashTree(s.out), before);
      const again = await bnxAsync(['run', s.spec, '--out', s.out]);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /done norm=none_/);
    },
  );

  it(
    "defect 5: a run's folder that cannot be written fails that run, named with the file; the next run trains",
    { skip: IMMUTABLE_UNAVAILABLE ?? false },
    async () => {
      const { spec, out } = fresh();
      const plan = JSON.parse((await bnxAsync(['plan', spec, '--json'])).stdout) as { id: string }[];
      const blocked = path.join(out, 'tiny', plan[0].id);
      fs.mkdirSync(blocked, { recursive: true });
      const lock = immutable(blocked)!;
      let res;
      try {
        res = await bnxAsync(['run', spec, '--out', out, '--no-fuse']);
      } finally {
        lock.undo();
      }
      assert.equal(res.code, 1);
      assert.match(
        oneLine(res),
        /^bnx: 1 run\(s\) failed, each named above with its cause; the same command reruns them$/,
      );
      assert.match(
        res.stdout,
        new RegExp(
          `failed ${plan[0].id}: cannot set up its folder: permission denied \\(\\S+${plan[0].id}/config\\.yaml\\)`,
        ),
      );
      assert.match(res.stdout, new RegExp(`done ${plan[1].id}`));
      const again = await bnxAsync(['run', spec, '--out', out, '--no-fuse']);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, new RegExp(`done ${plan[0].id}`));
    },
  );

  it(
    'defect 5: --force of a run whose folder is immutable: the run fails in one line, its previous result stays',
    { skip: IMMUTABLE_UNAVAILABLE ?? false },
    async () => {
      const s = copySweep(tiny);
      const before = runHashes(s);
      const lock = immutable(s.runs[0])!;
      let res;
      try {
        res = await bnxAsync(['run', s.spec, '--out', s.out, '--force']);
      } finally {
        lock.undo();
      }
      assert.equal(res.code, 1);
      oneLine(res);
      assert.match(res.stdout, /failed norm=none_\w+: cannot lock the run: permission denied \(\S+\/\.lock\)/);
      assert.deepEqual(runHashes(s)[path.basename(s.runs[0])], before[path.basename(s.runs[0])]);
      assert.equal(statusOf(s.runs[1]), 'completed');
      assert.equal(fs.existsSync(path.join(s.dir, '.staging')), false);
    },
  );

  it('defect 5: disk full while saving weights names the run and weights.bin, leaves no temporary file, and a rerun repairs it', async () => {
    // One run: a second one could not take its lock on the full disk (and would fail too). A lock is
    // created whole, by link(), so none is left empty; an empty one is stale (faults.test.ts, defect 2).
    const spec = writeSpec(
      tmpDir('bnx-fault-'),
      TINY_SPEC.replace('steps: 40', 'steps: 600')
        .replace('log_every: 10', 'log_every: 100')
        .replace('eval_every: 20', 'eval_every: 100'),
    );
    const ids = (JSON.parse((await bnxAsync(['plan', spec, '--json'])).stdout) as { id: string }[]).map((r) => r.id);
    const disk = smallDisk(256);
    const out = path.join(disk?.dir ?? tmpDir('bnx-fault-'), 'results');
    const first = path.join(out, 'tiny', ids[0]);
    try {
      const { child, done } = startBnx(['run', spec, '--out', out, '--no-fuse']);
      let ended = false;
      void done.then(() => (ended = true));
      if (disk) {
        // The disk fills up while the first run trains: its metrics rows fit the page already
        // allocated; its weights, written at the end, do not.
        await until(
          () => dataRows(path.join(first, 'metrics.csv')) >= 1,
          () => ended,
        );
        disk.fill();
      } else {
        // No tmpfs here (not root): the first run's weights go to /dev/full instead.
        fs.mkdirSync(first, { recursive: true });
        fs.symlinkSync('/dev/full', path.join(first, `.weights.bin.${child.pid}.tmp`));
      }
      const res = await done;
      assert.equal(res.code, 1, res.stderr);
      assert.match(
        oneLine(res),
        /^bnx: 1 run\(s\) failed, each named above with its cause; the same command reruns them/,
      );
      assert.match(res.stdout, new RegExp(`failed ${ids[0]}: disk full \\(\\S+${ids[0]}/weights\\.bin\\)`));
      assert.deepEqual(tempFiles(out), [], 'temporary files cleaned');
      assert.ok(['running', 'failed'].includes(statusOf(first)), 'a state a rerun retrains');
      disk?.free();
      const again = await bnxAsync(['run', spec, '--out', out, '--no-fuse']);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, new RegExp(`done ${ids[0]}`));
      assert.ok(fs.existsSync(path.join(first, 'weights.bin')));
    } finally {
      disk?.unmount();
    }
  });
});
