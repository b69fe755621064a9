/**
 * bnx as a library: spec loading and grid expansion, datasets, normalization layers and models,
 * the training loop, and reading results.
 */
export { InputError } from './util/errors.js';
export { BNX_VERSION } from './util/version.js';
export type * from './spec/types.js';
export { loadSpec, parseOverride, applyOverrides, type Spec, type GridAxis, type Override } from './spec/load.js';
export { expandGrid, configHash, runId, type PlannedRun } from './spec/expand.js';
export { DEFAULT_CONFIG, RUN_CONFIG_SCHEMA } from './spec/schema.js';
export * from './data/index.js';
// Normalization layers (math and conventions in their doc comments), models, folding, saved weights.
export * from './model/index.js';
export { initBackend, describeBackend, type BackendInfo, type BackendName } from './train/backend.js';
export {
  train,
  trainGroup,
  totalSteps,
  type TrainHooks,
  type GroupHooks,
  type RunHooks,
  type TrainResult,
} from './train/loop.js';
export { chooseEngine, type Engine, type EngineKind, type Batch } from './train/engine.js';
export { EagerEngine } from './train/eager-engine.js';
export { trainingGroups, groupKey } from './train/groups.js';
export { GraphEngine } from './train/graph/engine.js';
export { compileMlp, graphUnsupported, type CompiledGraph, type GraphVariable } from './train/graph/compile.js';
export { compileCnn } from './train/graph/compile-cnn.js';
export {
  encodeSavedModel,
  decodeSavedModel,
  writeSavedModel,
  GraphBuilder,
  type NodeDef,
  type Signature,
} from './train/graph/graph-def.js';
export { evaluate, PopulationStatistics, type EvalResult } from './train/evaluate.js';
// Instruments: measurements taken while training, each into its own CSV (see README, "Instruments").
export {
  InstrumentRunner,
  enabledInstruments,
  percentiles,
  probeSeed,
  GRADIENT_INSTRUMENTS,
  type Instrument,
  type InstrumentRow,
  type Measurement,
} from './train/instruments/index.js';
export { InstrumentCsv, instrumentColumns, instrumentCsvPath } from './store/instrument-csv.js';
export { exportRun, type ExportReport } from './analyze/export.js';
export { runSweep, type SweepOptions, type SweepResult, type SweepReporter } from './store/sweep.js';
export * from './store/index.js';
export * from './analyze/index.js';
// TensorBoard event files: writing them for a run, reading them back (TFRecord framing, CRC-checked).
export { TensorBoardWriter, tensorboardDir, instrumentScalars, TENSORBOARD_SUBDIR } from './store/tensorboard.js';
export {
  readEventLog,
  readEventFile,
  eventFiles,
  decodeEvent,
  readRecords,
  crc32c,
  maskedCrc32c,
  type EventLog,
  type TensorBoardEvent,
  type SummaryValue,
  type ScalarPoint,
  type HistogramPoint,
  type HistogramBucket,
} from './analyze/tensorboard.js';
