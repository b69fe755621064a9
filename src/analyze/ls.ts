import { InputError } from '../util/errors.js';
import { formatValue, runConfig, sameValue, shortKeys, type LoadedRun } from './results.js';
import { formatSeeds, groupReplicates, groupValue, type GroupValue, type ReplicateGroup } from './replicates.js';
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

/** The runs that pass every `--filter key=value` (a listing field or config key). */
function filterRuns(runs: LoadedRun[], filters: string[]): LoadedRun[] {
  const keys = paramKeys(runs);
  let rows = runs.map((r) => ({ run: r, row: listing(r, keys) }));
  for (const f of filters) {
    const eq = f.indexOf('=');
    if (eq <= 0) throw new InputError(`--filter ${f}`, 'expected key=value, e.g. model.norm=batch or status=completed');
    const key = resolveKey(f.slice(0, eq), runs, `--filter ${f}`);
    const wanted = f.slice(eq + 1);
    rows = rows.filter(({ run, row }) => matches(valueOf(run, row, key), wanted));
  }
  return rows.map((r) => r.run);
}

/** Compares sort values: numbers as numbers, the rest as text with numeric parts; missing last either way. */
function sortCompare(desc: boolean): (x: unknown, y: unknown) => number {
  return (x, y) => {
    const missing = (v: unknown) => v === null || v === undefined || (typeof v === 'number' && Number.isNaN(v));
    if (missing(x) || missing(y)) return missing(x) === missing(y) ? 0 : missing(x) ? 1 : -1;
    const c =
      typeof x === 'number' && typeof y === 'number'
        ? x - y
        : formatValue(x).localeCompare(formatValue(y), 'en', { numeric: true });
    return desc ? -c : c;
  };
}

/** Filters and sorts the runs and returns their listings. */
export function listResults(runs: LoadedRun[], opts: ListOptions = {}): RunListing[] {
  const kept = filterRuns(runs, opts.filter ?? []);
  const keys = paramKeys(runs);
  let rows = kept.map((r) => ({ run: r, row: listing(r, keys) }));
  if (opts.sort) {
    const desc = opts.sort.startsWith('-');
    const key = resolveKey(desc ? opts.sort.slice(1) : opts.sort, runs, `--sort ${opts.sort}`);
    const cmp = sortCompare(desc);
    rows = rows
      .map((r, i) => ({ ...r, i }))
      .sort((p, q) => cmp(valueOf(p.run, p.row, key), valueOf(q.run, q.row, key)) || p.i - q.i);
  } else {
    rows = rows.map((r, i) => ({ ...r, i })).sort((p, q) => p.row.spec.localeCompare(q.row.spec) || p.i - q.i);
  }
  return rows.map((r) => r.row);
}

// ---------------------------------------------------------------------------------------------
// Replicate groups: one line per setting, the seeds summarized

/** The numeric columns of a group listing, each summarized over the group's runs. */
export const GROUP_VALUES = [
  'final_train_loss',
  'final_val_loss',
  'final_val_acc',
  'best_val_loss',
  'best_val_loss_step',
  'best_val_acc',
  'best_val_acc_step',
  'test_loss',
  'test_acc',
  'val_loss_fluctuation',
  'wall_time_s',
] as const;
export type GroupValueName = (typeof GROUP_VALUES)[number];

/** One line of `bnx ls` by replicate group. */
export interface GroupListing {
  spec: string;
  /** The sweep folder. */
  dir: string;
  /** The grid and command-line keys of the listed runs except `seed`, with this group's values. */
  params: Record<string, unknown>;
  /** Runs in the group. */
  n: number;
  seeds: (number | null)[];
  /** Run ids, in seed order. */
  runs: string[];
  /** How many runs are in each state (`completed: 5`). */
  status: Record<string, number>;
  /** Last logged step of each run, in seed order, and the steps the runs were planned for. */
  steps: (number | null)[];
  steps_total: number | null;
  /** Each numeric column over the runs: n, mean, std, 95 % interval, and the runs without a value. */
  values: Record<GroupValueName, GroupValue>;
  started_at: string | null;
}

export function groupListing(group: ReplicateGroup, keys: string[]): GroupListing {
  const rows = group.runs.map((r) => listing(r, keys));
  const ids = rows.map((r) => r.id);
  const status: Record<string, number> = {};
  for (const r of rows) status[r.status ?? 'unknown'] = (status[r.status ?? 'unknown'] ?? 0) + 1;
  const params = { ...rows[0].params };
  delete params.seed;
  return {
    spec: group.spec,
    dir: group.dir,
    params,
    n: rows.length,
    seeds: group.seeds,
    runs: ids,
    status,
    steps: rows.map((r) => r.steps),
    steps_total: rows[0].steps_total,
    values: Object.fromEntries(
      GROUP_VALUES.map((name) => [
        name,
        groupValue(
          rows.map((r) => r[name]),
          ids,
        ),
      ]),
    ) as Record<GroupValueName, GroupValue>,
    started_at:
      rows
        .map((r) => r.started_at)
        .filter((s): s is string => s !== null)
        .sort()[0] ?? null,
  };
}

/** A group's value for `--sort`: a numeric column's mean, a config key's value, or the group's own fields. */
function groupSortValue(g: GroupListing, group: ReplicateGroup, key: { field?: string; config?: string }): unknown {
  if (key.config) return runConfig(group.runs[0])[key.config];
  const f = key.field!;
  if ((GROUP_VALUES as readonly string[]).includes(f)) return g.values[f as GroupValueName].mean;
  if (f === 'id') return g.runs[0];
  if (f === 'status') return statusText(g.status);
  if (f === 'steps') return Math.max(...g.steps.map((s) => s ?? 0));
  return (g as unknown as Record<string, unknown>)[f];
}

