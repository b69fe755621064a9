import { stringify as toYaml } from 'yaml';
import { setPath } from '../spec/load.js';
import { BNX_VERSION } from '../util/version.js';
import { bandCaption, chartSpec, metricTitle, renderSvg, type XAxis } from './chart.js';
import {
  applyHolm,
  compareGroups,
  fmtEstimate,
  fmtInterval,
  NO_SPREAD,
  STATISTICS_NOTES,
  VERDICT_HEADER,
  verdictRows,
  type GroupComparison,
  type MeasureComparison,
} from './compare.js';
import {
  diffRuns,
  baselinePairs,
  NORM_BASELINE,
  normPairs,
  parseBaseline,
  ratioText,
  targetName,
  thin,
  type PairDiff,
  type TargetDiff,
} from './diff.js';
import {
  fmtGroupValue,
  formatGroupListing,
  formatListing,
  GROUP_VALUES,
  listGroups,
  listResults,
  PLUS_MINUS_NOTE,
  statusText,
  type GroupListing,
  type RunListing,
} from './ls.js';
import {
  formatSeeds,
  groupReplicates,
  groupValue,
  groupVaryingKeys,
  hasReplicates,
  type ReplicateGroup,
} from './replicates.js';
import { formatP } from './significance.js';
import {
  datasetOf,
  formatValue,
  runConfig,
  runLabels,
  shortKeys,
  varyingKeys,
  type LoadedRun,
  type LoadedSweep,
} from './results.js';
import { defaultTarget, fmt, fmtDelta, fmtInt, fmtTime, higherIsBetter, stepsToReach, type Metric } from './stats.js';
import { markdownTable } from './table.js';

/** Accuracy levels the report measures steps to (those no run reaches are left out). */
export const TARGET_LADDER = [0.5, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99];
/** Training-loss levels the headlines measure steps to (how fast training converges). */
export const TRAIN_LOSS_LADDER = [1, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01];

const capitalize = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

export interface ReportChart {
  /** File-name part: `accuracy`, `loss`. */
  name: string;
  title: string;
  caption: string;
  svg: string;
}

/** Everything a report shows, computed once and written as HTML or Markdown. */
export interface Report {
  title: string;
  sweep: string;
  generated: string;
  runs: RunListing[];
  /** The ls table as text (for the Markdown report's plain view). */
  runsText: string;
  /** With replicates: one line per replicate group (n, mean ± 95% half-width); null without. */
  groups: GroupListing[] | null;
  /** With replicates: the BN-vs-no-BN comparisons of replicate groups, one per setting. */
  comparisons: { a: string; b: string; comparison: GroupComparison }[];
  /** How the comparisons' p-values are corrected for their number (Holm), or null for one. */
  multipleComparisons: string | null;
  /** Headline numbers, one group per compared pair (label null when there is one pair). */
  headlines: { label: string | null; lines: string[] }[];
  charts: ReportChart[];
  /** Why there is no chart (no run logged a finite value), or null. */
  chartsNote: string | null;
  /** BN-vs-no-BN comparisons (runs that differ only in model.norm), or the two runs of a two-run sweep. */
  pairs: { a: string; b: string; diff: PairDiff }[];
  /** What varies across runs, and the rest of the configuration. */
  grid: { key: string; values: string[] }[];
  configYaml: string;
  versions: string[];
}

export interface ReportOptions {
  x?: XAxis;
  /** Compare against this setting (`model.batch_norm.eps=0.001`); default `model.norm=none`. */
  baseline?: string;
  /** Extra validation accuracies to measure steps to (added to the ladder). */
  targets?: number[];
}

