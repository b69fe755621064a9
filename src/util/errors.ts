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

/** Exit code for bad input, as the CLI guide promises. */
export const EXIT_BAD_INPUT = 2;
