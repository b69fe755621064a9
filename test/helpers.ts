import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MNIST_FILES, writeIdx } from '../src/data/index.js';
import { Rng } from '../src/util/rng.js';

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

/** A stack-frame line (`    at fn (file:12:3)`): no bnx command may print one, whatever happens. */
const STACK_FRAME = /^\s+at /m;

/** Fails when a bnx process's stderr holds a stack trace (every test that runs bnx checks this). */
export function assertNoStackTrace(stderr: string, args: readonly string[] = []): void {
  const frame = STACK_FRAME.exec(stderr);
  assert.equal(frame, null, `bnx ${args.join(' ')} printed a stack trace:\n${stderr}`);
}

/** The one line a refusal or a fault prints on stderr: exactly one line, and no stack frame. */
export function oneLine(res: { stderr: string }): string {
  assertNoStackTrace(res.stderr);
  const lines = res.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `one line on stderr, got ${lines.length}:\n${res.stderr}`);
  return lines[0];
}

/** Runs the real `bnx` executable, as a user would. Its stderr never holds a stack trace. */
export function bnx(args: string[], cwd = ROOT, opts: { env?: NodeJS.ProcessEnv; timeout?: number } = {}): CliResult {
  const res = spawnSync(process.execPath, [BNX, ...args], {
    cwd,
    encoding: 'utf8',
    timeout: opts.timeout ?? 300_000,
    // A process stuck past its time may be deaf to SIGTERM (busy-waiting on a lock).
    killSignal: 'SIGKILL',
    env: opts.env ?? process.env,
  });
  assertNoStackTrace(res.stderr, args);
  return { code: res.status, signal: res.signal, stdout: res.stdout, stderr: res.stderr };
}

/**
 * Starts the real `bnx` without waiting; `done` resolves with its exit code, signal and output (and
 * rejects if its stderr holds a stack trace).
 */
export function startBnx(
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): { child: ReturnType<typeof spawn>; done: Promise<CliResult> } {
  const child = spawn(process.execPath, [BNX, ...args], { cwd: opts.cwd ?? ROOT, env: opts.env ?? process.env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const done = new Promise<CliResult>((resolve, reject) =>
    child.on('close', (code, signal) => {
      try {
        assertNoStackTrace(stderr, args);
        resolve({ code, signal, stdout, stderr });
      } catch (e) {
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    }),
  );
  return { child, done };
}

/** sha256 of every file under a folder, by path relative to it: to show that files did not change. */
export function hashTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    out[path.relative(dir, file)] = createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  }
  return out;
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

/**
 * An easy image task: 8x8 images, class c in 0..3 lights up quadrant c (value 200 + noise) over
 * a noisy dark background. Written as Fashion-MNIST IDX files, or as CIFAR-10 batches (32x32x3,
 * the quadrant lit in every channel).
 */
export function quadrantImages(n: number, side: number, channels: number, rng: Rng): { x: Uint8Array; y: Uint8Array } {
  const x = new Uint8Array(n * side * side * channels);
  const y = new Uint8Array(n);
  const half = side / 2;
  for (let i = 0; i < n; i++) {
    const c = i % 4;
    y[i] = c;
    for (let r = 0; r < side; r++) {
      for (let col = 0; col < side; col++) {
        const lit = Math.floor(r / half) * 2 + Math.floor(col / half) === c;
        for (let k = 0; k < channels; k++)
          x[((i * side + r) * side + col) * channels + k] = Math.min(255, (lit ? 150 : 20) + rng.int(80));
      }
    }
  }
  return { x, y };
}

export function writeFashionQuadrants(dir: string): void {
  const rng = new Rng(7);
  for (const [images, labels, n] of [
    [MNIST_FILES.trainImages, MNIST_FILES.trainLabels, 400],
    [MNIST_FILES.testImages, MNIST_FILES.testLabels, 100],
  ] as const) {
    const { x, y } = quadrantImages(n, 8, 1, rng);
    writeIdx(path.join(dir, images), [n, 8, 8], x);
    writeIdx(path.join(dir, labels), [n], y);
  }
}
