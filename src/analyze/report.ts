import { stringify as toYaml } from 'yaml';
import { setPath } from '../spec/load.js';
import { BNX_VERSION } from '../util/version.js';
import { chartSpec, metricTitle, renderSvg, type XAxis } from './chart.js';
import { diffRuns, normPairs, ratioText, targetName, thin, type PairDiff, type TargetDiff } from './diff.js';
import { formatListing, listResults, type RunListing } from './ls.js';
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
  if (has('val_acc')) {
    charts.push({
      name: 'accuracy',
      title: capitalize(metricTitle('val_acc', runs)),
      caption: onTest
        ? "Test accuracy against training step, one line per run: the paper's Figure 1(a) for experiments/paper-mnist.yaml."
        : 'Validation accuracy against training step, one line per run.',
      svg: uniqueSvgIds(await renderSvg(chartSpec(runs, { metrics: ['val_acc'], x, width: 720, height: 360 })), 'acc'),
    });
  }
  const losses = (['train_loss', 'val_loss'] as Metric[]).filter(has);
  if (losses.length > 0) {
    charts.push({
      name: 'loss',
      title: capitalize(losses.map((m) => metricTitle(m, runs)).join(' and ')),
      caption:
        'Training loss (mean over each logging interval, training mode) and validation loss (inference mode, moving-average BN statistics), one panel each.',
      svg: uniqueSvgIds(await renderSvg(chartSpec(runs, { metrics: losses, x, width: 400, height: 280 })), 'loss'),
    });
  }
  return charts;
}

/** Builds the report of one sweep. */
export async function buildReport(sweep: LoadedSweep, opts: ReportOptions = {}): Promise<Report> {
  const runs = sweep.runs;
  const specs = [...new Set(runs.map((r) => r.spec).filter(Boolean))];
  const listing = listResults(runs);
  let pairs = normPairs(runs);
  if (pairs.length === 0 && runs.length === 2) pairs = [[runs[0], runs[1]]];
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
    const keys = varyingKeys(runs).filter((k) => k !== 'model.norm');
    const where =
      keys.length > 0
        ? ` (${keys.map((k) => `${shortKeys(keys).get(k)}=${formatValue(runConfig(a)[k])}`).join(', ')})`
        : '';
    d.label = `${an} vs ${bn}${where}`;
    headlines.push({ label: pairs.length > 1 ? d.label : null, lines: headlinesOf(d, [a, b], an, bn, runs) });
    return { a: an, b: bn, diff: d };
  });
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
    title: `bnx report: ${specs.join(', ') || sweep.path}`,
    sweep: sweep.path,
    generated: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    runs: listing,
    runsText: formatListing(listing),
    headlines,
    charts,
    chartsNote:
      charts.length > 0
        ? null
        : `No charts: no run logged a finite loss or accuracy${runs.every((r) => r.record?.status === 'diverged') ? ' (every run diverged before its first logged step)' : ''}.`,
    pairs: pairOut,
    grid,
    configYaml: toYaml(shared),
    versions,
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
  const evalRows = d.steps.filter((s) => s.a.val_acc !== null || s.a.val_loss !== null);
  const stepsShown = thin(evalRows.length > 0 ? evalRows : d.steps, 14);
  const steps = {
    header: ['step', `train_loss ${p.a}`, p.b, `val_loss ${p.a}`, p.b, `val_acc ${p.a}`, p.b],
    rows: stepsShown.map((s) => [
      fmtInt(s.step),
      fmt(s.a.train_loss),
      fmt(s.b.train_loss),
      fmt(s.a.val_loss),
      fmt(s.b.val_loss),
      fmt(s.a.val_acc),
      fmt(s.b.val_acc),
    ]),
  };
  return { config, values, targets, steps };
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
  parts.push(
    '<h2>Runs</h2>',
    htmlTable(rt.header, rt.rows, (c) => c >= rt.header.indexOf('steps')),
  );
  parts.push(
    '<p class="meta">val_loss fluct.: standard deviation of the step-to-step changes of the validation loss over the last half of training.</p>',
  );
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
  out.push(
    '## Runs',
    '',
    markdownTable(rt.header, rt.rows),
    '',
    'val_loss fluct.: standard deviation of the step-to-step changes of the validation loss over the last half of training.',
    '',
  );
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
