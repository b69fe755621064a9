import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import readline from 'node:readline';

/**
 * `bnx run --workers N`: N child processes of the same command, child i with `--shard i/N`, so the
 * grid is split as for a cluster (round-robin, deterministic; each child trains together what it
 * can of its slice). Every process runs each op on one thread (src/train/backend.ts), so a run's
 * numbers are those it has alone; the children's inter-op pools split the machine's cores
 * (TF_NUM_INTEROP_THREADS, read by libtensorflow when the backend starts). Each child's output is
 * prefixed `[w<i>]`. Ctrl-C and SIGTERM reach every child, which stop after their current step as
 * a single process does. Returns the worst exit code (interrupted 130/143 over failed 1 over 0).
 */
export async function runWorkers(args: string[], workers: number): Promise<number> {
  const children: ChildProcess[] = [];
  const forward = (signal: NodeJS.Signals) => {
    for (const c of children) if (c.exitCode === null) c.kill(signal);
  };
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  try {
    const codes = await Promise.all(
      Array.from({ length: workers }, (_, i) => {
        const child = spawn(process.execPath, [process.argv[1], ...args, '--shard', `${i}/${workers}`], {
          env: { ...process.env, ...workerThreadEnv(workers) },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        children.push(child);
        const prefix = `[w${i}] `;
        readline.createInterface({ input: child.stdout! }).on('line', (l) => process.stdout.write(`${prefix}${l}\n`));
        readline.createInterface({ input: child.stderr! }).on('line', (l) => process.stderr.write(`${prefix}${l}\n`));
        return new Promise<number>((resolve) => {
          child.on('error', (e) => {
            process.stderr.write(`${prefix}cannot start: ${e.message}\n`);
            resolve(1);
          });
          child.on('close', (code, signal) => resolve(code ?? (signal === 'SIGINT' ? 130 : 143)));
        });
      }),
    );
    return Math.max(...codes);
  } finally {
    process.off('SIGINT', forward);
    process.off('SIGTERM', forward);
  }
}

/** A worker's TensorFlow inter-op pool, so that `workers` processes use the machine's cores once. */
export function workerThreadEnv(workers: number): Record<string, string> {
  return { TF_NUM_INTEROP_THREADS: String(Math.max(1, Math.floor(os.availableParallelism() / workers))) };
}

/**
 * A worker's command line: the parent's without `--workers N` (and `--new`, whose fresh folder the
 * parent chose: `sweepDir`, passed as `--sweep-dir`); the children run the rest as it is.
 */
export function workerArgs(args: string[], sweepDir: string | null): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--workers') i++;
    else if (!args[i].startsWith('--workers=') && !(sweepDir !== null && args[i] === '--new')) out.push(args[i]);
  }
  return sweepDir === null ? out : [...out, '--sweep-dir', sweepDir];
}
