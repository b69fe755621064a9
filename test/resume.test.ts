import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'csv-parse/sync';
import { readMetrics } from '../src/store/index.js';
import { bnx, startBnx, tmpDir, TINY_SPEC, writeSpec } from './helpers.js';

const SWEEP = `${TINY_SPEC.replace('steps: 40', 'steps: 150')}grid:\n  model.norm: [none, batch]\n  train.lr: [0.2, 0.5]\n`;

/** Starts bnx without waiting; resolves with its exit code, signal and output. */
const start = (args: string[]) => startBnx(args);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const runDirs = (dir: string) =>
  fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();

/** Every CSV under a folder parses, with rows of equal width. */
function assertCsvsParse(dir: string): void {
  for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.csv')) continue;
    const file = path.join(entry.parentPath, entry.name);
    const text = fs.readFileSync(file, 'utf8');
    assert.ok(text === '' || text.endsWith('\n'), `${file} ends mid-line`);
    parse(text, { columns: true, skip_empty_lines: true }); // throws on ragged rows
  }
}

/** True when some run is `running` and its metrics.csv has at least `rows` data rows. */
function runningWithRows(specDir: string, rows: number): boolean {
  if (!fs.existsSync(specDir)) return false;
  return runDirs(specDir).some((d) => {
    try {
      const status = JSON.parse(fs.readFileSync(path.join(specDir, d, 'run.json'), 'utf8')).status;
      const lines = fs.readFileSync(path.join(specDir, d, 'metrics.csv'), 'utf8').split('\n').length - 2;
      return status === 'running' && lines >= rows;
    } catch {
      return false; // not written yet
    }
  });
}

/** What must not change between an interrupted-and-resumed sweep and an uninterrupted one. */
function results(specDir: string) {
  return runDirs(specDir).map((id) => {
    const record = JSON.parse(fs.readFileSync(path.join(specDir, id, 'run.json'), 'utf8'));
    return {
      id,
      status: record.status,
      final: record.final,
      test: record.test,
      metrics: fs.readFileSync(path.join(specDir, id, 'metrics.csv'), 'utf8'),
    };
  });
}

/** summary.csv without the wall-clock column. */
function summaryRows(specDir: string) {
  const rows = parse(fs.readFileSync(path.join(specDir, 'summary.csv'), 'utf8'), { columns: true }) as Record<
    string,
    string
  >[];
  return rows.map(({ wall_time_s: _w, ...rest }) => rest).sort((a, b) => a.run_id.localeCompare(b.run_id));
}

