import { Command, CommanderError } from 'commander';
import { EXIT_BAD_INPUT, InputError } from '../util/errors.js';
import { findInstalled, searchedPlaces, SOURCES } from '../data/sources.js';
import { internalErrorLine } from '../util/crash.js';
import { describeFault, isSystemError } from '../util/files.js';
import { LockBusyError } from '../store/lock.js';
import { SlurmError } from '../launch/slurm.js';
import { BNX_VERSION } from '../util/version.js';
import { registerAnalyzeCommands } from './analyze.js';
import { registerExportCommand } from './export.js';
import { registerJobCommands } from './jobs.js';
import { registerPlanCommand } from './plan.js';
import { registerRunCommand } from './run.js';
import { registerStatusCommand } from './status.js';

/** TensorFlow is loaded only by commands that train: `--help` and `plan` stay fast. */
const loadTraining = () => import('../train/backend.js');

export function buildProgram(): Command {
  const program = new Command('bnx')
    .description(
      'Run, log and compare normalization experiments (Batch Normalization and friends) on native TensorFlow.',
    )
    .version(BNX_VERSION)
    // bin/bnx.js acts on it before TensorFlow loads (and removes it); listed here for --help.
    .option('--verbose', "show TensorFlow's own log lines (also BNX_TF_LOG=1)")
    // Usage errors are bad input: one line, `bnx: what (what is allowed)`, like every other.
    .configureOutput({ outputError: (text, write) => write(`bnx: ${text.replace(/^error: /, '').trim()}\n`) })
    // Subcommands inherit this: commander throws instead of exiting, and main() picks the code.
    .exitOverride();

  registerRunCommand(program);
  registerStatusCommand(program);
  registerPlanCommand(program);
  registerJobCommands(program);

  program
    .command('doctor')
    .description(
      'check the training backend, TensorFlow library, threads and datasets; exits 1 if native TensorFlow is unavailable',
    )
    .action(async () => {
      console.log(`bnx ${BNX_VERSION}, Node ${process.versions.node} (${process.platform}-${process.arch})`);
      let ok = true;
      const { BackendUnavailableError, initBackend } = await loadTraining();
      try {
        const b = await initBackend('tensorflow');
        console.log(`backend:    ${b.backend}`);
        console.log(`tensorflow: ${b.tensorflow} (native library loaded by tfjs-node ${b.tfjsNode}; tfjs ${b.tfjs})`);
        console.log(
          `threads:    intra-op ${b.threads.intraOp}, inter-op ${b.threads.interOp}; ${b.threads.cores} core(s) available`,
        );
      } catch (e) {
        if (!(e instanceof BackendUnavailableError)) throw e;
        ok = false;
        console.log('backend:    UNAVAILABLE');
        console.log(`  ${e.message}`);
      }
      // Dataset lines: where each would be read from (never downloads; `bnx run` does when needed).
      for (const name of ['mnist', 'fashion_mnist', 'cifar10'] as const) {
        const label = `${name}:`.padEnd(15);
        const found = findInstalled(name);
        if (found) {
          console.log(`${label}${found.dir}`);
          continue;
        }
        const src = SOURCES[name];
        const places = searchedPlaces(name);
        const fetch = src.download ? `; bnx run downloads it into ${places[places.length - 1]} when online` : '';
        console.log(`${label}not found (looked in ${places.join(', ')}${fetch}; ${src.hint})`);
      }
      console.log(`${'synthetic:'.padEnd(15)}generated in memory (data.dataset: synthetic)`);
      if (!ok) process.exitCode = 1;
    });

  registerAnalyzeCommands(program);
  registerExportCommand(program);

  return program;
}

/**
 * How a command that threw ends: bad input is one line and exit 2; an operating-system fault (a full
 * disk, a permission) or a missing backend is one line and exit 1; anything else is a bug in bnx:
 * one line saying so, and the full trace in a file (never on the terminal).
 */
function exitOnError(e: unknown, argv: readonly string[]): never {
  if (e instanceof CommanderError) {
    // commander printed its message already; help and --version exit 0, usage errors are bad input.
    process.exit(e.exitCode === 0 ? 0 : EXIT_BAD_INPUT);
  }
  if (e instanceof InputError) {
    console.error(`bnx: ${e.message}`);
    process.exit(EXIT_BAD_INPUT);
  }
  if (e instanceof SlurmError || e instanceof LockBusyError) {
    // sbatch/scontrol missing or refusing, or a results folder busy for longer than a lock is ever
    // held (its holder named): their own words, in one line.
    console.error(`bnx: ${e.message}`);
    process.exit(1);
  }
  if (isSystemError(e)) {
    // An operating-system fault outside any run (creating the results folder, say): one line.
    console.error(`bnx: ${describeFault(e)}`);
    process.exit(1);
  }
  if (e instanceof Error && e.name === 'BackendUnavailableError') {
    console.error(`bnx: ${e.message}`);
    process.exit(1);
  }
  console.error(internalErrorLine(e, argv));
  process.exit(70); // EX_SOFTWARE
}

/** Entry point of bin/bnx.js: bad input is one line and exit 2; a fault is one line and exit 1. */
export async function main(argv: string[]): Promise<void> {
  const args = argv.slice(2);
  // Errors thrown outside the command's own promise (a timer, a signal handler, a stream) end the same way.
  process.on('uncaughtException', (e) => exitOnError(e, args));
  process.on('unhandledRejection', (e) => exitOnError(e, args));
  // `bnx ls | head`: the reader went away; nothing more to say.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    exitOnError(e, args);
  });
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    exitOnError(e, args);
  }
}
