import fs from 'node:fs';
import path from 'node:path';

/**
 * Writes a whole file so that readers only ever see the old or the new complete content: write to a
 * temporary file in the same directory, fsync, rename over the target.
 */
export function writeFileAtomic(file: string, content: string | Uint8Array): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, typeof content === 'string' ? Buffer.from(content) : content);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

/**
 * Creates `file` with `content` only if no file of that name exists, and never lets a reader see
 * it empty or half-written: the content goes to a temporary file, which is then link()ed to the
 * name. link() is atomic and fails when the name exists on local file systems and on every NFS
 * version (O_CREAT|O_EXCL is not, over NFSv2 and old clients). Returns false if the file exists.
 * On a file system without hard links, falls back to O_EXCL (the file is then briefly empty).
 */
export function writeFileExclusive(file: string, content: string): boolean {
  const tmp = path.join(
    path.dirname(file),
    `.${path.basename(file)}.${process.pid}.${Math.random().toString(36).slice(2, 10)}.tmp`,
  );
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
    try {
      fs.writeFileSync(file, content, { flag: 'wx' });
      return true;
    } catch (e2) {
      if ((e2 as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e2;
    }
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/** One line for an operating-system error: what happened, to which file. */
export function describeFault(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const where = err.path ? ` (${err.path})` : '';
  switch (err.code) {
    case 'ENOSPC':
      return `disk full${where}`;
    case 'EACCES':
    case 'EPERM':
      return `permission denied${where}`;
    case 'EROFS':
      return `read-only file system${where}`;
    case 'EDQUOT':
      return `disk quota exceeded${where}`;
    default:
      return (err?.message ?? String(e)).split('\n')[0];
  }
}
