import fs from 'node:fs';
import path from 'node:path';
import { Command, Option } from 'commander';
import { EXIT_BAD_INPUT, InputError } from '../errors.js';
import { mnistDir } from '../data/index.js';
import { applyOverrides, loadSpec, parseOverride } from '../spec/load.js';
import { expandGrid, type PlannedRun } from '../spec/expand.js';
import { DEFAULT_CONFIG } from '../spec/schema.js';
import type { BackendName } from '../train/backend.js';
import { BNX_VERSION } from '../version.js';
import { makeReporter } from './progress.js';

const collect = (value: string, previous: string[]) => [...previous, value];

/** Loads a spec, applies `--set` overrides and expands the grid: every check happens here, before any write. */
function planFrom(specFile: string, sets: string[]): PlannedRun[] {
  const overrides = sets.map(parseOverride);
  return expandGrid(applyOverrides(loadSpec(specFile), overrides));
}

function checkOutDir(out: string): void {
  if (fs.existsSync(out) && !fs.statSync(out).isDirectory()) {
    throw new InputError(`--out ${out}`, 'exists and is not a directory; give a directory for results');
  }
}

/** TensorFlow is loaded only by commands that train: `--help` and `plan` stay fast. */
const loadTraining = () => import('../train/backend.js');

const formatParam = (v: unknown) => (Array.isArray(v) ? `[${v.join(',')}]` : String(v));

export function buildProgram(): Command {
  const program = new Command('bnx')
    .description('Run, log and compare normalization experiments (Batch Normalization and friends) on native TensorFlow.')
    .version(BNX_VERSION)
    .showHelpAfterError();

  program
    .command('run')
    .description('train every run of a spec (grid x --set sweeps) and write metrics.csv, run.json and summary.csv')
    .argument('<spec>', 'experiment spec (YAML)')
    .option('--set <key=value>', 'override a config key; a comma list sweeps it (train.lr=0.1,0.5,2); repeatable', collect, [])
    .option('--out <dir>', 'results root: runs go to <dir>/<spec name>/<run id>/', 'results')
    .addOption(new Option('--backend <name>', 'training backend; cpu is the slow pure-JS backend, never chosen silently').choices(['tensorflow', 'cpu']).default('tensorflow'))
    .option('--force', 'rerun runs that already completed in the results folder', false)
    .action(async (specFile: string, opts: { set: string[]; out: string; backend: BackendName; force: boolean }) => {
      const runs = planFrom(specFile, opts.set);
      checkOutDir(opts.out);
      const { describeBackend, initBackend } = await loadTraining();
      const { runSweep } = await import('../train/sweep.js');
      const backend = await initBackend(opts.backend);
      if (backend.backend === 'cpu') {
        console.error('WARNING: training on the pure-JS cpu backend (--backend cpu), not TensorFlow: expect it to be 10-100x slower.');
      }
      console.log(`bnx ${BNX_VERSION}: ${runs.length} run(s) of ${runs[0].config.name} on ${describeBackend(backend)}`);
      const result = runSweep(runs, { out: opts.out, backend, force: opts.force, reporter: makeReporter() });
      console.log(`results: ${result.dir}${path.sep}  summary: ${result.summary}`);
      if (result.failed > 0) {
        console.error(`${result.failed} run(s) failed; see their run.json`);
        process.exitCode = 1;
      }
    });

  program
    .command('plan')
    .description('print the runs a spec expands to (id and the parameters that vary), without training')
    .argument('<spec>', 'experiment spec (YAML)')
    .option('--set <key=value>', 'override a config key; a comma list sweeps it', collect, [])
    .option('--json', 'print the runs with their full resolved configs as JSON', false)
    .action((specFile: string, opts: { set: string[]; json: boolean }) => {
      const runs = planFrom(specFile, opts.set);
      if (opts.json) {
        console.log(JSON.stringify(runs.map(({ id, hash, params, config }) => ({ id, hash, params, config })), null, 2));
        return;
      }
      const keys = Object.keys(runs[0].params);
      const table = [['run id', ...keys], ...runs.map((r) => [r.id, ...keys.map((k) => formatParam(r.params[k]))])];
      const widths = table[0].map((_, c) => Math.max(...table.map((row) => row[c].length)));
      for (const row of table) console.log(row.map((cell, c) => cell.padEnd(widths[c])).join('  ').trimEnd());
      console.log(`${runs.length} run(s) of ${runs[0].config.name}`);
    });

  program
    .command('doctor')
    .description('check the training backend, TensorFlow library, threads and datasets; exits 1 if native TensorFlow is unavailable')
    .action(async () => {
      console.log(`bnx ${BNX_VERSION}, Node ${process.versions.node} (${process.platform}-${process.arch})`);
      let ok = true;
      const { BackendUnavailableError, initBackend } = await loadTraining();
      try {
        const b = await initBackend('tensorflow');
        console.log(`backend:    ${b.backend}`);
        console.log(`tensorflow: ${b.tensorflow} (native library loaded by tfjs-node ${b.tfjsNode}; tfjs ${b.tfjs})`);
        console.log(`threads:    intra-op ${b.threads.intraOp}, inter-op ${b.threads.interOp}; ${b.threads.cores} core(s) available`);
      } catch (e) {
        if (!(e instanceof BackendUnavailableError)) throw e;
        ok = false;
        console.log('backend:    UNAVAILABLE');
        console.log(`  ${e.message}`);
      }
      try {
        const dir = mnistDir(DEFAULT_CONFIG.data);
        console.log(`mnist:      ${dir}`);
      } catch (e) {
        console.log(`mnist:      not found (${(e as Error).message})`);
      }
      console.log('synthetic:  generated in memory (data.dataset: synthetic)');
      if (!ok) process.exitCode = 1;
    });

  return program;
}

/** Entry point of bin/bnx.js: bad input is one line and exit 2; a missing backend is exit 1. */
export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  program.exitOverride((err) => {
    // commander already printed its message; usage errors are bad input.
    process.exit(err.exitCode === 0 ? 0 : EXIT_BAD_INPUT);
  });
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof InputError) {
      console.error(`bnx: ${e.message}`);
      process.exit(EXIT_BAD_INPUT);
    }
    if (e instanceof Error && e.name === 'BackendUnavailableError') {
      console.error(`bnx: ${e.message}`);
      process.exit(1);
    }
    throw e;
  }
}