/** Prefixes the ids inside one SVG so several can be inlined in one page without clashing. */
export function uniqueSvgIds(svg: string, prefix: string): string {
  return svg.replace(/(\bid="|url\(#|href="#)([^"')]+)/g, (_m, lead: string, id: string) => `${lead}${prefix}-${id}`);
}

const isNormPair = (a: LoadedRun, b: LoadedRun) =>
  a.record?.config.model.norm === 'none' && b.record?.config.model.norm === 'batch';

/** Names for the two sides of a pair: "no BN" / "BN" for a none-vs-batch pair, else the run labels. */
function sideNames(a: LoadedRun, b: LoadedRun): [string, string] {
  if (isNormPair(a, b)) return ['no BN', 'BN'];
  const [la, lb] = runLabels([a, b]);
  return [la, lb];
}

function ratioWords(t: TargetDiff, an: string, bn: string): string {
  if (t.a_step === null || t.b_step === null || t.ratio === null)
    return ratioText(t)
      .replace(/^only A/, `only ${an}`)
      .replace(/^only B/, `only ${bn}`);
  if (Math.abs(t.ratio - 1) < 1e-9) return 'the same step';
  return t.ratio > 1
    ? `${t.ratio.toFixed(1)}x fewer steps with ${bn}`
    : `${(1 / t.ratio).toFixed(1)}x fewer steps with ${an}`;
}

function headlinesOf(
  pair: PairDiff,
  pairRuns: [LoadedRun, LoadedRun],
  an: string,
  bn: string,
  runs: LoadedRun[],
): string[] {
  const out: string[] = [];
  const v = (name: string) => pair.values.find((x) => x.name === name)!;
  const acc = metricTitle('val_acc', runs).replace(/ \(val_acc\)$/, '');
  const valLoss = metricTitle('val_loss', runs).replace(/ \(val_loss\)$/, '');
  const steps = pair.b.steps ?? pair.a.steps;
  const fa = v('final_val_acc');
  if (fa.a !== null && fa.b !== null) {
    out.push(
      `Final ${acc} after ${fmtInt(steps)} steps: ${fmt(fa.b)} with ${bn}, ${fmt(fa.a)} with ${an} (${fmtDelta(fa.diff)}).`,
    );
  }
  const ta = v('test_acc');
  if (ta.a !== null && ta.b !== null && !runs.every((r) => r.record?.config.data.validation === 'test')) {
    out.push(`Test accuracy after training: ${fmt(ta.b)} with ${bn}, ${fmt(ta.a)} with ${an} (${fmtDelta(ta.diff)}).`);
  }
  // Steps to each level of a ladder, both runs side by side: every level one of them reaches.
  const ladder = (metric: Metric, levels: number[], what: string) => {
    const rows = levels
      .map((t) => ({
        t,
        a: stepsToReach(pairRuns[0].metrics, metric, t),
        b: stepsToReach(pairRuns[1].metrics, metric, t),
      }))
      .filter((r) => r.a !== null || r.b !== null);
    if (rows.length === 0) return;
    const op = higherIsBetter(metric) ? '>=' : '<=';
    const list = (k: 'a' | 'b') => rows.map((r) => fmtInt(r[k])).join(' / ');
    out.push(
      `Steps to ${what} ${op} ${rows.map((r) => String(r.t)).join(' / ')}: ${list('b')} with ${bn}; ${list('a')} with ${an}.`,
    );
  };
  ladder(
    'val_acc',
    pair.targets.filter((t) => t.kind === 'target').map((t) => t.target),
    acc,
  );
  ladder('train_loss', TRAIN_LOSS_LADDER, 'training loss');
  for (const t of pair.targets.filter((x) => x.kind === 'match')) {
    const whose = t.why.startsWith("A's") ? an : bn;
    const what =
      t.metric === 'val_acc'
        ? `${whose}'s best ${acc} (${fmt(t.target)})`
        : `${whose}'s lowest training loss (${fmt(t.target)})`;
    out.push(
      `Same level in fewer steps: ${what} is reached at step ${fmtInt(t.b_step)} with ${bn} and ${fmtInt(t.a_step)} with ${an}: ${ratioWords(t, an, bn)}.`,
    );
  }
  const fl = v('val_loss_fluctuation');
  if (fl.a !== null && fl.b !== null) {
    const rel = fl.a > 0 ? ` (${bn}/${an}: ${(fl.b / fl.a).toFixed(2)})` : '';
    out.push(
      `${capitalize(valLoss)} fluctuation (std of step-to-step changes over the last half of training): ${fmt(fl.b)} with ${bn}, ${fmt(fl.a)} with ${an}${rel}.`,
    );
  }
  const fv = v('final_val_loss');
  const bl = v('best_val_loss');
  if (fv.a !== null && fv.b !== null && bl.a !== null && bl.b !== null) {
    out.push(
      `${capitalize(valLoss)}: final ${fmt(fv.b)} with ${bn}, ${fmt(fv.a)} with ${an}; best ${fmt(bl.b)} (step ${fmtInt(bl.b_step)}) and ${fmt(bl.a)} (step ${fmtInt(bl.a_step)}).`,
    );
  }
  return out;
}

/** Charts of a report: accuracy (the paper's Figure 1(a) on paper-mnist), and training and validation loss side by side. */
async function reportCharts(runs: LoadedRun[], x: XAxis): Promise<ReportChart[]> {
  // A chart of values none of which is finite would have NaN axes (a sweep whose runs all diverged at once).
  const has = (m: Metric) => runs.some((r) => r.metrics.some((row) => Number.isFinite(row[m] ?? NaN)));
  const charts: ReportChart[] = [];
  const onTest = runs.every((r) => r.record?.config.data.validation === 'test');
  const groups = groupReplicates(runs);
  // With replicates each line is a group's mean with its 95% band (the legend says so too).
  const lines = hasReplicates(groups)
    ? `one line per setting: the mean over its seeds (${bandCaption(groups, 'ci', false).join('; ')})`
    : 'one line per run';
  if (has('val_acc')) {
    charts.push({
      name: 'accuracy',
      title: capitalize(metricTitle('val_acc', runs)),
      caption: onTest
        ? `Test accuracy against training step, ${lines}: the paper's Figure 1(a) for experiments/paper-mnist.yaml.`
        : `Validation accuracy against training step, ${lines}.`,
      svg: uniqueSvgIds(await renderSvg(chartSpec(runs, { metrics: ['val_acc'], x, width: 720, height: 360 })), 'acc'),
    });
  }
  const losses = (['train_loss', 'val_loss'] as Metric[]).filter(has);
  if (losses.length > 0) {
    charts.push({
      name: 'loss',
      title: capitalize(losses.map((m) => metricTitle(m, runs)).join(' and ')),
      caption: `Training loss (mean over each logging interval, training mode) and validation loss (inference mode), one panel each; ${lines}.`,
      svg: uniqueSvgIds(await renderSvg(chartSpec(runs, { metrics: losses, x, width: 400, height: 280 })), 'loss'),
    });
  }
  return charts;
}

/** A group's value with its spread: `0.9527 ± 0.0021 (n = 5)`. */
function withSpread(values: (number | null)[], ids: string[], format: (x: number | null) => string = fmt): string {
  const v = groupValue(values, ids);
  return `${fmtGroupValue(v, format)}${v.runs > 1 ? ` (n = ${v.n < v.runs ? `${v.n} of ${v.runs}` : v.n})` : ''}`;
}

const verdictWords = (m: MeasureComparison, an: string, bn: string) =>
  m.verdict === 'B better' ? `${bn} better` : m.verdict === 'A better' ? `${an} better` : m.verdict;

/** `p = 0.0004 (paired t-test)`, `Holm p = 0.01 over 5 settings (Welch)`. */
function pWords(m: MeasureComparison): string {
  const test = m.design === 'paired' ? 'paired t-test' : "Welch's t-test";
  if (m.p_adjusted === null) return `p undefined (${test})`;
  const sign = m.p_sign_flip !== null ? `; sign-flip p = ${formatP(m.p_sign_flip)}` : '';
  if (m.note?.includes(NO_SPREAD)) return `the ${test} has no spread (every seed gives the same value${sign})`;
  const p = formatP(m.p_adjusted);
  return m.holm_m > 1 ? `Holm p = ${p} over ${m.holm_m} settings (${test}${sign})` : `p = ${p} (${test}${sign})`;
}

/** One headline of a difference measure: both means with their spread, the difference with its interval, p, the verdict. */
function differenceHeadline(m: MeasureComparison, what: string, an: string, bn: string): string {
  return `${what}: ${withSpread(m.b.values, m.b.runs)} with ${bn}, ${withSpread(m.a.values, m.a.runs)} with ${an}; ${bn} - ${an} = ${fmtEstimate(m)}, 95% CI ${fmtInterval(m)}, ${pWords(m)}: ${verdictWords(m, an, bn)}.`;
}

/** The headlines of a comparison of replicate groups: every number with its interval and n. */
function groupHeadlines(c: GroupComparison, an: string, bn: string, runs: LoadedRun[]): string[] {
  const out: string[] = [];
  const get = (name: string) => c.measures.find((m) => m.name === name);
  const acc = metricTitle('val_acc', runs).replace(/ \(val_acc\)$/, '');
  const valLoss = metricTitle('val_loss', runs).replace(/ \(val_loss\)$/, '');
  const fa = get('final_val_acc');
  if (fa && fa.estimate !== null)
    out.push(differenceHeadline(fa, `Final ${acc} after ${fmtInt(c.b.steps)} steps`, an, bn));
  const ta = get('test_acc');
  if (ta && ta.estimate !== null && !runs.every((r) => r.record?.config.data.validation === 'test'))
    out.push(differenceHeadline(ta, 'Test accuracy after training', an, bn));
  for (const m of c.measures.filter((x) => x.name.startsWith('steps_to_') || x.name.startsWith('match_'))) {
    const reached = m.note?.match(/seeds reaching it: [^;]*/)?.[0];
    const what = m.label
      .replace(/^steps to /, '')
      .replace(/val_acc/, acc)
      .replace(/train_loss/, 'training loss');
    if (m.estimate === null) {
      if (m.summary) out.push(`Steps to ${what}: ${m.summary.replace(/\bA\b/g, an).replace(/\bB\b/g, bn)}.`);
      continue;
    }
    const r = m.estimate;
    const effect =
      r <= 1
        ? `${bn} gets there in ${(1 / r).toFixed(2)}x fewer steps (95% CI ${(1 / m.ci95_high!).toFixed(2)}x-${(1 / m.ci95_low!).toFixed(2)}x)`
        : `${bn} needs ${r.toFixed(2)}x the steps (95% CI ${m.ci95_low!.toFixed(2)}x-${m.ci95_high!.toFixed(2)}x)`;
    out.push(
      `Steps to ${what}: geometric mean ${fmtInt(Math.round(m.geo_mean_b!))} with ${bn}, ${fmtInt(Math.round(m.geo_mean_a!))} with ${an}; ${effect}, ${pWords(m)}${reached ? `; ${reached.replace('A ', `${an} `).replace('B ', `${bn} `)}` : ''}: ${verdictWords(m, an, bn)}.`,
    );
  }
  const fl = get('val_loss_fluctuation');
  if (fl && fl.estimate !== null)
    out.push(
      `${capitalize(valLoss)} fluctuation (std of step-to-step changes over the last half of training): geometric mean ${fmt(fl.geo_mean_b)} with ${bn}, ${fmt(fl.geo_mean_a)} with ${an}; ${bn}/${an} = ${fmtEstimate(fl)}, 95% CI ${fmtInterval(fl)}, ${pWords(fl)}: ${verdictWords(fl, an, bn)} (lower is better).`,
    );
  const fv = get('final_val_loss');
  if (fv && fv.estimate !== null) out.push(differenceHeadline(fv, `Final ${valLoss}`, an, bn));
  const bl = get('best_val_loss');
  if (bl && bl.estimate !== null) out.push(differenceHeadline(bl, `Best ${valLoss}`, an, bn));
  return out;
}

/** The report of a sweep with replicates: groups, comparisons of groups, banded charts. */
async function buildGroupReport(sweep: LoadedSweep, groups: ReplicateGroup[], opts: ReportOptions): Promise<Report> {
  const runs = sweep.runs;
  const specs = [...new Set(runs.map((r) => r.spec).filter(Boolean))];
  const baseline = opts.baseline !== undefined ? parseBaseline(opts.baseline, groups) : NORM_BASELINE;
  let pairs = baselinePairs(groups, baseline);
  if (pairs.length === 0 && groups.length === 2 && opts.baseline === undefined) pairs = [[groups[0], groups[1]]];
  const dataset = datasetOf(runs[0]);
  const ladder = [...new Set([...TARGET_LADDER, defaultTarget(dataset), ...(opts.targets ?? [])])].sort(
    (p, q) => p - q,
  );
  const reachedByAny = (t: number) => runs.some((r) => stepsToReach(r.metrics, 'val_acc', t) !== null);
  const targets = ladder.filter(reachedByAny);
  const firstMissed = ladder.find((t) => !reachedByAny(t));
  if (firstMissed !== undefined) targets.push(firstMissed);
  const lossTargets = TRAIN_LOSS_LADDER.filter((t) =>
    runs.some((r) => stepsToReach(r.metrics, 'train_loss', t) !== null),
  );
  const keys = groupVaryingKeys(groups).filter((k) => k !== baseline.key);
  const comparisons = pairs.map(([a, b]) => {
    const [an, bn] = sideNames(a.runs[0], b.runs[0]);
    const where =
      keys.length > 0
        ? ` (${keys.map((k) => `${shortKeys(keys).get(k)}=${formatValue(runConfig(a.runs[0])[k])}`).join(', ')})`
        : '';
    const c = compareGroups(
      a,
      b,
      { targets, targetsWhy: '', lossTargets },
      { label: `${an} vs ${bn}${where}`, a: an, b: bn },
    );
    return { a: an, b: bn, comparison: c };
  });
  applyHolm(comparisons.map((c) => c.comparison));
  const headlines = comparisons.map((c) => ({
    label: comparisons.length > 1 ? c.comparison.label : null,
    lines: groupHeadlines(c.comparison, c.a, c.b, runs),
  }));
  const groupRows = listGroups(runs);
  const common = await reportCommon(sweep, opts);
  return {
    ...common,
    title: `bnx report: ${specs.join(', ') || sweep.path}`,
    runs: listResults(runs),
    runsText: formatGroupListing(groupRows),
    groups: groupRows,
    comparisons,
    multipleComparisons:
      comparisons.length > 1
        ? `p-values are Holm-adjusted over the ${comparisons.length} settings compared, each measure separately; intervals are unadjusted 95% intervals`
        : null,
    headlines,
    pairs: [],
  };
}

/** What every report has: the charts, the configuration with what varies, the versions. */
async function reportCommon(
  sweep: LoadedSweep,
  opts: ReportOptions,
): Promise<Pick<Report, 'sweep' | 'generated' | 'charts' | 'chartsNote' | 'grid' | 'configYaml' | 'versions'>> {
  const runs = sweep.runs;
  const vary = varyingKeys(runs);
  const { name: specName, ...rest } = structuredClone(runs[0].record?.config ?? { name: '' });
  const shared: Record<string, unknown> = specName ? { name: specName, ...rest } : rest;
  const grid = vary.map((k) => ({ key: k, values: [...new Set(runs.map((r) => formatValue(runConfig(r)[k])))] }));
  for (const g of grid) setPath(shared, g.key, `varies: ${g.values.join(' | ')}`);
  const charts = await reportCharts(runs, opts.x ?? 'step');
  const versions = [
    ...new Set(
      runs
        .map((r) =>
          r.record ? `${r.record.backend}; bnx ${r.record.versions.bnx}, Node ${r.record.versions.node}` : '',
        )
        .filter(Boolean),
    ),
  ];
  return {
    sweep: sweep.path,
    generated: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    charts,
    chartsNote:
      charts.length > 0
        ? null
        : `No charts: no run logged a finite loss or accuracy${runs.every((r) => r.record?.status === 'diverged') ? ' (every run diverged before its first logged step)' : ''}.`,
    grid,
    configYaml: toYaml(shared),
    versions,
  };
}

/** Builds the report of one sweep (of replicate groups when runs differ only in seed). */
export async function buildReport(sweep: LoadedSweep, opts: ReportOptions = {}): Promise<Report> {
  const groups = groupReplicates(sweep.runs);
  if (hasReplicates(groups)) return buildGroupReport(sweep, groups, opts);
  const runs = sweep.runs;
  const specs = [...new Set(runs.map((r) => r.spec).filter(Boolean))];
  const listing = listResults(runs);
  const baseline = opts.baseline !== undefined ? parseBaseline(opts.baseline, groups) : NORM_BASELINE;
  let pairs: [LoadedRun, LoadedRun][] =
    opts.baseline === undefined
      ? normPairs(runs)
      : baselinePairs(groups, baseline).map(([a, b]) => [a.runs[0], b.runs[0]]);
  if (pairs.length === 0 && runs.length === 2 && opts.baseline === undefined) pairs = [[runs[0], runs[1]]];
  const dataset = datasetOf(runs[0]);
  const ladder = [...new Set([...TARGET_LADDER, defaultTarget(dataset), ...(opts.targets ?? [])])].sort(
    (p, q) => p - q,
  );
  const reachedByAny = (t: number) => runs.some((r) => stepsToReach(r.metrics, 'val_acc', t) !== null);
  const targets = ladder.filter(reachedByAny);
  const firstMissed = ladder.find((t) => !reachedByAny(t));
  if (firstMissed !== undefined) targets.push(firstMissed);
  const headlines: Report['headlines'] = [];
  const pairOut = pairs.map(([a, b]) => {
    const [an, bn] = sideNames(a, b);
    const d = diffRuns(a, b, { targets, targetsWhy: '' });
    const keys = varyingKeys(runs).filter((k) => k !== baseline.key);
    const where =
      keys.length > 0
        ? ` (${keys.map((k) => `${shortKeys(keys).get(k)}=${formatValue(runConfig(a)[k])}`).join(', ')})`
        : '';
    d.label = `${an} vs ${bn}${where}`;
    headlines.push({ label: pairs.length > 1 ? d.label : null, lines: headlinesOf(d, [a, b], an, bn, runs) });
    return { a: an, b: bn, diff: d };
  });
  return {
    ...(await reportCommon(sweep, opts)),
    title: `bnx report: ${specs.join(', ') || sweep.path}`,
    runs: listing,
    runsText: formatListing(listing),
    groups: null,
    comparisons: [],
    multipleComparisons: null,
    headlines,
    pairs: pairOut,
  };
}

// ---------------------------------------------------------------------------------------------
// Rendering

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const CSS = `
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; color: #222; max-width: 1100px; margin: 24px auto; padding: 0 16px; line-height: 1.45; }
h1 { font-size: 24px; margin-bottom: 4px; } h2 { font-size: 19px; margin-top: 32px; border-bottom: 1px solid #ddd; padding-bottom: 4px; } h3 { font-size: 16px; }
.meta { color: #666; font-size: 13px; }
ul.headlines li { margin: 4px 0; }
figure { margin: 16px 0; } figure svg { max-width: 100%; height: auto; border: 1px solid #eee; } figcaption { color: #555; font-size: 13px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0 16px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; } th { background: #f5f5f5; text-align: left; } td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.better td.b, td.better { background: #e8f5e9; }
pre { background: #f7f7f7; padding: 10px; font-size: 12px; overflow-x: auto; }
`;

function htmlTable(header: string[], rows: string[][], numeric: (c: number) => boolean = () => false): string {
  return `<table><thead><tr>${header.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c, i) => `<td${numeric(i) ? ' class="n"' : ''}>${esc(c)}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

/** A's and B's curves side by side at up to 14 evaluations (logged steps when there were none). */
function curvesTable<V>(
  points: { step: number; a: Record<Metric, V | null>; b: Record<Metric, V | null> }[],
  p: { a: string; b: string },
  cell: (v: V | null) => string,
): { header: string[]; rows: string[][] } {
  const evaluated = points.filter((r) => r.a.val_acc !== null || r.a.val_loss !== null);
  const shown = thin(evaluated.length > 0 ? evaluated : points, 14);
  const columns = ['train_loss', 'val_loss', 'val_acc'] as const;
  return {
    header: ['step', ...columns.flatMap((m) => [`${m} ${p.a}`, p.b])],
    rows: shown.map((r) => [fmtInt(r.step), ...columns.flatMap((m) => [cell(r.a[m]), cell(r.b[m])])]),
  };
}

/** Table rows shared by the HTML and Markdown renderings. */
function runTable(report: Report): { header: string[]; rows: string[][] } {
  const keys = report.grid.map((g) => g.key).filter((k) => report.runs.some((r) => k in r.params));
  const short = shortKeys(keys);
  return {
    header: [
      'run id',
      ...keys.map((k) => short.get(k)!),
      'status',
      'steps',
      'final val_loss',
      'best val_loss',
      'final val_acc',
      'best val_acc (step)',
      'test acc',
      'val_loss fluct.',
      'wall time',
    ],
    rows: report.runs.map((r) => [
      r.id,
      ...keys.map((k) => formatValue(r.params[k])),
      r.status ?? '-',
      fmtInt(r.steps),
      fmt(r.final_val_loss),
      fmt(r.best_val_loss),
      fmt(r.final_val_acc),
      r.best_val_acc_step !== null ? `${fmt(r.best_val_acc)} (${fmtInt(r.best_val_acc_step)})` : fmt(r.best_val_acc),
      fmt(r.test_acc),
      fmt(r.val_loss_fluctuation),
      fmtTime(r.wall_time_s),
    ]),
  };
}

function pairTables(p: { a: string; b: string; diff: PairDiff }) {
  const d = p.diff;
  const names: Record<string, string> = {
    final_train_loss: 'final training loss',
    final_val_loss: 'final val_loss',
    final_val_acc: 'final val_acc',
    best_val_loss: 'best val_loss',
    best_val_acc: 'best val_acc',
    test_loss: 'test loss',
    test_acc: 'test accuracy',
    val_loss_fluctuation: 'val_loss fluctuation',
  };
  const side = (x: 'a' | 'b') => (x === 'a' ? p.a : p.b);
  const config = { header: ['key', p.a, p.b], rows: d.config.map((c) => [c.key, formatValue(c.a), formatValue(c.b)]) };
  const values = {
    header: ['', p.a, p.b, `${p.b} - ${p.a}`, 'better'],
    rows: d.values.map((v) => {
      const at = (x: number | null, s: number | null) => (s !== null ? `${fmt(x)} @${fmtInt(s)}` : fmt(x));
      return [
        names[v.name],
        at(v.a, v.a_step),
        at(v.b, v.b_step),
        fmtDelta(v.diff),
        v.better === 'same' ? 'same' : v.better ? side(v.better) : '',
      ];
    }),
  };
  const targetRows = (kind: 'target' | 'match') =>
    d.targets
      .filter((t) => t.kind === kind)
      .map((t) => [
        targetName(t).replace("A's", `${p.a}'s`).replace("B's", `${p.b}'s`),
        fmtInt(t.a_step),
        fmtInt(t.b_step),
        ratioWords(t, p.a, p.b),
      ]);
  const targets = {
    header: ['level', `${p.a}: step`, `${p.b}: step`, ''],
    rows: [...targetRows('target'), ...targetRows('match')],
  };
  const steps = curvesTable(d.steps, p, fmt);
  return { config, values, targets, steps };
}

/** The replicate-group table (one row per setting, each value mean ± 95% half-width). */
function groupTable(report: Report): { header: string[]; rows: string[][] } {
  const groups = report.groups ?? [];
  const keys = report.grid.map((g) => g.key).filter((k) => k !== 'seed' && groups.some((r) => k in r.params));
  const short = shortKeys(keys);
  const v = (g: GroupListing, name: (typeof GROUP_VALUES)[number]) => fmtGroupValue(g.values[name]);
  return {
    header: [
      ...keys.map((k) => short.get(k)!),
      'n',
      'seeds',
      'status',
      'final val_loss',
      'best val_loss',
      'final val_acc',
      'best val_acc',
      'test acc',
      'val_loss fluct.',
      'wall time (s)',
    ],
    rows: groups.map((g) => [
      ...keys.map((k) => formatValue(g.params[k])),
      String(g.n),
      formatSeeds(g.seeds),
      statusText(g.status),
      v(g, 'final_val_loss'),
      v(g, 'best_val_loss'),
      v(g, 'final_val_acc'),
      v(g, 'best_val_acc'),
      v(g, 'test_acc'),
      v(g, 'val_loss_fluctuation'),
      fmtGroupValue(g.values.wall_time_s, (x) => (x === null ? '-' : x.toFixed(1))),
    ]),
  };
}

/** The tables of one comparison of replicate groups, the sides named (`no BN`, `BN`). */
function comparisonTables(p: { a: string; b: string; comparison: GroupComparison }) {
  const c = p.comparison;
  const header = VERDICT_HEADER(c.measures).map((h) =>
    h === 'A' ? p.a : h === 'B' ? p.b : h === 'B - A | B / A' ? `${p.b} - ${p.a} | ${p.b} / ${p.a}` : h,
  );
  const rows = verdictRows(c.measures).map((r) => [
    ...r.slice(0, -1),
    r.at(-1) === 'B better' ? `${p.b} better` : r.at(-1) === 'A better' ? `${p.a} better` : r.at(-1)!,
  ]);
  const notes = c.measures
    .map((m) => {
      const lines = [m.summary ?? (m.verdict === 'not tested' ? m.verdict_text : null), m.note].filter(
        (x): x is string => x !== null && x !== '',
      );
      return lines.length > 0 ? `${m.label}: ${lines.join('; ')}` : null;
    })
    .filter((x): x is string => x !== null)
    .map((x) => x.replace(/\bA\b/g, p.a).replace(/\bB\b/g, p.b));
  const curves = curvesTable(c.curves, p, (x) => (x === null ? '-' : fmt(x.mean)));
  const config = { header: ['key', p.a, p.b], rows: c.config.map((d) => [d.key, formatValue(d.a), formatValue(d.b)]) };
  const statistics = STATISTICS_NOTES(c.measures).map((l) => l.trim());
  return { verdicts: { header, rows }, notes, curves, config, statistics };
}

/** One self-contained HTML page: inline CSS and inline SVG charts, no scripts, nothing fetched. */
export function reportHtml(report: Report): string {
  const parts: string[] = [];
  parts.push(
    '<!DOCTYPE html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<title>${esc(report.title)}</title>`,
    `<style>${CSS}</style></head><body>`,
  );
  parts.push(`<h1>${esc(report.title)}</h1>`);
  parts.push(
    `<p class="meta">${esc(report.sweep)}: ${report.runs.length} run(s). Generated ${esc(report.generated)} by bnx ${esc(BNX_VERSION)}.</p>`,
  );
  if (report.headlines.length > 0) {
    parts.push('<h2>Headline numbers</h2>');
    for (const g of report.headlines) {
      if (g.label) parts.push(`<h3>${esc(g.label)}</h3>`);
      parts.push(`<ul class="headlines">${g.lines.map((h) => `<li>${esc(h)}</li>`).join('')}</ul>`);
    }
  }
  for (const c of report.charts) {
    parts.push(`<h2>${esc(c.title)}</h2>`, `<figure>${c.svg}<figcaption>${esc(c.caption)}</figcaption></figure>`);
  }
  if (report.chartsNote) parts.push(`<p class="meta">${esc(report.chartsNote)}</p>`);
  const rt = runTable(report);
  if (report.groups) {
    const gt = groupTable(report);
    parts.push(
      '<h2>Replicate groups</h2>',
      htmlTable(gt.header, gt.rows, (c) => c >= gt.header.indexOf('final val_loss') || c === gt.header.indexOf('n')),
      `<p class="meta">${esc(PLUS_MINUS_NOTE)}. val_loss fluct.: standard deviation of the step-to-step changes of the validation loss over the last half of training.</p>`,
    );
    parts.push(
      `<details><summary>Every run (${report.runs.length})</summary>`,
      htmlTable(rt.header, rt.rows, (c) => c >= rt.header.indexOf('steps')),
      '</details>',
    );
  } else {
    parts.push(
      '<h2>Runs</h2>',
      htmlTable(rt.header, rt.rows, (c) => c >= rt.header.indexOf('steps')),
    );
    parts.push(
      '<p class="meta">val_loss fluct.: standard deviation of the step-to-step changes of the validation loss over the last half of training.</p>',
    );
  }
  if (report.multipleComparisons) parts.push(`<p class="meta">${esc(report.multipleComparisons)}.</p>`);
  for (const p of report.comparisons) {
    const t = comparisonTables(p);
    const c = p.comparison;
    parts.push(`<h2>Comparison: ${esc(c.label)}</h2>`);
    parts.push(
      `<p class="meta">${esc(p.a)}: ${esc(c.a.dir)}, ${c.a.n} runs (seeds ${esc(formatSeeds(c.a.seeds))})<br>${esc(p.b)}: ${esc(c.b.dir)}, ${c.b.n} runs (seeds ${esc(formatSeeds(c.b.seeds))})<br>${esc(c.design_why)}</p>`,
    );
    if (t.config.rows.length > 0)
      parts.push('<h3>Configuration (keys that differ, seed aside)</h3>', htmlTable(t.config.header, t.config.rows));
    parts.push(
      '<h3>Verdicts</h3>',
      htmlTable(t.verdicts.header, t.verdicts.rows, (k) => k >= 1 && k <= 7),
      `<ul class="headlines">${t.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>`,
      `<p class="meta">${t.statistics.map(esc).join('<br>')}</p>`,
    );
    parts.push(
      '<h3>Mean curves (mean over the seeds at matching steps)</h3>',
      htmlTable(t.curves.header, t.curves.rows, () => true),
    );
  }
  for (const p of report.pairs) {
    const t = pairTables(p);
    parts.push(`<h2>Diff: ${esc(p.diff.label)}</h2>`);
    parts.push(`<p class="meta">${esc(p.a)}: ${esc(p.diff.a.path)}<br>${esc(p.b)}: ${esc(p.diff.b.path)}</p>`);
    if (t.config.rows.length > 0)
      parts.push('<h3>Configuration (keys that differ)</h3>', htmlTable(t.config.header, t.config.rows));
    parts.push(
      '<h3>Final and best values</h3>',
      htmlTable(t.values.header, t.values.rows, (c) => c >= 1 && c <= 3),
    );
    parts.push(
      '<h3>Steps to reach a level</h3>',
      htmlTable(t.targets.header, t.targets.rows, (c) => c === 1 || c === 2),
    );
    parts.push(
      '<h3>Metrics at matching steps</h3>',
      htmlTable(t.steps.header, t.steps.rows, () => true),
    );
  }
  parts.push('<h2>Spec</h2>');
  if (report.grid.length > 0)
    parts.push(
      htmlTable(
        ['varies', 'values'],
        report.grid.map((g) => [g.key, g.values.join(', ')]),
      ),
    );
  parts.push(`<pre>${esc(report.configYaml)}</pre>`);
  if (report.versions.length > 0)
    parts.push(`<p class="meta">Trained on: ${report.versions.map(esc).join('<br>')}</p>`);
  parts.push('</body></html>');
  return `${parts.join('\n')}\n`;
}

/** The Markdown report; `chartFile(name)` is the relative path each chart's SVG is written to. */
export function reportMarkdown(report: Report, chartFile: (name: string) => string): string {
  const out: string[] = [];
  out.push(
    `# ${report.title}`,
    '',
    `${report.sweep}: ${report.runs.length} run(s). Generated ${report.generated} by bnx ${BNX_VERSION}.`,
    '',
  );
  if (report.headlines.length > 0) {
    out.push('## Headline numbers', '');
    for (const g of report.headlines)
      out.push(...(g.label ? [`### ${g.label}`, ''] : []), ...g.lines.map((h) => `- ${h}`), '');
  }
  for (const c of report.charts)
    out.push(`## ${c.title}`, '', `![${c.title}](${chartFile(c.name)})`, '', `*${c.caption}*`, '');
  if (report.chartsNote) out.push(report.chartsNote, '');
  const rt = runTable(report);
  if (report.groups) {
    const gt = groupTable(report);
    out.push(
      '## Replicate groups',
      '',
      markdownTable(gt.header, gt.rows),
      '',
      `${PLUS_MINUS_NOTE}. val_loss fluct.: standard deviation of the step-to-step changes of the validation loss over the last half of training.`,
      '',
    );
  }
  out.push(
    report.groups ? '## Every run' : '## Runs',
    '',
    markdownTable(rt.header, rt.rows),
    '',
    'val_loss fluct.: standard deviation of the step-to-step changes of the validation loss over the last half of training.',
    '',
  );
  if (report.multipleComparisons) out.push(`${report.multipleComparisons}.`, '');
  for (const p of report.comparisons) {
    const t = comparisonTables(p);
    const c = p.comparison;
    out.push(
      `## Comparison: ${c.label}`,
      '',
      `- ${p.a}: \`${c.a.dir}\`, ${c.a.n} runs (seeds ${formatSeeds(c.a.seeds)})`,
      `- ${p.b}: \`${c.b.dir}\`, ${c.b.n} runs (seeds ${formatSeeds(c.b.seeds)})`,
      `- ${c.design_why}`,
      '',
    );
    if (t.config.rows.length > 0)
      out.push(
        '### Configuration (keys that differ, seed aside)',
        '',
        markdownTable(t.config.header, t.config.rows),
        '',
      );
    out.push('### Verdicts', '', markdownTable(t.verdicts.header, t.verdicts.rows), '');
    out.push(...t.notes.map((n) => `- ${n}`), '', ...t.statistics.map((l) => `${l}  `), '');
    out.push(
      '### Mean curves (mean over the seeds at matching steps)',
      '',
      markdownTable(t.curves.header, t.curves.rows),
      '',
    );
  }
  for (const p of report.pairs) {
    const t = pairTables(p);
    out.push(`## Diff: ${p.diff.label}`, '', `- ${p.a}: \`${p.diff.a.path}\``, `- ${p.b}: \`${p.diff.b.path}\``, '');
    if (t.config.rows.length > 0)
      out.push('### Configuration (keys that differ)', '', markdownTable(t.config.header, t.config.rows), '');
    out.push('### Final and best values', '', markdownTable(t.values.header, t.values.rows), '');
    out.push('### Steps to reach a level', '', markdownTable(t.targets.header, t.targets.rows), '');
    out.push('### Metrics at matching steps', '', markdownTable(t.steps.header, t.steps.rows), '');
  }
  out.push('## Spec', '');
  if (report.grid.length > 0)
    out.push(
      markdownTable(
        ['varies', 'values'],
        report.grid.map((g) => [g.key, g.values.join(', ')]),
      ),
      '',
    );
  out.push('```yaml', report.configYaml.trimEnd(), '```', '');
  if (report.versions.length > 0) out.push(`Trained on: ${report.versions.join('; ')}`, '');
  return out.join('\n');
}
