import path from 'node:path';
import { lastLogLine, taskLog, type SlurmTask } from '../launch/slurm.js';
import { formatDuration, type RunProgress, type SweepProgress } from '../store/status.js';

/** How a sweep and its Slurm jobs look on a terminal: the launcher's progress line and `bnx status`. */

const num = (n: number) => n.toLocaleString('en-US');

/** A path as a user would type it from here: relative below the working directory, else absolute. */
export function shortPath(file: string): string {
  const rel = path.relative(process.cwd(), file);
  return rel === '' ? '.' : rel.startsWith('..') || path.isAbsolute(rel) ? path.resolve(file) : rel;
}

/** `2 running, 1 pending, 3 completed`: Slurm task states by count, in a fixed order. */
export function taskCounts(tasks: readonly SlurmTask[]): string {
  const order = ['RUNNING', 'COMPLETING', 'PENDING', 'COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT'];
  const counts = new Map<string, number>();
  for (const t of tasks) counts.set(t.state, (counts.get(t.state) ?? 0) + 1);
  const states = [...counts.keys()].sort(
    (a, b) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99) || a.localeCompare(b),
  );
  return states.map((s) => `${counts.get(s)} ${s.toLowerCase()}`).join(', ');
}

/** `runs 2/6 done, 1 running, 3 pending | steps 900/1,800 | eta 12 s`. */
export function runsLine(p: SweepProgress): string {
  const c = p.counts;
  const parts = [`runs ${c.completed + c.diverged}/${p.runs.length} done`];
  if (c.diverged > 0) parts[0] += ` (${c.diverged} diverged)`;
  if (c.running > 0) parts.push(`${c.running} running`);
  if (c.pending > 0) parts.push(`${c.pending} pending`);
  if (c.interrupted > 0) parts.push(`${c.interrupted} interrupted`);
  if (c.failed > 0) parts.push(`${c.failed} failed`);
  const total = p.unknownLength > 0 ? '?' : num(p.stepsTotal);
  const steps = p.stepsTotal > 0 || p.unknownLength > 0 ? ` | steps ${num(p.stepsDone)}/${total}` : '';
  const eta = p.etaS !== null ? ` | eta ${formatDuration(p.etaS)}` : '';
  return `${parts.join(', ')}${steps}${eta}`;
}

/** The launcher's one line: `job 17 | runs 2/6 done, ... | tasks 1 running, 2 pending`. */
export function progressLine(jobId: number, p: SweepProgress, tasks: readonly SlurmTask[] | null): string {
  const t = tasks ? ` | tasks ${taskCounts(tasks)}` : '';
  return `job ${jobId} | ${runsLine(p)}${t}`;
}

function runLine(r: RunProgress): string | null {
  const total = r.total !== null ? `/${num(r.total)}` : '';
  switch (r.state) {
    case 'running': {
      const eta = r.etaS !== null ? `, eta ${formatDuration(r.etaS)}` : '';
      const who = r.holder ? `, pid ${r.holder.pid} on ${r.holder.host}` : '';
      const again = r.retraining ? ' (retraining: the previous result stays until this attempt completes)' : '';
      return `  running      ${r.id}  step ${num(r.step)}${total}${eta}${who}${again}`;
    }
    case 'failed':
      return `  failed       ${r.id}: ${r.error ?? 'no error recorded'}`;
    case 'interrupted':
      return r.orphaned
        ? `  interrupted  ${r.id}  after step ${num(r.step)}: its process is gone (a rerun resumes it)`
        : `  interrupted  ${r.id}  after step ${num(r.step)}`;
    default:
      return null;
  }
}

/** One Slurm job of a folder, task by task, with where each task's log is. */
export function jobBlock(dir: string, jobId: number, tasks: readonly SlurmTask[] | null | Error): string[] {
  if (tasks instanceof Error) return [`Slurm job ${jobId}: cannot ask Slurm (${tasks.message})`];
  if (tasks === null) return [`Slurm job ${jobId}: ended (Slurm has forgotten it and keeps no accounting here)`];
  const lines = [`Slurm job ${jobId}: ${tasks.length} task(s): ${taskCounts(tasks)}`];
  const rel = shortPath;
  for (const t of tasks) {
    const log = taskLog(dir, jobId, t.task);
    if (t.state === 'PENDING') {
      const again = t.restarts > 0 ? `, requeued ${t.restarts}x` : '';
      lines.push(`  task ${t.task}: pending (${t.reason}${again})`);
    } else if (t.state === 'RUNNING' || t.state === 'COMPLETING') {
      lines.push(`  task ${t.task}: ${t.state.toLowerCase()} on ${t.node} for ${t.runTime}; log ${rel(log)}`);
    } else if (t.state === 'COMPLETED') {
      lines.push(`  task ${t.task}: completed; log ${rel(log)}`);
    } else {
      const last = lastLogLine(log);
      lines.push(
        `  task ${t.task}: ${t.state.toLowerCase()} (exit ${t.exitCode}${t.reason && t.reason !== 'None' ? `, ${t.reason}` : ''}); log ${rel(log)}${last ? `: ${last}` : ''}`,
      );
    }
  }
  return lines;
}

/** `bnx status`: a sweep folder's runs by state, the running ones with step and ETA, failures with their error. */
export function sweepBlock(p: SweepProgress): string[] {
  const lines = [`${shortPath(p.dir)}: ${runsLine(p)}`];
  for (const r of p.runs) {
    const line = runLine(r);
    if (line) lines.push(line);
  }
  return lines;
}

/**
 * A line that rewrites itself in place on a terminal (carriage return, clear line), with lines
 * logged above it; elsewhere (a pipe, a CI log), the line is printed whenever it changes.
 */
export class LiveLine {
  private shown = '';
  private key = '';
  private readonly tty: boolean;

  constructor(private readonly stream: NodeJS.WriteStream = process.stdout) {
    this.tty = Boolean(stream.isTTY);
  }

  /** Shows `text`; off a terminal, prints it only when `key` (what matters of it) changed. */
  set(text: string, key = text): void {
    if (this.tty) {
      const width = Math.max(20, (this.stream.columns ?? 120) - 1);
      const fitted = text.length > width ? `${text.slice(0, width - 1)}…` : text;
      if (fitted === this.shown) return;
      this.stream.write(`\r\x1b[2K${fitted}`);
      this.shown = fitted;
    } else if (key !== this.key) {
      this.stream.write(`${text}\n`);
      this.key = key;
    }
  }

  log(line: string): void {
    if (this.tty && this.shown) {
      this.stream.write(`\r\x1b[2K${line}\n${this.shown}`);
    } else this.stream.write(`${line}\n`);
  }

  /** Leaves the line on screen and moves below it. */
  done(): void {
    if (this.tty && this.shown) this.stream.write('\n');
    this.shown = '';
  }
}
