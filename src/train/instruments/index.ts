import type { Dataset } from '../../data/index.js';
import type { Classifier } from '../../model/index.js';
import { INSTRUMENT_NAMES, type InstrumentName, type RunConfig } from '../../spec/types.js';
import { ActivationPercentiles } from './activation-percentiles.js';
import { EvalGap } from './eval-gap.js';
import { InternalCovariateShift } from './ics.js';
import type { Instrument, Measurement, TrainingBatch } from './instrument.js';
import { Smoothness } from './smoothness.js';

export { percentiles, probeSeed } from './activation-percentiles.js';
export type { Instrument, InstrumentRow, Measurement } from './instrument.js';

/** The instruments a run enables, in INSTRUMENT_NAMES order. */
export function enabledInstruments(config: RunConfig): InstrumentName[] {
  return INSTRUMENT_NAMES.filter((name) => config.instruments[name].enabled);
}

/** The instruments that need gradients: the graph engine, which has none to offer, cannot run them. */
export const GRADIENT_INSTRUMENTS: readonly InstrumentName[] = ['ics', 'smoothness'];

function build(name: InstrumentName, config: RunConfig, data: Dataset): Instrument {
  switch (name) {
    case 'activation_percentiles':
      return new ActivationPercentiles(config, data);
    case 'ics':
      return new InternalCovariateShift(config, data.features);
    case 'smoothness':
      return new Smoothness(config, data.features);
    case 'eval_gap':
      return new EvalGap(config, data);
  }
}

/**
 * Runs a training run's enabled instruments at the steps that are multiples of their `every`, and
 * adds up the wall time each one costs (its overhead). The loop calls `beforeStep` with the step's
 * batch and the weights about to be updated, and `afterStep` with the weights the step produced.
 */
export class InstrumentRunner {
  private readonly instruments: { instrument: Instrument; every: number }[];
  private readonly seconds = new Map<InstrumentName, number>();

  constructor(
    config: RunConfig,
    data: Dataset,
    private readonly onMeasurement: (name: InstrumentName, step: number, measurement: Measurement) => void,
  ) {
    this.instruments = enabledInstruments(config).map((name) => ({
      instrument: build(name, config, data),
      every: config.instruments[name].every,
    }));
    for (const { instrument } of this.instruments) this.seconds.set(instrument.name, 0);
  }

  /** Null when no instrument is enabled: the loop then has nothing to call. */
  static create(
    config: RunConfig,
    data: Dataset,
    onMeasurement: (name: InstrumentName, step: number, measurement: Measurement) => void,
  ): InstrumentRunner | null {
    return enabledInstruments(config).length > 0 ? new InstrumentRunner(config, data, onMeasurement) : null;
  }

  beforeStep(step: number, model: Classifier, batch: TrainingBatch): void {
    this.run('before_step', step, () => model, batch);
  }

  /**
   * `weights` gives the model holding the step's weights (the graph engine copies its variables
   * into it: that copy's time is shared among the instruments measuring at this step).
   */
  afterStep(step: number, weights: () => Classifier, batch: TrainingBatch): void {
    this.run('after_step', step, weights, batch);
  }

  /** Seconds spent in each enabled instrument so far. */
  overhead(): Partial<Record<InstrumentName, number>> {
    return Object.fromEntries(this.seconds);
  }

  private run(phase: Instrument['phase'], step: number, weights: () => Classifier, batch: TrainingBatch): void {
    const due = this.instruments
      .filter((i) => i.instrument.phase === phase && step % i.every === 0)
      .map((i) => i.instrument);
    if (due.length === 0) return;
    const started = performance.now();
    const model = weights();
    const shared = (performance.now() - started) / 1000 / due.length;
    for (const instrument of due) {
      const t0 = performance.now();
      const measurement = instrument.measure(step, model, batch);
      this.add(instrument.name, shared + (performance.now() - t0) / 1000);
      this.onMeasurement(instrument.name, step, measurement);
    }
  }

  private add(name: InstrumentName, seconds: number): void {
    this.seconds.set(name, (this.seconds.get(name) ?? 0) + seconds);
  }
}