describe('resume and crash safety', () => {
  it('kill -9 at random points, 5 times in a row: the resumed sweep equals an uninterrupted one', async () => {
    const spec = writeSpec(tmpDir(), SWEEP);
    const reference = tmpDir();
    assert.equal(bnx(['run', spec, '--out', reference]).code, 0);
    const out = tmpDir();
    // Kill points are chosen by progress, not wall time, so they land the same way on a fast or a
    // loaded machine: the first during start-up, the others once a running run has written
    // `rows` metrics rows (rows vary, so kills fall early, mid and late in runs).
    const killAt = [0, 3, 11, 6, 14];
    let killedMidRun = 0;
    for (const rows of killAt) {
      const { child, done } = start(['run', spec, '--out', out]);
      let exited = false;
      void done.then(() => (exited = true));
      if (rows === 0) await sleep(200);
      else while (!exited && !runningWithRows(path.join(out, 'tiny'), rows)) await sleep(5);
      child.kill('SIGKILL');
      await done;
      if (!fs.existsSync(path.join(out, 'tiny'))) continue;
      assertCsvsParse(path.join(out, 'tiny'));
      const states = runDirs(path.join(out, 'tiny')).map(
        (d) => JSON.parse(fs.readFileSync(path.join(out, 'tiny', d, 'run.json'), 'utf8')).status,
      );
      if (states.includes('running')) killedMidRun++;
    }
    assert.ok(killedMidRun >= 3, `only ${killedMidRun} kill(s) landed during training`);
    const last = bnx(['run', spec, '--out', out]);
    assert.equal(last.code, 0, last.stderr);
    assertCsvsParse(path.join(out, 'tiny'));
    assert.deepEqual(results(path.join(out, 'tiny')), results(path.join(reference, 'tiny')));
    assert.deepEqual(summaryRows(path.join(out, 'tiny')), summaryRows(path.join(reference, 'tiny')));
  });

  it('Ctrl-C marks the current run interrupted and exits 130; rerunning finishes the sweep', async () => {
    // Long enough that the signal lands while training however fast the machine: the test waits
    // for progress (2 of 300 metrics rows written), not for a span of wall time.
    const spec = writeSpec(tmpDir(), SWEEP.replace('steps: 150', 'steps: 3000'));
    const out = tmpDir();
    const { child, done } = start(['run', spec, '--out', out]);
    const first = path.join(out, 'tiny');
    let exited = false;
    void done.then(() => (exited = true));
    while (!exited && !runningWithRows(first, 2)) await sleep(5);
    child.kill('SIGINT');
    const res = await done;
    assert.equal(res.code, 130, res.stderr);
    const states = runDirs(first).map(
      (d) => JSON.parse(fs.readFileSync(path.join(first, d, 'run.json'), 'utf8')).status,
    );
    assert.ok(states.includes('interrupted'), states.join(','));
    assertCsvsParse(first);
    const again = bnx(['run', spec, '--out', out]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /done /);
    assert.deepEqual(
      summaryRows(first).map((r) => r.status),
      ['completed', 'completed', 'completed', 'completed'],
    );
  });

  it('two processes on one results folder never train the same run twice', async () => {
    const spec = writeSpec(tmpDir(), SWEEP);
    const out = tmpDir();
    const [a, b] = [start(['run', spec, '--out', out]), start(['run', spec, '--out', out])];
    const [ra, rb] = await Promise.all([a.done, b.done]);
    assert.equal(ra.code, 0, ra.stderr);
    assert.equal(rb.code, 0, rb.stderr);
    const trained = [...`${ra.stdout}${rb.stdout}`.matchAll(/^ {2}done (\S+):/gm)].map((m) => m[1]);
    assert.equal(trained.length, 4, `${ra.stdout}\n${rb.stdout}`);
    assert.equal(new Set(trained).size, 4);
    assert.equal(summaryRows(path.join(out, 'tiny')).filter((r) => r.status === 'completed').length, 4);
  });

  it('a stale lock from a dead process is taken over; a live one is respected', () => {
    const spec = writeSpec(tmpDir(), TINY_SPEC);
    const out = tmpDir();
    const id = JSON.parse(bnx(['plan', spec, '--json']).stdout)[0].id as string;
    const runDir = path.join(out, 'tiny', id);
    fs.mkdirSync(runDir, { recursive: true });
    fs.writeFileSync(
      path.join(runDir, '.lock'),
      JSON.stringify({ pid: process.pid, host: os.hostname(), since: 'now' }),
    );
    const held = bnx(['run', spec, '--out', out]);
    assert.match(held.stdout, new RegExp(`running in another process \\(pid ${process.pid}`));
    fs.writeFileSync(
      path.join(runDir, '.lock'),
      JSON.stringify({ pid: 2 ** 22 + 12345, host: os.hostname(), since: 'then' }),
    );
    const res = bnx(['run', spec, '--out', out]);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /done /);
    assert.equal(fs.existsSync(path.join(runDir, '.lock')), false, 'released on exit');
  });
});

describe('sweep identity', () => {
  it('a changed spec adds new points, keeps old ones, and refuses a point whose config changed', () => {
    const dir = tmpDir();
    const out = path.join(dir, 'results');
    const spec = writeSpec(dir, `${TINY_SPEC}grid:\n  model.norm: [none]\n`);
    assert.equal(bnx(['run', spec, '--out', out]).code, 0);
    writeSpec(dir, `${TINY_SPEC}grid:\n  model.norm: [none, batch]\n`);
    const added = bnx(['run', spec, '--out', out]);
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stdout, /norm=none_\w+: completed, skipped/);
    assert.equal(runDirs(path.join(out, 'tiny')).length, 2);
    writeSpec(dir, `${TINY_SPEC.replace('lr: 0.5', 'lr: 0.25')}grid:\n  model.norm: [none, batch]\n`);
    const before = fs.readFileSync(path.join(out, 'tiny', 'sweep.json'), 'utf8');
    const refused = bnx(['run', spec, '--out', out]);
    assert.equal(refused.code, 2);
    assert.match(
      refused.stderr,
      /run norm=none exists here with a different configuration \(train\.lr 0\.5 -> 0\.25\); .*--out DIR.*--new/,
    );
    assert.equal(fs.readFileSync(path.join(out, 'tiny', 'sweep.json'), 'utf8'), before, 'nothing written');
    const fresh = bnx(['run', spec, '--out', out, '--new']);
    assert.equal(fresh.code, 0, fresh.stderr);
    assert.ok(fs.existsSync(path.join(out, 'tiny-2', 'summary.csv')));
  });
});

