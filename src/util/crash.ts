import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BNX_VERSION } from './version.js';

/** The results folder of the command running, once known: an internal error's trace goes there. */
let resultsRoot: string | null = null;

/** Tells the crash reporter where the command's results go (`bnx run --out DIR`, `bnx merge --out DIR`). */
export function setResultsRoot(dir: string): void {
  resultsRoot = dir;
}

/** bnx's cache folder: `$BNX_CACHE_DIR`, else `$XDG_CACHE_HOME/bnx`, else `~/.cache/bnx`. */
export function cacheDir(): string {
  if (process.env.BNX_CACHE_DIR) return path.resolve(process.env.BNX_CACHE_DIR);
  const xdg = process.env.XDG_CACHE_HOME;
  return path.join(xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.cache'), 'bnx');
}

/**
 * Writes what a bug report needs (version, command line, the full trace) to
 * `bnx-crash-<time>.log` in the results folder when known, else in the cache folder (else the
 * system's temporary folder). Returns the file, or null if no folder would take it.
 */
export function writeCrashLog(error: unknown, argv: readonly string[]): string | null {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const trace = error instanceof Error ? (error.stack ?? `${error.name}: ${error.message}`) : String(error);
  const text = [
    `bnx ${BNX_VERSION}, Node ${process.versions.node} (${process.platform}-${process.arch})`,
    `command: bnx ${argv.join(' ')}`,
    `cwd: ${process.cwd()}`,
    `time: ${new Date().toISOString()}`,
    '',
    trace,
    '',
  ].join('\n');
  for (const dir of [resultsRoot, cacheDir(), os.tmpdir()]) {
    if (dir === null) continue;
    try {
      fs.mkdirSync(dir, { recursive: true });
      const file = path.join(dir, `bnx-crash-${stamp}-${process.pid}.log`);
      fs.writeFileSync(file, text, { flag: 'wx' });
      return file;
    } catch {
      // Not writable (the fault may be the reason for the crash): try the next place.
    }
  }
  return null;
}

/** The one line a user sees for a bug in bnx; the trace goes to a file (writeCrashLog). */
export function internalErrorLine(error: unknown, argv: readonly string[]): string {
  const message = (error instanceof Error ? error.message : String(error)).split('\n')[0] || 'unknown error';
  const file = writeCrashLog(error, argv);
  const where = file ? `the full trace is in ${file}` : 'no file would take the full trace';
  return `bnx: internal error: ${message} (${where}); please report it`;
}
