import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (tests run from dist/test/). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BNX = path.join(ROOT, 'bin', 'bnx.js');

export function tmpDir(prefix = 'bnx-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface CliResult {
  code: number | null;
  /** The signal that ended the process (code is then null). */
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the real `bnx` executable, as a user would. */
export function bnx(args: string[], cwd = ROOT): CliResult {
  const res = spawnSync(process.execPath, [BNX, ...args], { cwd, encoding: 'utf8', timeout: 300_000 });
  return { code: res.status, signal: res.signal, stdout: res.stdout, stderr: res.stderr };
}

/** Writes a spec file into a temp dir and returns its path. */
export function writeSpec(dir: string, text: string, name = 'spec.yaml'): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

/** A spec that trains in well under a second: for CLI tests. */
export const TINY_SPEC = `name: tiny
seed: 3
data:
  dataset: synthetic
  synthetic: { features: 8, classes: 3, train_size: 300, test_size: 90, noise: 0.5 }
  val_size: 60
model:
  hidden: [16]
train:
  lr: 0.5
  batch_size: 20
  steps: 40
  eval_every: 20
  log_every: 10
`;
