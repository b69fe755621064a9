import { Command } from 'commander';
import { InputError } from '../util/errors.js';
import { applyOverrides, loadSpec, parseOverride, seedsOverride, type Spec } from '../spec/load.js';
import { expandGrid, type PlannedRun } from '../spec/expand.js';
import { formatValue } from '../analyze/results.js';
import { formatTable } from '../analyze/table.js';

export const collect = (value: string, previous: string[]) => [...previous, value];

export const SEEDS_HELP =
  "replicates: train every grid point with seeds 1..N (replaces the spec's seeds:; the same as --set seed=1,...,N)";

/**
 * Loads a spec, applies `--set` overrides (and `--seeds N`, which is `--set seed=1,...,N`) and
 * expands the grid: every check happens here, before any write.
 */
export function planFrom(specFile: string, sets: string[], seeds?: string): { spec: Spec; runs: PlannedRun[] } {
  const overrides = sets.map(parseOverride);
  if (seeds !== undefined) {
    const clash = overrides.find((o) => o.key === 'seed');
    if (clash) throw new InputError(`--seeds ${seeds}`, `give --seeds or ${clash.where}, not both`);
    overrides.push(seedsOverride(seeds));
  }
  const spec = applyOverrides(loadSpec(specFile), overrides);
  return { spec, runs: expandGrid(spec) };
}

export function registerPlanCommand(program: Command): void {
  program
    .command('plan')
    .description('print the runs a spec expands to (id and the parameters that vary), without training')
    .argument('<spec>', 'experiment spec (YAML)')
    .option('--set <key=value>', 'override a config key; a comma list sweeps it', collect, [])
    .option('--seeds <n>', SEEDS_HELP)
    .option('--json', 'print the runs with their full resolved configs as JSON', false)
    .action((specFile: string, opts: { set: string[]; seeds?: string; json: boolean }) => {
      const { runs } = planFrom(specFile, opts.set, opts.seeds);
      if (opts.json) {
        console.log(
          JSON.stringify(
            runs.map(({ id, hash, params, config }) => ({ id, hash, params, config })),
            null,
            2,
          ),
        );
        return;
      }
      const keys = Object.keys(runs[0].params);
      const header = ['run id', ...keys];
      const rows = runs.map((r) => [r.id, ...keys.map((k) => formatValue(r.params[k]))]);
      console.log(formatTable(header, rows, { align: header.map(() => 'l') }));
      console.log(`${runs.length} run(s) of ${runs[0].config.name}`);
    });
}
