import fs from 'node:fs';
import { stringify } from 'csv-stringify/sync';

/**
 * A CSV file written as it grows: each `append` is one write(2) of whole lines, so `tail -f` shows
 * progress and a killed process leaves only complete rows; a failed write (disk full) cuts the
 * file back to its last complete line before the error is thrown.
 */
export class CsvLines {
  private fd: number;
  /** Bytes of complete lines written: on a failed write the file is cut back to this. */
  private length = 0;

  /** Creates (or empties) `file` and writes the header. */
  constructor(
    readonly file: string,
    header: readonly string[],
  ) {
    this.fd = fs.openSync(file, 'w');
    this.append([[...header]]);
  }

  append(lines: string[][]): void {
    const bytes = Buffer.from(stringify(lines));
    try {
      let done = 0;
      while (done < bytes.length) done += fs.writeSync(this.fd, bytes, done, bytes.length - done);
      this.length += bytes.length;
    } catch (e) {
      try {
        fs.ftruncateSync(this.fd, this.length);
      } catch {
        // Nothing more can be done; the error below says what happened.
      }
      (e as NodeJS.ErrnoException).path ??= this.file;
      throw e;
    }
  }

  /** Flushes to disk (rows are already in the OS's cache as each is written) and closes. */
  close(): void {
    if (this.fd < 0) return;
    const fd = this.fd;
    this.fd = -1;
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }
}
