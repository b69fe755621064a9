import fs from 'node:fs';
import path from 'node:path';

/**
 * Writes a whole file so that readers only ever see the old or the new complete content: write to a
 * temporary file in the same directory, fsync, rename over the target.
 */
export function writeFileAtomic(file: string, content: string): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, content);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}
