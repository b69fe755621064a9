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
