import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { InputError } from '../util/errors.js';
import { ENDED_STATES, jobsOfFolder, jobTasks, type SlurmTask } from '../launch/slurm.js';
import { readSweepProgress } from '../store/status.js';
import { RUN_FILES } from '../store/runs.js';
import { SWEEP_INDEX } from '../store/sweep-index.js';
import { jobBlock, sweepBlock } from './sweep-view.js';

const isSweep = (dir: string) =>
  fs.existsSync(path.join(dir, SWEEP_INDEX)) ||
  fs
    .readdirSync(dir, { withFileTypes: true })
    .some((e) => e.isDirectory() && fs.existsSync(path.join(dir, e.name, RUN_FILES.record)));

/** The sweep folders `dir` names: itself, or the sweep folders in it (a results root). */
function sweepFolders(dir: string): string[] {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory())
    throw new InputError(dir, 'no such folder; give a sweep folder (<out>/<name>) or a results root');
  if (isSweep(dir)) return [dir];
  const inside = fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && isSweep(path.join(dir, e.name)))
    .map((e) => path.join(dir, e.name))
    .sort();
  if (inside.length === 0)
    throw new InputError(dir, 'no sweep here (a sweep folder holds sweep.json and a folder per run)');
  return inside;
}

/** Every sweep's block of lines, and whether anything is still going on (a run running or pending, a task active). */
async function snapshot(dirs: string[]): Promise<{ lines: string[]; active: boolean }> {
  const lines: string[] = [];
  let active = false;
  for (const dir of dirs) {
    const progress = readSweepProgress(dir);
    if (progress.counts.running > 0 || progress.counts.pending > 0) active = true;
    lines.push(...sweepBlock(progress));
    const jobs = jobsOfFolder(dir);
    for (const [k, jobId] of jobs.entries()) {
      let tasks: SlurmTask[] | null | Error;
      try {
        tasks = await jobTasks(jobId);
      } catch (e) {
        tasks = e as Error;
      }
      const running = Array.isArray(tasks) && tasks.some((t) => !ENDED_STATES.has(t.state));
      if (running) active = true;
      // The newest job always; older ones only while they still have tasks to run.
      if (running || k === jobs.length - 1) lines.push(...jobBlock(dir, jobId, tasks));
    }
  }
  return { lines, active };
}

export function registerStatusCommand(program: Command): void {
  program
    .command('status')
    .description(
      'the live state of a sweep folder, trained here or on a cluster: runs by state, the running ones with step and ETA, failures with their error; Slurm jobs task by task',
    )
    .argument('<dir>', 'a sweep folder (<out>/<name>), or a results root holding several')
    .option('--watch', 'redraw every few seconds until no run or Slurm task is left to run (Ctrl-C stops watching)')
    .option('--interval <seconds>', 'with --watch: seconds between redraws', '2')
    .action(async (dir: string, opts: { watch?: boolean; interval: string }) => {
      const interval = Number(opts.interval);
      if (!Number.isFinite(interval) || interval < 0.2 || interval > 3600)
        throw new InputError(`--interval ${opts.interval}`, 'expected seconds from 0.2 to 3600');
      const dirs = sweepFolders(dir);
      if (!opts.watch) {
        console.log((await snapshot(dirs)).lines.join('\n'));
        return;
      }
      const out = process.stdout;
      let previous: string[] = [];
      for (;;) {
        const { lines, active } = await snapshot(dirs);
        const text = lines.join('\n');
        if (out.isTTY) {
          // Up over what was drawn (wrapped lines count as several), clear to the end, draw.
          const cols = out.columns ?? 80;
          const rows = previous.reduce((n, l) => n + Math.max(1, Math.ceil(l.length / cols)), 0);
          out.write(`${rows > 0 ? `\x1b[${rows}A` : ''}\r\x1b[J${text}\n`);
        } else if (text !== previous.join('\n')) {
          out.write(`${previous.length > 0 ? '\n' : ''}${text}\n`);
        }
        previous = lines;
        if (!active) return;
        await new Promise((r) => setTimeout(r, interval * 1000));
      }
    });
}
