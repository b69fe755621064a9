import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { inspectLock, LockBusyError, tryLock, withLock, type LockOwner } from '../src/store/lock.js';
import { bnx, BNX, ROOT, tmpDir, TINY_SPEC, writeSpec } from './helpers.js';

/** The lock a process of another host took `ageMs` ago and last refreshed then. */
function foreignLock(file: string, ageMs: number): void {
  const owner: LockOwner = {
    host: 'elsewhere',
    pid: process.pid,
    since: new Date(Date.now() - ageMs).toISOString(),
    lease_ms: 60_000,
    token: 'f00d',
  };
  fs.writeFileSync(file, JSON.stringify(owner));
  const t = new Date(Date.now() - ageMs);
  fs.utimesSync(file, t, t);
}

/** A pid that is not running on this host: a child that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn('true');
  await new Promise((r) => child.on('close', r));
  return child.pid!;
}

describe('lock files', () => {
  const env = { ...process.env };
  afterEach(() => {
    process.env = { ...env };
  });

  it('name their host, pid, lease and token; are refreshed while held; are removed on release', async () => {
    process.env.BNX_LOCK_LEASE_MS = '400';
    const file = path.join(tmpDir('bnx-lock-'), '.lock');
    const lock = tryLock(file);
    assert.ok(lock.ok);
    const owner = JSON.parse(fs.readFileSync(file, 'utf8')) as LockOwner;
    assert.deepEqual(
      [owner.host, owner.pid, owner.lease_ms, /^[0-9a-f]{16}$/.test(owner.token)],
      [os.hostname(), process.pid, 400, true],
    );
    // Held by this live process: not taken, by this host or another.
    assert.equal(tryLock(file).ok, false);
    process.env.BNX_HOSTNAME = 'another-host';
    // Three leases later the lease is still fresh: the timer has refreshed it.
    while (Date.now() - Date.parse(owner.since) < 1200) await new Promise((r) => setTimeout(r, 50));
    const seen = inspectLock(file);
    assert.ok(seen.state === 'held' && seen.ageMs < 400, `refreshed: ${JSON.stringify(seen)}`);
    const other = tryLock(file);
    assert.equal(other.ok, false);
    assert.equal(!other.ok && other.owner?.pid, process.pid);
    lock.release();
    lock.release();
    assert.equal(inspectLock(file).state, 'free');
  });

  it('another host: respected while its lease is fresh, taken over (saying so) once it expired', () => {
    const file = path.join(tmpDir('bnx-lock-'), '.lock');
    foreignLock(file, 50_000);
    assert.equal(tryLock(file, { onStale: () => assert.fail('fresh lease taken over') }).ok, false);
    foreignLock(file, 61_000);
    const lines: string[] = [];
    const lock = tryLock(file, { onStale: (l) => lines.push(l) });
    assert.ok(lock.ok);
    assert.equal(lines.length, 1);
    assert.match(
      lines[0],
      /stale lock .*\.lock \(pid \d+ on elsewhere has not renewed its 60\.0 s lease for 6\d\.\d s\): taken over/,
    );
    lock.release();
  });

  it('this host: a dead pid, an empty or a garbage lock is stale at once', async () => {
    const dir = tmpDir('bnx-lock-');
    const cases: [string, string, RegExp][] = [
      ['dead', JSON.stringify({ host: os.hostname(), pid: await deadPid(), since: 'x' }), /pid \d+ on .* is gone/],
      ['empty', '', /its owner cannot be read: an empty file/],
      ['garbage', '{"pid": ', /its owner cannot be read: not a lock record/],
    ];
    for (const [name, text, why] of cases) {
      const file = path.join(dir, name);
      fs.writeFileSync(file, text);
      const lines: string[] = [];
      const lock = tryLock(file, { onStale: (l) => lines.push(l) });
      assert.ok(lock.ok, name);
      assert.match(lines.join('\n'), why);
      lock.release();
    }
  });

  it('withLock waits for a live holder, then fails in one line', () => {
    const file = path.join(tmpDir('bnx-lock-'), '.sweep.lock');
    foreignLock(file, 0);
    assert.throws(
      () => withLock(file, () => assert.fail('ran under a held lock'), 200),
      (e: Error) =>
        e instanceof LockBusyError &&
        /is held by pid \d+ on elsewhere since .*; waited 0\.2 s/.test(e.message) &&
        !e.message.includes('\n'),
    );
    assert.equal(
      withLock(`${file}2`, () => 7),
      7,
    );
  });
});

describe('a results folder shared by hosts (BNX_HOSTNAME, BNX_LOCK_LEASE_MS)', () => {
  it('an empty .sweep.lock or a garbage run lock does not block a folder: one line each, the run trains', () => {
    const dir = tmpDir('bnx-lock-cli-');
    const spec = writeSpec(dir, TINY_SPEC);
    const out = path.join(dir, 'out');
    const runId = (JSON.parse(bnx(['plan', spec, '--json']).stdout) as { id: string }[])[0].id;
    fs.mkdirSync(path.join(out, 'tiny', runId), { recursive: true });
    fs.writeFileSync(path.join(out, 'tiny', '.sweep.lock'), '');
    fs.writeFileSync(path.join(out, 'tiny', runId, '.lock'), 'garbage');
    const res = bnx(['run', spec, '--out', out]);
    assert.equal(res.code, 0, res.stderr);
    assert.match(
      res.stderr,
      /^bnx: stale lock \S+\.sweep\.lock \(its owner cannot be read: an empty file\): taken over$/m,
    );
    assert.match(
      res.stderr,
      /^bnx: stale lock \S+\.lock \(its owner cannot be read: not a lock record\): taken over$/m,
    );
    assert.match(res.stdout, /done /);
    assert.equal(fs.existsSync(path.join(out, 'tiny', '.sweep.lock')), false);
  });

  it("a live host keeps its run; a dead host's run is taken over once its lease expired; no run trains twice", async () => {
    const dir = tmpDir('bnx-hosts-');
    // Run 0 trains long enough to outlive several leases; runs 1 and 2 are short.
    const spec = writeSpec(
      dir,
      `name: hosts
seed: 3
data: { dataset: synthetic, synthetic: { features: 8, classes: 3, train_size: 300, test_size: 90, noise: 0.5 }, val_size: 60 }
model: { hidden: [16] }
train: { lr: 0.5, batch_size: 20, steps: 300, eval_every: 100, log_every: 10 }
grid:
  train.steps: [3000, 300, 301]
`,
    );
    const out = path.join(dir, 'shared');
    const sweep = path.join(out, 'hosts');
    const lease = 2000;
    const exited: string[] = [];
    const start = (host: string) => {
      const child = spawn(process.execPath, [BNX, 'run', spec, '--out', out, '--no-fuse', '--workers', '1'], {
        cwd: ROOT,
        env: { ...process.env, BNX_HOSTNAME: host, BNX_LOCK_LEASE_MS: String(lease) },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
        child.on('close', (code) => {
          exited.push(host);
          resolve({ code, stdout, stderr });
        }),
      );
      return { child, done, stdout: () => stdout };
    };
    const until = async (what: string, check: () => boolean) => {
      const deadline = Date.now() + 120_000;
      while (!check()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        if (exited.length > 0) throw new Error(`${exited.join(', ')} exited while waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const longRun = () =>
      fs.existsSync(sweep) ? fs.readdirSync(sweep).find((f) => f.startsWith('steps=3000_')) : undefined;
    const lockOf = (run: string) => path.join(sweep, run, '.lock');
    const rows = (run: string) => {
      try {
        return fs.readFileSync(path.join(sweep, run, 'metrics.csv'), 'utf8').split('\n').length - 2;
      } catch {
        return 0;
      }
    };

    // Host A trains the long run. It is frozen (SIGSTOP) while host B starts, and B waits at the
    // folder lock, which this test holds, until A runs again: B then reaches the run while A trains it.
    const a = start('host-a');
    await until('host A to train the long run', () => {
      const run = longRun();
      return run !== undefined && inspectLock(lockOf(run)).state === 'held' && rows(run) > 0;
    });
    a.child.kill('SIGSTOP');
    const gate = tryLock(path.join(sweep, '.sweep.lock'));
    assert.ok(gate.ok);
    const b = start('host-b');
    await until('host B to start', () => /^bnx .*: 3 run\(s\) of hosts/m.test(b.stdout()));
    const resumed = Date.now();
    a.child.kill('SIGCONT');
    const run = longRun()!;
    await until('host A to renew its lease', () => {
      const s = inspectLock(lockOf(run));
      return s.state === 'held' && Date.now() - s.ageMs > resumed;
    });
    gate.release();
    await until('host B to reach the long run', () => /^\[1\/3\] steps=\S+: /m.test(b.stdout()));
    assert.match(b.stdout(), /^\[1\/3\] \S+: running in another process \(pid \d+ on host-a\)$/m);
    // Host A dies (a node lost: no signal handler runs) while its lease is fresh.
    a.child.kill('SIGKILL');
    await a.done;
    exited.length = 0;
    assert.equal(inspectLock(lockOf(run)).state, 'held', 'a dead host looks alive until its lease expires');
    const resB = await b.done;
    exited.length = 0;
    assert.equal(resB.code, 0, resB.stderr);
    assert.equal(JSON.parse(fs.readFileSync(path.join(sweep, run, 'run.json'), 'utf8')).status, 'running');

    // Once the lease has expired, the next process takes the run over and trains it.
    await until('the lease of host A to expire', () => inspectLock(lockOf(run)).state === 'stale');
    const resC = await start('host-b').done;
    assert.equal(resC.code, 0, resC.stderr);
    assert.match(
      resC.stderr,
      /stale lock \S+ \(pid \d+ on host-a has not renewed its 2\.0 s lease for \d+\.\d s\): taken over/,
    );

    // Every run trained to the end exactly once (A's killed attempt aside).
    const doneIn = (stdout: string) => [...stdout.matchAll(/^ {2}done (\S+):/gm)].map((m) => m[1]).sort();
    const all = fs.readdirSync(sweep).filter((f) => fs.existsSync(path.join(sweep, f, 'run.json')));
    assert.equal(all.length, 3);
    assert.deepEqual(doneIn(resB.stdout), all.filter((id) => id !== run).sort());
    assert.deepEqual(doneIn(resC.stdout), [run]);
    for (const id of all) {
      const record = JSON.parse(fs.readFileSync(path.join(sweep, id, 'run.json'), 'utf8'));
      assert.deepEqual([record.status, record.steps_done], ['completed', record.steps_total]);
    }
  });
});
