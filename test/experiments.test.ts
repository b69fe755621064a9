import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ROOT, bnx, tmpDir } from './helpers.js';

const DIR = path.join(ROOT, 'experiments');
const SPECS = fs
  .readdirSync(DIR)
  .filter((f) => f.endsWith('.yaml'))
  .sort();

/**
 * What makes a spec's smoke variant take seconds: few steps, frequent logs and evaluations (so the
 * metrics and instrument paths run), a small training subset and a small validation set or limit.
 * instruments measure every few steps. Grids keep their axes, except where one axis alone would make
 * the smoke run long (the CNN's 7 batch sizes: the extremes stay; its layers get narrower).
 */
const SMOKE = [
  'train.steps=6',
  'train.eval_every=3',
  'train.log_every=2',
  'data.train_limit=600',
  'data.val_size=300',
  'train.eval_limit=300',
];
/** The CNN specs' final test pass covers all 10,000 test images: a narrow CNN keeps it short. */
const SMALL_CNN = ['model.cnn.channels=[4,8]', 'model.cnn.dense=[8]'];
const PER_SPEC: Record<string, string[]> = {
  'batch-size.yaml': ['train.batch_size,train.lr=[2,0.0015625],[128,0.1]', ...SMALL_CNN],
  'fashion-cnn.yaml': SMALL_CNN,
  'ics.yaml': ['instruments.ics.every=3', 'instruments.smoothness.every=3'],
};
/** The CSVs every run of a spec writes besides metrics.csv (its instruments). */
const INSTRUMENT_CSVS: Record<string, string[]> = { 'ics.yaml': ['ics.csv', 'smoothness.csv'] };

const sets = (assignments: string[]) => assignments.flatMap((a) => ['--set', a]);

/** Parses summary.csv (no quoted fields: run ids and statuses have no commas) into rows by column. */
function summaryRows(file: string): Record<string, string>[] {
  const [header, ...lines] = fs.readFileSync(file, 'utf8').trim().split('\n');
  const columns = header.split(',');
  return lines.map((l) => Object.fromEntries(l.split(',').map((v, i) => [columns[i], v])));
}

describe('the experiment library (experiments/*.yaml)', () => {
  it('has the specs docs/experiments.md documents', () => {
    const doc = fs.readFileSync(path.join(ROOT, 'docs', 'experiments.md'), 'utf8');
    for (const f of SPECS) assert.ok(doc.includes(`experiments/${f}`), `docs/experiments.md mentions experiments/${f}`);
    for (const f of ['lr-sweep', 'batch-size', 'eps', 'placement', 'sigmoid-deep', 'inference-stats', 'ics']) {
      assert.ok(SPECS.includes(`${f}.yaml`), `experiments/${f}.yaml exists`);
    }
  });

  for (const file of SPECS) {
    it(`${file}: bnx plan succeeds`, () => {
      const res = bnx(['plan', path.join(DIR, file)]);
      assert.equal(res.code, 0, res.stderr);
      assert.match(res.stdout, /\d+ run\(s\) of /);
    });

    it(`${file}: a short run of every grid point completes (or diverges)`, () => {
      const out = tmpDir('bnx-experiment-');
      try {
        const res = bnx(['run', path.join(DIR, file), '--out', out, ...sets([...SMOKE, ...(PER_SPEC[file] ?? [])])]);
        assert.equal(res.code, 0, `exit ${res.code} (signal ${res.signal})\n${res.stderr}`);
        const [name] = fs.readdirSync(out);
        const rows = summaryRows(path.join(out, name, 'summary.csv'));
        assert.ok(rows.length >= 1);
        for (const row of rows) {
          assert.ok(['completed', 'diverged'].includes(row.status), `${row.run_id}: ${row.status}`);
          for (const csv of INSTRUMENT_CSVS[file] ?? [])
            assert.ok(fs.existsSync(path.join(out, name, row.run_id, csv)), `${row.run_id}/${csv}`);
        }
      } finally {
        fs.rmSync(out, { recursive: true, force: true });
      }
    });
  }
});