describe('divergence and faults', () => {
  it('a high-learning-rate no-BN run is recorded as diverged while its BN twin completes', () => {
    const spec = writeSpec(
      tmpDir(),
      `${TINY_SPEC.replace('hidden: [16]', 'hidden: [32, 32]\n  activation: relu\n  init: he_normal').replace('lr: 0.5', 'lr: 4').replace('steps: 40', 'steps: 200')}grid:\n  model.norm: [none, batch]\n`,
    );
    const out = tmpDir();
    const res = bnx(['run', spec, '--out', out]);
    assert.equal(res.code, 0, 'divergence is a result, not an error');
    const rows = summaryRows(path.join(out, 'tiny'));
    assert.deepEqual(rows.map((r) => [r['model.norm'], r.status]).sort(), [
      ['batch', 'completed'],
      ['none', 'diverged'],
    ]);
    const diverged = runDirs(path.join(out, 'tiny')).find((d) => d.startsWith('norm=none')) as string;
    const record = JSON.parse(fs.readFileSync(path.join(out, 'tiny', diverged, 'run.json'), 'utf8'));
    assert.ok(record.diverged.step > 0);
    const metrics = readMetrics(path.join(out, 'tiny', diverged, 'metrics.csv'));
    assert.equal(metrics.at(-1)?.step, record.diverged.step, 'rows until the divergence are kept');
    assert.match(res.stdout, /diverged norm=none_\w+: training loss \S+ at step \d+/);
    // Diverged is final: a rerun skips it.
    assert.match(bnx(['run', spec, '--out', out]).stdout, /diverged, skipped \(--rerun diverged reruns it\)/);
  });

  it('disk full while writing metrics: one clear line, the run failed, the CSV intact, the sweep goes on', () => {
    const spec = writeSpec(tmpDir(), `${TINY_SPEC}grid:\n  model.norm: [none, batch]\n`);
    const out = tmpDir();
    const ids = (JSON.parse(bnx(['plan', spec, '--json']).stdout) as { id: string }[]).map((r) => r.id);
    const full = path.join(out, 'tiny', ids[0]);
    fs.mkdirSync(full, { recursive: true });
    fs.symlinkSync('/dev/full', path.join(full, 'metrics.csv'));
    const res = bnx(['run', spec, '--out', out]);
    assert.equal(res.code, 1);
    assert.match(res.stdout, new RegExp(`failed ${ids[0]}: disk full \\(.*metrics\\.csv\\)`));
    assert.match(res.stdout, new RegExp(`done ${ids[1]}`));
    const record = JSON.parse(fs.readFileSync(path.join(full, 'run.json'), 'utf8'));
    assert.equal(record.status, 'failed');
    // Space is back: the same command reruns only the failed run.
    fs.rmSync(path.join(full, 'metrics.csv'));
    const again = bnx(['run', spec, '--out', out]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, new RegExp(`${ids[1]}: completed, skipped`));
    assert.match(again.stdout, new RegExp(`done ${ids[0]}`));
  });

  it('an unreadable dataset fails the run with one line naming the file', () => {
    const dir = tmpDir();
    const data = path.join(dir, 'mnist');
    fs.mkdirSync(data);
    for (const f of [
      'train-images-idx3-ubyte',
      'train-labels-idx1-ubyte',
      't10k-images-idx3-ubyte',
      't10k-labels-idx1-ubyte',
    ]) {
      fs.writeFileSync(path.join(data, f), Buffer.from([0, 0, 8, 3, 0, 0]));
    }
    const spec = writeSpec(dir, `name: broken\ndata: { dataset: mnist, path: ${data} }\ntrain: { steps: 10 }\n`);
    const out = path.join(dir, 'out');
    const res = bnx(['run', spec, '--out', out]);
    assert.equal(res.code, 1);
    assert.match(res.stdout, /failed \S+: .*train-images-idx3-ubyte/);
    assertCsvsParse(out);
  });
});

describe('beyond one machine', () => {
  it('3 shards in 3 processes, merged, equal the single-process sweep', async () => {
    const spec = writeSpec(tmpDir(), SWEEP.replace('steps: 150', 'steps: 60'));
    const single = tmpDir();
    // --shard splits the grid by runs, not by fused groups, and a fused run equals its unfused run
    // only within float32 round-off: bit-for-bit agreement holds when neither side fuses.
    assert.equal(bnx(['run', spec, '--out', single, '--no-fuse']).code, 0);
    const shards = [tmpDir(), tmpDir(), tmpDir()];
    const results3 = await Promise.all(
      shards.map((out, i) => start(['run', spec, '--out', out, '--shard', `${i}/3`, '--no-fuse']).done),
    );
    for (const r of results3) assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      shards.map((s) => runDirs(path.join(s, 'tiny')).length),
      [2, 1, 1],
    );
    const merged = tmpDir();
    const res = bnx(['merge', ...shards, '--out', merged]);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /4 run\(s\) copied/);
    assert.deepEqual(summaryRows(path.join(merged, 'tiny')), summaryRows(path.join(single, 'tiny')));
    assert.deepEqual(results(path.join(merged, 'tiny')), results(path.join(single, 'tiny')));
    // Merging the same shards again changes nothing; a tampered copy is refused.
    assert.match(bnx(['merge', ...shards, '--out', merged]).stdout, /0 run\(s\) copied, 4 already there/);
    const victim = path.join(shards[1], 'tiny', runDirs(path.join(shards[1], 'tiny'))[0], 'metrics.csv');
    fs.appendFileSync(victim, '999,9.0,1,1,,,0.5\n');
    const conflict = bnx(['merge', shards[1], '--out', merged]);
    assert.equal(conflict.code, 2);
    assert.match(conflict.stderr, /the same run with different results/);
  });
});
