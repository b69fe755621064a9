import * as tf from '@tensorflow/tfjs';
import { gather, type Dataset } from '../../data/index.js';
import type { Classifier } from '../../model/index.js';
import type { RunConfig } from '../../spec/types.js';
import { Rng } from '../../util/rng.js';
import type { Instrument, InstrumentRow, Measurement } from './instrument.js';
import { percentileColumn } from './columns.js';
import { nonlinearityInputs } from './layers.js';

/** Seed of the probe batch's permutation: from the run seed only, so BN and no-BN runs of a seed share the probe. */
export function probeSeed(seed: number): number {
  return (seed + 0x9b0be) % 2147483647;
}

/**
 * The q-th percentiles (q in [0, 100]) of `values`, linearly interpolated between order
 * statistics (numpy's default): position q/100 * (n - 1) in the sorted values.
 */
export function percentiles(values: Float32Array, qs: number[]): number[] {
  const sorted = Float32Array.from(values).sort();
  return qs.map((q) => {
    const pos = (q / 100) * (sorted.length - 1);
    const lo = Math.floor(pos);
    const hi = Math.min(lo + 1, sorted.length - 1);
    return sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]);
  });
}

/**
 * The distribution of each layer's input to the nonlinearity over a fixed probe batch (Ioffe &
 * Szegedy 2015, Figure 1b,c: the 15th, 50th and 85th percentiles of a sigmoid's input over
 * training). The probe: the first `probe_size` examples of a seeded permutation of the training
 * set, the same at every measurement. The pass is in training mode (batch norm normalizes with the
 * probe's own statistics, as a training batch would be) and updates nothing: batch norm only
 * parks the probe's statistics as "last batch", which the next training step's forward pass
 * replaces before the moving averages are updated. Percentiles pool every unit (and position) of
 * every probe example.
 */
export class ActivationPercentiles implements Instrument {
  readonly name = 'activation_percentiles' as const;
  readonly phase = 'after_step' as const;
  private readonly probe: { x: Float32Array; y: Int32Array };
  private readonly qs: number[];

  constructor(
    config: RunConfig,
    private readonly data: Dataset,
  ) {
    const options = config.instruments.activation_percentiles;
    const n = Math.min(options.probe_size, data.train.n);
    this.probe = gather(data.train, data.features, new Rng(probeSeed(config.seed)).permutation(data.train.n), 0, n);
    this.qs = options.percentiles;
  }

  measure(step: number, model: Classifier): Measurement {
    const names: string[] = [];
    const tensors = tf.tidy(() => {
      const inputs = nonlinearityInputs(
        model,
        tf.tensor2d(this.probe.x, [this.probe.y.length, this.data.features]),
        true,
      );
      names.push(...inputs.keys());
      return [...inputs.values()];
    });
    const activations = new Map<string, Float32Array>();
    const rows: InstrumentRow[] = [];
    names.forEach((layer, i) => {
      const values = tensors[i].dataSync() as Float32Array;
      activations.set(layer, values);
      const row: InstrumentRow = { step, layer };
      percentiles(values, this.qs).forEach((p, j) => (row[percentileColumn(this.qs[j])] = p));
      rows.push(row);
    });
    tf.dispose(tensors);
    return { rows, activations };
  }
}
