/** Reading results back and comparing runs: `bnx ls`, `diff`, `plot` and `report`. */
export {
  loadSweep,
  loadResults,
  loadRunDir,
  loadCsv,
  readMetricsChecked,
  flattenConfig,
  runConfig,
  varyingKeys,
  runLabels,
  type LoadedRun,
  type LoadedSweep,
} from './results.js';
export {
  METRICS,
  fluctuation,
  stepsToReach,
  bestOf,
  finalOf,
  runValues,
  defaultTarget,
  DEFAULT_TARGETS,
  COMPARED_VALUES,
  type Metric,
  type RunValues,
  type ComparedValue,
} from './stats.js';
export {
  diffRuns,
  diffSweeps,
  diffWithin,
  pairSweeps,
  normPairs,
  worsePairs,
  formatDiff,
  diffCsv,
  diffJson,
  type Diff,
  type PairDiff,
  type ValueDiff,
  type TargetDiff,
  type StepRow,
  type ConfigDiff,
  type DiffOptions,
} from './diff.js';
export { listResults, formatListing, type RunListing, type ListOptions } from './ls.js';
export {
  chartSpec,
  chartRows,
  renderSvg,
  renderPng,
  termChart,
  termChartOf,
  X_AXES,
  type XAxis,
  type ChartOptions,
  type VegaLiteSpec,
} from './chart.js';
export {
  readInstrument,
  readInstrumentCsv,
  loadInstrument,
  instrumentFile,
  percentileColumns,
  missingInstrumentLine,
  type InstrumentTable,
  type InstrumentRow,
  type InstrumentRuns,
  type PercentileColumn,
} from './instruments.js';
export {
  instrumentChartSpec,
  instrumentTermCharts,
  instrumentPoints,
  instrumentLayers,
  percentileRoles,
  INSTRUMENT_TITLES,
  type InstrumentPoint,
  type InstrumentChartOptions,
} from './instrument-chart.js';
export {
  sweepChartSpec,
  sweepPoints,
  sweepTermCharts,
  type SweepChartOptions,
  type SweepPoint,
} from './sweep-chart.js';
export { buildReport, reportHtml, reportMarkdown, type Report, type ReportOptions } from './report.js';
