import fs from 'node:fs';
import path from 'node:path';
import { isAlive } from './process.js';

/** `.<name>.<pid>.tmp`: writeFileAtomic's temporary file for `name`, by the writing process. */
const TMP_FILE = /^\.(.+)\.(\d+)\.tmp$/;

/**
 * Writes a whole file so that readers only ever see the old or the new complete content: write to a
 * temporary file in the same directory, fsync, rename over the target. On failure (a full disk) the
 * temporary file is removed, the target is untouched, and the error names the target.
 */
export function writeFileAtomic(file: string, content: string | Uint8Array): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeSync(fd, typeof content === 'string' ? Buffer.from(content) : content);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    // write(2) and fsync(2) errors carry no path; the temporary name means nothing to a user.
    const err = e as NodeJS.ErrnoException;
    if (typeof err === 'object' && err !== null && (err.path === undefined || err.path === tmp)) err.path = file;
    throw e;
  }
}

/**
 * Removes the temporary files that writeFileAtomic left in `dir` when its process was killed
 * mid-write (their process is gone). Those of live processes stay: they are being written.
 */
export function removeStaleTempFiles(dir: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const m = TMP_FILE.exec(name);
    if (m && !isAlive(Number(m[2]))) fs.rmSync(path.join(dir, name), { force: true });
  }
}

/**
 * Creates `file` with `content` only if no file of that name exists, and never lets a reader see
 * it empty or half-written: the content goes to a temporary file, which is then link()ed to the
 * name. link() is atomic and fails when the name exists on local file systems and on every NFS
 * version (O_CREAT|O_EXCL is not, over NFSv2 and old clients). Returns false if the file exists.
 * On a file system without hard links, falls back to O_EXCL (the file is then briefly empty).
 */
export function writeFileExclusive(file: string, content: string): boolean {
  // Not writeFileAtomic's `.<name>.<pid>.tmp` pattern: removeStaleTempFiles judges those by a pid
  // on this host, and this file may be another host's (a lock on a shared folder) mid-link.
  const tmp = path.join(
    path.dirname(file),
    `.${path.basename(file)}.${process.pid}-${Math.random().toString(36).slice(2, 10)}.tmp`,
  );
  try {
    const fd = fs.openSync(tmp, 'wx');
    try {
      fs.writeSync(fd, content);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    try {
      fs.linkSync(tmp, file);
      return true;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // NFS: a retransmitted LINK whose first reply was lost says EEXIST although it worked.
      if (code === 'EEXIST') return fs.statSync(tmp).nlink === 2;
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS') throw e;
    }
    try {
      fs.writeFileSync(file, content, { flag: 'wx' });
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e;
    }
  } catch (e) {
    // A full disk or a read-only folder: the temporary name means nothing to a user; the target does.
    const err = e as NodeJS.ErrnoException;
    if (typeof err === 'object' && err !== null && (err.path === undefined || err.path === tmp)) err.path = file;
    throw e;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/** One line for an operating-system error: what happened, to which file. */
export function describeFault(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const where = err?.path ? ` (${err.path})` : '';
  switch (err?.code) {
    case 'ENOSPC':
      return `disk full${where}`;
    case 'EACCES':
    case 'EPERM':
      return `permission denied${where}`;
    case 'EROFS':
      return `read-only file system${where}`;
    case 'EDQUOT':
      return `disk quota exceeded${where}`;
    case 'EISDIR':
      return `is a directory, not a file${where}`;
    case 'ENOTDIR':
      return `a file stands where a folder belongs${where}`;
    default:
      return (err?.message ?? String(e)).split('\n')[0];
  }
}

/** True for an error raised by a system call (a fault of the machine or the file system, not a bug). */
export function isSystemError(e: unknown): e is NodeJS.ErrnoException {
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string' && 'syscall' in e;
}
