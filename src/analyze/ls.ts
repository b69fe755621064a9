import { InputError } from '../util/errors.js';
import { formatValue, runConfig, sameValue, shortKeys, type LoadedRun } from './results.js';
import { fmt, fmtInt, fmtTime, runValues, type RunValues } from './stats.js';
import { formatTable } from './table.js';

/** One line of `bnx ls`. */
export interface RunListing extends RunValues {
  spec: string;
  id: string;
  path: string;
  status: string | null;
  /** The grid and command-line keys of the listed runs, with this run's values. */
  params: Record<string, unknown>;
  /** Last logged step, and the steps the run was planned for. */
  steps: number | null;
  steps_total: number | null;
  wall_time_s: number | null;
  started_at: string | null;
}

/** Fields `--sort` accepts besides config keys. */
export const LIST_FIELDS = [
  'spec',
  'id',
  'status',
  'steps',
  'final_train_loss',
  'final_val_loss',
  'final_val_acc',
  'best_val_loss',
  'best_val_acc',
  'test_loss',
  'test_acc',
  'val_loss_fluctuation',
  'wall_time_s',
  'started_at',
] as const;

/** Keys set by grid or command line in any listed run (from run.json `params`), in first-seen order. */
export function paramKeys(runs: LoadedRun[]): string[] {
  const keys: string[] = [];
  for (const r of runs) for (const k of Object.keys(r.record?.params ?? {})) if (!keys.includes(k)) keys.push(k);
  return keys;
}

export function listing(run: LoadedRun, keys: string[]): RunListing {
  const c = runConfig(run);
  const rec = run.record;
  return {
    spec: run.spec,
    id: run.id,
    path: run.path,
    status: rec?.status ?? null,
    params: Object.fromEntries(keys.map((k) => [k, rec && k in rec.params ? rec.params[k] : c[k]])),
    steps: run.metrics.at(-1)?.step ?? null,
    steps_total: rec?.steps_total ?? null,
    ...runValues(run),
    wall_time_s: rec?.wall_time_s ?? null,
    started_at: rec?.started_at ?? null,
  };
}

/** Resolves a `--filter`/`--sort` key: a listing field, a dotted config key, or a unique leaf (`norm`). */
function resolveKey(key: string, runs: LoadedRun[], where: string): { field?: string; config?: string } {
  if ((LIST_FIELDS as readonly string[]).includes(key)) return { field: key };
  const configKeys = [...new Set(runs.flatMap((r) => Object.keys(runConfig(r))))];
  if (configKeys.includes(key)) return { config: key };
  const leafs = configKeys.filter((k) => k.endsWith(`.${key}`));
  if (leafs.length === 1) return { config: leafs[0] };
  if (runs.length === 0) return { config: key };
  const hint = leafs.length > 1 ? `"${key}" is ambiguous (${leafs.join(', ')})` : `unknown key "${key}"`;
  throw new InputError(where, `${hint}; use ${LIST_FIELDS.join(', ')} or a config key such as model.norm, train.lr`);
}

function valueOf(run: LoadedRun, row: RunListing, key: { field?: string; config?: string }): unknown {
  if (key.field) return (row as unknown as Record<string, unknown>)[key.field];
  return runConfig(run)[key.config!];
}

function matches(actual: unknown, wanted: string): boolean {
  if (formatValue(actual) === wanted) return true;
  const n = Number(wanted);
  return typeof actual === 'number' && wanted.trim() !== '' && Number.isFinite(n) && n === actual;
}

export interface ListOptions {
  /** `key=value`: keep runs whose field or config key has that value; repeatable (all must hold). */
  filter?: string[];
  /** A field or config key; a leading `-` sorts descending. Default: spec, then start time. */
  sort?: string;
}

/** Filters and sorts the runs and returns their listings. */
export function listResults(runs: LoadedRun[], opts: ListOptions = {}): RunListing[] {
  const keys = paramKeys(runs);
  let rows = runs.map((r) => ({ run: r, row: listing(r, keys) }));
  for (const f of opts.filter ?? []) {
    const eq = f.indexOf('=');
    if (eq <= 0) throw new InputError(`--filter ${f}`, 'expected key=value, e.g. model.norm=batch or status=completed');
    const key = resolveKey(f.slice(0, eq), runs, `--filter ${f}`);
    const wanted = f.slice(eq + 1);
    rows = rows.filter(({ run, row }) => matches(valueOf(run, row, key), wanted));
  }
  if (opts.sort) {
    const desc = opts.sort.startsWith('-');
    const key = resolveKey(desc ? opts.sort.slice(1) : opts.sort, runs, `--sort ${opts.sort}`);
    const cmp = (x: unknown, y: unknown): number => {
      const missing = (v: unknown) => v === null || v === undefined || (typeof v === 'number' && Number.isNaN(v));
      if (missing(x) || missing(y)) return missing(x) === missing(y) ? 0 : missing(x) ? 1 : -1; // missing last either way
      const c =
        typeof x === 'number' && typeof y === 'number'
          ? x - y
          : formatValue(x).localeCompare(formatValue(y), 'en', { numeric: true });
      return desc ? -c : c;
    };
    rows = rows
      .map((r, i) => ({ ...r, i }))
      .sort((p, q) => cmp(valueOf(p.run, p.row, key), valueOf(q.run, q.row, key)) || p.i - q.i);
  } else {
    rows = rows.map((r, i) => ({ ...r, i })).sort((p, q) => p.row.spec.localeCompare(q.row.spec) || p.i - q.i);
  }
  return rows.map((r) => r.row);
}

/** The `bnx ls` table: parameters that vary get a column each; those that don't go in a footer. */
export function formatListing(rows: RunListing[]): string {
  if (rows.length === 0) return 'no runs';
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r.params)))];
  const varying = keys.filter((k) => rows.some((r) => !sameValue(r.params[k], rows[0].params[k])));
  const constant = keys.filter((k) => !varying.includes(k));
  const short = shortKeys(varying);
  const header = [
    'spec',
    'run id',
    ...varying.map((k) => short.get(k)!),
    'status',
    'steps',
    'val_loss',
    'best',
    'val_acc',
    'best',
    'test_acc',
    'fluct',
    'wall',
  ];
  const body = rows.map((r) => [
    r.spec || '-',
    r.id,
    ...varying.map((k) => formatValue(r.params[k])),
    r.status ?? '-',
    r.status !== 'completed' && r.steps_total !== null
      ? `${fmtInt(r.steps ?? 0)}/${fmtInt(r.steps_total)}`
      : fmtInt(r.steps),
    fmt(r.final_val_loss),
    fmt(r.best_val_loss),
    fmt(r.final_val_acc),
    fmt(r.best_val_acc),
    fmt(r.test_acc),
    fmt(r.val_loss_fluctuation),
    fmtTime(r.wall_time_s),
  ]);
  const align = header.map((_, c) => (c < 2 + varying.length + 1 ? 'l' : 'r')) as ('l' | 'r')[];
  const lines = [formatTable(header, body, { align })];
  const notes: string[] = [];
  if (constant.length > 0)
    notes.push(`all runs: ${constant.map((k) => `${k}=${formatValue(rows[0].params[k])}`).join(', ')}`);
  notes.push(
    `${rows.length} run(s); val_loss/val_acc: final value, best: best over evaluations; fluct: std of step-to-step val_loss changes over the last half`,
  );
  return [...lines, ...notes].join('\n');
}
