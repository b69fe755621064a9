/**
 * bnx as a library (docs/library.md): specs and grids, datasets, the normalization layers and the
 * networks built from a plan, training (alone or as a group), sweeps into a results folder, and
 * reading and comparing results. Internals (the graph compiler, the SavedModel writer, CSV writers,
 * locks) are not part of it.
 */
export { InputError } from './util/errors.js';
export { BNX_VERSION } from './util/version.js';

// Specs: load, override, expand into runs.
export type { RunConfig, ModelConfig, TrainConfig, DataConfig, NormType, NormPlacement } from './spec/types.js';
export { loadSpec, parseOverride, applyOverrides, type Spec, type GridAxis, type Override } from './spec/load.js';
export { expandGrid, configHash, runId, type PlannedRun } from './spec/expand.js';
export { DEFAULT_CONFIG } from './spec/schema.js';

// Data.
export { loadDataset, type Dataset, type Split } from './data/index.js';

// Normalization layers (math, conventions and defaults in their doc comments), and the layers around them.
export * from './layers/index.js';

// Networks: the plan a config describes, the eager models, batch norm folding, saved weights.
export {
  modelPlan,
  buildModel,
  Mlp,
  Cnn,
  foldBatchNorm,
  saveWeights,
  loadWeights,
  type ModelPlan,
  type LayerPlan,
  type NormPlan,
  type Classifier,
} from './model/index.js';

// Training.
export { initBackend, describeBackend, type BackendInfo, type BackendName } from './train/backend.js';
export {
  train,
  trainGroup,
  totalSteps,
  DivergedError,
  type TrainHooks,
  type GroupHooks,
  type RunHooks,
  type TrainResult,
  type MetricsRow,
} from './train/loop.js';
export { trainingGroups } from './train/groups.js';

// Sweeps into a results folder, and reading what they wrote.
export { runSweep, type SweepOptions, type SweepResult, type SweepReporter } from './store/sweep.js';
export { readMetrics, listRuns, readRecord, type RunRecord, type RunStatus } from './store/index.js';
export {
  loadSweep,
  loadResults,
  loadRunDir,
  fluctuation,
  stepsToReach,
  readInstrument,
  diffRuns,
  diffSweeps,
  listResults,
  type LoadedRun,
  type LoadedSweep,
} from './analyze/index.js';
export { exportRun, type ExportReport } from './analyze/export.js';
export { readEventLog, type EventLog } from './analyze/tensorboard.js';
