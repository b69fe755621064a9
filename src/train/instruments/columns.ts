import type { InstrumentName, RunConfig } from '../../spec/types.js';

/**
 * The leading columns of each instrument's CSV, in order. activation_percentiles has one more
 * column per configured percentile after these (`p15`, `p50`, `p2.5`: see percentileColumn).
 * A module of its own, free of TensorFlow, so that reading results does not load it.
 */
export const INSTRUMENT_COLUMNS: Record<InstrumentName, readonly string[]> = {
  activation_percentiles: ['step', 'layer'],
  ics: ['step', 'layer', 'l2', 'cosine', 'grad_norm'],
  smoothness: ['step', 'step_size', 'loss', 'loss_change', 'grad_change', 'beta'],
  eval_gap: ['step', 'val_loss_train_mode', 'val_loss_inference', 'gap'],
};

/** `p15`, `p50`, `p85`, `p2.5`: the column of one configured percentile. */
export function percentileColumn(q: number): string {
  return `p${q}`;
}

/** The columns of a run's `<run dir>/<name>.csv`, in order. */
export function instrumentColumns(config: RunConfig, name: InstrumentName): string[] {
  const extra =
    name === 'activation_percentiles'
      ? config.instruments.activation_percentiles.percentiles.map(percentileColumn)
      : [];
  return [...INSTRUMENT_COLUMNS[name], ...extra];
}