/**
 * `bnx ls` by replicate group: the runs filtered (`--filter` applies to runs: `status=completed`
 * keeps the completed seeds), grouped, and the groups sorted (`--sort` a column: by its mean).
 */
export function listGroups(runs: LoadedRun[], opts: ListOptions = {}): GroupListing[] {
  const kept = filterRuns(runs, opts.filter ?? []);
  const keys = paramKeys(runs);
  const groups = groupReplicates(kept);
  let rows = groups.map((g, i) => ({ group: g, row: groupListing(g, keys), i }));
  if (opts.sort) {
    const desc = opts.sort.startsWith('-');
    const key = resolveKey(desc ? opts.sort.slice(1) : opts.sort, runs, `--sort ${opts.sort}`);
    const cmp = sortCompare(desc);
    rows = rows.sort(
      (p, q) => cmp(groupSortValue(p.row, p.group, key), groupSortValue(q.row, q.group, key)) || p.i - q.i,
    );
  } else {
    rows = rows.sort((p, q) => p.row.spec.localeCompare(q.row.spec) || p.i - q.i);
  }
  return rows.map((r) => r.row);
}

/** `5 completed`, `4 completed, 1 diverged`. */
export function statusText(status: Record<string, number>): string {
  return Object.entries(status)
    .map(([s, k]) => `${k} ${s}`)
    .join(', ');
}

/**
 * A group value for a table: `0.9527 ± 0.0021` (± the 95 % interval's half-width), the value alone
 * for one run, and `(4/5)` when only 4 of the 5 runs have it.
 */
export function fmtGroupValue(v: GroupValue, format: (x: number | null) => string = fmt): string {
  if (v.n === 0) return v.runs > 1 ? `- (0/${v.runs})` : '-';
  const core = v.half_width !== null ? `${format(v.mean)} ± ${format(v.half_width)}` : format(v.mean);
  return v.n < v.runs ? `${core} (${v.n}/${v.runs})` : core;
}

/** The footer line that says what `±` and `(k/n)` are. */
export const PLUS_MINUS_NOTE =
  "±: half-width of the 95% t-interval of the mean over a group's seeds (t(0.975, n-1) x std / sqrt(n)); (k/n): only k of the n runs have the value (a diverged or unfinished run has none)";

/** The `bnx ls` table of replicate groups. */
export function formatGroupListing(rows: GroupListing[]): string {
  if (rows.length === 0) return 'no runs';
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r.params)))];
  const varying = keys.filter((k) => rows.some((r) => !sameValue(r.params[k], rows[0].params[k])));
  const constant = keys.filter((k) => !varying.includes(k));
  const short = shortKeys(varying);
  const seedsText = rows.map((r) => formatSeeds(r.seeds));
  const sameSeeds = seedsText.every((s) => s === seedsText[0]);
  const header = [
    'spec',
    ...varying.map((k) => short.get(k)!),
    'n',
    ...(sameSeeds ? [] : ['seeds']),
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
  const body = rows.map((r, i) => {
    const steps = r.steps.map((s) => s ?? 0);
    const [lo, hi] = [Math.min(...steps), Math.max(...steps)];
    const done = Object.keys(r.status).length === 1 && r.status.completed !== undefined;
    const stepText =
      done || r.steps_total === null
        ? lo === hi
          ? fmtInt(hi)
          : `${fmtInt(lo)}-${fmtInt(hi)}`
        : `${lo === hi ? fmtInt(hi) : `${fmtInt(lo)}-${fmtInt(hi)}`}/${fmtInt(r.steps_total)}`;
    const v = r.values;
    const wall = v.wall_time_s;
    return [
      r.spec || '-',
      ...varying.map((k) => formatValue(r.params[k])),
      String(r.n),
      ...(sameSeeds ? [] : [seedsText[i]]),
      statusText(r.status),
      stepText,
      fmtGroupValue(v.final_val_loss),
      fmtGroupValue(v.best_val_loss),
      fmtGroupValue(v.final_val_acc),
      fmtGroupValue(v.best_val_acc),
      fmtGroupValue(v.test_acc),
      fmtGroupValue(v.val_loss_fluctuation),
      fmtGroupValue(wall, (x) => (x === null ? '-' : x.toFixed(1))) + (wall.n > 0 ? ' s' : ''),
    ];
  });
  const statusCol = header.indexOf('status');
  const align = header.map((h, c) => (h === 'n' || c > statusCol ? 'r' : 'l'));
  const lines = [formatTable(header, body, { align })];
  const notes: string[] = [];
  if (constant.length > 0)
    notes.push(`all groups: ${constant.map((k) => `${k}=${formatValue(rows[0].params[k])}`).join(', ')}`);
  if (sameSeeds) notes.push(`seeds: ${seedsText[0] || '-'} in every group`);
  const runs = rows.reduce((a, r) => a + r.n, 0);
  notes.push(PLUS_MINUS_NOTE);
  notes.push(
    `${rows.length} replicate group(s) of ${runs} run(s): runs whose configurations differ only in seed; val_loss/val_acc: final value, best: best over evaluations; fluct: std of step-to-step val_loss changes over the last half; wall: per run; --runs lists every run`,
  );
  return [...lines, ...notes].join('\n');
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
