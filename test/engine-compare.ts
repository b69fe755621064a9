import assert from 'node:assert/strict';
import type { Dataset } from '../src/data/index.js';
import type { Classifier } from '../src/model/index.js';
import type { InstrumentName, RunConfig } from '../src/spec/types.js';
import type { MetricsRow } from '../src/store/metrics.js';
import { train, type TrainResult } from '../src/train/loop.js';

/** What a test keeps of a trained run to compare engines. */
export interface EngineOutcome {
  rows: MetricsRow[];
  result: TrainResult;
  /** Every final variable by name. */
  weights: Map<string, Float32Array>;
  /** The engine that trained it, and the fallback note. */
  engine: string | null;
  note: string | null;
  /** The enabled instruments' rows by name. */
  instruments: Map<string, Record<string, number | string>[]>;
}

/** Trains `c` on `engine` and keeps what `deviation` compares. */
export async function trainOutcome(
  c: RunConfig,
  engine: 'graph' | 'eager' | 'auto',
  data: Dataset,
): Promise<EngineOutcome> {
  const out: EngineOutcome = {
    rows: [],
    result: null as unknown as TrainResult,
    weights: new Map(),
    engine: null,
    note: null,
    instruments: new Map(),
  };
  const cfg = structuredClone(c);
  cfg.train.engine = engine;
  out.result = await train(cfg, data, {
    onRow: (r) => out.rows.push(r),
    onTrained: (m: Classifier) => {
      for (const [k, v] of m.namedWeights) out.weights.set(k, (v.dataSync() as Float32Array).slice());
    },
    onEngine: (e, n) => {
      out.engine = e;
      out.note = n;
    },
    onInstrument: (name: InstrumentName, _step, r) =>
      out.instruments.set(name, [...(out.instruments.get(name) ?? []), ...r]),
  });
  return out;
}

/** Largest |a - b| / max(1, |b|) over the metrics rows (loss, accuracy), the test result and every weight. */
export function deviation(a: EngineOutcome, b: EngineOutcome): { metrics: number; weights: number } {
  let metrics = 0;
  const rel = (x: number, y: number) => Math.abs(x - y) / Math.max(1, Math.abs(y));
  assert.equal(a.rows.length, b.rows.length);
  a.rows.forEach((r, i) => {
    const s = b.rows[i];
    assert.equal(r.step, s.step);
    for (const k of ['train_loss', 'train_acc', 'val_loss', 'val_acc'] as const) {
      const [x, y] = [r[k], s[k]];
      if (x === null || y === null) assert.equal(x, y, k);
      else metrics = Math.max(metrics, rel(x, y));
    }
  });
  metrics = Math.max(metrics, rel(a.result.test.loss, b.result.test.loss), rel(a.result.test.acc, b.result.test.acc));
  let weights = 0;
  assert.deepEqual([...a.weights.keys()], [...b.weights.keys()]);
  for (const [k, v] of a.weights) {
    const w = b.weights.get(k) as Float32Array;
    for (let i = 0; i < v.length; i++) weights = Math.max(weights, rel(v[i], w[i]));
  }
  return { metrics, weights };
}
