import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { bnx, BNX, ROOT, tmpDir, writeSpec } from './helpers.js';

const SPEC = `name: local
seed: 3
data: { dataset: synthetic, synthetic: { features: 8, classes: 3, train_size: 300, test_size: 90, noise: 0.5 }, val_size: 60 }
model: { hidden: [16] }
train: { lr: 0.5, batch_size: 20, steps: 300, eval_every: 100, log_every: 10 }
grid:
  train.steps: [2000, 300, 301]
`;

/** Data rows of a metrics.csv (0 before it exists). */
function rows(file: string): number {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').length - 2;
  } catch {
    return 0;
  }
}

async function until(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('bnx status', () => {
  it('a local sweep in progress: runs by state, the running one with its step, ETA and process; then done; a dead process and a failure', async () => {
    const dir = tmpDir('bnx-status-');
    const spec = writeSpec(dir, SPEC);
    const out = path.join(dir, 'results');
    const sweep = path.join(out, 'local');
    const child = spawn(process.execPath, [BNX, 'run', spec, '--out', out, '--no-fuse', '--workers', '1'], {
      cwd: ROOT,
      stdio: 'ignore',
    });
    const exited = new Promise((r) => child.on('close', r));
    const long = () => fs.readdirSync(sweep).find((f) => f.startsWith('steps=2000_'));
    await until(
      'the first run to log',
      () => fs.existsSync(sweep) && long() !== undefined && rows(path.join(sweep, long()!, 'metrics.csv')) >= 2,
    );
    // Frozen mid-run, so that what status reads stays put.
    child.kill('SIGSTOP');
    const status = bnx(['status', sweep]);
    child.kill('SIGCONT');
    assert.equal(status.code, 0, status.stderr);
    const lines = status.stdout.trim().split('\n');
    assert.match(lines[0], /\/local: runs 0\/3 done, 1 running, 2 pending \| steps \d+\/2,601( \| eta .+)?$/);
    assert.match(
      lines[1],
      new RegExp(`^ {2}running {6}${long()} {2}step \\d+/2,000, (eta [^,]+, )?pid ${child.pid} on ${os.hostname()}$`),
    );
    assert.equal(lines.length, 2);
    await exited;
    assert.match(bnx(['status', sweep]).stdout, /\/local: runs 3\/3 done \| steps 2,601\/2,601\n$/);

    // A process killed mid-run leaves its run `running`, but no live lock: status says it was interrupted.
    fs.rmSync(sweep, { recursive: true });
    const killed = spawn(process.execPath, [BNX, 'run', spec, '--out', out, '--no-fuse', '--workers', '1'], {
      cwd: ROOT,
      stdio: 'ignore',
    });
    const gone = new Promise((r) => killed.on('close', r));
    await until(
      'the first run to log',
      () => fs.existsSync(sweep) && long() !== undefined && rows(path.join(sweep, long()!, 'metrics.csv')) >= 2,
    );
    killed.kill('SIGKILL');
    await gone;
    const after = bnx(['status', sweep]).stdout;
    assert.match(after, /\/local: runs 0\/3 done, 2 pending, 1 interrupted \| steps 0\/2,601\n/);
    assert.match(
      after,
      new RegExp(
        `^ {2}interrupted {2}${long()} {2}after step [1-9]\\d*: its process is gone \\(a rerun resumes it\\)$`,
        'm',
      ),
    );

    // A failed run, in another sweep of the same results root: its error line.
    const data = path.join(dir, 'mnist');
    fs.mkdirSync(data);
    for (const f of [
      'train-images-idx3-ubyte',
      'train-labels-idx1-ubyte',
      't10k-images-idx3-ubyte',
      't10k-labels-idx1-ubyte',
    ])
      fs.writeFileSync(path.join(data, f), Buffer.from([0, 0, 8, 3, 0, 0]));
    const broken = writeSpec(
      dir,
      `name: broken\ndata: { dataset: mnist, path: ${data} }\ntrain: { steps: 10 }\n`,
      'broken.yaml',
    );
    assert.equal(bnx(['run', broken, '--out', out]).code, 1);
    const both = bnx(['status', out]);
    assert.equal(both.code, 0, both.stderr);
    assert.match(
      both.stdout,
      /\/broken: runs 0\/1 done, 1 failed \| steps 0\/10\n {2}failed {7}run_\S+: .*train-images-idx3-ubyte/m,
    );
    assert.match(both.stdout, /\/local: runs 0\/3 done, 2 pending, 1 interrupted/m);
  });

  it('a run retrained with --force shows the new attempt running, not the previous result', async () => {
    const dir = tmpDir('bnx-status-force-');
    const spec = writeSpec(dir, SPEC.replace('train.steps: [2000, 300, 301]', 'train.steps: [2000]'));
    const out = path.join(dir, 'results');
    const sweep = path.join(out, 'local');
    assert.equal(bnx(['run', spec, '--out', out]).code, 0);
    const [id] = fs.readdirSync(sweep).filter((f) => f.startsWith('steps=2000_'));
    assert.match(bnx(['status', sweep]).stdout, /\/local: runs 1\/1 done \| steps 2,000\/2,000\n$/);

    const child = spawn(process.execPath, [BNX, 'run', spec, '--out', out, '--force'], { cwd: ROOT, stdio: 'ignore' });
    const exited = new Promise((r) => child.on('close', r));
    const staged = path.join(sweep, '.staging', `${id}.new`, 'metrics.csv');
    await until('the new attempt to log', () => rows(staged) >= 2);
    child.kill('SIGSTOP');
    const status = bnx(['status', sweep]);
    child.kill('SIGCONT');
    assert.equal(status.code, 0, status.stderr);
    const lines = status.stdout.trim().split('\n');
    assert.match(lines[0], /\/local: runs 0\/1 done, 1 running \| steps \d+\/2,000( \| eta .+)?$/);
    assert.match(
      lines[1],
      new RegExp(
        `^ {2}running {6}${id} {2}step \\d+/2,000, (eta [^,]+, )?pid ${child.pid} on ${os.hostname()} \\(retraining: the previous result stays until this attempt completes\\)$`,
      ),
    );
    await exited;
    assert.match(bnx(['status', sweep]).stdout, /\/local: runs 1\/1 done \| steps 2,000\/2,000\n$/);
  });

  it('says what it needs when the folder holds no sweep', () => {
    const res = bnx(['status', tmpDir('bnx-status-empty-')]);
    assert.equal(res.code, 2);
    assert.match(res.stderr, /^bnx: \S+: no sweep here \(a sweep folder holds sweep\.json and a folder per run\)\n$/);
  });
});
