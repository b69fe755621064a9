import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { bnx, hashTree, tmpDir, TINY_SPEC, writeSpec } from './helpers.js';

/**
 * Shared by the fault-injection tests (faults*.test.ts): a completed two-run sweep to damage
 * (trained once per test file, then copied for each case), and the tools that inject faults.
 */

/** TINY_SPEC, BN vs none (one group of two), with an instrument CSV: every kind of file a run writes. */
export const FIXTURE_SPEC = `${TINY_SPEC}instruments:\n  eval_gap: { enabled: true, every: 20 }\ngrid:\n  model.norm: [none, batch]\n`;

export interface Sweep {
  /** The spec file. */
  spec: string;
  /** The results root (`--out`). */
  out: string;
  /** The sweep folder, `<out>/tiny`. */
  dir: string;
  /** Run folders: [norm=none, norm=batch]. */
  runs: string[];
}

/** Trains a sweep of `specText` into a fresh folder; every run must complete. */
export function trainSweep(specText: string, args: string[] = []): Sweep {
  const root = tmpDir('bnx-fault-');
  const spec = writeSpec(root, specText);
  const out = path.join(root, 'results');
  const res = bnx(['run', spec, '--out', out, ...args]);
  assert.equal(res.code, 0, res.stderr);
  return describeSweep(spec, out);
}

function describeSweep(spec: string, out: string): Sweep {
  const dir = path.join(out, 'tiny');
  const runs = ['none', 'batch'].map((n) => {
    const name = fs.readdirSync(dir).find((d) => d.startsWith(`norm=${n}_`));
    assert.ok(name, `no norm=${n} run in ${dir}`);
    return path.join(dir, name);
  });
  return { spec, out, dir, runs };
}

/** A copy of a trained sweep (spec and results) in a fresh folder, to damage. */
export function copySweep(from: Sweep): Sweep {
  const root = tmpDir('bnx-fault-');
  const spec = path.join(root, 'spec.yaml');
  fs.copyFileSync(from.spec, spec);
  const out = path.join(root, 'results');
  fs.cpSync(from.out, out, { recursive: true });
  return describeSweep(spec, out);
}

/**
 * The files of every run folder of a sweep, hashed: compared before and after a fault. Hidden files
 * (a lock a killed process left, which the next run takes over) are not the run's results.
 */
export function runHashes(s: Sweep): Record<string, Record<string, string>> {
  const visible = (tree: Record<string, string>) =>
    Object.fromEntries(Object.entries(tree).filter(([f]) => !f.split(path.sep).some((p) => p.startsWith('.'))));
  return Object.fromEntries(s.runs.map((r) => [path.basename(r), visible(hashTree(r))]));
}

/** A run's status as its run.json says. */
export const statusOf = (runDir: string): string =>
  (JSON.parse(fs.readFileSync(path.join(runDir, 'run.json'), 'utf8')) as { status: string }).status;

/** Data rows in a CSV (0 when it does not exist yet). */
export function dataRows(file: string): number {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').length - 2;
  } catch {
    return 0;
  }
}

/** Waits (polling, not sleeping a guess) until `ready()` holds or the process ended. */
export async function until(ready: () => boolean, ended: () => boolean): Promise<void> {
  while (!ended() && !ready()) await new Promise((r) => setTimeout(r, 5));
}

/** Files whose name marks a temporary file (writeFileAtomic's `.<name>.<pid>.tmp`), under a folder. */
export function tempFiles(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => /\.tmp$/.test(path.basename(f)));
}

/**
 * `chattr +i` (immutable: not even root may change, rename or remove it), or null with the reason
 * when the file system or the user cannot (the test is then skipped, saying why).
 */
export function immutable(file: string): { undo: () => void } | null {
  const res = spawnSync('chattr', ['+i', file], { encoding: 'utf8' });
  if (res.status !== 0) return null;
  return { undo: () => void spawnSync('chattr', ['-i', file]) };
}

/** Why immutable() cannot work here, or null when it can (probed on a scratch file). */
export const IMMUTABLE_UNAVAILABLE: string | null = (() => {
  const probe = path.join(tmpDir('bnx-chattr-'), 'probe');
  fs.writeFileSync(probe, '');
  const res = spawnSync('chattr', ['+i', probe], { encoding: 'utf8' });
  if (res.error) return 'chattr is not installed';
  if (res.status !== 0) return `chattr +i fails here: ${res.stderr.trim()}`;
  spawnSync('chattr', ['-i', probe]);
  return null;
})();

/**
 * A small tmpfs mounted at a fresh folder (root only), to fill up for real; null when mounting is
 * not allowed here (the caller injects ENOSPC with a symlink to /dev/full instead).
 */
export function smallDisk(
  sizeKiB: number,
): { dir: string; fill: () => void; free: () => void; unmount: () => void } | null {
  const dir = tmpDir('bnx-disk-');
  const res = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeKiB}k`, 'tmpfs', dir], { encoding: 'utf8' });
  if (res.status !== 0) return null;
  const filler = path.join(dir, 'filler');
  return {
    dir,
    fill: () => {
      const fd = fs.openSync(filler, 'a');
      const block = Buffer.alloc(4096);
      try {
        for (;;) fs.writeSync(fd, block);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
      } finally {
        fs.closeSync(fd);
      }
    },
    free: () => fs.rmSync(filler, { force: true }),
    unmount: () => void spawnSync('umount', [dir]),
  };
}
