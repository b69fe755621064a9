import cliProgress from 'cli-progress';
import { formatValue } from '../analyze/results.js';
import type { PlannedRun } from '../spec/expand.js';
import type { RunRecord } from '../store/runs.js';
import type { SweepReporter } from '../store/sweep.js';
import { fixed } from '../store/csv-format.js';

const paramsText = (run: PlannedRun) =>
  Object.entries(run.params)
    .map(([k, v]) => `${k}=${formatValue(v)}`)
    .join(' ') || '(base config)';

/** `kept`: a --force retraining that did not complete leaves the previous result in place. */
export function finishLine(r: RunRecord, kept = false): string {
  const previous = kept ? '; its previous result is kept' : '';
  if (r.status === 'diverged' && r.diverged)
    return `  diverged ${r.id}: training loss ${r.diverged.loss} at step ${r.diverged.step} (${r.wall_time_s} s)`;
  if (r.status === 'interrupted')
    return `  interrupted ${r.id} after step ${r.steps_done}${previous} (the same command starts it again)`;
  if (r.status !== 'completed') return `  ${r.status} ${r.id}${r.error ? `: ${r.error}` : ''}${previous}`;
  return `  done ${r.id}: val_loss ${fixed(r.final?.val_loss, 4)} val_acc ${fixed(r.final?.val_acc, 4)} test_acc ${fixed(r.test?.acc, 4)} (${r.wall_time_s} s)`;
}

/** 1-based run numbers: `1-8`, or `1, 3, 5` when not consecutive. */
function runNumbers(indices: number[]): string {
  const consecutive = indices.every((v, k) => k === 0 || v === indices[k - 1] + 1);
  return consecutive ? `${indices[0] + 1}-${indices[indices.length - 1] + 1}` : indices.map((i) => i + 1).join(', ');
}

/**
 * A progress bar per run (per group of runs trained together: the members' mean loss) on a terminal (step, loss,
 * speed); plain lines when stdout is not a TTY (CI logs, pipes): one at the start, one every 10%
 * of the steps, one at the end.
 */
export function makeReporter(stream: NodeJS.WriteStream = process.stdout): SweepReporter {
  const tty = Boolean(stream.isTTY);
  let bar: cliProgress.SingleBar | null = null;
  let total = 0;
  let started = 0;
  let nextLine = 0;
  const log = (s: string) => stream.write(`${s}\n`);
  const begin = (runs: PlannedRun[], indices: number[], n: number, steps: number) => {
    total = steps;
    started = performance.now();
    nextLine = Math.max(1, Math.floor(steps / 10));
    if (runs.length === 1) log(`[${indices[0] + 1}/${n}] ${runs[0].id}  ${paramsText(runs[0])}`);
    else {
      log(`[runs ${runNumbers(indices)} of ${n}, together: ${runs.length} runs stepped by one engine]`);
      for (const run of runs) log(`  ${run.id}  ${paramsText(run)}`);
    }
    if (tty) {
      bar = new cliProgress.SingleBar(
        {
          format: '  {bar} {value}/{total} steps | loss {loss} | {speed} steps/s | eta {eta_formatted}',
          hideCursor: true,
          clearOnComplete: true,
          stream,
          etaBuffer: 200,
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(steps, 0, { loss: '-', speed: '-' });
    }
  };
  return {
    skip(run, i, n, why) {
      log(`[${i + 1}/${n}] ${run.id}: ${why}`);
    },
    start: (run, i, n, steps) => begin([run], [i], n, steps),
    startGroup: begin,
    step(step, loss) {
      const speed = (step / ((performance.now() - started) / 1000)).toFixed(0);
      if (bar) {
        if (step % 10 === 0 || step === total) bar.update(step, { loss: loss.toFixed(4), speed });
      } else if (step % nextLine === 0 && step !== total) {
        log(`  step ${step}/${total} loss ${loss.toFixed(4)} ${speed} steps/s`);
      }
    },
    note(line) {
      if (bar) bar.stop();
      log(`  ${line}`);
      if (bar) bar.start(total, 0, { loss: '-', speed: '-' });
    },
    finish(record, kept = false) {
      bar?.stop();
      bar = null;
      log(finishLine(record, kept));
    },
  };
}
