export { MetricsWriter, readMetrics, METRICS_COLUMNS, type MetricsRow } from './metrics.js';
export { listRuns, readRecord, writeSummary, specDir, RUN_FILES, type RunRecord, type RunStatus } from './runs.js';
