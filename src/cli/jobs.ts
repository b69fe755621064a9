import fs from 'node:fs';
import path from 'node:path';
import { Command, Option } from 'commander';
import { BNX_ROOT, k8sManifest, parseSlurmTime, slurmLogDir, slurmScript, type JobOptions } from '../launch/jobs.js';
import { mergeResults } from '../store/merge.js';
import { specDir } from '../store/runs.js';
import { registerSweep } from '../store/sweep-folder.js';
import { InputError } from '../util/errors.js';
import { setResultsRoot } from '../util/crash.js';
import { writeFileAtomic } from '../util/files.js';
import { collect, planFrom } from './plan.js';

const positiveInt = (flag: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InputError(flag, `expected a positive integer, got "${v}"`);
  return n;
};

export function registerJobCommands(program: Command): void {
  program
    .command('export-job')
    .description(
      'write a Slurm array script or a Kubernetes Indexed Job that runs a sweep as N shards into a shared results directory',
    )
    .argument('<spec>', 'experiment spec (YAML)')
    .addOption(new Option('--slurm', 'an sbatch script').conflicts('k8s'))
    .addOption(new Option('--k8s', 'a Kubernetes ConfigMap + Indexed Job manifest').conflicts('slurm'))
    .option('--set <key=value>', 'override a config key; a comma list sweeps it', collect, [])
    .option('--shards <n>', 'number of shards (default: one per run)', positiveInt('--shards'))
    .option('--parallelism <n>', 'shards running at once (default: all)', positiveInt('--parallelism'))
    .option('--out <dir>', 'results root on the shared file system (Slurm; Kubernetes uses the volume)', 'results')
    .option('--cpus <n>', 'cores per shard', positiveInt('--cpus'), 2)
    .option('--memory <size>', 'memory per shard (Slurm/Kubernetes syntax)', '4G')
    .option('--time <limit>', 'Slurm time limit (minutes, HH:MM:SS, D-HH:MM:SS, ...)', parseSlurmTime, '04:00:00')
    .option('--image <image>', 'Kubernetes: container image with bnx installed', 'bnx:latest')
    .option('--pvc <name>', 'Kubernetes: PersistentVolumeClaim for results', 'bnx-results')
    .option('--workdir <dir>', 'where bnx is installed (Slurm: default this installation; Kubernetes: in the image)')
    .option('-o, --output <file>', 'write to a file instead of stdout')
    .action(
      (
        specFile: string,
        opts: {
          slurm?: boolean;
          k8s?: boolean;
          set: string[];
          shards?: number;
          parallelism?: number;
          out: string;
          cpus: number;
          memory: string;
          time: string;
          image: string;
          pvc: string;
          workdir?: string;
          output?: string;
        },
      ) => {
        if (!opts.slurm && !opts.k8s) throw new InputError('export-job', 'choose --slurm or --k8s');
        const { spec, runs } = planFrom(specFile, opts.set);
        const shards = Math.min(opts.shards ?? runs.length, runs.length);
        const options: JobOptions = {
          spec: path.resolve(specFile),
          specText: fs.readFileSync(specFile, 'utf8'),
          name: spec.name,
          sets: opts.set,
          shards,
          parallelism: Math.min(opts.parallelism ?? shards, shards),
          out: path.resolve(opts.out),
          cpus: opts.cpus,
          memory: opts.memory,
          time: opts.time,
          image: opts.image,
          pvc: opts.pvc,
          workdir: opts.workdir ?? (opts.slurm ? BNX_ROOT : '/app'),
        };
        if (opts.slurm) {
          // The results folder, ready for the array: its grid registered once (so that the tasks
          // only read sweep.json), and the folder of the task logs, which Slurm opens before a
          // task starts and does not create.
          registerSweep(
            specDir(options.out, spec.name),
            runs,
            {
              spec: options.spec,
              specText: options.specText,
              overrides: opts.set,
              shard: null,
            },
            { always: true },
          );
          fs.mkdirSync(slurmLogDir(options), { recursive: true });
        }
        const text = opts.slurm ? slurmScript(options) : k8sManifest(options);
        const ready = opts.slurm ? `results folder ready for the array: ${specDir(options.out, spec.name)}` : '';
        if (opts.output) {
          // Like plot -o: the folder is created when missing.
          const parent = path.dirname(path.resolve(opts.output));
          if (fs.existsSync(parent) && !fs.statSync(parent).isDirectory())
            throw new InputError(`-o ${opts.output}`, `${parent} is not a directory`);
          if (fs.existsSync(opts.output) && fs.statSync(opts.output).isDirectory())
            throw new InputError(`-o ${opts.output}`, 'is a directory; give a file name');
          fs.mkdirSync(parent, { recursive: true });
          writeFileAtomic(opts.output, text);
          console.error(
            `wrote ${opts.output}: ${shards} shard(s) covering ${runs.length} run(s)${ready && `; ${ready}`}`,
          );
        } else {
          process.stdout.write(text);
          if (ready) console.error(ready);
        }
      },
    );

  program
    .command('merge')
    .description(
      'combine results written by shards or machines into one results root; refuses conflicting copies of a run',
    )
    .argument('<dirs...>', 'results roots or spec folders to merge')
    .requiredOption('--out <dir>', 'results root to merge into')
    .action((dirs: string[], opts: { out: string }) => {
      setResultsRoot(opts.out);
      const report = mergeResults(dirs, opts.out);
      console.log(
        `merged into ${report.specs.join(', ')}: ${report.copied.length} run(s) copied, ${report.identical.length} already there`,
      );
      for (const u of report.unfinished) console.log(`  not merged (unfinished): ${u}`);
    });
}
