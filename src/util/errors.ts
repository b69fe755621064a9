/**
 * An error in what the user gave bnx (a spec, an override, a path, a data file): reported as one
 * line, `where: what (what is allowed)`, with exit code 2. Anything else that escapes is a bug.
 */
export class InputError extends Error {
  constructor(
    /** Where the problem is: `file:line:col`, `file: key.path`, `--set train.lr`, or a path. */
    readonly where: string,
    message: string,
  ) {
    super(`${where}: ${message}`);
    this.name = 'InputError';
  }
}

/**
 * A file that cannot be read back as what bnx wrote there (truncated, garbage, a folder where a file
 * belongs): reported like bad input, naming the file. bnx never writes over a file it could not read.
 */
export class DamagedFileError extends InputError {
  constructor(
    readonly file: string,
    /** What is wrong with it: `not valid JSON (Unexpected end of JSON input)`. */
    readonly why: string,
    /** What the user can do about it. */
    hint?: string,
  ) {
    super(file, `damaged: ${why}${hint ? `; ${hint}` : ''}`);
    this.name = 'DamagedFileError';
  }
}

/** Exit code for bad input, as the CLI guide promises. */
export const EXIT_BAD_INPUT = 2;
